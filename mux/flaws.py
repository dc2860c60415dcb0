"""The bug zoo: classic multiplexing bugs, switchable on the live server one at a time.

Each flaw replaces a small piece of the correct handling (through the loop's dispatch hook or
a flag the protocol checks) and carries a detector that emits a `flaw` event when the bug
shows. Turning a flaw off restores the correct code path and repairs what the flaw left
behind (stale registrations, unread bytes), without a restart.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from .backends import READABLE, WRITABLE
from .flaw_base import (
    FLAG_INTERVAL,
    HUP_BITS,
    IN_BITS,
    NVAL_BIT,
    Flaw,
    hangup_reason,
    recv_once,
    unread_bytes,
)
from .kernel import epoll_interest
from .tcp import RECV_SIZE, TcpConnection

if TYPE_CHECKING:
    from .engine import Engine


class EofIgnored(Flaw):
    name = "eof_ignored"
    title = "EOF never handled"
    caption = ("recv() returning b'' means the peer closed. This handler ignores it, so the "
               "fd stays registered and readable forever: the loop wakes again and again to "
               "read 0 bytes (level-triggered: a busy loop; edge-triggered, the EOF is "
               "reported again only after an epoll_ctl MOD, which queued writes make for "
               "each echo, then never: the connection is left open for good). To see it, read "
               "the echo before closing (nc -N, or telnet's quit): a client that closes with "
               "echoed bytes unread makes its kernel send a reset, and a reset is an error, "
               "not an EOF.")
    THRESHOLD = 20

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        #: fd -> (the connection, weakly: its close frees it; its zero reads): a new
        #: connection on a reused fd starts at 0
        self.zero_reads: dict[int, tuple[weakref.ref[TcpConnection], int]] = {}

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        mask = self.loop.ready_backend.generic(native)
        edge = self.loop.ready_backend.edge
        # one-shot re-arms the fd after each report (a MOD): the EOF is reported again
        reported_once = edge and not self.loop.ready_backend.oneshot
        before = self.loop.interest.get(conn.fd)
        eof_seen = False
        # reads as the engine does (edge-triggered: until EAGAIN), but b"" is not an end
        while mask & READABLE and not (conn.reading_paused or conn.closed):
            data = recv_once(conn, RECV_SIZE, self.name)
            if data is None:
                break
            if data == b"":
                conn.emit_eof_read()  # every time: the learner sees each wake read nothing
                owner, n = self.zero_reads.get(conn.fd, (None, 0))
                n = n + 1 if owner is not None and owner() is conn else 1
                self.zero_reads[conn.fd] = (weakref.ref(conn), n)
                if n == 1:  # the peer's EOF, ignored: a "hup" breakpoint still sees it
                    conn.note_hup()
                if reported_once:  # said after the write half: did an epoll_ctl MOD follow?
                    eof_seen = True
                elif n >= self.THRESHOLD:
                    self.flag(conn.fd, f"fd {conn.fd} woke the loop {n} times and read 0 bytes "
                              "each time: the peer closed, but EOF is never handled")
                break
            conn._on_data(data)
            if not edge:
                break
        if mask & WRITABLE and conn.queue and not conn.closed:
            conn.on_ready(WRITABLE)  # the write half alone: send what is queued
        # a MOD (queued writes switch write interest) re-checks readiness: the EOF comes again
        if eof_seen and not conn.closed and self.loop.interest.get(conn.fd) == before:
            self.flag(conn.fd, f"fd {conn.fd} read 0 bytes (the peer closed) and went "
                      "on as if nothing happened: edge-triggered, with no epoll_ctl since, "
                      "that EOF is not reported again (unless its FIN came during this read: "
                      "one more edge), and the connection stays open for good")

    def deactivate(self) -> None:
        super().deactivate()
        for conn in list(self.engine.connections.values()):
            self.loop.readable_soon(conn)  # edge mode: the EOF will not be reported again
        self.zero_reads.clear()


class PollEquality(Flaw):
    name = "poll_equality"
    title = "revents == POLLIN instead of a bit test"
    caption = ("The handler reads only when the returned mask equals POLLIN exactly. When "
               "POLLIN arrives together with another bit (POLLOUT, or a hang-up with the last "
               "bytes) the read is skipped, and a hang-up closes with data unread: the "
               "kernel then sends the client a reset, not a FIN (its next read fails with "
               "ECONNRESET: `nc -N` just exits, a Python client raises "
               "ConnectionResetError), and the unread bytes are never echoed.")
    wants_rdhup = True

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        backend = self.loop.ready_backend
        in_bit = IN_BITS[backend.name]
        if native == in_bit:
            conn.on_ready(READABLE)
            return
        names = "|".join(backend.names(native))
        hangup = native & HUP_BITS.get(backend.name, 0)
        # an EOF alone is no data ignored; with a hang-up, the loss is said once, below
        if native & in_bit and not hangup and unread_bytes(conn.fd):
            returned = "revents" if backend.name == "poll" else "the wait returned"  # (select)
            self.flag(conn.fd, f"fd {conn.fd}: {returned} {names} != "
                      f"{backend.names(in_bit)[0]}, so readable data was ignored")
        if hangup:
            lost = unread_bytes(conn.fd)
            conn.close(hangup_reason(conn, backend.name, native), flaw=self.name)
            if lost:
                self.flag(conn.fd, f"fd {conn.fd}: closed on {names} with {lost} bytes unread: "
                          "lost (a close with bytes unread makes the kernel send a reset, not a "
                          "FIN)", force=True)
            return
        if backend.generic(native) & WRITABLE:
            conn.on_ready(WRITABLE)


class HupBeforeIn(Flaw):
    name = "hup_before_in"
    title = "hang-up checked before input"
    caption = ("When the peer sends its last bytes and closes, the kernel reports input and "
               "a hang-up together: RDHUP (the peer shut its sending side, the usual close; "
               "this flaw asks for that bit) or HUP (both sides shut, or a reset). This "
               "handler checks the hang-up first and closes: the last bytes are never read, "
               "and closing with them unread makes the kernel send the client a reset (its "
               "next read fails with ECONNRESET: `nc -N` just exits, without the echo). "
               "(select has no hang-up bit: switch to poll or epoll.)")
    wants_rdhup = True

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.lost_bytes = 0

    def activate(self) -> None:
        self.lost_bytes = 0  # "in all": since it was switched on, not over every session
        super().activate()

    def inert(self) -> str | None:
        if self.loop.backend.name == "select":
            return "select reports no hang-up: switch the backend to poll or epoll"
        return None

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        backend = self.loop.ready_backend
        if native & HUP_BITS.get(backend.name, 0):
            lost = unread_bytes(conn.fd)
            conn.close(hangup_reason(conn, backend.name, native), flaw=self.name)
            if lost:
                self.lost_bytes += lost
                self.flag(conn.fd, f"fd {conn.fd}: {'|'.join(backend.names(native))} - hang-up "
                          f"handled first, {lost} bytes lost ({self.lost_bytes} in all); a close "
                          "with bytes unread makes the kernel send a reset, not a FIN",
                          force=True)
            return
        conn.on_ready(backend.generic(native))


class EtNoDrain(Flaw):
    name = "et_no_drain"
    title = "EPOLLET without draining to EAGAIN"
    caption = ("With EPOLLET the kernel reports a readiness once per change. This handler "
               "reads one small chunk (16 bytes) and returns: the rest stays in the kernel and "
               "no new edge comes until the peer sends more. The connection stalls. "
               "(Shows with epoll, trigger edge, write eager: with queued writes each "
               "EPOLL_CTL_MOD re-checks readiness and reports the leftover again.)")
    CHUNK = 16

    def inert(self) -> str | None:
        backend = self.loop.backend
        if not backend.edge:
            return "it needs edge-triggered epoll: set the backend to epoll, trigger edge"
        if backend.oneshot:
            return ("one-shot re-arms each fd with EPOLL_CTL_MOD after its report, which "
                    "reports the leftover again: turn one-shot off")
        if self.engine.write_mode != "eager":
            return ("with queued writes each EPOLL_CTL_MOD reports the leftover again: set "
                    "write to eager")
        return None

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        mask = self.loop.ready_backend.generic(native)
        interest = self.loop.interest
        before = interest.get(conn.fd)
        read = False
        if mask & READABLE and not (conn.reading_paused or conn.eof):
            read = True
            data = recv_once(conn, self.CHUNK, self.name)
            if data == b"":
                conn._on_eof()
            elif data:
                conn._on_data(data)
        if mask & WRITABLE and conn.queue and not conn.closed:
            conn.on_ready(WRITABLE)  # the write half alone: send what is queued
        # Stalled only if no EPOLL_CTL_MOD came after the read: a MOD (queued writes turn
        # write interest on and off) re-checks readiness, and the leftover is reported again.
        backend = self.loop.ready_backend
        if read and backend.edge and not backend.oneshot and not conn.closed \
                and interest.get(conn.fd) == before:  # (a one-shot re-arm is a MOD too)
            left = unread_bytes(conn.fd)
            if left:
                self.flag(conn.fd, f"fd {conn.fd}: {left} bytes left in the kernel after one "
                          "recv, and no epoll_ctl since: edge-triggered epoll will not report "
                          "them again")

    def deactivate(self) -> None:
        super().deactivate()
        for conn in list(self.engine.connections.values()):
            self.loop.readable_soon(conn)


class WriteInterestStuck(Flaw):
    name = "write_interest_stuck"
    title = "output interest left on with an empty queue"
    caption = ("Write interest should be on only while something waits to be sent. Left on, "
               "a socket with room in its send buffer is always writable: with level "
               "triggering the loop wakes continuously with nothing to do. (It shows on a "
               "connection that has echoed something: type a line first.)")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._wakeups: dict[int, int] = {}
        self._since = time.monotonic()

    def inert(self) -> str | None:
        backend = self.loop.backend
        if self.engine.write_mode == "eager":
            return ("eager writes send the echo at once and turn write interest on only after "
                    "a partial send: set write to queued")
        if backend.edge and not backend.oneshot:
            return ("edge-triggered, a socket left with write interest is reported writable "
                    "again only when something new happens on it (new input), not on every "
                    "wait: set trigger to level")
        return None

    def activate(self) -> None:
        # counted from now: not the last session's, over a window spanning the time it was off
        self._wakeups.clear()
        self._since = time.monotonic()
        super().activate()
        self.engine.sticky_write = True
        for conn in self.engine.connections.values():
            conn._update_interest()

    def deactivate(self) -> None:
        super().deactivate()
        self.engine.sticky_write = False
        for conn in list(self.engine.connections.values()):
            conn._update_interest()

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        mask = self.loop.ready_backend.generic(native)
        if mask & WRITABLE and not conn.queue:
            self._wakeups[conn.fd] = self._wakeups.get(conn.fd, 0) + 1
        conn.on_ready(mask)
        now = time.monotonic()
        if now - self._since >= FLAG_INTERVAL:
            for fd, n in self._wakeups.items():
                self.flag(fd, f"fd {fd}: {n} writable wake-ups in {now - self._since:.1f} s "
                          "with nothing to write (write interest left on)", force=True)
            self._wakeups.clear()
            self._since = now


class CloseWithoutUnregister(Flaw):
    name = "close_without_unregister"
    title = "closing without unregistering"
    caption = ("The fd is closed while still registered. select then fails with EBADF; poll "
               "reports POLLNVAL for it on every call (a storm); epoll silently drops it from "
               "its interest list, leaving the program's own table stale. Worse, once the fd "
               "number is given to a new file (the next socket or file this process opens), "
               "poll and select watch that file for the closed connection.")

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.stale: dict[int, TcpConnection] = {}
        self._nval: dict[int, int] = {}
        self._reused: dict[int, int] = {}

    def activate(self) -> None:
        self._nval.clear()
        self._reused.clear()
        super().activate()
        self.loop.wait_error_hook = self._wait_failed

    def deactivate(self) -> None:
        super().deactivate()
        self.loop.wait_error_hook = None
        self._clean()

    def closed_registered(self, conn: TcpConnection) -> None:
        """TcpConnection.close skipped the unregister: remember it, and look."""
        self.stale[conn.fd] = conn
        backend = self.loop.backend
        if backend.name == "epoll" and backend.fileno is not None:
            in_kernel = {item["fd"] for item in epoll_interest(backend.fileno)}
            if conn.fd not in in_kernel:
                self.flag(conn.fd, f"fd {conn.fd} was closed while registered: the kernel "
                          "dropped it from the epoll interest list, the engine's table still "
                          "has it (stale entry)", force=True)

    def connection_ready(self, conn: TcpConnection, native: int) -> None:
        if conn.closed:
            self._stale_ready(conn.fd, native)
        else:
            conn.on_ready(self.loop.ready_backend.generic(native))

    def _stale_ready(self, fd: int, native: int) -> None:
        """A wait reported `fd`, closed while registered: POLLNVAL (poll), or, once its
        number went to a new file, that file's readiness (poll and select)."""
        nval = bool(native & NVAL_BIT)
        counts = self._nval if nval else self._reused
        n = counts[fd] = counts.get(fd, 0) + 1
        times = f"{n} time{'s' * (n != 1)} so far"
        if nval:
            self.flag(fd, f"poll returned POLLNVAL for closed fd {fd} ({times}): a POLLNVAL "
                      "storm")
            return
        backend = self.loop.ready_backend
        self.flag(fd, f"{backend.name} reported {'|'.join(backend.names(native))} for fd {fd} "
                  f"({times}), closed while registered: the number now belongs to another "
                  "file this process opened, and the loop watches that file for a connection "
                  "that is gone", force=n == 1)

    def before_backend_change(self) -> None:
        # A closed fd cannot be registered with the new backend (epoll: EBADF), so the stale
        # entries the flaw left go now, said out loud.
        fds = self._still_stale()
        if fds:  # SPEC §3: a flaw names an fd; the message lists every one
            self.flag(fds[0], f"switching backend: closed fd(s) {fds} are still in the "
                      "engine's table, and a closed fd cannot be registered with the new "
                      "backend; removing them", force=True)
        self._clean()

    def _wait_failed(self, exc: OSError, call: str) -> None:
        fds = self._still_stale()
        self.flag(fds[0] if fds else None, f"{call} failed: "
                  f"{exc.strerror or exc} - closed fd(s) {fds} are still in its lists; "
                  "removing them", force=True)
        self._clean()

    def _still_stale(self) -> list[int]:
        """The closed fds whose connection is still in the loop's table: not one whose number
        a new connection has taken since (its registration replaced the entry)."""
        handlers = self.loop.handlers
        return sorted(fd for fd, conn in self.stale.items() if handlers.get(fd) is conn)

    def _clean(self) -> None:
        for fd in self._still_stale():
            self.loop.discard_stale(fd)
        self.stale.clear()


class UdpWrongAddress(Flaw):
    name = "udp_wrong_address"
    title = "UDP reply sent to the wrong address"
    caption = ("recvfrom() tells who sent the datagram; the reply must go there. This handler "
               "sends it to the server's own address instead: the client never hears back "
               "(and the server receives its own reply).")

    def inert(self) -> str | None:
        return None if self.engine.udp else "UDP is off (started with --no-udp)"

    def activate(self) -> None:
        super().activate()
        if self.engine.udp:
            self.engine.udp.reply_to_self = True

    def deactivate(self) -> None:
        super().deactivate()
        if self.engine.udp:
            self.engine.udp.reply_to_self = False
