"""Bound, non-blocking listening sockets for the echo protocols, and their handlers' base."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine


def peer_name(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """"ip:port" (SPEC §3's `peer`), with an IPv6 address in brackets: "[::1]:4000" splits
    at its last colon, as "::1:4000" would not."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListeningHandler:
    """What the TCP listener and the UDP echo share: one bound socket of the engine's."""

    role = ""
    inline = False  # (Handler.inline)

    def __init__(self, engine: Engine, sock: socket.socket) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.host: str = sock.getsockname()[0]  # as bound: the page says what to connect to
        self.port: int = sock.getsockname()[1]


def bound_socket(host: str, port: int, kind: socket.SocketKind,
                 backlog: int | None = None) -> socket.socket:
    """A socket bound to (host, port), listening when `backlog` is given, non-blocking.

    OSError (EADDRINUSE...) if it cannot be had; nothing is left open then."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        if backlog is not None:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
