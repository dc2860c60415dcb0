"""The bench's page reader: latency only for events born in its window, every event counted."""

from __future__ import annotations

import time

from app.benchkit.wsclient import Window


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
