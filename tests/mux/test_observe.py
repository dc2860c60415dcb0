"""Observation: cheap when nobody watches, bounded when somebody does, never silent."""

from __future__ import annotations

import time

from .conftest import running_engine
from .traffic import check, start_clients


def test_nobody_listening_builds_and_numbers_nothing():
    with running_engine(observe=False) as (engine, _):
        results = start_clients(engine.tcp_port, 2, 100_000)
        check(results, 100_000)
        assert engine.observers.seq == 0
        assert engine.counters()["bytes_out"] == 200_000  # the echo itself was counted


def test_budget_bounds_what_is_shown_and_keeps_iterations_whole():
    with running_engine(backend="epoll", write="eager", observe_budget=2000) as (engine, rec):
        t0 = time.monotonic()
        results = start_clients(engine.tcp_port, 8, 2_000_000)
        check(results, 2_000_000)
        elapsed = time.monotonic() - t0
        seq_end = engine.observers.seq
    events = rec.events
    high_volume = [e for e in events if e["kind"] in ("wait", "ready", "recv", "send",
                                                        "queue", "interest")]
    assert len(events) < seq_end, "the budget never held anything back"
    # Within the budget, with one iteration of overshoot per 100 ms window.
    windows = elapsed / 0.1 + 1
    assert len(high_volume) <= 2000 * elapsed + windows * 300
    # Every wait that was shown comes with all of its ready events, numbered without gaps:
    # an observed iteration is shown whole.
    for i, wait in enumerate(events):
        if wait["kind"] != "wait":
            continue
        ready, expected_seq = 0, wait["seq"] + 1
        for event in events[i + 1:]:
            if event["kind"] == "wait" or event["seq"] != expected_seq:
                break
            ready += event["kind"] == "ready"
            expected_seq += 1
        assert ready == wait["ready"], wait
    # Accepts and closes are always shown, whatever the budget.
    assert len([e for e in events if e["kind"] == "accept"]) == 8
