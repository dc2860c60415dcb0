"""select(2): three fd lists in, three lists out; nothing persists in the kernel between calls."""

from __future__ import annotations

import select
from itertools import repeat

from .base import FD_SETSIZE, READABLE, SIDES, WRITABLE, Backend, FdLimitError, Ready

# select has no bit masks of its own; these stand for membership in its three lists.
IN_READ, IN_WRITE, IN_EXCEPT = 1, 2, 4
#: endless, hence reusable by every wait: `zip(r, _READS)` pairs each fd with its report in C,
#: where a list comprehension is a Python frame of its own (~700 machine instructions a wait)
_READS, _WRITES = repeat(IN_READ), repeat(IN_WRITE)


class SelectBackend(Backend):
    name = "select"
    fd_limit: int = FD_SETSIZE
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
        # mistake) reports nothing useful and hides the distinction. A tuple: select reads a
        # tuple or a list in place (PySequence_Fast) and copies any other iterable into a
        # new list on every call.
        self.xlist: tuple[int, ...] = ()
        self.registered: set[int] = set()
        #: `rlist` as select is given it: a tuple it reads in place, where a set is copied
        #: into a new list on every call. None after a change of the read list, rebuilt by
        #: the next wait (the hot paths change only `wlist`, with their write toggle).
        self._reads: tuple[int, ...] | None = ()
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
        if fd >= self.fd_limit:
            raise FdLimitError(fd)
        self.registered.add(fd)
        self.modify(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        reading, writing = SIDES[mask]
        if reading != (fd in self.rlist):
            if reading:
                self.rlist.add(fd)
            else:
                self.rlist.discard(fd)
            self._reads = None
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
        if fd in self.rlist:
            self.rlist.discard(fd)
            self._reads = None
        self.wlist.pop(fd, None)

    def fds_passed(self, registered: int) -> int:
        return registered - len(self.unwatched)

    def _forget(self, fd: int) -> None:
        self.unregister(fd)

    def wait(self, timeout: float | None) -> Ready:
        reads = self._reads
        if reads is None:
            reads = self._reads = tuple(self.rlist)
        # An empty write list (the eager echo's, always) as (): select copies a dict into a
        # new list each call, empty or not (~1,300 machine instructions a wait, callgrind)
        r, w, _ = select.select(reads, self.wlist or (), self.xlist, timeout)
        if not w:
            return list(zip(r, _READS))  # noqa: B905 - a keyword costs ~1,500 instructions
        if not r:  # the queued strategy's writable half: no fd is in both lists
            return list(zip(w, _WRITES))  # noqa: B905
        ready = dict.fromkeys(r, IN_READ)
        for fd in w:
            ready[fd] = ready.get(fd, 0) | IN_WRITE
        return list(ready.items())
