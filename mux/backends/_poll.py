"""poll(2): an array of (fd, events) in, revents out; the kernel keeps nothing between calls."""

from __future__ import annotations

import math
import select

from .base import MaskBackend, Ready


class PollBackend(MaskBackend):
    name = "poll"
    IN, OUT, PRI = select.POLLIN, select.POLLOUT, select.POLLPRI
    RDHUP = getattr(select, "POLLRDHUP", 0x2000)
    ERRORS = select.POLLERR | select.POLLHUP | select.POLLNVAL
    FLAG_NAMES = (
        (select.POLLIN, "POLLIN"), (select.POLLPRI, "POLLPRI"), (select.POLLOUT, "POLLOUT"),
        (select.POLLERR, "POLLERR"), (select.POLLHUP, "POLLHUP"),
        (select.POLLNVAL, "POLLNVAL"), (RDHUP, "POLLRDHUP"),
    )

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        if trigger != "level" or oneshot:
            raise ValueError("poll is level-triggered only and has no one-shot mode")
        self._poll = select.poll()
        super().__init__(trigger, oneshot, self._poll)

    def wait(self, timeout: float | None) -> Ready:
        ms = None if timeout is None else math.ceil(timeout * 1000)
        return self._poll.poll(ms)
