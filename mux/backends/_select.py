"""select(2): three fd lists in, three lists out; nothing persists in the kernel between calls."""

from __future__ import annotations

import select

from .base import FD_SETSIZE, READABLE, SIDES, WRITABLE, Backend, FdLimitError, Ready

# select has no bit masks of its own; these stand for membership in its three lists.
IN_READ, IN_WRITE, IN_EXCEPT = 1, 2, 4


class SelectBackend(Backend):
    name = "select"
    FLAG_NAMES = ((IN_READ, "read"), (IN_WRITE, "write"), (IN_EXCEPT, "except"))

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        if trigger != "level" or oneshot:
            raise ValueError("select is level-triggered only and has no one-shot mode")
        super().__init__(trigger, oneshot)
        self.rlist: set[int] = set()
        #: a dict used as a set (select takes any iterable): its `setdefault` and `pop` take
        #: the two arguments of a write toggle, so switching write interest is one C call
        self.wlist: dict[int, None] = {}
        # The except list stays empty: exceptional conditions on TCP mean urgent (OOB)
        # data, which an echo server does not use. Passing the read list here (the seed's
        # mistake) reports nothing useful and hides the distinction.
        self.xlist: set[int] = set()
        self.registered: set[int] = set()
        #: registered fds in neither list (e.g. a listener while accepts pause on EMFILE):
        #: select is not given them
        self.unwatched: set[int] = set()
        # Interest is held in Python: switching write interest is one dict operation.
        self.write_toggle = (self.wlist.setdefault, None, self.wlist.pop, None)

    def native_interest(self, mask: int) -> int:
        return (IN_READ if mask & READABLE else 0) | (IN_WRITE if mask & WRITABLE else 0)

    def readable_report(self) -> int:
        return IN_READ

    def _to_generic(self, native: int) -> int:
        return (READABLE if native & (IN_READ | IN_EXCEPT) else 0) | (
            WRITABLE if native & IN_WRITE else 0
        )

    def register(self, fd: int, mask: int) -> None:
        if fd >= FD_SETSIZE:
            raise FdLimitError(fd)
        self.registered.add(fd)
        self.modify(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        reading, writing = SIDES[mask]
        if reading:
            self.rlist.add(fd)
        else:
            self.rlist.discard(fd)
        if writing:
            self.wlist[fd] = None
        else:
            self.wlist.pop(fd, None)
        if reading or writing:
            self.unwatched.discard(fd)
        else:
            self.unwatched.add(fd)

    def unregister(self, fd: int) -> None:
        self.registered.discard(fd)
        self.unwatched.discard(fd)
        self.rlist.discard(fd)
        self.wlist.pop(fd, None)

    def fds_passed(self, registered: int) -> int:
        return registered - len(self.unwatched)

    def _forget(self, fd: int) -> None:
        self.unregister(fd)

    def wait(self, timeout: float | None) -> Ready:
        r, w, _ = select.select(self.rlist, self.wlist, self.xlist, timeout)
        if not w:
            return [(fd, IN_READ) for fd in r]
        if not r:  # the queued strategy's writable half: no fd is in both lists
            return [(fd, IN_WRITE) for fd in w]
        ready = dict.fromkeys(r, IN_READ)
        for fd in w:
            ready[fd] = ready.get(fd, 0) | IN_WRITE
        return list(ready.items())
