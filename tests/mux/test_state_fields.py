"""GET /api/state's per-connection fields say which way the bytes went and why reading stopped.

Every state test so far saw connections whose echo had caught up (bytes in == bytes out) and
that read freely, so `bytes_in`/`bytes_out` or `reading_paused`/`lingering` could be given in
each other's place unseen (and a registration's interest names were never checked). A client
that sends and does not read tells them apart.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .conftest import connect, send_quietly


def test_a_throttled_connections_row_says_reading_paused_and_more_in_than_out(
        make_engine: Any) -> None:
    engine, rec = make_engine(backend="epoll", so_sndbuf=4096, high_water=64 << 10,
                              low_water=16 << 10)
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        threading.Thread(target=send_quietly, args=(sock, os.urandom(4 << 20)),
                         daemon=True).start()
        rec.wait_for("backpressure", fd=fd, paused=True, timeout=10)
        engine.pause().result(5)  # the row stays as it is while it is read
        state = engine.state().result(5)
        (row,) = [c for c in state["connections"] if c["fd"] == fd]
        (registration,) = [r for r in state["registrations"] if r["fd"] == fd]
        assert row["reading_paused"] is True
        assert row["lingering"] is False
        assert row["bytes_in"] > row["bytes_out"], row  # the echo is behind: it cannot go out
        assert row["bytes_in"] - row["bytes_out"] == row["pending_bytes"] > 0, row  # queued
        # reading stopped, the echo waits to go out: write interest only, in both lists
        assert row["interest"] == registration["interest"] == ["EPOLLOUT"], (row, registration)
        engine.resume().result(5)
