"""One flaw at a time: switching off a flaw that is not on changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import wait_until


def test_turning_off_a_flaw_that_is_not_on_leaves_the_one_that_is(make_engine: Any) -> None:
    """A page showing an old flaw list may send "off" for another flaw: that must neither turn
    the active flaw off (the state would say none is on while its handler still runs) nor
    free the slot for a second flaw."""
    engine, rec = make_engine()
    engine.set_flaw("eof_ignored", True).result(5)
    wait_until(lambda: rec.of("loop", cause="flaw"), what="the flaw's loop event")
    events = len(rec.events)
    listed = engine.set_flaw("poll_equality", False).result(5)
    assert [f["name"] for f in listed if f["on"]] == ["eof_ignored"]
    assert engine.state().result(5)["flaw"] == "eof_ignored"
    assert [e for e in rec.events[events:] if e["kind"] == "loop"] == []  # no change said
    with pytest.raises(RuntimeError, match="one flaw at a time"):
        engine.set_flaw("poll_equality", True).result(5)
    engine.set_flaw("eof_ignored", False).result(5)
