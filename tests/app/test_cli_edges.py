"""Port flags at the edges of the range TCP and UDP have: 0..65535, in-process (no server)."""

from __future__ import annotations

import pytest

from app.cli import parse_dashboard


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
