"""UDP echo: every datagram goes back to the address it came from.

- The receive buffer is 64 KiB, so a whole datagram always fits (the largest UDP payload over
  IPv4 is 65,507 bytes); MSG_TRUNC would still be reported.
- Zero-length datagrams are real datagrams: they are echoed too.
- SO_RXQ_OVFL makes the kernel attach its count of datagrams dropped for want of buffer space
  to each datagram, as it stood when that datagram was queued: drops after the last queued one
  would show only with the next datagram. So `dropped` also reads the socket's own count now
  (SO_MEMINFO's SK_MEMINFO_DROPS, the same counter), and says the larger.
- A reply the kernel cannot take now (EAGAIN) waits in a queue for writability. The queue is
  bounded like a TCP connection's (backpressure): at MAX_PENDING_REPLIES replies or
  MAX_PENDING_BYTES bytes the socket stops being read (a `backpressure` event) until the queue
  has drained, and what comes meanwhile waits in the kernel, which drops what does not fit
  and counts it (`dropped`). No reply is thrown away by the server itself.
- `--write queued` is for TCP connections: a reply is sent at once, and waits only for that
  EAGAIN (a datagram cannot be sent in part, and loopback never refuses one).
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .backends import READABLE, WRITABLE
from .events import preview
from .sockets import ListeningHandler, bound_socket, peer_name

if TYPE_CHECKING:
    from .engine import Engine

DATAGRAM_BUFFER = 65536
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_SK_MEMINFO_DROPS = 8  # index in the u32 array SO_MEMINFO returns (Linux >= 4.x)
MAX_PENDING_REPLIES = 1024
MAX_PENDING_BYTES = 1 << 20  # a TCP connection's default high-water mark
_ANC_SIZE = socket.CMSG_SPACE(4)


ERROR_INTERVAL = 1.0  # seconds between two error events of one kind (see UdpEcho._error)
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class UdpEcho(ListeningHandler):
    role = "udp"

    def __init__(self, engine: Engine, sock: socket.socket) -> None:
        super().__init__(engine, sock)
        self.received = 0
        self.echoed = 0
        self._dropped_attached = 0  # by the kernel, as the last datagram's SO_RXQ_OVFL said
        self._drops_said = 0  # the kernel's total the last `error` event said
        self._drops_recheck = False  # a re-check of it is scheduled (a rise not said yet)
        self.truncated = 0
        self.pending: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.pending_bytes = 0
        self.reading_paused = False  # the reply queue is full (backpressure)
        bound_ip, _ = sock.getsockname()[:2]
        # Where a misdirected reply goes (the bug zoo's udp_wrong_address): this server. A
        # wildcard bind is reached on loopback, and that is the source its own replies show.
        local = _WILDCARD_TO_LOOPBACK.get(bound_ip, bound_ip)
        self.own_address: tuple[str, int] = (local, self.port)
        self._own_ips = {bound_ip, local, "::ffff:" + local}
        self.reply_to_self = False  # the bug zoo's udp_wrong_address
        self.from_self = 0
        self._errors: dict[str, tuple[float, int]] = {}  # kind -> (last shown, not shown since)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            pass

    def on_ready(self, mask: int) -> None:
        if mask & WRITABLE and self.pending:
            self._flush()
        if mask & READABLE:
            edge = self.loop.backend.edge
            while self._receive_one() and edge:
                pass
            # datagrams queued before a burst's drops carry no count of them (SO_RXQ_OVFL
            # rides on the next one queued after): the socket's own count says them
            self._note_kernel_drops(self._socket_drops())

    def _error(self, what: str, message: str, say_held: bool = True, **extra: Any) -> bool:
        """An `error` event, at most one per second per kind of failure: these come from the
        network or its rules (a firewall refusing every reply: EPERM, EACCES; ENOBUFS), not
        from the loop, so they must not flood the page past the observation budget. The
        count of those not shown goes with the next one (`say_held`: unless its own numbers
        count them). True when it was said. (A client's closed port answering
        with ICMP is not among them: an unconnected UDP socket is told of ICMP errors only
        with IP_RECVERR: the kernel's __udp4_lib_err, though udp(7)'s ERRORS section reads
        as if every socket were.)"""
        now = time.monotonic()
        last, quiet = self._errors.get(what, (-ERROR_INTERVAL, 0))
        if now - last < ERROR_INTERVAL:
            self._errors[what] = (last, quiet + 1)
            return False
        self._errors[what] = (now, 0)
        more = f" (and {quiet} more like it since the last one shown)" if quiet and say_held else ""
        self.engine.error(message + more, fd=self.fd, cause="udp", **extra)
        return True

    def _receive_one(self) -> bool:
        if self.reading_paused:  # (edge mode's drain, once the queue filled up)
            return False
        try:
            data, anc, flags, addr = self.sock.recvmsg(DATAGRAM_BUFFER, _ANC_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:  # e.g. ENOMEM (no ICMP errors here: see _error)
            self._error("recv", f"udp recv: {exc.strerror or exc}")
            return True
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(cdata) >= 4:
                self._note_kernel_drops(struct.unpack("=I", cdata[:4])[0])
        self.received += 1
        if flags & socket.MSG_TRUNC:
            self.truncated += 1
            self._error("truncated", f"udp datagram from {peer_name(addr)} truncated")
        own = addr[1] == self.port and addr[0] in self._own_ips
        self._emit(addr, "in", data, from_self=own)
        if own:
            self.from_self += 1  # our own misdirected reply: echoing it would loop forever
            return True
        if self.reply_to_self:
            self._flag_wrong_address(addr)
            addr = self.own_address
        if self.pending or not self._try_send(data, addr):
            self._queue_reply(data, addr)
        return True

    def _note_kernel_drops(self, total: int) -> None:
        """The kernel's count of datagrams dropped for want of buffer space (as a datagram
        carried it, or the socket's own): a rise is said in the log, at most once a second,
        with the total then (a recording and its replay know of drops only so). A rise not
        said for that limit is said once the second is over, traffic or not."""
        self._dropped_attached = max(self._dropped_attached, total)
        said = self._drops_said
        if total <= said:
            return
        if self._error("kernel_drops", f"udp: the kernel dropped {total - said} datagrams "
                       f"(the socket's receive buffer was full): {total} in all",
                       say_held=False, udp_dropped=total):  # (its numbers count them)
            self._drops_said = total
        elif not self._drops_recheck:
            self._drops_recheck = True
            self.loop.call_later(ERROR_INTERVAL, self._recheck_drops)

    def _recheck_drops(self) -> None:
        self._drops_recheck = False
        if self.sock.fileno() != -1:  # (closed meanwhile: -1)
            self._note_kernel_drops(self.dropped)

    def _flag_wrong_address(self, sender: tuple[str, int]) -> None:
        flaw = self.engine.flaws.get("udp_wrong_address")
        if flaw is not None:
            flaw.flag(self.fd, f"reply to {peer_name(sender)} sent to "
                      f"{peer_name(self.own_address)} (this server) instead")

    def _try_send(self, data: bytes, addr: tuple[str, int]) -> bool:
        """Send to the sender — never to our own address (the seed's mistake).

        False only when the kernel cannot take it now (EAGAIN)."""
        try:
            self.sock.sendto(data, addr)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._error("send", f"udp send to {peer_name(addr)}: {exc.strerror}")
            return True
        if not self.reply_to_self:  # the bug zoo's reply to ourselves is no echo: lost
            self.echoed += 1
        self._emit(addr, "out", data, misdirected=self.reply_to_self)
        return True

    def _queue_reply(self, data: bytes, addr: tuple[str, int]) -> None:
        self.pending.append((data, addr))
        self.pending_bytes += len(data)
        if len(self.pending) >= MAX_PENDING_REPLIES or self.pending_bytes >= MAX_PENDING_BYTES:
            self._set_backpressure(True)
        else:
            self.loop.set_interest(self.fd, READABLE | WRITABLE)

    def _flush(self) -> None:
        while self.pending:
            data, addr = self.pending[0]
            if not self._try_send(data, addr):
                return
            self.pending.popleft()
            self.pending_bytes -= len(data)
        if self.reading_paused:
            self._set_backpressure(False)
        else:
            self.loop.set_interest(self.fd, READABLE)

    def _set_backpressure(self, paused: bool) -> None:
        """Paused: write interest only, until the queue is empty; then read interest only."""
        self.reading_paused = paused
        self.engine.breakpoints.note("backpressure", self.fd)
        obs = self.loop.obs
        if obs.active:  # `udp`: the page shows this path's code, not a connection's; the
            # queue's depth, for a view of the past (the stats frames say only the present);
            # the cause before its effect, the interest change
            obs.emit({"kind": "backpressure", "fd": self.fd, "paused": paused, "udp": True,
                      "pending": len(self.pending), "pending_bytes": self.pending_bytes})
        self.loop.set_interest(self.fd, WRITABLE if paused else READABLE)
        if not paused and self.loop.backend.edge:  # what came meanwhile brings no new edge
            self.loop.readable_soon(self)

    def _emit(self, addr: tuple[str, int], direction: str, data: bytes,
              misdirected: bool = False, from_self: bool = False) -> None:
        obs = self.loop.obs
        if obs.watched:
            event = {"kind": "datagram", "fd": self.fd, "peer": peer_name(addr),
                     "dir": direction, "bytes": len(data), "preview": preview(data)}
            if misdirected:  # the bug zoo's reply to this server: no echo (nor in a replay)
                event["misdirected"] = True
            if from_self:  # that reply arriving: counted as received, never echoed
                event["from_self"] = True
            obs.emit(event)
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1

    @property
    def dropped(self) -> int:
        """Datagrams the kernel dropped for want of buffer space, cumulative; any thread."""
        return max(self._dropped_attached, self._socket_drops())

    def _socket_drops(self) -> int:
        try:
            raw = self.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 64)
        except (OSError, ValueError):  # closed, or no SO_MEMINFO here
            return 0
        if len(raw) < 4 * (_SK_MEMINFO_DROPS + 1):
            return 0
        return int(struct.unpack_from("=I", raw, 4 * _SK_MEMINFO_DROPS)[0])

    def describe(self) -> dict[str, int | str]:
        return {"fd": self.fd, "port": self.port, "host": self.host, "received": self.received,
                "from_self": self.from_self, "echoed": self.echoed, "dropped": self.dropped,
                "truncated": self.truncated,
                "pending": len(self.pending), "pending_bytes": self.pending_bytes,
                "reading_paused": self.reading_paused}

    def close(self) -> None:
        self.loop.unregister(self.fd)
        self.sock.close()


def open_udp_socket(host: str, port: int) -> socket.socket:
    return bound_socket(host, port, socket.SOCK_DGRAM)
