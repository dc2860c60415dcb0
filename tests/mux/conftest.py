"""Fixtures for engine tests: a real engine on 127.0.0.1, real sockets, no mocks."""

from __future__ import annotations

import errno
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mux import Engine, EngineConfig
from tests.conftest import wait_until  # noqa: F401 - re-exported for the engine tests
from tests.event_schema import assert_events_follow_spec

#: every backend and trigger mode the platform offers: (backend, trigger, oneshot)
MODES = [
    ("select", "level", False),
    ("poll", "level", False),
    ("epoll", "level", False),
    ("epoll", "edge", False),
    ("epoll", "level", True),
    ("epoll", "edge", True),
]
MODE_IDS = [f"{b}-{t}{'-oneshot' if o else ''}" for b, t, o in MODES]


class SocketStandIn:
    """A real socket with some of its calls replaced by a subclass: what the kernel would do
    at a moment a test cannot make it happen (a refusal, a partial send, a failed accept).
    Everything else goes to the real socket."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class RefusingOnce(SocketStandIn):
    """The engine's UDP socket, whose first `sendto` fails with EAGAIN (loopback never
    refuses a datagram, so a full send buffer is played here, once); the rest go through."""

    def __init__(self, real: socket.socket) -> None:
        super().__init__(real)
        self.refused = 0

    def sendto(self, data: bytes, addr: Any) -> int:
        if not self.refused:
            self.refused += 1
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return self.real.sendto(data, addr)


class Recorder:
    """An observer that keeps every event, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e["kind"] == kind
                    and all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e["kind"] == kind and all(e.get(k) == v for k, v in match.items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind} event matching {match} within {timeout}s")
                self._cond.wait(left)


@contextmanager
def running_engine(observe: bool = True, **config: Any) -> Iterator[tuple[Engine, Recorder]]:
    config.setdefault("tcp_port", 0)
    if "wait_timeout" in config:  # these tests' one timeout paces their steps too
        config.setdefault("step_timeout", config["wait_timeout"])
    engine = Engine(EngineConfig(**config))
    recorder = Recorder()
    if observe:
        engine.observers.add(recorder)
    engine.start()
    try:
        yield engine, recorder
    finally:
        engine.stop()
        engine.join(5)
        assert engine._thread is not None and not engine._thread.is_alive()
    # every event any engine test saw, checked against SPEC §3's table (kinds, fields, types)
    assert_events_follow_spec(recorder.events)


@pytest.fixture
def make_engine() -> Iterator[Callable[..., tuple[Engine, Recorder]]]:
    stack: list[Any] = []

    def make(**config: Any) -> tuple[Engine, Recorder]:
        cm = running_engine(**config)
        stack.append(cm)
        return cm.__enter__()

    yield make
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """sendall for a background thread: the test may close the socket under it."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while chunk := sock.recv(65536):
        buf += chunk
    return bytes(buf)


def proc_udp_drops(port: int) -> int:
    """The `drops` column of /proc/net/udp for the socket bound to `port`."""
    with open("/proc/net/udp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[-1])
    raise AssertionError(f"no UDP socket on port {port}")


def closed_by_server(sock: socket.socket) -> bool:
    """EOF or a reset is waiting on `sock` (it sent nothing, so no echo can be)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionError:
        return True
