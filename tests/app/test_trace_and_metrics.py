"""What the exports and /metrics say, checked against the events themselves: a wait's slice in
the chrome trace ends where the wait returned; the backpressure counter counts pauses (not
resumes); the tap's dropped-events counter counts every seq it never saw, between batches too."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly, send_quietly

from .conftest import Live


def _metric(text: str, sample: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                return float(s.value)
    raise AssertionError(f"no sample {sample}")


def _trace(live: Live) -> list[dict[str, Any]]:
    r = live.client.get("/api/trace", params={"format": "jsonl"})
    assert r.status_code == 200
    return [orjson.loads(line) for line in r.content.splitlines() if line]


# ----------------------------------------------------------------- chrome trace wait slices


def test_a_chrome_wait_slice_ends_when_the_wait_returned(live: Live) -> None:
    """A `wait` event is stamped when the wait call returned, and says how long it slept: its
    slice must span [ts - duration, ts], so that the ready events and reads that follow it
    sit after the slice, not inside it."""
    with live.connect() as sock:
        for i in range(5):
            sock.sendall(b"ping %d" % i)
            assert recv_exactly(sock, 6) == b"ping %d" % i
    waits = wait_until(lambda: {e["seq"]: e for e in _trace(live) if e["kind"] == "wait"},
                       5, "wait events in the trace")
    r = live.client.get("/api/trace", params={"format": "chrome"})
    assert r.status_code == 200
    slices = [t for t in r.json()["traceEvents"]
              if t.get("cat") == "wait" and t["args"]["seq"] in waits]
    assert slices, "no wait slice in the chrome trace"
    for trace_event in slices:
        wait = waits[trace_event["args"]["seq"]]
        assert trace_event["ph"] == "X"
        assert trace_event["dur"] == max(1, int(wait["duration_us"]))
        end = trace_event["ts"] + trace_event["dur"]
        assert end == pytest.approx(wait["ts"] * 1e6, abs=0.01), (trace_event, wait)


# ----------------------------------------------------------------- backpressure pauses


def test_the_backpressure_counter_counts_pauses_not_resumes(live: Live) -> None:
    """muxscope_backpressure_pauses_total is "times a connection's reading was paused": a
    pause and its resume are one, not two. A client that sends without reading makes the
    server pause (over the 1 MiB high-water mark) and resume once it reads."""
    payload = os.urandom(4 << 20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)  # little room in flight
    sock.settimeout(10)
    with sock:
        sock.connect(("127.0.0.1", live.engine.tcp_port))
        sender = threading.Thread(target=send_quietly, args=(sock, payload), daemon=True)
        sender.start()
        wait_until(lambda: any(c["reading_paused"] for c in
                               live.client.get("/api/state").json()["connections"]),
                   5, "reading paused")
        fd = live.client.get("/api/state").json()["connections"][0]["fd"]
        assert recv_exactly(sock, len(payload)) == payload
        sender.join(10)
    events = wait_until(lambda: (t := _trace(live)) and any(
        e["kind"] == "close" and e.get("fd") == fd for e in t) and t, 5, "the close traced")
    pressure = [e["paused"] for e in events if e["kind"] == "backpressure" and e["fd"] == fd]
    assert pressure.count(True) >= 1 and pressure.count(False) >= 1, pressure
    counted = _metric(live.client.get("/metrics").text, "muxscope_backpressure_pauses_total")
    assert counted == pressure.count(True), (counted, pressure)


# ----------------------------------------------------------------- the tap's lost seqs


IDLE_ENGINE: dict[str, Any] = {"bytes_in": 0, "bytes_out": 0, "connections": 0,
                               "waits_by_backend": {}, "events_total": 0, "udp": None}


def _tap_dropped(metrics: Metrics) -> float:
    return _metric(generate_latest(metrics.registry).decode(),
                   "muxscope_tap_dropped_events_total")


def test_tap_dropped_events_counts_gaps_between_batches_and_inside_them() -> None:
    """Events lost at the tap leave seq gaps: inside a batch (1, 2, 4: one lost) and between
    two batches (…4 then 7…: two lost). Both count; the first batch's start does not (the
    web layer may start listening at any seq)."""
    metrics = Metrics(lambda: IDLE_ENGINE, lambda: 0)

    def batch(*seqs: int) -> list[dict[str, Any]]:
        return [{"seq": s, "kind": "recv", "fd": 7} for s in seqs]

    metrics(batch(100, 101))  # the first seen: nothing before it counts
    assert _tap_dropped(metrics) == 0
    metrics(batch(102, 104))  # 103 lost inside the batch
    assert _tap_dropped(metrics) == 1
    metrics(batch(107, 108))  # 105 and 106 lost between two batches
    assert _tap_dropped(metrics) == 3
    metrics(batch(109))  # consecutive: nothing more
    assert _tap_dropped(metrics) == 3


def test_tap_dropped_events_counts_a_gap_after_seq_zero() -> None:
    """A recording's seqs may start at or below 0 (a hand-made file): the gap after a batch
    ending at seq 0 counts like any other, so a replay's figure does not depend on where
    its chunks happened to end."""
    metrics = Metrics(lambda: IDLE_ENGINE, lambda: 0)
    metrics([{"seq": s, "kind": "recv", "fd": 7} for s in (-2, -1, 0)])
    metrics([{"seq": s, "kind": "recv", "fd": 7} for s in (3, 4)])  # 1 and 2 lost
    assert _tap_dropped(metrics) == 2
