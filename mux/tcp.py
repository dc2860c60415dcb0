"""TCP echo: one connection (FIFO, backpressure). Its closing is in tcp_close.py, the listener
in listener.py.

Kernel facts this module relies on:
- `recv` returning b"" is EOF (the peer shut its write side); what is queued is still sent,
  then we close — so a half-closed client (`nc -N`) gets every byte back.
- `send` may take only part of a chunk; the rest stays at the head of the queue.
- In edge-triggered mode a readiness is reported once per change: we must read until EAGAIN,
  or the bytes left in the kernel wait for the next edge, which only more bytes from the peer
  make (and an echo client waiting for its reply sends none).
"""

from __future__ import annotations

import socket
from collections import deque
from typing import TYPE_CHECKING

from .backends import READABLE, SIDES, WRITABLE
from .events import preview
from .tcp_close import RECV_SIZE, Failure, TcpClosing, close_reason

if TYPE_CHECKING:
    from .engine import Engine

READ_WRITE = READABLE | WRITABLE  # one name: `READABLE | WRITABLE` is an `|` at run time


class TcpConnection(TcpClosing):
    role = "connection"
    #: a client of the app's own load generator ("Add clients"), not a person's: set by the
    #: engine (Engine.is_generated) when it knows
    generated = False

    def __init__(self, engine: Engine, sock: socket.socket, peer: str) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.obs = engine.observers  # a hot-path shortcut: one attribute lookup, not two
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.queue: deque[bytes] = deque()
        self.pending_bytes = 0
        #: bytes in and out, see the `bytes_in` and `bytes_out` properties: a message the eager
        #: path sends back whole is counted once, in `echoed`, for both directions (one int
        #: addition and one new int object a message less: ~280 machine instructions, 2.7 % of a
        #: 1 KiB message's, callgrind, docs/BENCHMARKS-history.md "Runs BK and BL"); every
        #: other byte in `_bytes_in` or `_bytes_out`. Bytes out are counted as the kernel took
        #: them, not as `bytes_in - pending_bytes` (bytes lost with a reset connection were
        #: never sent)
        self.echoed = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self.queued_ever = False  # eager, something queued (a partial send's rest) at least once
        self.reading_paused = False
        self.eof = False
        #: not (reading_paused or eof), kept by `_on_eof` and `_set_backpressure`: on_ready's
        #: one test a message, not two. `inline` (Handler.inline) is the same, for the batch
        #: dispatch's one test (hot.py): a connection's class and reading in one attribute
        self.reading = self.inline = True
        self.closed = False
        #: a read or send error the kernel reported to the batch dispatch (hot.py), and the
        #: call, for on_ready to close with: ECONNRESET is reported once, then a read finds EOF
        self.failed: Failure | None = None
        #: the reason of the shut_down under way: its last flush releases no backpressure, and
        #: a close it makes (the queue flushed after EOF) says that reason, not "eof"
        self.shutting_down: str | None = None
        self.lingering = False  # closed by a user, discarding input until the peer's EOF
        #: how a linger ended, set by the Lingerer ("eof", "deadline"); the close event says
        #: it, with the close's reason when a second close or the engine's stop ended it
        self.linger_end: str | None = None
        #: bytes received at a close and thrown away, not echoed (read_away)
        self.discarded = 0
        #: the engine thread's one receive buffer: recv_into it, send from it, and copy only
        #: what must wait in the queue (no 64 KiB bytes object allocated per message)
        self._rbuf = engine.recv_buffer
        self._views = engine.recv_views

    @property
    def bytes_in(self) -> int:
        """Bytes received (any thread: each read is of whole ints, and both parts only grow)."""
        return self.echoed + self._bytes_in

    @property
    def bytes_out(self) -> int:
        """Bytes the kernel took from `send`."""
        return self.echoed + self._bytes_out

    # -- readiness -----------------------------------------------------------------------
    def on_ready(self, mask: int) -> None:
        """Readable: recv (to EAGAIN in edge mode); writable: send what is queued.

        An unwatched iteration's common cases, both strategies, run inline in the loop's
        batch dispatch (hot.py: one Python frame for the batch, not one per fd); it hands
        everything else to this method, which is the general path: watched iterations with
        their events, one-shot, a bug-zoo flaw's handler, EOF, errors, backpressure
        released, a readiness for both sides, and shut_down's flush. Reads go into the
        shared buffer (`recv_into`), then `_on_data`; writes, one loop that emits its send
        and queue events when watched, then write interest follows the queue.
        """
        failed = self.failed
        if failed is not None:  # the batch dispatch's read or send failed (hot.py)
            self.failed = None
            self.close(close_reason(failed[1]), failed=failed, inline=True)
            return
        readable, writable = SIDES[mask]
        if readable and self.reading:
            sock = self.sock
            buf = self._rbuf
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self.close(close_reason(exc), failed=("recv", exc))
                    return
                if not n:
                    self._on_eof()
                    return
                try:
                    view = self._views[n]
                except KeyError:
                    view = self._view(n)
                self._on_data(view)
                if not self.loop.edge or self.reading_paused or self.closed:
                    break
        if writable and self.queue and not self.closed:
            # Send from the queue's head until it is empty or the kernel is full: one `send`
            # and one `queue` event per chunk; a partial send keeps the rest at the head. Then
            # write interest follows the queue (off once it is empty).
            queue = self.queue
            sock = self.sock
            obs = self.obs
            unshown = 0  # throttled: send and queue events, counted here, added to seq once
            while queue:
                chunk = queue[0]
                try:
                    sent = sock.send(chunk)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if unshown:
                        obs.seq += unshown
                    self.close(close_reason(exc), failed=("send", exc))
                    return
                self._bytes_out += sent
                self.pending_bytes -= sent
                partial = sent < len(chunk)
                if partial:
                    queue[0] = chunk[sent:]
                else:
                    queue.popleft()
                if obs.watched:
                    if unshown:  # a sink added since the last chunk: number those first
                        obs.seq += unshown
                        unshown = 0
                    fd = self.fd
                    sent_ev = {"kind": "send", "fd": fd, "bytes": sent, "partial": partial}
                    queue_ev = {"kind": "queue", "fd": fd, "depth": len(queue),
                                "pending_bytes": self.pending_bytes}
                    if self.shutting_down is not None:  # run by shut_down, not by a readiness
                        sent_ev["closing"] = queue_ev["closing"] = self.shutting_down
                    obs.emit(sent_ev)
                    obs.emit(queue_ev)
                elif obs.active:
                    unshown += 2
                if partial:
                    break
            if unshown:
                obs.seq += unshown
            if queue or not self.reading or self.engine.sticky_write:
                self._after_write()
            else:  # desired_interest(), inline: queue empty, reading on
                self.loop.set_interest(self.fd, READABLE)

    def _view(self, n: int) -> memoryview:
        """`recv_buffer[:n]`, kept for the next message of the same length (bounded)."""
        view = self._rbuf[:n]
        if len(self._views) < 4096:
            self._views[n] = view
        return view

    def desired_interest(self) -> int:
        if self.lingering:  # reading away until the peer's EOF, whatever else holds
            return READABLE
        # the bug zoo's stuck write interest: on a connection that has had it (queued, every
        # one that echoed; eager, one that queued a partial send's rest), as the flaw's note says
        writing = self.queue or (self.engine.sticky_write and self.bytes_out
                                 and (self.queued_ever or not self.engine.eager))
        return (READABLE if self.reading else 0) | (WRITABLE if writing else 0)

    def _update_interest(self) -> None:
        self.loop.set_interest(self.fd, self.desired_interest())

    # -- reading -------------------------------------------------------------------------
    def _on_data(self, data: bytes | memoryview) -> None:
        """`data` may be a view of the shared receive buffer: send from it or copy it, never
        keep it (the next recv overwrites it)."""
        n = len(data)
        self._bytes_in += n  # the engine's totals add these up when asked (Engine.counters)
        obs = self.obs
        if obs.watched:
            obs.emit({"kind": "recv", "fd": self.fd, "bytes": n, "preview": preview(data)})
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1
        if self.engine.eager and not self.queue:
            # send at once (on_ready does the same inline when this iteration is not watched)
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self.close(close_reason(exc), failed=("send", exc), eager=True)
                return
            if sent:
                self._bytes_out += sent
                if obs.watched:
                    obs.emit({"kind": "send", "fd": self.fd, "bytes": sent, "partial": sent < n})
                elif obs.active:  # throttled: count what is not shown
                    obs.seq += 1
                if sent == n:
                    return
                data = data[sent:]
        self._put(bytes(data))  # a copy of a view; bytes(b) is b itself, no copy

    def _on_eof(self) -> None:
        """recv() returned 0 bytes: the peer shut its write side."""
        self.eof = True
        self.reading = self.inline = False
        self.emit_eof_read()
        self.engine.breakpoints.note("hup", self.fd)
        if self.queue:
            self._update_interest()  # stop reading; keep WRITE until the queue is flushed
        else:
            self.close("eof")

    def emit_eof_read(self) -> None:
        """The `recv` event of a read that returned 0 bytes (`bytes: 0`, `eof`): without it a
        learner saw a readiness, then only an interest change or a close, and the kernel's
        answer that explains them nowhere. (The bug zoo's eof_ignored shows its own.)"""
        obs = self.obs
        if obs.watched:
            obs.emit({"kind": "recv", "fd": self.fd, "bytes": 0, "preview": "", "eof": True})
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1

    # -- the queue -----------------------------------------------------------------------
    def _put(self, data: bytes) -> None:
        """Queue `data`, which must be `bytes` (never a view of the receive buffer)."""
        if self.engine.eager:  # behind a queue, or a partial send's rest: write interest on
            self.queued_ever = True
        queue = self.queue
        queue.append(data)
        self.pending_bytes += len(data)
        obs = self.obs
        if obs.watched:
            obs.emit({"kind": "queue", "fd": self.fd, "depth": len(queue),
                      "pending_bytes": self.pending_bytes})
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1
        if self.pending_bytes > self.engine.high_water and not self.reading_paused:
            self._set_backpressure(True)
        elif len(queue) == 1:  # desired_interest(), inline: the queue is no longer empty
            self.loop.set_interest(self.fd, READ_WRITE if self.reading else WRITABLE)

    def _set_backpressure(self, paused: bool, inline: bool = False) -> None:
        """`inline`: called by the batch dispatch's queued read (hot.py), not by `_put` (the
        event says so, for the code panel: it is shown though its iteration is not)."""
        self.reading_paused = paused
        self.reading = self.inline = not (paused or self.eof)
        self.engine.breakpoints.note("backpressure", self.fd)
        obs = self.loop.obs
        if obs.active:  # the cause before its effect: then the interest change it makes
            event: dict[str, object] = {"kind": "backpressure", "fd": self.fd, "paused": paused}
            if inline:
                event["inline"] = True
            obs.emit(event)
        self._update_interest()
        if not paused and self.loop.backend.edge:
            self.loop.readable_soon(self)

    # -- writing (the send loop itself is on_ready's write half) ---------------------------
    def _after_write(self) -> None:
        """Backpressure released below low water, EOF flushed, or interest re-derived."""
        if (self.reading_paused and self.pending_bytes <= self.engine.low_water
                and self.shutting_down is None):  # else "reading resumed", then its close
            self._set_backpressure(False)
        if not self.queue and self.eof:
            self.close(self.shutting_down or "eof", flushed=True)
        else:
            self.loop.set_interest(self.fd, self.desired_interest())


__all__ = ["RECV_SIZE", "TcpConnection", "close_reason"]
