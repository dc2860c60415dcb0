"""Per-event cost of observation, measured in-process with timeit (min of repeats).

The call sites are the engine's own pattern: `if obs.watched: obs.emit({...})` and, when
throttled, `elif obs.active: obs.seq += 1`. Nothing here is asserted: it prints numbers.
"""

from __future__ import annotations

import collections
import timeit
from collections.abc import Callable
from typing import Any

from mux import Observers, preview

NUMBER = 100_000
REPEAT = 7


def _cost_ns(fn: Callable[[], Any]) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e9


def _send_site(obs: Observers) -> Callable[[], None]:
    def site() -> None:
        if obs.watched:
            obs.emit({"kind": "send", "fd": 7, "bytes": 1024, "partial": False})
        elif obs.active:
            obs.seq += 1
    return site


def _recv_site(obs: Observers, data: bytes) -> Callable[[], None]:
    def site() -> None:
        if obs.watched:
            obs.emit({"kind": "recv", "fd": 7, "bytes": len(data), "preview": preview(data)})
        elif obs.active:
            obs.seq += 1
    return site


def run() -> list[dict[str, Any]]:
    nobody = Observers()
    watched = Observers()
    watched.add(collections.deque(maxlen=100_000).append)
    text, binary = b"x" * 1024, bytes(range(256)) * 4
    baseline = _cost_ns(lambda: None)
    rows = [
        ("send event, nobody watching (two guards)", _send_site(nobody)),
        ("send event, one deque sink", _send_site(watched)),
        ("recv event + preview (1 KiB text), nobody watching", _recv_site(nobody, text)),
        ("recv event + preview (1 KiB text), one deque sink", _recv_site(watched, text)),
        ("recv event + preview (1 KiB binary), one deque sink", _recv_site(watched, binary)),
    ]
    return [{"case": name, "ns": round(_cost_ns(fn) - baseline, 1)} for name, fn in rows]


def render(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["case"]) for r in rows)
    lines = ["Per-event observation cost (in-process, timeit min of 7 x 100,000; "
             "call overhead subtracted)",
             f"{'case':<{width}}  ns/event", f"{'-' * width}  --------"]
    lines += [f"{r['case']:<{width}}  {r['ns']:8.1f}" for r in rows]
    return "\n".join(lines) + "\n"
