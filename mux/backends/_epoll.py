"""epoll(7): an interest list kept in the kernel, and a ready list handed back on each wait."""

from __future__ import annotations

import select

from .base import READABLE, WRITABLE, Backend, Ready

EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
EPOLLET = select.EPOLLET  # edge-triggered (the seed's "EPOLLRT" does not exist)
EPOLLONESHOT = select.EPOLLONESHOT
_ERRORS = select.EPOLLERR | select.EPOLLHUP
#: CPython's epoll.poll(maxevents=-1) asks the kernel for FD_SETSIZE - 1 events at most.
MAXEVENTS = 1023


class EpollBackend(Backend):
    name = "epoll"
    FLAG_NAMES = (
        (select.EPOLLIN, "EPOLLIN"), (select.EPOLLPRI, "EPOLLPRI"),
        (select.EPOLLOUT, "EPOLLOUT"), (select.EPOLLERR, "EPOLLERR"),
        (select.EPOLLHUP, "EPOLLHUP"), (EPOLLRDHUP, "EPOLLRDHUP"),
        (EPOLLET, "EPOLLET"), (EPOLLONESHOT, "EPOLLONESHOT"),
    )

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        if trigger not in ("level", "edge"):
            raise ValueError(f"trigger must be 'level' or 'edge', not {trigger!r}")
        super().__init__(trigger, oneshot)
        self._ep = select.epoll()
        self._mode = (EPOLLET if self.edge else 0) | (EPOLLONESHOT if oneshot else 0)
        self.interest: dict[int, int] = {}  # mirror of the kernel's interest list

    @property
    def fileno(self) -> int | None:
        return self._ep.fileno()

    @property
    def maxevents(self) -> int | None:
        return MAXEVENTS

    def native_interest(self, mask: int) -> int:
        return (
            (select.EPOLLIN if mask & READABLE else 0)
            | (select.EPOLLOUT if mask & WRITABLE else 0)
            | self._mode
            | self.extra
        )

    def _to_generic(self, native: int) -> int:
        mask = READABLE if native & (select.EPOLLIN | select.EPOLLPRI | EPOLLRDHUP) else 0
        if native & select.EPOLLOUT:
            mask |= WRITABLE
        if native & _ERRORS:
            mask |= READABLE | WRITABLE
        return mask

    def register(self, fd: int, mask: int) -> None:
        native = self.native_interest(mask)
        self._ep.register(fd, native)
        self.interest[fd] = native

    def modify(self, fd: int, mask: int) -> None:
        """EPOLL_CTL_MOD; it also re-arms a one-shot fd and re-checks readiness at once."""
        native = self.native_interest(mask)
        self._ep.modify(fd, native)
        self.interest[fd] = native

    def unregister(self, fd: int) -> None:
        self._ep.unregister(fd)
        del self.interest[fd]

    def _forget(self, fd: int) -> None:
        self.interest.pop(fd, None)

    def wait(self, timeout: float | None) -> Ready:
        return self._ep.poll(-1 if timeout is None else timeout, MAXEVENTS)

    def close(self) -> None:
        self._ep.close()
