"""A lingering close: what a user's "Close fd N" becomes while the peer is still sending.

After our FIN, a close with input still unread makes the kernel send an RST: the peer sees
ECONNRESET and loses whatever echoes its kernel had not handed it yet. A peer that writes
megabytes and reads nothing (the very client one closes by hand) refills our receive buffer
as fast as we empty it, so no bounded read-away before the close is enough. So, like nginx's
`lingering_close`, the connection stays registered for reading, under this handler, which
throws its input away until the peer's EOF (then the close is clean) or `LINGER_S` (then it
is what it is). The connection stays in the engine's table meanwhile: its fd is still open.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Protocol

#: seconds a closing connection may go on discarding input before it is closed regardless
LINGER_S = 5.0


class Closing(Protocol):
    fd: int
    sock: socket.socket
    closed: bool
    linger_end: str | None

    def read_away(self) -> tuple[str, int]: ...

    def note_hup(self) -> None: ...

    def close(self, reason: str, flaw: str | None = None) -> None: ...


class Lingerer:
    """Stands in for a closing connection in the loop's handler table (no cost on the echo's
    hot path): reads and discards until EOF, then closes with the reason asked for."""

    role = "connection"  # a failure in it closes the connection, as one in the connection's
    inline = False  # (Handler.inline)

    def __init__(self, conn: Closing, reason: str, again: Callable[[Lingerer], None]) -> None:
        self.conn = conn
        self.fd = conn.fd
        self.sock = conn.sock  # what the loop's last resort closes if `close` itself fails
        self.reason = reason
        self._again = again  # edge-triggered: read on without waiting for an edge

    def on_ready(self, mask: int) -> None:
        outcome, _ = self.conn.read_away()
        if outcome in ("eof", "reset"):  # a reset: the peer closed with our echoes unread
            self.conn.note_hup()  # a "hup" breakpoint fires for it, as for any EOF
            self.conn.linger_end = outcome
            self.close(self.reason)
        elif outcome == "more":  # bounded per iteration; the rest on the next one
            self._again(self)

    def close(self, reason: str, flaw: str | None = None) -> None:
        self.conn.close(reason, flaw)

    def expire(self) -> None:
        """The deadline: closed now (an RST if input is still arriving)."""
        if not self.conn.closed:
            self.conn.read_away()
            self.conn.linger_end = "deadline"
            self.conn.close(self.reason)
