"""The code view's ground-truth test's harness (test_code_view_truth.py): a real engine in
this process with a sink that records, for every event, the mux/ frames on the stack when it
was emitted, and the helpers its scenarios use over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mux import Engine, EngineConfig

TIMEOUT = 5.0
Frame = tuple[str, str]


class TruthSink:
    """Every event with the mux/ frames on the stack when it was emitted, outermost first."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.stacks: list[list[Frame]] = []
        #: the line each of those frames was at (a caller's: the line of its call in progress)
        self.lines: list[list[int]] = []
        self.labels: list[str] = []
        self.label = "start"
        self.throttled = False  # every iteration unwatched: no register event to wait for
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        frames: list[Frame] = []
        lines: list[int] = []
        f = sys._getframe(2)  # (1 is Observers.emit)
        while f is not None:
            module = f.f_globals.get("__name__", "")
            if module == "mux" or module.startswith("mux."):
                frames.append((module, f.f_code.co_qualname))
                lines.append(f.f_lineno)
            f = f.f_back
        frames.reverse()
        lines.reverse()
        with self._cond:
            self.events.append(dict(event))
            self.stacks.append(frames)
            self.lines.append(lines)
            self.labels.append(self.label)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[dict[str, Any]], Any], what: str,
                 count: int = 1, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if pred(e)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s")
                self._cond.wait(left)


@contextmanager
def truth_engine(**config: Any) -> Iterator[tuple[Engine, TruthSink]]:
    engine = Engine(EngineConfig(tcp_port=0, **config))
    sink = TruthSink()
    engine.observers.add(sink)  # before start: every iteration watched (no budget)
    engine.start()
    try:
        yield engine, sink
    finally:
        engine.stop()
        engine.join(5)


# -- clients ---------------------------------------------------------------------------------
def client(engine: Engine, sink: TruthSink, rcvbuf: int | None = None) -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # a small window: the server's sends go partial while we do not read
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", engine.tcp_port))
    host, port = sock.getsockname()[:2]
    peer = f"{host}:{port}"
    accept = sink.wait_for(lambda e: e["kind"] == "accept" and e.get("peer") == peer,
                           f"accept of {peer}")
    fd = accept["fd"]
    if sink.throttled:  # (the register is counted, not shown)
        wait_until(lambda: fd in engine.connections, f"fd {fd} adopted")
        return sock, fd
    # registered (the accept event comes before the register)
    sink.wait_for(lambda e: e["kind"] == "interest" and e.get("fd") == fd
                  and e.get("op") == "register" and e["seq"] > accept["seq"],
                  f"register of fd {fd}")
    return sock, fd


def wait_until(pred: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.002)  # polling a condition, with a deadline
    return got


class Failing:
    """A socket whose named methods raise (`fail`: method -> exception), the rest the real
    one's: a kernel's failure (an accept out of fds, a send refused) played where a real one
    cannot be provoked in this process. Installed and removed on the loop thread."""

    def __init__(self, real: socket.socket, **fail: BaseException | list[BaseException]) -> None:
        self.real = real
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        exc = self.fail.get(name)
        if exc is None:
            return getattr(self.real, name)

        def raising(*args: Any) -> Any:
            if isinstance(exc, list):  # each once, then the real one's
                if not exc:
                    return getattr(self.real, name)(*args)
                raise exc.pop(0)
            raise exc
        return raising


def closed(sink: TruthSink, fd: int, after: int) -> dict[str, Any]:
    return sink.wait_for(lambda e: e["kind"] == "close" and e.get("fd") == fd
                         and e["seq"] > after, f"close of fd {fd}")


def queued(engine: Engine, sink: TruthSink, fd: int, start: int) -> None:
    """Something is queued for `fd` (throttled: no `queue` event is shown)."""
    if sink.throttled:
        wait_until(lambda: (c := engine.connections.get(fd)) is not None and c.queue,
                   f"a queue on fd {fd}")
        return
    sink.wait_for(lambda e: e["kind"] == "queue" and e.get("fd") == fd and e["seq"] > start,
                  "a queue event")


def last_seq(sink: TruthSink) -> int:
    with sink._cond:
        return sink.events[-1]["seq"] if sink.events else 0


def read_all(sock: socket.socket) -> bytes:
    buf = bytearray()
    try:
        while chunk := sock.recv(65536):
            buf += chunk
    except ConnectionError:
        pass
    return bytes(buf)


def rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
