"""UDP error events are rate-limited to one a second per kind (mux/udp.py `_error`): the
whole second, not a fraction of it; the next one after it counts those held back."""

from __future__ import annotations

from typing import Any

from mux.udp import ERROR_INTERVAL

MESSAGE = "udp send to 127.0.0.1:9: Operation not permitted"


def _shown_ago(udp: Any, kind: str, seconds: float) -> None:
    """Make the last shown error of `kind` `seconds` old (its count of held-back ones kept)."""
    last, quiet = udp._errors[kind]
    udp._errors[kind] = (last - seconds, quiet)


def test_a_second_error_half_a_second_later_is_held_back(make_engine: Any) -> None:
    engine, rec = make_engine()
    udp = engine.udp
    assert engine.call(udp._error, "send", MESSAGE).result(5) is True
    engine.call(_shown_ago, udp, "send", 0.5 * ERROR_INTERVAL).result(5)
    assert engine.call(udp._error, "send", MESSAGE).result(5) is False
    assert [e["message"] for e in rec.of("error", cause="udp")] == [MESSAGE]
    engine.call(_shown_ago, udp, "send", 0.6 * ERROR_INTERVAL).result(5)  # 1.1 s in all
    assert engine.call(udp._error, "send", MESSAGE).result(5) is True
    assert rec.of("error", cause="udp")[-1]["message"] == (
        MESSAGE + " (and 1 more like it since the last one shown)")
