"""The batch dispatch of unwatched iterations (mux/hot.py), where eager's echo runs inline.

Its rare cases go to `TcpConnection.on_ready`: a reset the kernel reports once must still close
with reason `reset`, a bug must close that connection alone, and an edge-triggered read behind a
partial send must read on to EAGAIN. The observer here has a budget of 1 event a second: every
iteration goes unwatched (so the batch dispatch runs), and the events always shown (error,
close) still come.
"""

from __future__ import annotations

import socket
import struct

import pytest

from mux.backends import READABLE
from mux.kernel import socket_queues

from .conftest import SocketStandIn, connect, recv_exactly, running_engine, wait_until

TCP_CLOSE = 7  # include/net/tcp_states.h: where an RST leaves the connection
THROTTLED = {"observe_budget": 1}  # 0.1 event a 100 ms window: none shown but the rare ones


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("data", [b"", b"hello"], ids=["recv-fails", "send-fails"])
def test_a_reset_met_in_the_batch_closes_with_reason_reset(data: bytes) -> None:
    """select reports an RST as plain readable, so the batch dispatch makes the call that fails:
    the recv (ECONNRESET, reported once: a second read finds EOF, which would say "eof"), or,
    with bytes ahead of the RST, the echo's send."""
    with running_engine(backend="select", write="eager", **THROTTLED) as (engine, rec):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        fd = next(iter(engine.connections))
        engine.pause().result(5)
        server = engine.connections[fd].sock  # read-only while paused
        if data:
            client.sendall(data)
            wait_until(lambda: socket_queues(server.fileno())["recv_queue"] == len(data),
                       what="the bytes in the server's receive queue")
        _reset(client)
        wait_until(lambda: _tcp_state(server) == TCP_CLOSE, what="the RST at the server")
        engine.resume().result(5)
        close = rec.wait_for("close", fd=fd)
        assert close["reason"] == "reset"
        # which call met it, and that the batch's did (the close says so for the code view)
        assert (close["call"], close.get("inline")) == ("send" if data else "recv", True)
        assert close["errno"] in ("ECONNRESET", "EPIPE")
        counters = engine.counters()
        assert (counters["bytes_in"], counters["bytes_out"]) == (len(data), 0)
        assert not rec.of("recv") and not rec.of("send")  # unwatched: the batch ran it


class _Buggy(SocketStandIn):
    def recv_into(self, *_: object) -> int:
        raise RuntimeError("a bug in the eager read")


@pytest.mark.parametrize("backend,trigger", [("select", "level"), ("epoll", "level"),
                                             ("epoll", "edge")])
def test_a_bug_in_the_batchs_echo_closes_only_its_connection(backend: str,
                                                              trigger: str) -> None:
    with running_engine(backend=backend, trigger=trigger, write="eager",
                        **THROTTLED) as (engine, rec):
        bad, good = connect(engine.tcp_port), connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 2, what="the accepts")
        good.sendall(b"first")
        assert recv_exactly(good, 5) == b"first"
        bad_fd = next(fd for fd, c in engine.connections.items()
                      if c.sock.getpeername() == bad.getsockname())

        def plant() -> None:
            conn = engine.connections[bad_fd]
            conn.sock = _Buggy(conn.sock)  # type: ignore[assignment]

        engine.call(plant).result(5)
        bad.sendall(b"x")
        error = rec.wait_for("error", fd=bad_fd)
        assert "RuntimeError: a bug in the eager read" in error["message"]
        assert error["cause"] == "crash"
        assert rec.wait_for("close", fd=bad_fd)["reason"] == "error"
        good.sendall(b"still served")
        assert recv_exactly(good, 12) == b"still served"
        assert engine.loop_state()["loop"] == "running"
        bad.close()
        good.close()


class _TakesTwoOnce(SocketStandIn):
    """The kernel takes 2 bytes of the first send; the rest go through."""

    def __init__(self, real: socket.socket) -> None:
        super().__init__(real)
        self.partial = 0

    def send(self, data: object) -> int:
        if not self.partial:
            self.partial = 1
            return self.real.send(memoryview(data)[:2])  # type: ignore[arg-type]
        return self.real.send(data)  # type: ignore[arg-type]


def test_edge_reads_on_behind_a_partial_send_of_the_batch() -> None:
    """Edge-triggered, one iteration (a step of the paused loop): its first read takes 64 KiB
    of the 100 KiB waiting, and that read's send only 2 bytes. The rest of it is queued, and
    the same iteration reads the other 36 KiB (SPEC §2: drained to EAGAIN), not a later one."""
    payload = bytes(range(256)) * 400  # 102,400 bytes
    with running_engine(backend="epoll", trigger="edge", write="eager",
                        **THROTTLED) as (engine, rec):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        fd = next(iter(engine.connections))
        engine.pause().result(5)
        conn = engine.connections[fd]
        conn.sock = _TakesTwoOnce(conn.sock)  # type: ignore[assignment]  # (paused: safe)
        client.sendall(payload)
        wait_until(lambda: socket_queues(fd)["recv_queue"] == len(payload),
                   what="the bytes in the server's receive queue")
        engine.step().result(5)
        rec.wait_for("loop", state="paused", cause="step")  # the step's iteration is over
        assert conn.sock.partial == 1  # type: ignore[attr-defined]
        assert socket_queues(fd)["recv_queue"] == 0
        assert conn.bytes_in == len(payload)
        engine.resume().result(5)
        assert recv_exactly(client, len(payload)) == payload
        wait_until(lambda: engine.counters()["bytes_out"] == len(payload), what="the count")
        client.close()


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_queued_echo_in_the_batch_leaves_nothing_pending(backend: str) -> None:
    """Queued, unwatched: every message goes recv -> queue -> writable -> send inside the batch
    dispatch. Afterwards nothing is pending, the queue is empty, write interest is off, and
    the bytes are counted once each way. (tests/mux/test_observe.py checks that the loop's
    table and the backend agree, and the seq numbers taken.)"""
    with running_engine(backend=backend, write="queued", **THROTTLED) as (engine, rec):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        fd = next(iter(engine.connections))
        for i in range(20):
            message = b"message %02d" % i
            client.sendall(message)
            assert recv_exactly(client, len(message)) == message
        conn = engine.connections[fd]
        wait_until(lambda: engine.counters()["bytes_out"] == 200, what="the last send counted")

        def read_state() -> tuple[int, int, int]:
            return conn.pending_bytes, len(conn.queue), engine.loop.interest[fd]

        pending, depth, mask = engine.call(read_state).result(5)
        assert (pending, depth, mask) == (0, 0, READABLE)
        assert engine.counters()["bytes_in"] == 200
        assert not rec.of("send") and not rec.of("backpressure")  # unwatched, never paused
        client.close()
