"""Readiness breakpoints: pause the real loop after the wait whose handling matched.

Conditions are checked once per iteration, after the handlers ran, from what the kernel
returned (readable / writable / hang-up bits) and from what the handlers noted (EOF,
backpressure changes, queue depth). `queue_over` fires when a queue grows past its depth,
once until that queue is back at or under it. With no breakpoint set, nothing here runs.
"""

from __future__ import annotations

import itertools
import select
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backends import READABLE, WRITABLE, Backend

if TYPE_CHECKING:
    from .loop import Loop

CONDITIONS = ("readable", "writable", "hup", "queue_over", "backpressure")
#: every breakpoint is checked after every wait: a few are what a person sets, thousands would
#: slow the echo itself (3,000 made a round trip ~50x slower)
MAX_BREAKPOINTS = 64
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
    last_fd: int | None = None  # the fd that matched at the last hit
    #: queue_over: the fds whose queue was over `depth` at the last check. It fires when a
    #: queue grows past the depth, not on every wait while it stays there (a client that does
    #: not read keeps it deep, and Resume then acted as Step until the breakpoint was deleted)
    over: set[int] = field(default_factory=set)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "when": self.when, "fd": self.fd, "depth": self.depth,
                "hits": self.hits, "last_wait": self.last_wait, "last_fd": self.last_fd}


class Breakpoints:
    """The set breakpoints, checked by a hook of the loop that exists only while one is set.

    `depths` gives the queue depth of every connection with something queued, `waits` the
    engine's wait count (recorded with each hit), `own_fd` the engine's control fd. A hit waits
    in `hit` for the engine, which pauses the loop after the iteration that matched.

    A breakpoint on an fd belongs to the connection that has that fd: when it closes, the
    breakpoint goes too, after the check of the iteration that closed it (so "hup on fd 7"
    still fires for the hang-up that closes fd 7, a reset included), and never moves to a
    later connection the kernel gives the same number. One set on an fd with no connection
    (also just after a close) waits for the next connection given that fd.

    A breakpoint without an fd matches any fd but the control fd: the dashboard's own commands
    make that one readable, and "readable, any fd" paused the loop on every API request (a
    breakpoint naming the control fd still matches it).
    """

    def __init__(self, loop: Loop, depths: Callable[[], dict[int, int]],
                 waits: Callable[[], int], own_fd: Callable[[], int] = lambda: -1,
                 iterating: Callable[[], bool] = lambda: True) -> None:
        self.loop = loop
        #: False while a command runs between waits (the loop paused): a note made then
        #: belongs to no wait, and must not fire on the next one
        self._iterating = iterating
        self._own_fd = own_fd
        self.items: dict[int, Breakpoint] = {}
        #: (what, fd) noted by handlers during the current iteration: "hup", "backpressure"
        self.notes: list[tuple[str, int]] = []
        self.hit: Breakpoint | None = None
        #: ids of the breakpoints whose connection closed since the last check: they go after
        #: it (ids, not fds: one set on that fd after the close is for the next connection)
        self._doomed: set[int] = set()
        self._depths = depths
        self._waits = waits
        self._ids = itertools.count(1)

    def add(self, when: str, fd: int | None = None, depth: int | None = None) -> Breakpoint:
        if when not in CONDITIONS:
            raise ValueError(f"unknown breakpoint condition {when!r} (one of {CONDITIONS})")
        if when == "queue_over" and depth is None:
            raise ValueError("'queue_over' needs a depth")
        if len(self.items) >= MAX_BREAKPOINTS:
            raise RuntimeError(f"{MAX_BREAKPOINTS} breakpoints are set, the most there can be: "
                               "delete one first")
        bp = Breakpoint(next(self._ids), when, fd, depth)
        self.items[bp.id] = bp
        if self._after_iteration not in self.loop.after_iteration:
            self.loop.after_iteration.append(self._after_iteration)
        return bp

    def remove(self, bp_id: int) -> bool:
        removed = self.items.pop(bp_id, None) is not None
        if not self.items:
            self.notes.clear()  # noted for the breakpoint just removed: never for a later one
            self._doomed.clear()
            if self._after_iteration in self.loop.after_iteration:
                self.loop.after_iteration.remove(self._after_iteration)
        return removed

    def note(self, what: str, fd: int) -> None:
        """A handler reports something a breakpoint may match ("hup", "backpressure")."""
        if self.items and self._iterating():
            self.notes.append((what, fd))

    def fd_closed(self, fd: int) -> None:
        """The connection on `fd` closed: its breakpoints go after this iteration's check."""
        if self.items:
            self._doomed.update(bp.id for bp in self.items.values() if bp.fd == fd)
            for bp in self.items.values():
                bp.over.discard(fd)  # the next connection given this fd starts below

    def _drop_closed(self) -> None:
        doomed, self._doomed = self._doomed, set()
        for bp_id in doomed:
            self.remove(bp_id)

    def take_hit(self) -> Breakpoint | None:
        hit, self.hit = self.hit, None
        return hit

    def _after_iteration(self, ready: list[tuple[int, int]]) -> None:
        hit = self.check(ready, self.loop.ready_backend, self._depths())
        if hit is not None:
            self.hit = hit
        if self._doomed:
            self._drop_closed()

    def check(self, ready: list[tuple[int, int]], backend: Backend,
              queue_depth: dict[int, int]) -> Breakpoint | None:
        """The first breakpoint that this iteration matched (the one the pause names), or
        None; every one that matched counts the hit. Clears the notes."""
        notes, self.notes = self.notes, []
        own_fd = self._own_fd()
        first = None
        for bp in self.items.values():
            fd = self._matching_fd(bp, ready, backend, notes, queue_depth, own_fd)
            if fd is not None:
                bp.last_fd = fd
                bp.hits += 1
                bp.last_wait = self._waits()
                first = first or bp
        return first

    @staticmethod
    def _matching_fd(bp: Breakpoint, ready: list[tuple[int, int]], backend: Backend,
                     notes: list[tuple[str, int]], queue_depth: dict[int, int],
                     own_fd: int = -1) -> int | None:
        """The first fd on which `bp` matched this iteration, or None. For queue_over it also
        records which queues are over the depth now, for the next check."""
        def fd_ok(fd: int) -> bool:
            return fd != own_fd if bp.fd is None else bp.fd == fd

        found: Iterator[int]
        if bp.when in ("readable", "writable"):
            bit = READABLE if bp.when == "readable" else WRITABLE
            found = (fd for fd, native in ready if fd_ok(fd) and backend.reported(native) & bit)
        elif bp.when == "hup":
            kernel = (fd for fd, native in ready
                      if backend.name != "select" and fd_ok(fd) and native & _HUP_BITS)
            noted = (fd for what, fd in notes if what == "hup" and fd_ok(fd))
            found = itertools.chain(kernel, noted)
        elif bp.when == "backpressure":
            found = (fd for what, fd in notes if what == "backpressure" and fd_ok(fd))
        else:
            depth = bp.depth or 0
            over = [fd for fd, d in queue_depth.items() if fd_ok(fd) and d > depth]
            fresh = [fd for fd in over if fd not in bp.over]  # newly over only
            # the fd that fires is remembered; another that grew past the depth in the same
            # check fires on a later one (one pause names one fd)
            bp.over = {fd for fd in over if fd in bp.over or fd in fresh[:1]}
            found = iter(fresh)
        return next(found, None)
