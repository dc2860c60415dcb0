"""The bug zoo's base: what every flaw shares (the dispatch hook it takes over, its detector's
`flaw` events, the hang-up bit some ask the kernel for) and the small helpers its flawed
handlers use. The flaws themselves are in flaws.py, their catalogue and switch in zoo.py.
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import TYPE_CHECKING, Any

from .kernel import socket_queues
from .tcp import TcpConnection, close_reason

if TYPE_CHECKING:
    from .engine import Engine
    from .registrations import Handler

IN_BITS = {"select": 1, "poll": select.POLLIN, "epoll": getattr(select, "EPOLLIN", 1)}
RDHUP_BITS = {"poll": getattr(select, "POLLRDHUP", 0x2000),
              "epoll": getattr(select, "EPOLLRDHUP", 0x2000)}
HUP_BITS = {"poll": select.POLLHUP | RDHUP_BITS["poll"],
            "epoll": getattr(select, "EPOLLHUP", 0x10) | RDHUP_BITS["epoll"]}
NVAL_BIT = getattr(select, "POLLNVAL", 0x20)
ERR_BITS = {"poll": select.POLLERR, "epoll": getattr(select, "EPOLLERR", 0x8)}


def hangup_reason(conn: TcpConnection, backend: str, native: int) -> str:
    """Why a hang-up ended `conn`: without the error bit the peer's EOF; with it, the socket's
    pending error says (ECONNRESET: a reset; another, e.g. a keepalive's ETIMEDOUT: error)."""
    if not native & ERR_BITS.get(backend, 0):
        return "eof"
    err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return close_reason(OSError(err, os.strerror(err))) if err else "reset"


FLAG_INTERVAL = 1.0  # a detector speaks at most once a second per fd


def unread_bytes(fd: int) -> int:
    return max(0, socket_queues(fd)["recv_queue"])


def recv_once(conn: TcpConnection, size: int, flaw: str) -> bytes | None:
    """One recv, as a flawed handler does it: bytes (b"" at EOF), or None (EAGAIN, or the
    connection died and was closed, by `flaw`'s code)."""
    try:
        return conn.sock.recv(size)
    except BlockingIOError:
        return None
    except OSError as exc:
        conn.close(close_reason(exc), flaw=flaw, failed=("recv", exc))
        return None


class Flaw:
    name = ""
    title = ""
    caption = ""
    wants_rdhup = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.detections = 0
        #: (detections, the seq of the last one's event), set in one assignment: another
        #: thread reads both at once (`describe`), and a page adds only the events after it
        self.counted = (0, 0)
        #: fd -> (when it was last flagged, the connection then at that fd): a new connection
        #: given the same fd is flagged at once, not a second later
        self._last_flag: dict[int | None, tuple[float, object]] = {}

    def activate(self) -> None:
        self._last_flag.clear()  # on again: its first detection is shown at once
        self.loop.dispatch_hook = self.dispatch
        self.on_backend_change()

    def deactivate(self) -> None:
        self.loop.dispatch_hook = None
        if self.wants_rdhup:
            self._set_extra(0)

    def before_backend_change(self) -> None:
        """Called just before the loop moves its registrations to a new backend."""
        return None

    def on_backend_change(self) -> None:
        if self.wants_rdhup:
            self._set_extra(RDHUP_BITS.get(self.loop.backend.name, 0))

    def _set_extra(self, bits: int) -> None:
        """The hang-up bit this flaw asks the kernel for, on every registration (select has
        none: nothing changes there)."""
        if self.loop.backend.extra != bits:
            self.loop.backend.extra = bits
            self.loop.reapply_interest()

    def dispatch(self, handler: Handler, native: int) -> None:
        if isinstance(handler, TcpConnection):
            self.connection_ready(handler, native)
        else:
            handler.on_ready(self.loop.ready_backend.generic(native))

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        conn.on_ready(self.loop.ready_backend.generic(native))

    def flag(self, fd: int | None, message: str, force: bool = False) -> None:
        now = time.monotonic()
        owner = self.engine.connections.get(fd) if fd is not None else None
        last = self._last_flag.get(fd)
        if not force and last is not None and last[1] is owner and now - last[0] < FLAG_INTERVAL:
            return
        self._last_flag[fd] = (now, owner)
        self.detections += 1
        obs = self.loop.obs
        if obs.active:
            event: dict[str, Any] = {"kind": "flaw", "name": self.name, "message": message}
            if fd is not None:  # SPEC §3: `fd` where one applies; fds are integers, never null
                event["fd"] = fd
            obs.emit(event)
        self.counted = (self.detections, obs.seq)

    def inert(self) -> str | None:
        """Why the flaw cannot show with the backend and write mode now, or None. A teacher
        who switched one on and saw nothing happen got no word of it."""
        return None

    def describe(self, on: bool) -> dict[str, Any]:
        detections, seq = self.counted
        return {"name": self.name, "title": self.title, "caption": self.caption, "on": on,
                "detections": detections, "detections_seq": seq, "inert": self.inert()}
