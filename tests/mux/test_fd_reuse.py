"""An fd closed and reused within one batch: the rest of the batch's report is the old file's.

A wait returns readiness for the registrations present when it was made. If a handler early
in the batch (the control fd's: a user's close) closes connection X, and the listener, later
in the same batch, accepts a client that the kernel gives the lowest free fd, X again, then
X's entry further on is the closed connection's, not the new one's. It must not reach the new
connection's handler: a recv the kernel never announced for it, and under one-shot a re-arm
of a registration nobody disarmed.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from mux import Engine, EngineConfig
from tests.event_schema import assert_events_follow_spec

from .conftest import MODE_IDS, MODES


class _RecvCalls:
    """The sockets `recv`/`recv_into` was called on, of any socket.socket of this process
    (the sockets, not their fds: the closing connection reads what is left before it closes,
    with the same fd number)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.socks: list[socket.socket] = []
        for name in ("recv", "recv_into"):
            real = getattr(socket.socket, name)
            monkeypatch.setattr(socket.socket, name, self._wrap(real))

    def _wrap(self, real):  # noqa: ANN001, ANN202 - a method of socket.socket, wrapped
        def call(sock, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.socks.append(sock)
            return real(sock, *args, **kwargs)
        return call


def _read_by(engine: Engine, fd: int, recvs: _RecvCalls) -> bool:
    sock = engine.connections[fd].sock
    return any(read is sock for read in recvs.socks)


def _in_this_order(engine: Engine) -> list[list[int]]:
    """The backend's wait hands its ready list back control fd first, then the listener,
    then the rest: an order the kernel may give (epoll's is the order readiness came in,
    select's and poll's their own), chosen here so that every backend is tried with it.
    Returns the fds of each list handed back, as they are."""
    backend = engine.loop.backend
    real_wait = backend.wait
    rank = {engine.control_fd: 0, engine.listener.fd: 1}
    handed: list[list[int]] = []

    def wait(*args):  # noqa: ANN002, ANN202
        ready = sorted(real_wait(*args), key=lambda entry: rank.get(entry[0], 2))
        handed.append([fd for fd, _ in ready])
        return ready
    backend.wait = wait
    return handed


def _batch_with_reuse(engine: Engine, recvs: _RecvCalls, events: list[dict] | None = None,
                      ) -> tuple[int, list[dict], socket.socket, socket.socket]:
    """Run one iteration whose ready list is [control, listener, X]: the control fd's
    command closes X, the listener accepts a client given fd X (both preconditions are
    asserted). Returns X, the batch's events (none without `events`, the observer's list),
    and the two clients."""
    loop = engine.loop
    old = socket.create_connection(("127.0.0.1", engine.tcp_port))
    while not engine.connections:
        loop.run_once()
    (fd,) = engine.connections
    closing = engine.close_connection(fd)  # the control fd is ready first...
    new = socket.create_connection(("127.0.0.1", engine.tcp_port))  # ...then the listener
    old.shutdown(socket.SHUT_WR)  # ...then X (its EOF), all before the wait
    start = len(events) if events is not None else 0
    del recvs.socks[:]
    handed = _in_this_order(engine)
    loop.run_once()
    assert closing.result(1) is True
    assert handed == [[engine.control_fd, engine.listener.fd, fd]], (
        f"precondition: one batch, in this order: {handed}")
    batch = events[start:] if events is not None else []
    if events is not None:
        ready = [e["fd"] for e in batch if e["kind"] == "ready"]
        assert ready == [engine.control_fd, engine.listener.fd, fd], (
            f"precondition: one batch, in this order: {ready}")
    assert list(engine.connections) == [fd], f"precondition: the kernel gave the new client fd {fd}"
    return fd, batch, old, new


@pytest.mark.parametrize(("backend", "trigger", "oneshot"), MODES, ids=MODE_IDS)
def test_a_stale_ready_entry_does_not_reach_the_connection_that_reused_its_fd(
        backend, trigger, oneshot, monkeypatch):
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend=backend, trigger=trigger,
                                 oneshot=oneshot, write="eager", wait_timeout=0.5))
    events: list[dict] = []
    engine.observers.add(events.append)
    recvs = _RecvCalls(monkeypatch)
    old = new = None
    try:
        fd, batch, old, new = _batch_with_reuse(engine, recvs, events)
        accepted = next(i for i, e in enumerate(batch) if e["kind"] == "accept")
        after = [e for e in batch[accepted:] if e.get("fd") == fd and e["kind"] != "ready"]
        assert [e["kind"] for e in after] == ["accept", "interest"], after
        assert after[1]["op"] == "register" and "cause" not in after[1], after
        assert not _read_by(engine, fd, recvs), "the new connection read on the old file's report"
        # the page is told that report is the closed file's (the others are not marked)
        ready = [e for e in batch if e["kind"] == "ready"]
        assert [e.get("stale", False) for e in ready] == [False, False, True], ready
        assert_events_follow_spec(batch)
        # and it is served as any other: its bytes come back
        new.sendall(b"fresh")
        new.settimeout(0)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < 5 and time.monotonic() < deadline:
            engine.loop.run_once()  # (a wait of at most wait_timeout)
            with contextlib.suppress(BlockingIOError):
                got += new.recv(5)
        assert got == b"fresh"
    finally:
        for client in (old, new):
            if client is not None:
                client.close()
        engine.stop()


@pytest.mark.parametrize("dispatch", ["batch", "plain"])
def test_the_unwatched_dispatch_skips_the_stale_entry_too(dispatch, monkeypatch):
    """The hot path (nobody listening: the engine's batch dispatch, hot.py; and the loop's
    own `_dispatch_plain`, which a loop with no batch dispatch runs) reads nothing on the old
    file's report."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", write="eager",
                                 wait_timeout=0.5))
    recvs = _RecvCalls(monkeypatch)
    loop = engine.loop
    if dispatch == "plain":
        loop.dispatch_unwatched = loop._dispatch_plain
    old = new = None
    try:
        assert not engine.observers.active
        fd, _, old, new = _batch_with_reuse(engine, recvs)
        assert not _read_by(engine, fd, recvs), "the new connection read on the old file's report"
    finally:
        for client in (old, new):
            if client is not None:
                client.close()
        engine.stop()
