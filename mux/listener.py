"""The TCP listener: accept in batches, and survive running out of file descriptors.

Kernel facts this module relies on:
- In edge-triggered mode a readable listener is reported once per change: we accept until
  EAGAIN (in batches, the rest on the next pass), or the waiting clients wait until another
  client's connect makes a new edge.
- `accept` failing with EMFILE/ENFILE leaves the client in the backlog: the listener stays
  readable (level mode: a busy loop) or is not reported again until another client connects
  (edge mode). The listener is
  retried on a timer instead; a spare fd lets us accept and close one client to say so.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING

from .backends import READABLE
from .sockets import ListeningHandler, bound_socket, peer_name

if TYPE_CHECKING:
    from .engine import Engine

ACCEPT_BATCH = 128
EMFILE_RETRY = 0.1  # seconds between accept retries while out of fds
_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class TcpListener(ListeningHandler):
    role = "tcp_listener"

    def __init__(self, engine: Engine, sock: socket.socket) -> None:
        super().__init__(engine, sock)
        self.exhausted = False
        self._shed = False  # this exhaustion's one waiting client has been closed, and said
        self._spare: int | None = _open_spare()
        self._retry_due = False  # a retry timer is set: one at a time

    def on_ready(self, mask: int) -> None:
        failed = 0
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _FD_EXHAUSTED:
                    self._out_of_fds(exc)
                    return
                # One connection's own failure (ECONNABORTED, or EPROTO, ENETDOWN... which
                # accept(2) says to treat like EAGAIN): the clients behind it in the backlog
                # are fine, and in edge mode no new edge would announce them. Go on.
                self.engine.error(f"accept failed: {exc.strerror or exc}", cause="accept")
                failed += 1
                continue
            self._recovered()
            self.engine.adopt(sock, peer_name(addr), self.fd)
        # A full batch: more may be waiting. Level mode would tell us again; edge would not.
        # A batch of nothing but errors is no one connection's fault: retry later, not at once.
        if failed == ACCEPT_BATCH:
            self.loop.call_later(EMFILE_RETRY, lambda: self.on_ready(READABLE))
        else:
            self.loop.call_soon(lambda: self.on_ready(READABLE))

    def _out_of_fds(self, exc: OSError) -> None:
        """No fd for the next connection. Without care this spins: the listener stays
        readable (level) or is not reported again until another client connects (edge). So:
        stop watching the listener and
        retry on a timer. Once per spell, the spare fd accepts and closes one waiting client,
        which an `error` event says (at the first EMFILE, or at the first retry that finds a
        client waiting); no more are shed (each retry shed one, unsaid, ten a second): the
        others wait in the backlog until fds free up."""
        if not self.exhausted:
            # accept(2) fails with EMFILE before it looks at the backlog: often nobody waits
            # yet (clients came one at a time), and the shed is then left to the first retry
            # that finds someone
            self._shed = self._shed_one()
            self.exhausted = True
            self.engine.error(
                f"accept failed: {os.strerror(exc.errno or errno.EMFILE)} "
                f"({errno.errorcode.get(exc.errno or 0, '?')}); "
                + ("closed one waiting client; " if self._shed else "")
                + f"pausing accepts, retrying every {int(EMFILE_RETRY * 1000)} ms",
                fd=self.fd,
            )
        elif not self._shed and self._shed_one():
            self._shed = True
            self.engine.error("still out of file descriptors: closed one waiting client",
                              fd=self.fd)
        self.loop.set_interest(self.fd, 0)
        # Level mode can fail twice in one iteration, from the wait's readiness and from a
        # full batch's follow-up (call_soon): a second timer would double the retry rate.
        if not self._retry_due:
            self._retry_due = True
            self.loop.call_later(EMFILE_RETRY, self._retry)

    def _shed_one(self) -> bool:
        if self._spare is None:
            return False
        os.close(self._spare)
        self._spare = None
        try:
            sock, _ = self.sock.accept()
            sock.close()
            return True
        except OSError:
            return False
        finally:
            self._spare = _open_spare()

    def _retry(self) -> None:
        self._retry_due = False
        if self.loop.handlers.get(self.fd) is not self:
            return
        self.loop.set_interest(self.fd, READABLE)
        self.on_ready(READABLE)  # edge mode: no new edge will announce the waiting clients

    def _recovered(self) -> None:
        if self.exhausted:
            self.exhausted = False
            if self._spare is None:
                self._spare = _open_spare()
            self.engine.error("accepting again: file descriptors are available", fd=self.fd,
                              cause="recovered")

    def close(self) -> None:
        self.loop.unregister(self.fd)
        self.sock.close()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def open_tcp_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening, non-blocking TCP socket; OSError (EADDRINUSE...) if it cannot."""
    return bound_socket(host, port, socket.SOCK_STREAM, backlog)


__all__ = ["TcpListener", "open_tcp_listener"]
