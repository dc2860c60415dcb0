"""Port flags at the edges of the range TCP and UDP have: 0..65535, in-process (no server)."""

from __future__ import annotations

import pytest

from app.cli import main, parse_dashboard


@pytest.mark.parametrize("flag", ["--http-port", "--echo-port", "--udp-port"])
def test_the_highest_port_is_accepted_and_one_past_it_is_one_line_exit_2(
        flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    """65536 passed the parser (only 70000 was tried) and failed later, at bind, with an
    OverflowError traceback instead of the usage error every other bad flag gets."""
    assert parse_dashboard([flag, "65535"]) is not None
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        parse_dashboard([flag, "65536"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "0..65535" in lines[0] and "65536" in lines[0], lines


@pytest.mark.parametrize("argv", [["--record", ""], ["replay", ""], ["replay", "  "]])
def test_an_empty_file_name_is_refused_as_empty(argv: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`--record ""` said "cannot write --record .: it is a directory": Path("") is "."."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "needs a file name, not an empty string" in lines[0], lines


@pytest.mark.parametrize("sub", ["replay", "bench"])
def test_a_subcommand_after_flags_is_named_as_one(sub: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """argparse said only "unrecognized arguments: replay rec.jsonl"."""
    assert main(["--http-port", "0", sub, "rec.jsonl"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{sub} is a subcommand and comes first" in lines[0], lines


def test_a_misspelt_subcommand_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: benchmark; did you mean muxscope bench?" in err, err
    assert main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus (" in err and "did you mean" not in err, err


def test_replay_answers_version_as_the_command_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`muxscope replay --version` said "the following arguments are required: FILE"."""
    assert main(["replay", "--version"]) == 0
    assert capsys.readouterr().out.startswith("muxscope ")
