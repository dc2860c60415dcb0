"""The benchmark's bare loops are the floor column of its tables: they must be echo servers
that return every byte, in order, on every poller (epoll, poll, select) and write strategy."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from app.benchkit.baseline import start_bare
from app.benchkit.cbaseline import start_c

SPECS = [(kind, queued, edge) for kind in ("epoll", "poll", "select")
         for queued, edge in ((False, False), (True, False))] + [("epoll", False, True)]


def _echo_round(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        received = bytearray()

        def read() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(payload)
        reader.join(10)
        return bytes(received)


def _assert_echoes_every_byte(port: int) -> None:
    assert _echo_round(port, b"ping") == b"ping"
    big = os.urandom(1 << 20)  # more than the socket buffers: partial sends, queueing
    assert _echo_round(port, big) == big
    results: list[bool] = []
    payloads = [os.urandom(64 * 1024) for _ in range(4)]
    threads = [threading.Thread(target=lambda p=p: results.append(
        _echo_round(port, p) == p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == [True] * 4


@pytest.mark.parametrize("kind,queued,edge", SPECS,
                         ids=[f"{k}-{'queued' if q else 'edge' if e else 'eager'}"
                              for k, q, e in SPECS])
def test_bare_loop_echoes_every_byte(kind: str, queued: bool, edge: bool) -> None:
    running = start_bare(queued=queued, edge=edge, kind=kind)
    try:
        _assert_echoes_every_byte(running.port)
    finally:
        running.stop()


@pytest.mark.parametrize("edge", [False, True], ids=["level", "edge"])
def test_c_loop_echoes_every_byte_and_stops(edge: bool) -> None:
    """The C loop (cecho.c, through ctypes) is the echo table's kernel floor: the same echo,
    partial sends kept and sent in order, and a stop that ends its thread."""
    running = start_c(edge=edge)
    try:
        _assert_echoes_every_byte(running.port)
    finally:
        running.stop()
    assert not any(t.name == "c-echo" for t in threading.enumerate())
