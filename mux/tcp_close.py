"""How a TCP connection ends: an orderly shut-down (flush, FIN, read away what will not be
echoed, linger while a peer still streams) and the close itself (unregister, then close).

TcpConnection's base class: the echo's hot path (tcp.py) never runs this code, and this
code reads the connection's state and calls its write path (`on_ready(WRITABLE)`).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections import deque
from typing import TYPE_CHECKING, cast

from .backends import READABLE, WRITABLE
from .linger import LINGER_S, Lingerer

if TYPE_CHECKING:
    from .engine import Engine
    from .loop import Loop
    from .tcp import TcpConnection

RECV_SIZE = 65536
READ_AWAY_CHUNKS = 16  # receive buffers read away at a close, per iteration while lingering
LINGER_FROM = RECV_SIZE  # bytes unread at a user's close that make it linger: a streaming peer


#: the system call that failed ("recv" or "send") and what it raised: a close it made says
#: both (`call`, `errno`), so that a reset found by a read is told from one found by a send
Failure = tuple[str, OSError]


def close_reason(exc: OSError) -> str:
    return "reset" if isinstance(exc, (ConnectionResetError, BrokenPipeError)) else "error"


def errno_name(exc: OSError) -> str:
    """`ECONNRESET`, `EPIPE`... (the number as text for one errno does not name; the
    exception's class for one without an errno)."""
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


class TcpClosing:
    # the connection's state this code reads and writes (set in TcpConnection.__init__)
    engine: Engine
    loop: Loop
    sock: socket.socket
    fd: int
    queue: deque[bytes]
    closed: bool
    shutting_down: str | None
    lingering: bool
    linger_end: str | None
    discarded: int
    _rbuf: memoryview
    role: str
    inline: bool

    def on_ready(self, mask: int) -> None:
        raise NotImplementedError  # TcpConnection's

    def shut_down(self, reason: str = "shutdown") -> None:
        """An orderly end (the engine stopping, or a user's "Close fd N"): send what the
        kernel takes now of the queue (the usual write path, events and all), then a FIN, and
        read away what the peer sent that will not be echoed, so that the close is not the
        RST a close with unread input makes (which also throws away what the kernel still had
        to send: the peer saw ECONNRESET, and lost its last echoes).

        A user's close of a peer that is streaming (LINGER_FROM bytes or more were waiting)
        lingers (linger.py) until the peer's EOF: "nothing more now" is no proof there, as a
        writer blocked on a full buffer writes again as soon as the reads open the window. A
        peer with little or nothing unread is closed at once. The engine's own stop cannot
        wait (the loop is ending). A second close while it lingers closes at once."""
        if self.lingering:
            self.close(reason)
            return
        self.shutting_down = reason
        if self.queue:
            self.on_ready(WRITABLE)
        if self.closed:  # the peer had gone (reset), or the queue was flushed after EOF
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        outcome, taken = self.read_away()
        if outcome in ("eof", "reset") or taken < LINGER_FROM or reason == "shutdown":
            self.close(reason)
            return
        self.lingering = True
        self.engine.lingering_fds = (*self.engine.lingering_fds, self.fd)
        loop = self.loop
        lingerer = Lingerer(self, reason, loop.readable_soon)
        loop.replace_handler(self.fd, lingerer)
        loop.set_interest(self.fd, READABLE)
        if outcome == "more" and loop.edge:  # what is left raises no new edge
            loop.readable_soon(lingerer)
        loop.call_later_for(lingerer, LINGER_S, lingerer.expire)

    def note_hup(self) -> None:
        """The peer's EOF, for breakpoints (select has no hang-up bit to show it)."""
        self.engine.breakpoints.note("hup", self.fd)

    def read_away(self) -> tuple[str, int]:
        """Read and discard up to READ_AWAY_CHUNKS receive buffers: ("eof", "reset" (an
        error: the peer is gone), "drained" (nothing more for now) or "more" (the bound was
        reached), bytes discarded). The close event reports the total (`discarded`)."""
        sock = self.sock
        buf = self._rbuf
        taken = 0
        outcome = "more"
        for _ in range(READ_AWAY_CHUNKS):
            try:
                n = sock.recv_into(buf)
            except BlockingIOError:
                outcome = "drained"
                break
            except OSError:
                outcome = "reset"
                break
            if not n:
                outcome = "eof"
                break
            taken += n
        self.discarded += taken
        return outcome, taken

    def close(self, reason: str, flaw: str | None = None, flushed: bool = False,
              failed: Failure | None = None, inline: bool = False, eager: bool = False) -> None:
        """Unregister from the backend, then close: never a closed fd left registered.
        `flaw`: the bug-zoo flaw whose own code closes it; `flushed`: closed by the write
        half once the queue left over at EOF went out; `failed`: the call that failed;
        `inline`: it failed in the batch dispatch (hot.py), which left the close to on_ready;
        `eager`: the send made at once on receipt failed (_on_data), not one from the queue
        (each event says so: the page shows that path, not the usual one to this close)."""
        if self.closed:
            return
        self.closed = True
        lingered = (self.linger_end or reason) if self.lingering else None
        if self.lingering:  # the table holds its Lingerer: the connection again, so that
            # whatever looks the fd up from here (the bug zoo's stale fds) finds it
            with contextlib.suppress(KeyError):
                self.loop.replace_handler(self.fd, self)
        if reason == "reset":  # a hang-up as well, which select reports as nothing but readable
            self.engine.breakpoints.note("hup", self.fd)
        zoo_flaw = self.engine.flaws.active
        left_registered = zoo_flaw is not None and zoo_flaw.name == "close_without_unregister"
        if left_registered:
            self.sock.close()  # the flaw: the fd stays registered after it is closed
        else:
            self.loop.unregister(self.fd)
            self.sock.close()
        self.engine.forget(cast("TcpConnection", self))  # (this class is its base)
        obs = self.loop.obs
        if obs.active:
            event: dict[str, object] = {"kind": "close", "fd": self.fd, "reason": reason}
            if flaw is not None:
                event["flaw"] = flaw
            if flushed:
                event["flushed"] = True
            if failed is not None:
                event["call"], event["errno"] = failed[0], errno_name(failed[1])
                if inline:
                    event["inline"] = True
                if eager:
                    event["eager"] = True
            if left_registered:  # no unregister event will come: the page keeps its cell
                event["registered"] = True
            if lingered is not None:
                event["lingered"] = lingered
            if self.discarded:
                event["discarded"] = self.discarded
            obs.emit(event)
        if left_registered:  # the flaw looks, and says what it found after the close itself
            zoo_flaw.closed_registered(self)  # type: ignore[union-attr]
