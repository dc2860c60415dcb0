"""epoll(7): an interest list kept in the kernel, and a ready list handed back on each wait."""

from __future__ import annotations

import select

from ..kernel import epoll_interest
from .base import MaskBackend, Ready

EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
EPOLLET = select.EPOLLET  # edge-triggered (the seed's "EPOLLRT" does not exist)
EPOLLONESHOT = select.EPOLLONESHOT
#: CPython's epoll.poll(maxevents=-1) asks the kernel for FD_SETSIZE - 1 events at most.
MAXEVENTS = 1023


class EpollBackend(MaskBackend):
    name = "epoll"
    IN, OUT, PRI, RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI, EPOLLRDHUP
    ERRORS = select.EPOLLERR | select.EPOLLHUP
    FLAG_NAMES = (
        (select.EPOLLIN, "EPOLLIN"), (select.EPOLLPRI, "EPOLLPRI"),
        (select.EPOLLOUT, "EPOLLOUT"), (select.EPOLLERR, "EPOLLERR"),
        (select.EPOLLHUP, "EPOLLHUP"), (EPOLLRDHUP, "EPOLLRDHUP"),
        (EPOLLET, "EPOLLET"), (EPOLLONESHOT, "EPOLLONESHOT"),
    )

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        if trigger not in ("level", "edge"):
            raise ValueError(f"trigger must be 'level' or 'edge', not {trigger!r}")
        self._ep = select.epoll()
        self._fd = self._ep.fileno()  # kept: a closed epoll object raises on fileno()
        mode = (EPOLLET if trigger == "edge" else 0) | (EPOLLONESHOT if oneshot else 0)
        super().__init__(trigger, oneshot, self._ep, mode)
        # Each instance's wait is the epoll object's own `poll`, bound: no Python frame
        # between the loop and the kernel (~400 machine instructions an iteration, callgrind).
        # Its defaults are the method's below: maxevents -1 is MAXEVENTS, None blocks.
        self.wait = self._ep.poll  # type: ignore[method-assign]

    @property
    def interest(self) -> dict[int, int]:
        """The kernel's interest list, read back from /proc/self/fdinfo: fd -> mask."""
        return {item["fd"]: item["mask"] for item in epoll_interest(self._ep.fileno())}

    @property
    def fileno(self) -> int | None:
        """The epoll fd; after close, the number it had (the page names the instance that
        made a wait shown after a switch)."""
        return self._fd

    @property
    def maxevents(self) -> int | None:
        return MAXEVENTS

    def wait(self, timeout: float | None) -> Ready:
        """What every instance's `wait`, bound in __init__, does."""
        return self._ep.poll(-1 if timeout is None else timeout, MAXEVENTS)

    def close(self) -> None:
        self._ep.close()
