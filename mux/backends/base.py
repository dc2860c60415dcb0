"""The backend interface, modelled on CPython's `selectors` but speaking each kernel's words.

The engine works in two generic bits, READABLE and WRITABLE. A backend turns them into what
it passes to the kernel (its *native* mask) and turns what comes back into generic bits again,
while keeping the native words so the page can show exactly what the kernel said.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

READABLE = 1
WRITABLE = 2
#: generic mask -> (readable, writable). On the hot paths one tuple lookup replaces two bit
#: tests: CPython 3.11 runs `mask & READABLE` through the generic number protocol (~70 machine
#: instructions each, counted with callgrind), a tuple index through a specialised opcode.
SIDES: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
FD_SETSIZE = 1024

Ready = list[tuple[int, int]]  # (fd, native revents) as the kernel returned them


class FdLimitError(ValueError):
    """An fd that this backend cannot watch (select and FD_SETSIZE)."""

    def __init__(self, fd: int, backend: str = "select", more: str = "") -> None:
        super().__init__(
            f"fd {fd} is not below FD_SETSIZE ({FD_SETSIZE}): {backend} can watch fds 0–"
            f"{FD_SETSIZE - 1} only{more}"
        )
        self.fd = fd

    @classmethod
    def for_switch(cls, too_big: list[int]) -> FdLimitError:
        """The refusal of a switch to select: how many fds are in the way, and what to do."""
        others = len(too_big) - 1
        also = f" ({others} more registered fd{'s' * (others != 1)} of {FD_SETSIZE} and up too)"
        return cls(max(too_big), more=(also if others else "") + (
            f". Close connections or remove generated clients until every fd is below "
            f"{FD_SETSIZE}, or stay on poll or epoll"))


#: (on, on_arg, off, off_arg): `on(fd, on_arg)` does `modify(fd, READABLE | WRITABLE)` and
#: `off(fd, off_arg)` does `modify(fd, READABLE)`, for an fd whose read interest is on and stays
#: on. Both are C callables bound ahead of time, so a switch runs no Python frame: select's write
#: dict's `setdefault` and `pop`; poll's and epoll's kernel object's `modify` with its two masks.
WriteToggle = tuple[Callable[[int, Any], object], Any, Callable[[int, Any], object], Any]


class Backend(ABC):
    """One multiplexer. Small: registration bookkeeping, one wait call, names for bits."""

    name: str = ""
    #: native bit -> name, in display order
    FLAG_NAMES: tuple[tuple[int, str], ...] = ()
    #: the echo's queued strategy switches write interest twice a message; this does it without
    #: Registrations.set_interest's generic path (see Registrations.write_toggle). None: not
    #: offered (one-shot)
    write_toggle: WriteToggle | None = None
    #: the fds it can watch are those below this (select: FD_SETSIZE); None: no such limit
    fd_limit: int | None = None

    def __init__(self, trigger: str = "level", oneshot: bool = False) -> None:
        self.trigger = trigger
        self.oneshot = oneshot
        self.edge = trigger == "edge"
        self._names: dict[int, list[str]] = {}
        self._generic: dict[int, int] = {}
        self._interest_names: dict[int, list[str]] = {}  # generic mask -> native names
        self._extra = 0

    @property
    def extra(self) -> int:
        """Bits added to every registration (the bug zoo asks for RDHUP to show hang-ups)."""
        return self._extra

    @extra.setter
    def extra(self, bits: int) -> None:
        self._extra = bits
        self._interest_names.clear()
        self._interest_bits_changed()

    def _interest_bits_changed(self) -> None:
        """Hook: what the backend passes to the kernel for a generic mask has changed."""
        return None

    # -- registration ------------------------------------------------------------------
    @abstractmethod
    def register(self, fd: int, mask: int) -> None: ...

    @abstractmethod
    def modify(self, fd: int, mask: int) -> None: ...

    @abstractmethod
    def unregister(self, fd: int) -> None: ...

    def discard(self, fd: int) -> None:
        """Unregister an fd that may already be closed: the bookkeeping goes either way."""
        try:
            self.unregister(fd)
        except (OSError, KeyError, ValueError):
            self._forget(fd)

    @abstractmethod
    def _forget(self, fd: int) -> None:
        """Drop `fd` from the backend's own tables without asking the kernel."""

    @abstractmethod
    def wait(self, timeout: float | None) -> Ready:
        """One kernel call. `timeout` in seconds, None blocks."""

    def close(self) -> None:
        """Release kernel resources (the epoll fd); select and poll hold none."""
        return None

    @property
    def fileno(self) -> int | None:
        """The backend's own fd (epoll), else None."""
        return None

    @property
    def maxevents(self) -> int | None:
        return None

    # -- vocabulary --------------------------------------------------------------------
    @abstractmethod
    def native_interest(self, mask: int) -> int:
        """Generic READABLE/WRITABLE -> the bits this backend passes to the kernel."""

    @abstractmethod
    def _to_generic(self, native: int) -> int: ...

    @abstractmethod
    def readable_report(self) -> int:
        """The native bits of a plain "readable" report (no hang-up, no error)."""

    def generic(self, native: int) -> int:
        """Native revents -> READABLE/WRITABLE (errors and hang-ups wake both sides)."""
        mask = self._generic.get(native)
        if mask is None:
            mask = self._generic[native] = self._to_generic(native)
        return mask

    def reported(self, native: int) -> int:
        """Native revents -> the READABLE/WRITABLE bits the kernel actually reported (no
        widening of errors and hang-ups to both sides): what a breakpoint matches."""
        return self.generic(native)

    def fds_passed(self, registered: int) -> int:
        """How many of the `registered` fds the wait call is given (the `wait` event's
        `registered`). poll's array holds every registration, even one asking for nothing,
        and epoll's interest list does too; select overrides this."""
        return registered

    def names(self, native: int) -> list[str]:
        """Native bits as the kernel spells them; cached, never mutate the result."""
        found = self._names.get(native)
        if found is None:
            found = [name for bit, name in self.FLAG_NAMES if native & bit]
            self._names[native] = found
        return found

    def interest_names(self, mask: int) -> list[str]:
        """A generic mask as this backend's names (cached; never mutate the result)."""
        found = self._interest_names.get(mask)
        if found is None:
            found = self._interest_names[mask] = self.names(self.native_interest(mask))
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": self.trigger,
            "oneshot": self.oneshot,
            "fd": self.fileno,
            "maxevents": self.maxevents,
        }


