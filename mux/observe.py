"""Observation, in the manner of trio's Instrument API.

The engine calls `emit` only behind a cheap guard (``if observers.watched:``), so with nobody
listening no event is even built. Sinks run on the engine thread and must be O(1) and
non-blocking (``collections.deque.append`` is the model). A sink that raises is detached and
logged: an observer is never the engine's problem.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

Sink = Callable[[dict[str, Any]], None]
log = logging.getLogger("mux")


class Observers:
    """The registry of sinks; the single place where `seq` and `ts` are assigned."""

    def __init__(self) -> None:
        self._sinks: tuple[Sink, ...] = ()
        self._lock = threading.Lock()
        self.watched = False
        self.seq = 0
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def add(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)
            self.watched = True

    def remove(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            self.watched = bool(self._sinks)

    def now(self) -> float:
        """Seconds since the engine started (the `ts` clock)."""
        return time.perf_counter() - self._t0

    def emit(self, event: dict[str, Any]) -> None:
        """Stamp `event` with the next seq and ts, then hand it to every sink."""
        self.seq += 1
        event["seq"] = self.seq
        event["ts"] = time.perf_counter() - self._t0
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - an observer must never break the loop
                log.exception("observer %r raised; detached", sink)
                self.remove(sink)
