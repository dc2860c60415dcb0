"""GET /api/kernel's socket queues: bytes the kernel holds for a paused loop are in its
receive queue, not its send queue (SIOCINQ vs SIOCOUTQ)."""

from __future__ import annotations

from typing import Any

from .conftest import connect, recv_exactly, wait_until


def test_bytes_waiting_for_a_paused_loop_are_in_the_receive_queue(make_engine: Any) -> None:
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        engine.pause().result(5)
        sock.sendall(b"k" * 1000)

        def queues() -> dict[str, int]:
            rows = engine.kernel().result(5)["connections"]
            return next(row for row in rows if row["fd"] == fd)

        wait_until(lambda: queues()["recv_queue"] == 1000, what="1000 bytes in the kernel")
        assert queues() == {"fd": fd, "recv_queue": 1000, "send_queue": 0}
        engine.resume().result(5)
        assert recv_exactly(sock, 1000) == b"k" * 1000
        wait_until(lambda: queues()["recv_queue"] == 0, what="the bytes read")
