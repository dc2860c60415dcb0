"""One conformance suite, run on every backend and trigger mode, both write strategies."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from .conftest import (
    MODE_IDS,
    MODES,
    connect,
    recv_exactly,
    recv_until_eof,
    send_quietly,
    wait_until,
)

WRITES = ["queued", "eager"]


@pytest.fixture(params=MODES, ids=MODE_IDS)
def mode(request: pytest.FixtureRequest) -> dict[str, object]:
    backend, trigger, oneshot = request.param
    return {"backend": backend, "trigger": trigger, "oneshot": oneshot}


@pytest.mark.parametrize("write", WRITES)
def test_echo(make_engine, mode, write):
    engine, rec = make_engine(write=write, **mode)
    with connect(engine.tcp_port) as sock:
        for message in (b"hello\n", b"x" * 10_000, bytes(range(256))):
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message
    recv = rec.wait_for("recv")
    assert recv["bytes"] > 0 and isinstance(recv["preview"], str)


@pytest.mark.parametrize("write", WRITES)
def test_half_close_gets_everything_back(make_engine, mode, write):
    """Like `nc -N`: send, shut the write side, read until the server closes."""
    engine, rec = make_engine(write=write, **mode)
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with connect(engine.tcp_port) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        echoed = recv_until_eof(sock)
        sender.join()
    assert echoed == payload
    close = rec.wait_for("close")
    assert close["reason"] == "eof"
    # the kernel's answer that explains the close: recv() returned 0 bytes, shown once, before
    # the close and after every byte received (the page's log said nothing between the
    # readiness and the close)
    fd = close["fd"]
    eofs = rec.of("recv", fd=fd, eof=True)
    assert len(eofs) == 1 and eofs[0]["bytes"] == 0 and eofs[0]["preview"] == "", eofs
    assert rec.of("recv", fd=fd)[-1] is eofs[0]
    assert eofs[0]["seq"] < close["seq"]


def test_reset_closes_only_that_connection(make_engine, mode):
    engine, rec = make_engine(**mode)
    with connect(engine.tcp_port) as healthy, connect(engine.tcp_port) as doomed:
        doomed.sendall(b"x" * 100_000)
        doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        doomed.close()  # RST, with data in flight both ways
        rec.wait_for("close", timeout=5)
        healthy.sendall(b"still here")
        assert recv_exactly(healthy, 10) == b"still here"
    assert engine.stats.connections <= 1


def test_many_clients(make_engine, mode):
    engine, _ = make_engine(**mode)
    socks = [connect(engine.tcp_port) for _ in range(60)]
    try:
        for i, s in enumerate(socks):
            s.sendall(f"client {i}\n".encode())
        for i, s in enumerate(socks):
            expected = f"client {i}\n".encode()
            assert recv_exactly(s, len(expected)) == expected
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("write", WRITES)
def test_partial_sends_under_tiny_buffers(make_engine, mode, write):
    """A tiny server SO_SNDBUF and a client slow to read force partial sends."""
    engine, rec = make_engine(write=write, so_sndbuf=4096, **mode)
    payload = os.urandom(2 * 1024 * 1024)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", engine.tcp_port))
        sock.settimeout(10)
        sender = threading.Thread(target=send_quietly, args=(sock, payload))
        sender.start()
        wait_until(lambda: rec.of("send", partial=True) or rec.of("backpressure"),
                   timeout=10, what="a partial send")
        echoed = recv_exactly(sock, len(payload))
        sender.join()
    assert echoed == payload
    assert rec.of("send", partial=True), "the kernel never took less than offered"


def test_write_interest_only_while_queue_nonempty(make_engine, mode):
    engine, rec = make_engine(write="queued", **mode)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: engine.state().result(5)["connections"][0]["queue_depth"] == 0)
        state = engine.state().result(5)
    conn = next(c for c in state["connections"] if c["fd"] == fd)
    assert not {"write", "POLLOUT", "EPOLLOUT"} & set(conn["interest"])
    mods = [e for e in rec.of("interest", fd=fd) if e["op"] == "modify"]
    assert any({"write", "POLLOUT", "EPOLLOUT"} & set(e["flags"]) for e in mods)


def test_udp_echo_replies_to_sender(make_engine, mode):
    engine, rec = make_engine(**mode)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.settimeout(5)
        b.settimeout(5)
        for sock, data in ((a, b""), (b, b"x"), (a, os.urandom(65507))):
            sock.sendto(data, ("127.0.0.1", engine.udp_port))
            reply, addr = sock.recvfrom(65536)
            assert reply == data and addr[1] == engine.udp_port
    state = engine.state().result(5)
    assert state["listeners"]["udp"]["received"] == 3
    assert state["listeners"]["udp"]["echoed"] == 3


def test_selects_wait_event_says_the_timeval_it_passed(make_engine):
    """select takes a struct timeval, and CPython passes it microseconds: the syscall line
    printed the event's whole milliseconds (rounded up) as tv_usec."""
    engine, rec = make_engine(backend="select", wait_timeout=0.2493)
    wait = rec.wait_for("wait", backend="select")
    assert (wait["timeout_ms"], wait["timeout_us"]) == (250, 249_300)
    engine.switch_backend("poll").result(5)
    polled = rec.wait_for("wait", backend="poll")
    assert polled["timeout_ms"] == 250 and "timeout_us" not in polled
