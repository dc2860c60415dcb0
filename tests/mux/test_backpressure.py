"""A client that never reads must not grow the server's memory past the high-water mark."""

from __future__ import annotations

import os
import threading

import pytest

from mux.tcp import RECV_SIZE

from .conftest import connect, recv_exactly, send_quietly, wait_until


@pytest.mark.parametrize("mode", [("poll", "level"), ("epoll", "level"), ("epoll", "edge")])
@pytest.mark.parametrize("write", ["queued", "eager"])
def test_backpressure_bounds_pending_and_loses_nothing(make_engine, mode, write):
    backend, trigger = mode
    engine, rec = make_engine(backend=backend, trigger=trigger, write=write)
    payload = os.urandom(16 * 1024 * 1024)
    with connect(engine.tcp_port, timeout=30) as sock:
        sender = threading.Thread(target=send_quietly, args=(sock, payload), daemon=True)
        sender.start()
        rec.wait_for("backpressure", timeout=10, paused=True)
        echoed = recv_exactly(sock, len(payload))
        sender.join(10)
    assert echoed == payload
    high = max(e["pending_bytes"] for e in rec.of("queue"))
    assert engine.high_water < high <= engine.high_water + RECV_SIZE
    wait_until(lambda: rec.of("backpressure", paused=False), what="reading resumed")
    # While paused, nothing was read: the client's bytes waited in the kernel, not with us.
    reading = True
    for event in rec.events:
        if event["kind"] == "backpressure":
            reading = not event["paused"]
        elif event["kind"] == "recv":
            assert reading, "recv while reading was paused"
