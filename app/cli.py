"""The ``muxscope`` command: run the dashboard, ``bench`` or ``replay`` (SPEC §1)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import secrets
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from app import __version__
from app.settings import (
    BACKENDS,
    TRIGGERS,
    WRITE_MODES,
    Settings,
    default_backend,
    format_hostport,
)

PROG = "muxscope"

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
  muxscope --record trace.jsonl             keep every event in trace.jsonl
  muxscope replay trace.jsonl               look at it again later
  muxscope --host 0.0.0.0                   reachable from other machines (a token is made)

security: listeners bind 127.0.0.1 by default. On any other address every /api, /metrics and
/ws request needs the token (printed in the dashboard URL).
"""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int | None, what: str) -> Callable[[str], int]:
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


_port = _int_in(0, 65535, "port")


def _add_http_flags(parser: Any) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the dashboard and the echo server listen on (default: %(default)s)",
    )
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
        type=_int_in(1, None, "--max-clients"),
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
        help="queued: recv -> queue -> wait for writable -> send; eager: send at once and "
        "queue only what the kernel did not take (default: %(default)s)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a snapshot line, then every event, to FILE as JSON lines "
        "(rotated to FILE.1, FILE.2... at --record-max-mb)",
    )
    parser.add_argument(
        "--record-max-mb",
        type=_int_in(1, None, "--record-max-mb"),
        default=100,
        metavar="MB",
        help="size at which the --record file is rotated (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=_int_in(1, None, "--max-connections"),
        default=10_000,
        metavar="N",
        help="echo connections held at once; the next one is accepted and closed "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--load-cap",
        type=_int_in(0, None, "--load-cap"),
        default=2_000,
        metavar="N",
        help="most load clients the page may generate in all (default: %(default)s)",
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
        description="Serve the dashboard over a JSONL file written with --record, with no echo "
        "server: the page receives the recorded events (snapshot first) and can scrub them.",
        epilog="example:\n  muxscope replay trace.jsonl --http-port 8001",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a file written with --record")
    _add_http_flags(parser.add_argument_group("dashboard"))
    return parser


def _token_for(host: str, token: str | None) -> str | None:
    if token:
        return token
    probe = Settings(host=host)
    return None if probe.loopback else secrets.token_urlsafe(16)


def _unwritable(path: Path) -> str | None:
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
    if args.record is not None and (problem := _unwritable(args.record)):
        parser.error(f"cannot write --record {args.record}: {problem}")
    options: dict[str, Any] = vars(args).copy()
    options["token"] = _token_for(args.host, args.token)
    try:
        return Settings(**options)
    except ValueError as exc:
        parser.error(str(exc))


def parse_dashboard(argv: Sequence[str]) -> Settings:
    parser = build_parser()
    return settings_from_args(parser, parser.parse_args(argv))


def parse_replay(argv: Sequence[str]) -> Settings:
    parser = build_replay_parser()
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"cannot read {args.file}: no such file")
    replay_file = args.file
    del args.file
    options = vars(args).copy()
    options["token"] = _token_for(args.host, args.token)
    return Settings(replay_file=replay_file, **options)


# --------------------------------------------------------------------------- running


class _Stop(Exception):
    """Raised by the SIGTERM handler while the server is not yet running."""


def raise_nofile_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (SPEC §1)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bind_http(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket (OSError when the port is taken)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    return (exc.strerror or str(exc)).lower()


def listen_error(host: str, port: int, what: str, exc: OSError) -> str:
    return f"{PROG}: cannot listen on {format_hostport(host, port)} ({what}): {_reason(exc)}"


def _port_is_free(host: str, port: int, kind: int) -> bool:
    try:
        family = socket.getaddrinfo(host, port, type=kind)[0][0]
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError:
        return False
    return True


_LISTEN_ERRNOS = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}


def engine_error(settings: Settings, exc: OSError) -> str:
    """One line for an OSError from create_app, naming the echo listener when it is one."""
    if exc.filename is not None:
        return f"{PROG}: {exc.filename}: {_reason(exc)}"
    if exc.errno not in _LISTEN_ERRNOS:
        return f"{PROG}: cannot start: {_reason(exc)}"
    tcp_free = settings.echo_port == 0 or _port_is_free(
        settings.host, settings.echo_port, socket.SOCK_STREAM
    )
    if not tcp_free or not settings.udp:
        return listen_error(settings.host, settings.echo_port, "TCP echo", exc)
    udp_port = settings.udp_port if settings.udp_port is not None else settings.echo_port
    return listen_error(settings.host, udp_port, "UDP echo", exc)