class MaskBackend(Backend):
    """poll and epoll: one bit mask per fd, held by a kernel-facing object with
    register/modify/unregister (`select.poll()` or `select.epoll()`). No mirror is kept here:
    the loop's table has the generic masks, `native_interest` turns them into these bits, and
    epoll's own list can be read back from the kernel (`EpollBackend.interest`)."""

    IN = OUT = PRI = RDHUP = ERRORS = 0

    def __init__(self, trigger: str, oneshot: bool, kernel: Any, mode: int = 0) -> None:
        super().__init__(trigger, oneshot)
        self._kernel = kernel
        self._mode = mode  # bits added to every registration (EPOLLET, EPOLLONESHOT)
        self._interest_bits_changed()

    def _interest_bits_changed(self) -> None:
        # generic mask (0..3) -> native bits, looked up on every interest change
        self._native = [self._compute_native(mask) for mask in range(4)]
        # The kernel object's modify and the two masks: one C call instead of set_interest's
        # and modify's Python frames. Not for one-shot: there a MOD also re-arms, and the loop
        # must know of it.
        modify = self._kernel.modify
        self.write_toggle = None if self.oneshot else (
            modify, self._native[READABLE | WRITABLE], modify, self._native[READABLE])

    def _compute_native(self, mask: int) -> int:
        return ((self.IN if mask & READABLE else 0) | (self.OUT if mask & WRITABLE else 0)
                | self._mode | self._extra)

    def native_interest(self, mask: int) -> int:
        return self._native[mask]

    def readable_report(self) -> int:
        return self.IN

    def _to_generic(self, native: int) -> int:
        # A bit test, never `revents == POLLIN`: IN together with HUP carries the last bytes.
        mask = READABLE if native & (self.IN | self.PRI | self.RDHUP) else 0
        if native & self.OUT:
            mask |= WRITABLE
        if native & self.ERRORS:  # errors and hang-ups: let both sides find out
            mask |= READABLE | WRITABLE
        return mask

    def reported(self, native: int) -> int:
        return ((READABLE if native & (self.IN | self.PRI | self.RDHUP) else 0)
                | (WRITABLE if native & self.OUT else 0))

    def register(self, fd: int, mask: int) -> None:
        self._kernel.register(fd, self._native[mask])

    def modify(self, fd: int, mask: int) -> None:
        # On epoll this is EPOLL_CTL_MOD, which also re-arms a one-shot fd and re-checks
        # readiness at once.
        self._kernel.modify(fd, self._native[mask])

    def unregister(self, fd: int) -> None:
        self._kernel.unregister(fd)

    def _forget(self, fd: int) -> None:
        try:
            self._kernel.unregister(fd)
        except (OSError, KeyError, ValueError):
            pass  # closed already (epoll dropped it) or never there

