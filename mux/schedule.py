"""Callbacks the loop runs between waits: `call_soon` (after the next wait, which then does
not block) and `call_later` (a heap of deadlines that bounds the wait's timeout).

The loop's base class: the run loop asks `_timeout()` before a wait and `_run_due()` after
the handlers, and does neither when both lists are empty (the hot path's one truth test).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class Scheduler:
    def __init__(self, wait_timeout: float | None) -> None:
        #: the timeout of a wait with nothing scheduled (None: block until something is ready)
        self.wait_timeout = wait_timeout
        self._soon: list[Callable[[], None]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()  # ties in the heap never compare the callables

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` after the next wait (which then does not block)."""
        self._soon.append(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), fn))

    def _timeout(self) -> float | None:
        if self._soon:
            return 0.0
        timeout = self.wait_timeout
        if self._timers:
            until = max(0.0, self._timers[0][0] - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        return timeout

    def _run_due(self) -> None:
        if self._soon:
            soon, self._soon = self._soon, []
            for fn in soon:
                fn()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()
