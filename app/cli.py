"""The ``muxscope`` command: run the dashboard, ``bench`` or ``replay`` (SPEC §1)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from app import __version__
from app.entry import SignalsHeld
from app.run import PROG, Stop, on_sigterm, serve, set_signal_handlers
from app.settings import (
    BACKENDS,
    TRIGGERS,
    WRITE_MODES,
    Settings,
    default_backend,
)

DESCRIPTION = """\
A live, in-browser view of I/O multiplexing. muxscope runs a real non-blocking TCP and UDP
echo server on the backend you pick (select, poll or epoll) and shows every readiness event,
interest change, queue depth and byte moved on a web page. Connect with nc or telnet, type,
and watch your bytes travel.

subcommands:
  muxscope [flags]              run the echo server and the dashboard (the default)
  muxscope bench [...]          run the benchmarks (see: muxscope bench --help)
  muxscope replay FILE [...]    serve the page over a file written with --record
"""

EPILOG = """\
examples:
  muxscope                                  dashboard on http://127.0.0.1:8000/, echo on 9000
  muxscope --backend select --write eager   start on select, eager writes
  muxscope --backend epoll --trigger edge --oneshot
  muxscope --http-port 0 --echo-port 0      pick free ports (the real ones are printed)
  muxscope --record trace.jsonl             every event in trace.jsonl (and trace.jsonl.1...)
  muxscope replay trace.jsonl               look at it again later
  muxscope --host 0.0.0.0                   reachable from other machines (a token is made)

security: listeners bind 127.0.0.1 by default. On any other address every /api, /metrics and
/ws request needs the token (printed in the dashboard URL).
"""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_in(low: int, high: int | None, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{what} must be {bound}, not {value}")
        return value

    return parse


_port = int_in(0, 65535, "port")


def file_name(text: str) -> Path:
    """A path flag's value; an empty one is refused (Path("") is ".", the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a file name, not an empty string")
    return Path(text)


HOST_HELP = "address the dashboard and the echo server listen on (default: %(default)s)"
REPLAY_HOST_HELP = "address the dashboard listens on (default: %(default)s)"


def _add_http_flags(parser: Any, host_help: str = HOST_HELP) -> None:
    parser.add_argument("--host", default="127.0.0.1", help=host_help)
    parser.add_argument(
        "--http-port",
        type=_port,
        default=8000,
        metavar="N",
        help="dashboard port; 0 picks a free port, the real one is printed (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=None,
        type=_token,
        help="access token for /api, /metrics and /ws (default: none on loopback, a random one "
        "otherwise; the printed dashboard URL carries it)",
    )
    parser.add_argument(
        "--open",
        dest="open_browser",
        action="store_true",
        help="open the dashboard in the default browser",
    )
    parser.add_argument(
        "--max-clients",
        type=int_in(1, None, "the number of browsers"),
        default=16,
        metavar="N",
        help="browsers (websockets) at once; the next one is closed with a reason "
        "(default: %(default)s)",
    )


