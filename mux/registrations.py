"""The fd -> handler table and its interest bookkeeping, which the loop (loop.py) waits on.

Rules of this module:
- Every interest change goes through `set_interest`, so backend, table and events agree. One
  exception, for speed: the queued strategy's unwatched path (the engine's batch dispatch,
  hot.py) switches write interest with the backend's `write_toggle` (select: its write dict's
  setdefault and pop; poll and epoll: the kernel object's modify and the two masks; C calls
  all) and updates the table and the count itself: two Python frames fewer a switch than
  set_interest. tests/mux/test_observe.py checks that the table, the backend and the seq
  still agree.
- `unregister` is the way out of the table, and callers close the fd only after it (the one
  other way, `discard_stale`, is for an fd a bug-zoo flaw closed while registered).
- Events are built only behind `if obs.watched:` (see observe.py); a throttled change (over
  the observation budget) only counts its seq number.
"""

from __future__ import annotations

from typing import Any, Protocol

from .backends import Backend
from .observe import Observers


class Handler(Protocol):
    fd: int
    role: str
    #: True while a batch dispatch that knows this handler's class may do its common case
    #: itself (the engine's, hot.py: a TCP connection that is reading); False elsewhere
    inline: bool

    def on_ready(self, mask: int) -> None: ...


class Registrations:
    """Which handler owns each fd, what each is watched for, and the backend that is told."""

    def __init__(self, backend: Backend, observers: Observers) -> None:
        self.backend = backend
        self._mirror_backend()
        self.obs = observers
        self.handlers: dict[int, Handler] = {}
        self.interest: dict[int, int] = {}
        #: one-shot: fds the kernel disabled when it reported them, to arm again after their
        #: handler (unless a MOD inside it did so already)
        self._rearm: set[int] = set()
        #: fds unregistered since the last wait returned. The rest of that wait's ready list
        #: is the closed file's report: an fd the kernel reused meanwhile (a user's close by
        #: the control fd, then an accept, in one batch) is a new registration it never
        #: reported, so the dispatches skip these, and a shown `ready` event of one says
        #: `stale`. Cleared when the next wait returns.
        self.retired: set[int] = set()

    # -- registrations -------------------------------------------------------------------
    def register(self, handler: Handler, mask: int) -> None:
        """Add `handler`; raises (e.g. FdLimitError) before anything is recorded."""
        fd = handler.fd
        self.backend.register(fd, mask)
        self.handlers[fd] = handler
        self.interest[fd] = mask
        if self.obs.watched:
            self._emit_interest(fd, "register", mask)
        elif self.obs.active:  # throttled: count what is not shown
            self.obs.seq += 1

    def set_interest(self, fd: int, mask: int) -> None:
        interest = self.interest
        try:
            if interest[fd] == mask:
                return
        except KeyError:
            pass  # not registered: the backend decides (select adds it, poll raises)
        self.backend.modify(fd, mask)
        interest[fd] = mask
        if self.oneshot:  # a MOD has re-armed the fd already
            self._rearm.discard(fd)
        obs = self.obs
        if obs.watched:
            obs.emit({"kind": "interest", "fd": fd, "op": "modify",
                      "flags": self.backend.interest_names(mask)})
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1

    def unregister(self, fd: int) -> None:
        if fd not in self.handlers:
            return
        self.backend.unregister(fd)
        del self.handlers[fd]
        mask = self.interest.pop(fd)
        self._rearm.discard(fd)
        self.retired.add(fd)
        if self.obs.watched:
            self._emit_interest(fd, "unregister", mask)
        elif self.obs.active:  # throttled: count what is not shown
            self.obs.seq += 1

    def replace_handler(self, fd: int, handler: Handler) -> None:
        """Hand a registered fd to another handler (a closing connection's Lingerer)."""
        if fd not in self.handlers:
            raise KeyError(fd)
        self.handlers[fd] = handler

    def discard_stale(self, fd: int, cause: str = "stale") -> None:
        """Remove an fd that was closed while registered (a bug-zoo flaw does that), or
        whose handler failed to close (`cause` "crash")."""
        self.backend.discard(fd)
        self.handlers.pop(fd, None)
        self.retired.add(fd)
        mask = self.interest.pop(fd, 0)
        if self.obs.active:
            self._emit_interest(fd, "unregister", mask, cause=cause)

    def _mirror_backend(self) -> None:
        """Copy what the hot paths read on every message from `backend` (one attribute each,
        not two); called whenever the backend, or the bits it passes to the kernel, change."""
        backend = self.backend
        self.edge = backend.edge  # read on every recv
        self.oneshot = backend.oneshot  # read on every interest change
        #: the backend's write toggle, for handlers' hot paths (None: use set_interest)
        self.write_toggle = backend.write_toggle

    def reapply_interest(self) -> None:
        """Re-send every registration to the kernel (after the backend's `extra` changed: a
        bug-zoo flaw's hang-up bit); each is an `interest` event, as the masks changed."""
        self._mirror_backend()  # the write toggle is rebuilt with the new bits
        emit = self.obs.active
        for fd, mask in self.interest.items():
            self.backend.modify(fd, mask)
            if emit:
                self._emit_interest(fd, "modify", mask, cause="flaw")

    def _emit_interest(self, fd: int, op: str, mask: int, moved: bool = False,
                       cause: str | None = None, early: bool = False) -> None:
        """`moved`: registered anew by a backend switch, not by a new connection; `cause`:
        a change no handler asked for (a one-shot re-arm, a stale fd dropped, a flaw's new
        bits), which the page's code view tells apart by it."""
        flags = self.backend.interest_names(mask)
        event: dict[str, Any] = {"kind": "interest", "fd": fd, "op": op, "flags": flags}
        if moved:
            event["moved"] = True
        if cause is not None:
            event["cause"] = cause
        if early:  # a re-arm inside the fd's own handler (rearm_now), not after it
            event["early"] = True
        self.obs.emit(event)

    # -- one-shot ------------------------------------------------------------------------
    def rearm_now(self, fd: int) -> None:
        """One-shot: arm `fd` again inside its own handler, not after it (no-op otherwise)."""
        if fd in self._rearm:
            self._rearm_fd(fd, early=True)

    def _rearm_fd(self, fd: int, early: bool = False) -> None:
        """One-shot: the kernel disabled `fd` after reporting it; arm it again."""
        self._rearm.discard(fd)
        if fd in self.handlers:
            self.backend.modify(fd, self.interest[fd])
            if self.obs.watched:
                self._emit_interest(fd, "modify", self.interest[fd], cause="rearm", early=early)
            elif self.obs.active:  # throttled: count what is not shown
                self.obs.seq += 1

    # -- switching -----------------------------------------------------------------------
    def switch(self, new: Backend) -> Backend:
        """Move every registration to `new` (between two waits); return the old backend.

        On failure (e.g. an fd select cannot watch) `new` is closed and nothing changes.
        """
        try:
            for fd, mask in self.interest.items():
                new.register(fd, mask)
        except BaseException:
            new.close()
            raise
        old, self.backend = self.backend, new
        self._mirror_backend()
        self._rearm.clear()
        old.close()
        if self.obs.active:
            for fd, mask in self.interest.items():
                self._emit_interest(fd, "register", mask, moved=True)
        return old
