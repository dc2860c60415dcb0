"""The bench's page reader: latency only for events born in its window, every event counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from app.benchkit.wsclient import Window
from app.hub import ACK_WINDOW_EVENTS


def test_events_older_than_the_window_are_counted_but_give_no_latency():
    """A frame cut in two by a SIGSTOP between windows arrives late with old events: they
    must not report the stop as latency (runs Q and R of session 5 and 6 showed ~55 s)."""
    window = Window()
    started_at = time.time() - 100.0  # the engine started 100 s ago
    born_in_window = window.wall0 - started_at + 0.010  # 10 ms after the window's start
    now = started_at + born_in_window + 0.020  # it arrives 20 ms later
    frame = {"events": [{"seq": 1, "ts": 1.0}, {"seq": 2, "ts": born_in_window}],
             "dropped": 0}
    window.add(frame, started_at, now)
    report = window.report()
    assert report["events"] == 2
    assert report["p99_ms"] is not None and abs(report["p99_ms"] - 20.0) < 0.5
    assert report["gaps_match_dropped"]


@pytest.mark.parametrize("flags", [(), ("--no-ack",)], ids=["acks", "no-ack"])
def test_the_bench_reader_acks_as_the_page_does_unless_told_not_to(live, flags):
    """The echo rows observed "as the app runs it" and the delivery figures are taken with the
    page's acks (hub.ACK_WINDOW_EVENTS), so the paced path is the one measured: more than a
    window of events arrives, none dropped (a wrong ack would stall it at the window)."""
    port = int(live.base.rsplit(":", 1)[1])
    reader = subprocess.Popen([sys.executable, "-m", "app.benchkit.wsclient", str(port), *flags],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().startswith("READY")
        sub = live.app.state.hub.subscriptions[0]
        with live.connect() as sock:
            sock.settimeout(5)
            sent = 0
            deadline = time.monotonic() + 15
            while sent < ACK_WINDOW_EVENTS * 1.3:
                assert time.monotonic() < deadline, f"{sent} events sent to it, then no more"
                sock.sendall(b"ping\n")
                assert sock.recv(16) == b"ping\n"
                sent = sub.events_sent
                assert sub.unacked_events <= ACK_WINDOW_EVENTS
                time.sleep(0.001)   # pacing: ~9 events a round trip, under the budget (21,000/s)
        assert sub.paced == (not flags) and sub.dropped_total == 0
        reader.stdin.write("stats\n")
        reader.stdin.flush()
        stats = json.loads(reader.stdout.readline().split(" ", 1)[1])
        assert stats["dropped_total"] == 0 and stats["gaps_match_dropped"]
    finally:
        reader.communicate("quit\n", timeout=10)