def _engine_of(app: Any) -> Any:
    """``app.state.engine`` (None in replay, or when the app has no state)."""
    return getattr(getattr(app, "state", None), "engine", None)


def banner_lines(settings: Settings, app: Any, http_port: int) -> list[str]:
    """One line per listener with the command to try, then the dashboard URL."""
    lines: list[str] = []
    host = settings.connect_host
    engine = _engine_of(app)
    if settings.replay:
        lines.append(f"Replaying {settings.replay_file} (no echo server)")
    elif engine is not None:
        tcp = format_hostport(settings.host, engine.tcp_port)
        lines.append(
            f"TCP echo on {tcp} — try: nc {host} {engine.tcp_port}"
            f"  (or: telnet {host} {engine.tcp_port})"
        )
        if engine.udp_port is not None:
            udp = format_hostport(settings.host, engine.udp_port)
            lines.append(f"UDP echo on {udp} — try: nc -u {host} {engine.udp_port}")
    lines.append(f"Dashboard: {settings.dashboard_url(http_port)}")
    if not settings.loopback:
        lines.append(f"Listening on {settings.host}: /api, /metrics and /ws need the token.")
    return lines


def _print_banner(lines: list[str]) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def _open_browser(url: str) -> None:
    # A thread: on a machine without a GUI, webbrowser may start a text browser and block.
    threading.Thread(target=webbrowser.open, args=(url,), name="open-browser", daemon=True).start()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Installed while uvicorn runs: it re-raises the signal it caught once it has stopped."""


def _set_signal_handlers(on_int: Any, on_term: Any) -> tuple[Any, Any]:
    """Install SIGINT/SIGTERM handlers (main thread only); return the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return None, None
    return signal.signal(signal.SIGINT, on_int), signal.signal(signal.SIGTERM, on_term)


def _stop_engine(app: Any) -> None:
    engine = _engine_of(app)
    if engine is None:
        return
    with contextlib.suppress(Exception):
        engine.stop()
        engine.join(timeout=5)


def _make_server(app: Any, on_started: Callable[[], None]) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_started()

    from app.main import UVICORN_OPTIONS

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
        **UVICORN_OPTIONS,
    )
    return Server(config)


def _build_app(settings: Settings, sock: socket.socket) -> Any:
    """create_app(settings), or None after printing why the echo listeners cannot bind."""
    from app.main import create_app

    try:
        return create_app(settings)
    except OSError as exc:
        sock.close()
        print(engine_error(settings, exc), file=sys.stderr)
        return None


def serve(settings: Settings) -> int:
    """Bind, print the banner, serve until Ctrl-C or SIGTERM. Returns the exit status."""
    raise_nofile_limit()
    try:
        sock = bind_http(settings.host, settings.http_port)
    except OSError as exc:
        print(listen_error(settings.host, settings.http_port, "dashboard", exc), file=sys.stderr)
        return 1
    app = _build_app(settings, sock)
    if app is None:
        return 1
    http_port = sock.getsockname()[1]
    lines = banner_lines(settings, app, http_port)

    def on_started() -> None:
        _print_banner(lines)
        if settings.open_browser:
            _open_browser(settings.dashboard_url(http_port))

    server = _make_server(app, on_started)
    try:
        _set_signal_handlers(_ignore_signal, _ignore_signal)
        server.run(sockets=[sock])
    finally:
        sock.close()
        _stop_engine(app)
    return 0


def _run_bench(argv: list[str]) -> int:
    try:
        bench = importlib.import_module("app.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "app.bench":
            raise
        print(f"{PROG}: bench is not available in this install", file=sys.stderr)
        return 1
    result = bench.main(argv)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``muxscope`` console script and of ``python -m app``."""
    args = list(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        if args[:1] == ["bench"]:
            return _run_bench(args[1:])
        settings = parse_replay(args[1:]) if args[:1] == ["replay"] else parse_dashboard(args)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else 1
    previous = _set_signal_handlers(signal.default_int_handler, _on_sigterm)
    try:
        return serve(settings)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        if previous != (None, None):
            _set_signal_handlers(*previous)


if __name__ == "__main__":
    sys.exit(main())
