"""poll(2): an array of (fd, events) in, revents out; the kernel keeps nothing between calls."""

from __future__ import annotations

import math
import select

from .base import READABLE, WRITABLE, Backend, Ready

POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
_ERRORS = select.POLLERR | select.POLLHUP | select.POLLNVAL


class PollBackend(Backend):
    name = "poll"
    FLAG_NAMES = (
        (select.POLLIN, "POLLIN"), (select.POLLPRI, "POLLPRI"), (select.POLLOUT, "POLLOUT"),
        (select.POLLERR, "POLLERR"), (select.POLLHUP, "POLLHUP"),
        (select.POLLNVAL, "POLLNVAL"), (POLLRDHUP, "POLLRDHUP"),
    )

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        if trigger != "level" or oneshot:
            raise ValueError("poll is level-triggered only and has no one-shot mode")
        super().__init__(trigger, oneshot)
        self._poll = select.poll()
        self.events: dict[int, int] = {}  # the (fd, events) array passed on every call

    def native_interest(self, mask: int) -> int:
        return ((select.POLLIN if mask & READABLE else 0)
                | (select.POLLOUT if mask & WRITABLE else 0) | self.extra)

    def _to_generic(self, native: int) -> int:
        # A bit test, never `revents == POLLIN`: POLLIN|POLLHUP together carry the last bytes.
        mask = READABLE if native & (select.POLLIN | select.POLLPRI | POLLRDHUP) else 0
        if native & select.POLLOUT:
            mask |= WRITABLE
        if native & _ERRORS:
            mask |= READABLE | WRITABLE
        return mask

    def register(self, fd: int, mask: int) -> None:
        native = self.native_interest(mask)
        self._poll.register(fd, native)
        self.events[fd] = native

    def modify(self, fd: int, mask: int) -> None:
        native = self.native_interest(mask)
        self._poll.modify(fd, native)
        self.events[fd] = native

    def unregister(self, fd: int) -> None:
        self._poll.unregister(fd)
        del self.events[fd]

    def _forget(self, fd: int) -> None:
        self.events.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except KeyError:
            pass

    def wait(self, timeout: float | None) -> Ready:
        ms = None if timeout is None else math.ceil(timeout * 1000)
        return self._poll.poll(ms)
