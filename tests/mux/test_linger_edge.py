"""A lingering close in edge-triggered mode (mux/linger.py): reading away is bounded per
iteration, and what is left after a bound brings no new edge, so the Lingerer must read on
by itself; or the peer's EOF, queued behind it, is never read and the close waits for its
deadline (and ends with an RST instead of the clean close the peer asked for)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

import mux.tcp_close

from .conftest import connect, recv_until_eof, send_quietly, wait_until


def test_an_edge_triggered_linger_reads_on_past_its_bound_to_the_peers_eof(
        make_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mux.tcp_close, "READ_AWAY_CHUNKS", 1)  # one 64 KiB read an iteration
    engine, rec = make_engine(backend="epoll", trigger="edge")
    # a receive buffer fixed at 2 MiB (the kernel doubles it), inherited by the accepted
    # socket: left to autotuning it stayed under 128 KiB once, in a loaded CI run
    engine.listener.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = rec.wait_for("accept")["fd"]
        sender = threading.Thread(target=send_quietly, args=(sock, b"f" * (12 << 20)))
        sender.start()
        rec.wait_for("backpressure", timeout=10, paused=True)

        seen: list[int] = []

        def unread() -> int:  # in the kernel's receive queue (SIOCINQ)
            conns = engine.kernel().result(5)["connections"]
            seen.append(next((c["recv_queue"] for c in conns if c["fd"] == fd), 0))
            return seen[-1]
        # more than the close's one read takes: with less, it closes at once (not streaming)
        wait_until(lambda: unread() >= 2 * mux.tcp_close.LINGER_FROM, 10,
                   lambda: f"a full receive queue (bytes unread, the last reads: {seen[-5:]})")
        assert engine.close_connection(fd).result(5) is True
        sender.join(10)
        assert not sender.is_alive()
        sock.shutdown(socket.SHUT_WR)  # behind what is still unread: megabytes
        close = rec.wait_for("close", fd=fd, timeout=4)  # the deadline is at 5 s
        assert (close["reason"], close["lingered"]) == ("user", "eof")
        recv_until_eof(sock)  # an orderly end: no ConnectionResetError
