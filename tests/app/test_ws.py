"""The websocket stream with the real engine: snapshot, ordered events, exact accounting."""

from __future__ import annotations

import time

from websockets.sync.client import connect as ws_connect

from tests.mux.conftest import recv_exactly

from .conftest import events_of, frames


def test_snapshot_first_then_the_client_appears(live):
    with ws_connect(live.ws_url) as ws:
        (snap,) = frames(ws, lambda got: len(got) == 1)
        assert snap["type"] == "snapshot"
        assert snap["state"]["backend"]["name"] == "epoll"
        assert isinstance(snap["seq"], int) and snap["started_at"] > 1e9
        with live.connect() as sock:
            sock.sendall(b"<img src=x onerror=alert(1)>\xff\x00")
            recv_exactly(sock, 30)
            got = frames(ws, lambda g: any(e["kind"] == "send" for e in events_of(g)))
        events = events_of(got)
        assert events[0]["seq"] > snap["seq"]
        kinds = [e["kind"] for e in events]
        assert kinds.index("accept") < kinds.index("recv") < kinds.index("send")
        recv = next(e for e in events if e["kind"] == "recv")
        assert recv["preview"] == "<img src=x onerror=alert(1)>\\xff\\x00"
        # At an interactive rate every event is delivered: no gap, nothing dropped.
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(snap["seq"] + 1, snap["seq"] + 1 + len(seqs)))
        assert all(f["dropped"] == 0 for f in got if f["type"] == "events")


def test_seq_gaps_add_up_to_dropped_under_load(live):
    live.client.post("/api/load", json={"connections": 200, "message_size": 64, "rate": 100})
    with ws_connect(live.ws_url, max_size=None) as ws:
        start = time.monotonic()
        got = frames(ws, lambda g: time.monotonic() - start > 3, timeout=10)
    snap = got[0]
    assert snap["type"] == "snapshot"
    batches = [f for f in got if f["type"] == "events"]
    last = snap["seq"]
    gaps = dropped = delivered = 0
    for frame in batches:
        dropped += frame["dropped"]
        for event in frame["events"]:
            assert event["seq"] > last
            gaps += event["seq"] - last - 1
            last = event["seq"]
            delivered += 1
    assert gaps == dropped
    assert delivered > 5000, f"only {delivered} events in 3 s"
    stats = [f for f in got if f["type"] == "stats"]
    assert len(stats) >= 2
    assert {"events_total", "dropped_total", "connections", "bytes_in", "bytes_out",
            "waits"} <= set(stats[-1])
    assert stats[-1]["connections"] >= 150


def test_stats_at_least_once_a_second_when_idle(live):
    with ws_connect(live.ws_url) as ws:
        start = time.monotonic()
        got = frames(ws, lambda g: sum(f["type"] == "stats" for f in g) >= 3, timeout=5)
        assert time.monotonic() - start < 3.5
        assert got[0]["type"] == "snapshot"
