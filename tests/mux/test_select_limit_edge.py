"""select's limit at its exact edge: fd 1023 is the last one an fd_set holds, fd 1024
(FD_SETSIZE itself) is the first one it cannot (SPEC §2)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from mux import FD_SETSIZE

from .conftest import connect, recv_exactly


@contextmanager
def lowest_free_fd(target: int) -> Iterator[None]:
    """Hold every free fd below `target`, so that the next fd this process opens is `target`."""
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= target - 1:
                break
        assert fd == target - 1, f"fd {target - 1} was in use already"
        yield
    finally:
        for fd in held:
            os.close(fd)


def _unconnected() -> socket.socket:
    """The client's socket, made before the low fds are taken (it must not be the one at the
    edge: the server's accepted socket is)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    return sock


def test_select_serves_a_connection_on_the_last_fd_it_can_watch(make_engine):
    """fd 1023 fits in an fd_set: it is served, not refused."""
    fd = FD_SETSIZE - 1
    engine, rec = make_engine(backend="select")
    with _unconnected() as sock:
        with lowest_free_fd(fd):
            sock.connect(("127.0.0.1", engine.tcp_port))
            assert rec.wait_for("accept")["fd"] == fd
        sock.sendall(b"edge")
        assert recv_exactly(sock, 4) == b"edge"
    assert not rec.of("error")


def test_select_refuses_a_connection_on_fd_setsize_itself(make_engine):
    """fd 1024 == FD_SETSIZE is already out of an fd_set's range: the connection is closed
    with an `error` event naming it (a `>` instead of `>=` let it in, and select() then
    failed on it)."""
    engine, rec = make_engine(backend="select")
    with _unconnected() as sock:
        with lowest_free_fd(FD_SETSIZE):
            sock.connect(("127.0.0.1", engine.tcp_port))
            error = rec.wait_for("error")
        assert error["fd"] == FD_SETSIZE and "FD_SETSIZE (1024)" in error["message"]
        assert error["cause"] == "refused"
        assert sock.recv(10) == b""  # closed by the server
        rec.wait_for("close", reason="error")
    with connect(engine.tcp_port) as sock:  # the loop lives on
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"
