"""bytes_out counts bytes the kernel took from `send`, nothing else (SPEC §2, §4 /api/state).

A byte received and then lost with its connection (the peer reset it before the echo went out)
was never sent: it must not show up in `bytes_out`. And `bytes_out` is a counter read from
other threads (Engine.counters, /metrics): it must never go back.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time

import pytest

from mux.kernel import socket_queues
from mux.tcp import TcpConnection

from .conftest import SocketStandIn, connect, running_engine, wait_until

TCP_CLOSE = 7  # include/net/tcp_states.h: where an RST leaves the connection


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of `sock` (tcpi_state, the first byte of struct tcp_info);
    reading it, unlike SO_ERROR, leaves a pending error for the engine to find."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("observe", [False, True], ids=["unwatched", "watched"])
@pytest.mark.parametrize("write", ["eager", "queued"])
def test_bytes_lost_to_a_reset_are_not_counted_as_sent(write: str, observe: bool) -> None:
    """Bytes and an RST both wait in the kernel; the engine reads the bytes, its echo gets
    ECONNRESET: 5 bytes in, 0 out (the recv succeeds and the send fails, on real sockets)."""
    with running_engine(observe=observe, backend="epoll", write=write) as (engine, _):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        engine.pause().result(5)
        server = next(iter(engine.connections.values())).sock  # read-only while paused
        client.sendall(b"hello")
        wait_until(lambda: socket_queues(server.fileno())["recv_queue"] == 5,
                   what="the bytes in the server's receive queue")
        _reset(client)
        wait_until(lambda: _tcp_state(server) == TCP_CLOSE, what="the RST at the server")
        engine.resume().result(5)
        wait_until(lambda: engine.counters()["connections"] == 0, what="the close")
        counters = engine.counters()
        assert (counters["bytes_in"], counters["bytes_out"]) == (5, 0)


class _FullKernel(SocketStandIn):
    """A socket whose send buffer is full (send takes nothing), which notes what another
    thread reading the counters at that moment would see."""

    def __init__(self, sock: socket.socket, engine: object, seen: list[int]) -> None:
        super().__init__(sock)
        self._engine = engine
        self._seen = seen

    def send(self, data: object) -> int:
        self._seen.append(self._engine.counters()["bytes_out"])  # type: ignore[attr-defined]
        raise BlockingIOError


def test_bytes_out_never_counts_a_byte_before_it_is_sent() -> None:
    """Eager, unwatched: between the recv and the send's answer, a reader on another thread
    (counters() from /metrics or the websocket stats) must not see the bytes as sent already,
    or the counter goes back when the send takes nothing."""
    with running_engine(observe=False, backend="epoll", write="eager") as (engine, _):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        seen: list[int] = []

        def wrap() -> None:
            conn: TcpConnection = next(iter(engine.connections.values()))
            conn.sock = _FullKernel(conn.sock, engine, seen)  # type: ignore[assignment]

        engine.call(wrap).result(5)
        client.sendall(b"hello")
        wait_until(lambda: seen, what="the echo's send")
        after = engine.counters()["bytes_out"]
        assert seen[0] <= after, f"bytes_out went back from {seen[0]} to {after}"
        assert seen[0] == 0
        client.close()


class _TakesTwoOnce(SocketStandIn):
    """A socket whose next `send` takes at most 2 bytes; the send after it (the queue's flush)
    first notes the counters another thread would read then."""

    def __init__(self, sock: socket.socket, engine: object, seen: list[tuple[int, int]]) -> None:
        super().__init__(sock)
        self._engine = engine
        self._seen = seen
        self._sends = 0

    def send(self, data: bytes) -> int:
        self._sends += 1
        if self._sends == 1:
            return self.real.send(bytes(data)[:2])
        counters = self._engine.counters()  # type: ignore[attr-defined]
        self._seen.append((counters["bytes_in"], counters["bytes_out"]))
        return self.real.send(data)


def test_a_message_echoed_whole_counts_once_and_a_partial_one_as_its_bytes_go() -> None:
    """Eager, unwatched: a message sent back whole is counted once, for both directions
    (`echoed`); one the kernel took 2 bytes of counts its 5 bytes in at once and its bytes out
    as they go: 10 in and 7 out while its rest waited in the queue, then 10 and 10."""
    with running_engine(observe=False, backend="epoll", write="eager") as (engine, _):
        client = connect(engine.tcp_port)
        wait_until(lambda: engine.counters()["connections"] == 1, what="the accept")
        client.sendall(b"hello")
        assert client.recv(16) == b"hello"
        conn: TcpConnection = next(iter(engine.connections.values()))
        # counted after the send returns: the echo can reach the client before that
        wait_until(lambda: conn.echoed == 5, what="the echo counted")
        assert (conn.bytes_in, conn.bytes_out) == (5, 5)
        seen: list[tuple[int, int]] = []

        def wrap() -> None:
            conn.sock = _TakesTwoOnce(conn.sock, engine, seen)  # type: ignore[assignment]

        engine.call(wrap).result(5)
        client.sendall(b"world")
        got = b""
        while len(got) < 5:
            got += client.recv(16)
        assert got == b"world"
        assert seen == [(10, 7)]
        wait_until(lambda: engine.counters()["bytes_out"] == 10, what="the rest counted")
        assert (engine.counters()["bytes_in"], conn.echoed) == (10, 5)
        client.close()


def test_waits_by_backend_never_go_back_while_backends_switch() -> None:
    """A scrape between a switch's backend change and its bookkeeping counted the old
    backend's latest waits under the new name, and the next scrape showed a decrease (a
    counter reset to Prometheus): 3 decreases in 55 switches with a 1 µs switch interval."""
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    decreases: list[tuple[str, int, int]] = []
    stop = threading.Event()
    with running_engine(observe=False, wait_timeout=0.0005) as (engine, _):
        def scrape() -> None:
            before: dict[str, int] = {}
            while not stop.is_set():
                now = engine.counters()["waits_by_backend"]
                decreases.extend((k, v, now.get(k, 0)) for k, v in before.items()
                                 if now.get(k, 0) < v)
                before = now

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        try:
            deadline = time.monotonic() + 3
            switches = 0
            while time.monotonic() < deadline and switches < 3000 and not decreases:
                engine.switch_backend(("poll", "select", "epoll")[switches % 3]).result(5)
                switches += 1
        finally:
            stop.set()
            scraper.join(5)
            sys.setswitchinterval(old_interval)
    assert not decreases, f"after {switches} switches: {decreases[:3]}"
