"""Backpressure has two marks: reading pauses above `high_water` and resumes only once the
queue has drained to `low_water` — not as soon as it dips below high water (that would flap
between paused and reading on every send), nor only when it is empty (that would idle the
connection's input while the peer still had room to take more)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

from .conftest import recv_exactly, send_quietly

HIGH = 512 << 10
LOW = 256 << 10
PAYLOAD = 2 << 20  # enough to pass high water with small socket buffers on both sides


def _small_buffer_client(port: int) -> socket.socket:
    """A client whose receive buffer is small (set before connecting, so the window is), so
    that the server's queue drains only as fast as the client reads, in small steps."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _pending_at_first_resume(events: list[dict[str, Any]], fd: int) -> int:
    """The queue's pending bytes as the last `queue` event before the first resume said."""
    pending: int | None = None
    paused = False
    for event in events:
        if event.get("fd") != fd:
            continue
        if event["kind"] == "queue":
            pending = event["pending_bytes"]
        elif event["kind"] == "backpressure":
            if event["paused"]:
                paused = True
            elif paused:
                assert pending is not None
                return pending
    raise AssertionError("reading never resumed after a pause")


@pytest.mark.parametrize("mode", [("poll", "level"), ("epoll", "edge")])
def test_reading_resumes_at_low_water_not_at_high_water_nor_at_empty(make_engine, mode):
    """The resume is tied to low_water: the queue the last send left is at or under low water
    (not just under high water) and still holds bytes (not drained to empty first)."""
    backend, trigger = mode
    engine, rec = make_engine(backend=backend, trigger=trigger, high_water=HIGH,
                              low_water=LOW, so_sndbuf=4096)
    payload = os.urandom(PAYLOAD)
    with _small_buffer_client(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        sender = threading.Thread(target=send_quietly, args=(sock, payload), daemon=True)
        sender.start()
        rec.wait_for("backpressure", timeout=10, fd=fd, paused=True)
        echoed = recv_exactly(sock, len(payload))
        sender.join(10)
    assert echoed == payload
    rec.wait_for("backpressure", timeout=5, fd=fd, paused=False)
    pending = _pending_at_first_resume(list(rec.events), fd)
    assert 0 < pending <= LOW, f"reading resumed with {pending} bytes queued (low water {LOW})"
