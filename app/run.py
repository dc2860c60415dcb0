"""Running the dashboard: the HTTP socket, the start banner, signals, uvicorn (SPEC §1)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from types import FrameType
from typing import Any

from app.entry import SignalsHeld
from app.settings import FD_RESERVE, MIN_NOFILE, Settings, format_hostport
from mux import fd_ceiling, raise_nofile_limit

PROG = "muxscope"


class Stop(KeyboardInterrupt):
    """Raised by the SIGTERM handler while the server is not yet running (a KeyboardInterrupt,
    so that no ``except Exception`` swallows it and app.entry ends the run quietly on it)."""


#: what asyncio's accept retries a second later (the process is out of fds or memory)
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
log = logging.getLogger("muxscope")


class DashboardSocket(socket.socket):
    """The dashboard's listening socket. Out of fds, asyncio's accept loop (CPython 3.11)
    does not stop at its first EMFILE: it tries the whole backlog (2,048 with uvicorn), and
    each try schedules another retry a second later, so the retries, and their log lines,
    multiply by the second (from 2,000 to 57,000 lines/s and 86 % CPU in 12 s). Here the
    tries after the first within half a second say "nothing to accept": one retry a second."""

    quiet_after_emfile_s = 0.5
    _last_emfile = float("-inf")

    def accept(self) -> tuple[socket.socket, Any]:
        now = time.monotonic()
        if now - self._last_emfile < self.quiet_after_emfile_s:
            raise BlockingIOError(errno.EAGAIN, "out of fds: asyncio's retry is scheduled")
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:
                self._last_emfile = now
            raise


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's exception handler: the dashboard's accept out of fds is one line (once a
    second, see DashboardSocket), not a traceback; anything else goes to the default one."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES and "accept" in str(
            context.get("message", "")):
        log.warning("dashboard: cannot accept a connection (%s); retrying in a second",
                    errno.errorcode.get(exc.errno or 0, exc))
        return
    loop.default_exception_handler(context)


def bind_http(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket (OSError when the port is taken)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets of that
    # protocol, and without it each response's body waited for the client's delayed ACK
    sock = DashboardSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


#: the flag that picks each listener's port, for the way out of "address already in use"
_PORT_FLAGS = {"dashboard": "--http-port", "TCP echo": "--echo-port", "UDP echo": "--udp-port"}


def listen_error(host: str, port: int, what: str, exc: OSError) -> str:
    line = f"{PROG}: cannot listen on {format_hostport(host, port)} ({what}): {_reason(exc)}"
    flag = _PORT_FLAGS.get(what)
    if exc.errno == errno.EADDRINUSE and flag:
        line += (f" (another program, perhaps a {PROG} already running, holds it: pick another "
                 f"with {flag} N, or {flag} 0 for any free port)")
    return line


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


def _recording_line(settings: Settings, app: Any) -> str:
    """Where --record writes; rotation and the replay command only for a regular file (a
    device, a pipe or /dev/stdout is never rotated, and there is no file to replay)."""
    recorder = getattr(getattr(getattr(app, "state", None), "recorder", None), "recorder", None)
    if recorder is None or settings.record is None or not recorder.rotates:
        return f"Recording every event to {settings.record}"
    # the recorder writes (and rotates) the file a symlink points to: name the files that appear
    path, target = settings.record, ""
    if settings.record.is_symlink():
        path = recorder.path
        target = f" (a link to {path})"
    return (f"Recording every event to {settings.record}{target}, rotated at "
            f"{settings.record_max_mb} MiB to {path}.1, .2 ... (replay it: muxscope "
            f"replay {settings.record})")


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
    if settings.record and not settings.replay:
        lines.append(_recording_line(settings, app))
    lines.append(f"Dashboard: {settings.dashboard_url(http_port)}")
    if not settings.loopback:
        lines.append(f"Listening on {settings.host}: /api, /metrics and /ws need the token.")
        if host != settings.host:  # a wildcard bind: the URL above names this machine only
            lines.append(f"From another machine: the same URL with this machine's address in "
                         f"place of {host}.")
    return lines


def _print_banner(lines: list[str], settings: Settings) -> None:
    """To stdout, unless the recording goes there (`--record /dev/stdout > run.jsonl`, or
    `| jq`): then to stderr, so the stream holds JSON lines only."""
    out = sys.stderr if _records_to_stdout(settings) else sys.stdout
    try:
        for line in lines:
            print(line, file=out)
        out.flush()
    except (OSError, ValueError) as exc:  # a reader gone (| head), /dev/full, a closed fd
        _unprintable(out, exc, lines[-1] if lines else "")


def _unprintable(out: Any, exc: BaseException, where: str) -> None:
    """The server goes on without its start-up lines (it used to end with a 74-line
    traceback): `out` is pointed at /dev/null, so neither later prints nor the interpreter's
    last flush fail again, and one line goes to stderr (if it can)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    with contextlib.suppress(OSError, ValueError):
        print(f"muxscope: the start-up lines could not be written ({exc}); serving anyway. "
              f"{where}", file=sys.stderr, flush=True)


def _records_to_stdout(settings: Settings) -> bool:
    return _same_file_as(settings, sys.stdout)


