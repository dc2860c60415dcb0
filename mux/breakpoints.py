"""Readiness breakpoints: pause the real loop after the wait whose handling matched.

Conditions are checked once per iteration, after the handlers ran, from what the kernel
returned (readable / writable / hang-up bits) and from what the handlers noted (EOF,
backpressure changes, queue depth). With no breakpoint set, nothing here runs at all.
"""

from __future__ import annotations

import itertools
import select
from dataclasses import dataclass, field
from typing import Any

from .backends import READABLE, WRITABLE, Backend

CONDITIONS = ("readable", "writable", "hup", "queue_over", "backpressure")
_HUP_BITS = (getattr(select, "POLLHUP", 0) | getattr(select, "EPOLLHUP", 0)
             | getattr(select, "EPOLLRDHUP", 0))


@dataclass
class Breakpoint:
    id: int
    when: str
    fd: int | None = None
    depth: int | None = None
    hits: int = 0
    last_wait: int | None = None  # the engine's wait count at the last hit

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "when": self.when, "fd": self.fd, "depth": self.depth,
                "hits": self.hits, "last_wait": self.last_wait}


@dataclass
class Breakpoints:
    items: dict[int, Breakpoint] = field(default_factory=dict)
    #: (what, fd) noted by handlers during the current iteration: "hup", "backpressure"
    notes: list[tuple[str, int]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, when: str, fd: int | None = None, depth: int | None = None) -> Breakpoint:
        if when not in CONDITIONS:
            raise ValueError(f"unknown breakpoint condition {when!r} (one of {CONDITIONS})")
        if when == "queue_over" and depth is None:
            raise ValueError("'queue_over' needs a depth")
        bp = Breakpoint(next(self._ids), when, fd, depth)
        self.items[bp.id] = bp
        return bp

    def remove(self, bp_id: int) -> bool:
        return self.items.pop(bp_id, None) is not None

    def check(self, ready: list[tuple[int, int]], backend: Backend,
              queue_depth: dict[int, int]) -> Breakpoint | None:
        """The first breakpoint that this iteration matched, or None; clears the notes."""
        notes, self.notes = self.notes, []
        for bp in self.items.values():
            if self._matches(bp, ready, backend, notes, queue_depth):
                return bp
        return None

    @staticmethod
    def _matches(bp: Breakpoint, ready: list[tuple[int, int]], backend: Backend,
                 notes: list[tuple[str, int]], queue_depth: dict[int, int]) -> bool:
        def fd_ok(fd: int) -> bool:
            return bp.fd is None or bp.fd == fd

        if bp.when in ("readable", "writable"):
            bit = READABLE if bp.when == "readable" else WRITABLE
            return any(fd_ok(fd) and backend.generic(native) & bit for fd, native in ready)
        if bp.when == "hup":
            return any(fd_ok(fd) and native & _HUP_BITS for fd, native in ready
                       if backend.name != "select") or any(
                what == "hup" and fd_ok(fd) for what, fd in notes)
        if bp.when == "backpressure":
            return any(what == "backpressure" and fd_ok(fd) for what, fd in notes)
        depth = bp.depth or 0
        return any(fd_ok(fd) and d > depth for fd, d in queue_depth.items())
