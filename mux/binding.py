"""Opening the echo server's sockets: a TCP listener and, with UDP on, its twin on the same
port number."""

from __future__ import annotations

import errno
import socket

from .config import EngineConfig
from .listener import open_tcp_listener
from .udp import open_udp_socket

#: --echo-port 0: free TCP ports tried before one is found whose UDP twin is free too
PORT_PAIR_TRIES = 20


def open_echo_sockets(cfg: EngineConfig) -> tuple[socket.socket, socket.socket | None]:
    """The TCP listener and the UDP socket (None without UDP), bound; OSError if they cannot
    be, with nothing left open."""
    tcp_sock: socket.socket | None = None
    passed_over: list[socket.socket] = []  # held until the end: each try is a new port
    try:
        while True:
            tcp_sock = open_tcp_listener(cfg.host, cfg.tcp_port)
            if not cfg.udp:
                return tcp_sock, None
            port = tcp_sock.getsockname()[1] if cfg.udp_port is None else cfg.udp_port
            try:
                return tcp_sock, open_udp_socket(cfg.host, port)
            except OSError as exc:
                # UDP on the TCP port the kernel picked (--echo-port 0): that port can be
                # taken for UDP alone. Pick another pair rather than fail.
                if not (cfg.tcp_port == 0 and cfg.udp_port is None
                        and exc.errno == errno.EADDRINUSE
                        and len(passed_over) < PORT_PAIR_TRIES - 1):
                    raise
                passed_over.append(tcp_sock)
                tcp_sock = None
    except BaseException:
        if tcp_sock is not None:
            tcp_sock.close()
        raise
    finally:
        for sock in passed_over:
            sock.close()
