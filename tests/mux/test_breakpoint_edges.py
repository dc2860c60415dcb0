"""A breakpoint set on one fd matches that fd only, for every condition.

The fd filter was checked for `readable` only (a readable breakpoint on one connection, data
on another): `hup`, `backpressure` and `queue_over` on fd N also paused the loop for what
happened on any other connection, which makes "break when *this* client hangs up" useless
with more than one client.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from typing import Any

import pytest

from mux import Engine

from .conftest import Recorder, connect, send_quietly, wait_until


def _two_connections(engine: Engine, rec: Recorder) -> tuple[socket.socket, int,
                                                              socket.socket, int]:
    """(a, its server fd, b, its server fd), both accepted."""
    a = connect(engine.tcp_port)
    fd_a = rec.wait_for("accept")["fd"]
    b = connect(engine.tcp_port)
    wait_until(lambda: len(rec.of("accept")) == 2, what="the second accept")
    fd_b = rec.of("accept")[1]["fd"]
    wait_until(lambda: {fd_a, fd_b} <= set(engine.connections), what="both connections")
    return a, fd_a, b, fd_b


def _still_running(engine: Engine, rec: Recorder) -> bool:
    """True if no breakpoint paused the loop so far. The command runs after the iteration
    whose handling is already seen (and after a pause that iteration's check would make)."""
    engine.call(lambda: None).result(5)
    return not engine.paused and not rec.of("loop", state="paused")


def _close(sock: socket.socket, reset: bool) -> None:
    if reset:  # RST: poll and epoll report HUP|ERR from the kernel (not only a noted EOF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize(("backend", "reset"), [("select", False), ("epoll", False),
                                                ("poll", True), ("epoll", True)])
def test_a_hup_breakpoint_on_one_fd_ignores_another_connections_hang_up(
        make_engine: Any, backend: str, reset: bool) -> None:
    """A graceful close is noted by the handler (recv read 0 bytes); a reset comes as the
    kernel's HUP bits: both must name the breakpoint's fd to fire it."""
    engine, rec = make_engine(backend=backend)
    a, fd_a, b, fd_b = _two_connections(engine, rec)
    bp = engine.add_breakpoint("hup", fd=fd_a).result(5)
    _close(b, reset)
    rec.wait_for("close", fd=fd_b)
    assert _still_running(engine, rec), f"hup on fd {fd_a} fired for fd {fd_b}'s hang-up"
    _close(a, reset)
    hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"])
    assert hit["fd"] == fd_a


def _flood(sock: socket.socket) -> threading.Thread:
    """Send 4 MiB from a background thread without reading the echo."""
    sender = threading.Thread(target=send_quietly, args=(sock, os.urandom(4 << 20)),
                              daemon=True)
    sender.start()
    return sender


def test_a_backpressure_breakpoint_on_one_fd_ignores_another_connections_backpressure(
        make_engine: Any) -> None:
    engine, rec = make_engine(so_sndbuf=4096)
    a, fd_a, b, fd_b = _two_connections(engine, rec)
    with a, b:
        bp = engine.add_breakpoint("backpressure", fd=fd_a).result(5)
        _flood(b)
        rec.wait_for("backpressure", fd=fd_b, paused=True, timeout=10)
        assert _still_running(engine, rec), f"backpressure on fd {fd_a} fired for fd {fd_b}"
        _flood(a)
        hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"], timeout=10)
        assert hit["fd"] == fd_a


def test_a_queue_over_breakpoint_on_one_fd_ignores_another_connections_queue(
        make_engine: Any) -> None:
    engine, rec = make_engine(so_sndbuf=4096)
    a, fd_a, b, fd_b = _two_connections(engine, rec)

    def depth(fd: int) -> int:
        return int(engine.call(lambda: len(engine.connections[fd].queue)).result(5))

    with a, b:
        bp = engine.add_breakpoint("queue_over", fd=fd_a, depth=3).result(5)
        _flood(b)
        wait_until(lambda: depth(fd_b) > 3, timeout=10, what=f"fd {fd_b}'s queue past 3")
        assert _still_running(engine, rec), f"queue_over on fd {fd_a} fired for fd {fd_b}"
        _flood(a)
        hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"], timeout=10)
        assert hit["fd"] == fd_a