def _add_engine_flags(parser: Any) -> None:
    parser.add_argument(
        "--echo-port",
        type=_port,
        default=9000,
        metavar="N",
        help="TCP echo port; 0 picks a free port, the real one is printed (default: %(default)s)",
    )
    parser.add_argument(
        "--udp-port",
        type=_port,
        default=None,
        metavar="N",
        help="UDP echo port (default: the TCP echo port actually bound)",
    )
    parser.add_argument(
        "--no-udp", dest="udp", action="store_false", help="do not open the UDP echo socket"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default_backend(),
        help="multiplexing backend to start on; switchable from the page (default: %(default)s)",
    )
    parser.add_argument(
        "--trigger",
        choices=TRIGGERS,
        default="level",
        help="level- or edge-triggered readiness; edge needs epoll (default: %(default)s)",
    )
    parser.add_argument(
        "--oneshot", action="store_true", help="register fds with EPOLLONESHOT (epoll only)"
    )
    parser.add_argument(
        "--write",
        choices=WRITE_MODES,
        default="queued",
        help="TCP connections' writes: queued: recv -> queue -> wait for writable -> send; "
        "eager: send at once and queue only what the kernel did not take (default: "
        "%(default)s). UDP replies are always sent at once (a datagram is never sent in part)",
    )
    parser.add_argument(
        "--record",
        type=file_name,
        default=None,
        metavar="FILE",
        help="write a snapshot line, then every event, to FILE as JSON lines "
        "(rotated to FILE.1, FILE.2... at --record-max-mb; the 5 newest rotated files are "
        "kept, and an existing FILE becomes FILE.1)",
    )
    parser.add_argument(
        "--record-max-mb",
        type=int_in(1, 100, "the size in MB"),
        default=None,
        metavar="MB",
        help="size of a --record file's events at which it is rotated, in MiB (2**20 bytes), "
        "1-100 (default: 100; "
        "a file can run past it by up to 20,000 events, ~3 MB, while the rotation catches up). "
        "The replay page's timeline holds a file's last 100,000 events, about 10 MB of a "
        "busy recording: to scrub through whole files, record with --record-max-mb 8",
    )
    parser.add_argument(
        "--max-connections",
        type=int_in(1, None, "the number of connections"),
        default=10_000,
        metavar="N",
        help="echo connections held at once; the next one is accepted and closed "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--load-cap",
        type=int_in(0, None, "the number of clients"),
        default=2_000,
        metavar="N",
        help="most load clients the page may generate in all; 0 turns \"Add clients\" off "
             "(default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_http_flags(parser.add_argument_group("dashboard"))
    _add_engine_flags(parser.add_argument_group("echo server"))
    return parser


def build_replay_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"{PROG} replay",
        # RawDescription keeps the epilog's example as written: the description is wrapped here
        description="Serve the dashboard over a JSONL file written with --record, with no echo\n"
        "server: the page receives the recorded events (snapshot first) and can scrub\n"
        "them.",
        epilog="example:\n  muxscope replay trace.jsonl --http-port 8001",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("file", type=file_name, metavar="FILE",
                        help="a file written with --record, or the page's \"Events as JSON "
                        "lines\" download")
    _add_http_flags(parser.add_argument_group("dashboard"), host_help=REPLAY_HOST_HELP)
    return parser


def _token(text: str) -> str:
    """An explicit --token must say something (an empty one is an unset $VAR), and must go
    through an Authorization header as it is: browsers send only Latin-1 there, and the
    server strips spaces at a header's ends, so any other token locks the page out."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if not all("!" <= ch <= "~" for ch in text):
        raise argparse.ArgumentTypeError(
            "must be printable ASCII with no spaces (it travels in an HTTP header)")
    return text


def _token_for(host: str, token: str | None) -> str | None:
    if token:
        return token
    probe = Settings(host=host)
    return None if probe.loopback else secrets.token_urlsafe(16)


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be appended to, or None (checked without creating it)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return "it is a directory"
    if not parent.is_dir():
        return f"no such directory {parent}"
    target = path if path.exists() else parent
    return None if os.access(target, os.W_OK) else "permission denied"


def settings_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; a conflict is a one-line parser error (exit 2)."""
    if not args.udp and args.udp_port is not None:
        parser.error("--udp-port and --no-udp contradict each other")
    if args.record is not None and (problem := unwritable(args.record)):
        parser.error(f"cannot write --record {args.record}: {problem}")
    if args.record is None and args.record_max_mb is not None:
        parser.error("--record-max-mb needs --record FILE")
    options: dict[str, Any] = vars(args).copy()
    if options["record_max_mb"] is None:
        del options["record_max_mb"]  # the Settings default
    options["token"] = _token_for(args.host, args.token)
    try:
        return Settings(**options)
    except ValueError as exc:
        parser.error(str(exc))


SUBCOMMANDS = ("bench", "replay")


def parse_dashboard(argv: Sequence[str]) -> Settings:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        misplaced = next((word for word in extra if word in SUBCOMMANDS), None)
        if misplaced is not None:  # argparse would say only "unrecognized arguments"
            parser.error(f"{misplaced} is a subcommand and comes first, its flags after it: "
                         f"{PROG} {misplaced} ...")
        words = [word for word in extra if not word.startswith("-")]
        close = difflib.get_close_matches(words[0], SUBCOMMANDS, n=1) if words else []
        hint = f"; did you mean {PROG} {close[0]}?" if close else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return settings_from_args(parser, args)


def parse_replay(argv: Sequence[str]) -> Settings:
    parser = build_replay_parser()
    args = parser.parse_args(argv)
    if args.file.is_dir():
        parser.error(f"cannot read {args.file}: it is a directory")
    if not args.file.exists():  # a pipe (<(zcat f.gz)) or a device is read as it is
        parser.error(f"cannot read {args.file}: no such file")
    replay_file = args.file
    del args.file
    options = vars(args).copy()
    options["token"] = _token_for(args.host, args.token)
    return Settings(replay_file=replay_file, **options)


def _run_bench(argv: list[str]) -> int:
    try:
        with SignalsHeld():
            bench = importlib.import_module("app.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "app.bench":
            raise
        print(f"{PROG}: bench is not available in this install", file=sys.stderr)
        return 1
    # Ctrl-C ends a bench as it ends the dashboard (main, below), even one started with SIGINT
    # ignored (a script's `muxscope bench &`, or a CI runner's), which `kill -INT` would not
    # have stopped: Python keeps an inherited SIG_IGN. SIGTERM raises Stop (a KeyboardInterrupt
    # too), so that the bench can say it was terminated, and end with 143, not Ctrl-C's 130.
    previous = set_signal_handlers(signal.default_int_handler, on_sigterm)
    try:
        result = bench.main(argv)
    finally:
        if previous != (None, None):
            set_signal_handlers(*previous)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``muxscope`` command (app.entry.main, the console script, calls it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        if args[:1] == ["bench"]:
            return _run_bench(args[1:])
        settings = parse_replay(args[1:]) if args[:1] == ["replay"] else parse_dashboard(args)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else 1
    previous = set_signal_handlers(signal.default_int_handler, on_sigterm)
    try:
        return serve(settings)
    except (KeyboardInterrupt, Stop):
        return 0
    finally:
        if previous != (None, None):
            set_signal_handlers(*previous)


if __name__ == "__main__":
    sys.exit(main())
