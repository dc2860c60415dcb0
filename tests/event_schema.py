"""The tests' check of every event they see against SPEC §3 (the table is app/event_schema.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.event_schema import problems


def assert_events_follow_spec(events: Iterable[dict[str, Any]]) -> None:
    """Fail with the first few offending events, each with what is wrong with it."""
    bad = [(event, found) for event in events if (found := problems(event))]
    assert not bad, f"{len(bad)} event(s) off SPEC §3, e.g.: " + "; ".join(
        f"{event} -> {found}" for event, found in bad[:3])