def _same_file_as(settings: Settings, stream: Any) -> bool:
    """Whether --record names the file `stream` writes to (/dev/stdout, or 2>&1's file)."""
    if not settings.record:
        return False
    try:
        target, other = os.stat(settings.record), os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no such file yet, or the stream closed
        return False
    if not (stat.S_ISREG(target.st_mode) or stat.S_ISFIFO(target.st_mode)):
        return False  # a terminal or /dev/null: both may go there, nobody replays it
    return (target.st_dev, target.st_ino) == (other.st_dev, other.st_ino)


def _open_browser(url: str) -> None:
    # A thread: on a machine without a GUI, webbrowser may start a text browser and block.
    def run() -> None:
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
        if not opened:  # no browser here (none found, or its command failed): say so
            try:
                print(f"--open: no browser could be started; open {url} yourself", flush=True)
            except (OSError, ValueError) as exc:
                _unprintable(sys.stdout, exc, f"Dashboard: {url}")

    threading.Thread(target=run, name="open-browser", daemon=True).start()


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Stop


def set_signal_handlers(on_int: Any, on_term: Any) -> tuple[Any, Any]:
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
    with SignalsHeld():
        import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                on_started()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            from app.routes import exports
            from app.routes.live import say_goodbye

            exports.end_all()  # else a download outlasts the wait for open connections
            # each page is told why, before uvicorn's bare 1012
            await say_goodbye(app, give_up=lambda: self.force_exit)
            await super().shutdown(sockets=sockets)
            if self.force_exit and not self.lifespan.shutdown_event.is_set():
                # A second Ctrl-C ("force quit") cut the wait for open connections short, and
                # uvicorn then skips the app's shutdown too: the lifespan would be cancelled
                # (a logged CancelledError traceback), the recording left without its tail.
                # That shutdown is bounded (the engine is joined for 5 s at most): it runs.
                await self.lifespan.shutdown()

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


def settle_heap() -> None:
    """Take what start-up built out of the cyclic collector's reach (`gc.freeze`).

    About 64,000 objects (FastAPI, pydantic, uvicorn, the app) live for the whole run anyway.
    Left in place, every full collection walks them again: 30 ms measured under load, once
    every few seconds, with the engine thread waiting on the GIL meanwhile (an echo latency
    spike). Frozen, a full collection walks ~1,000 objects (1.6 ms measured)."""
    gc.collect()
    gc.freeze()


def _build_app(settings: Settings, sock: socket.socket) -> Any:
    """create_app(settings), or None after printing why the echo listeners cannot bind."""
    with SignalsHeld():  # FastAPI and the app: ~100 ms of imports
        from app.main import create_app

    try:
        return create_app(settings)
    except OSError as exc:
        message = engine_error(settings, exc)  # while the dashboard's port is still held
        sock.close()
        print(message, file=sys.stderr)
        return None
    except ValueError as exc:  # a replay file that is not a recording, or an fd select refuses
        sock.close()
        if settings.replay:
            print(f"muxscope replay: {exc}", file=sys.stderr)
        else:  # --backend select, started with fds up to 1023 already open
            print(f"muxscope: --backend select: {exc} (start it with fewer open files, or "
                  "use --backend poll or epoll)", file=sys.stderr)
        return None


def serve(settings: Settings) -> int:
    """Bind, print the banner, serve until Ctrl-C or SIGTERM. Returns the exit status."""
    if _same_file_as(settings, sys.stderr):
        print(f"{PROG}: --record {settings.record}: that is where the log goes too (stderr), and "
              "log lines would break the recording; send stderr elsewhere (2>log) or record "
              "to stdout or a file", file=sys.stderr)
        return 2
    nofile = raise_nofile_limit()
    if nofile < MIN_NOFILE:
        print(f"{PROG}: the open-file limit is {nofile} (ulimit -n), too low to start: it needs "
              f"at least {MIN_NOFILE}, and 1,024 or more to hold many connections; raise it "
              "(ulimit -n 4096) and start again", file=sys.stderr)
        return 1
    ceiling = fd_ceiling(nofile, FD_RESERVE) or nofile
    if not settings.replay and settings.max_connections > ceiling:
        print(f"{PROG}: note: --max-connections {settings.max_connections:,} is more than the "
              f"open-file limit allows ({nofile:,} fds, of which the last {nofile - ceiling:,} "
              "are kept for the dashboard); a connection given an fd past that is closed at "
              "once with an error event",
              file=sys.stderr)
    try:
        sock = bind_http(settings.host, settings.http_port)
    except OSError as exc:
        print(listen_error(settings.host, settings.http_port, "dashboard", exc), file=sys.stderr)
        return 1
    app = _build_app(settings, sock)
    if app is None:
        return 1
    try:
        http_port = sock.getsockname()[1]
        lines = banner_lines(settings, app, http_port)

        def on_started() -> None:
            settle_heap()
            _print_banner(lines, settings)
            if settings.open_browser:
                _open_browser(settings.dashboard_url(http_port))

        server = _make_server(app, on_started)
        # uvicorn's own handler from here on: a signal before uvicorn installs it (as the
        # event loop starts) stops the server all the same, and one after uvicorn restores it
        # (it re-raises what it caught) only sets a flag while the engine is stopped below.
        set_signal_handlers(server.handle_exit, server.handle_exit)
        server.run(sockets=[sock])
    finally:
        sock.close()
        _stop_engine(app)
    return 0


