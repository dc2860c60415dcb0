"""Observation, in the manner of trio's Instrument API.

The engine calls `emit` only behind a cheap guard, so with nobody listening no event is even
built. Two guards: `active` (somebody listens) for the rare, meaningful events (accept, close,
backend, loop, error, flaw, backpressure), and `watched` for the high-volume ones (wait, ready,
recv, send, queue, interest, datagram). `watched` is decided once per loop iteration against an
optional budget of events per second, so a watched loop under heavy load costs a bounded
amount: beyond the budget whole iterations go unobserved. Their events still take a `seq`
(the call sites count them: `elif obs.active: obs.seq += 1`), so the gaps a consumer sees add
up to exactly what it was not shown. With nobody listening at all, events are neither built
nor numbered: they do not exist. Sinks run on the engine thread and must be O(1) and
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
_clock = time.perf_counter
BUDGET_WINDOW = 0.1  # seconds: the budget is spent in slices, so a burst cannot eat a second
#: what a window leaves unshown carries over to the next, up to this many windows' worth: a
#: burst after a quieter spell (300 clients whose messages land together, a paste into many
#: connections) is shown whole, while a steady load is still held to the budget. 3: a window
#: shows 0.4 s of budget at most (8,400 events at the app's), within a page's 10,000-event
#: ack window
BURST_WINDOWS = 3


class Observers:
    """The registry of sinks; the single place where `seq` and `ts` are assigned."""

    def __init__(self, budget: int | None = None) -> None:
        self._sinks: tuple[Sink, ...] = ()
        self._only_sink: Sink | None = None  # the usual case, one sink: emit has no loop
        self._lock = threading.Lock()
        self.active = False
        self.watched = False
        #: high-volume events per second shown while watched; None: every one
        self.budget = budget
        #: when the budget's window ends (perf_counter), and the window's budget as a seq: its
        #: iterations are watched while `seq` is below it. Public: the loop reads both each
        #: iteration, inlining begin_iteration's common case
        self.window_end = 0.0
        self.seq_limit = 0
        self.seq = 0
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def add(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)
            self._only_sink = self._sinks[0] if len(self._sinks) == 1 else None
            self.active = self.watched = True

    def remove(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            self._only_sink = self._sinks[0] if len(self._sinks) == 1 else None
            self.active = self.watched = bool(self._sinks)

    def begin_iteration(self, now: float) -> None:
        """Decide whether this loop iteration's high-volume events are shown (`now`: the
        perf_counter reading the loop takes anyway)."""
        if not self.active:  # also undoes a `watched` set while the last sink was removed
            self.watched = False
            return
        if self.budget is None:
            # Every iteration watched. Set, not assumed: run_once may have cleared `watched`
            # just after add() ran on another thread (it read `active` before the add).
            self.watched = True
            return
        if now >= self.window_end:
            per_window = int(self.budget * BUDGET_WINDOW)
            unspent = min(max(0, self.seq_limit - self.seq), per_window * BURST_WINDOWS)
            self.window_end = now + BUDGET_WINDOW
            self.seq_limit = self.seq + per_window + unspent
        # A window starts with watched iterations, every event of which is shown; once the
        # shown ones reach the budget, the rest of the window goes unwatched. So the budget
        # is a seq to reach, and emit() need not count down. What a window did not spend is
        # added to the next (BURST_WINDOWS at most).
        self.watched = self.seq < self.seq_limit

    def now(self) -> float:
        """Seconds since the engine started (the `ts` clock)."""
        return time.perf_counter() - self._t0

    def emit(self, event: dict[str, Any]) -> None:
        """Stamp `event` with the next seq and ts, then hand it to every sink."""
        self.seq = event["seq"] = self.seq + 1
        event["ts"] = _clock() - self._t0
        only = self._only_sink
        if only is not None:
            try:
                only(event)
            except Exception:  # noqa: BLE001 - an observer must never break the loop
                self._detach(only)
            return
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # noqa: BLE001
                self._detach(sink)

    def _detach(self, sink: Sink) -> None:
        log.exception("observer %r raised; detached", sink)
        self.remove(sink)
