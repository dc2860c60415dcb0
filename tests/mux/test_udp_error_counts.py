"""UDP error events are rate-limited to one a second per kind (mux/udp.py `_error`): the
whole second, not a fraction of it; the next one after it counts those held back. And the
kernel's count of dropped datagrams is read afresh for the state."""

from __future__ import annotations

import socket
from typing import Any

from mux.udp import ERROR_INTERVAL

MESSAGE = "udp send to 127.0.0.1:9: Operation not permitted"


def _shown_ago(udp: Any, kind: str, seconds: float) -> None:
    """Make the last shown error of `kind` `seconds` old (its count of held-back ones kept)."""
    last, quiet = udp._errors[kind]
    udp._errors[kind] = (last - seconds, quiet)


def test_a_second_error_half_a_second_later_is_held_back(make_engine: Any) -> None:
    engine, rec = make_engine()
    udp = engine.udp
    assert engine.call(udp._error, "send", MESSAGE).result(5) is True
    engine.call(_shown_ago, udp, "send", 0.5 * ERROR_INTERVAL).result(5)
    assert engine.call(udp._error, "send", MESSAGE).result(5) is False
    assert [e["message"] for e in rec.of("error", cause="udp")] == [MESSAGE]
    engine.call(_shown_ago, udp, "send", 0.6 * ERROR_INTERVAL).result(5)  # 1.1 s in all
    assert engine.call(udp._error, "send", MESSAGE).result(5) is True
    assert rec.of("error", cause="udp")[-1]["message"] == (
        MESSAGE + " (and 1 more like it since the last one shown)")


def _proc_udp_drops(port: int) -> int:
    """The `drops` column of /proc/net/udp for the socket bound to `port`."""
    with open("/proc/net/udp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[-1])
    raise AssertionError(f"no UDP socket on port {port}")


def test_a_paused_loops_state_counts_the_drops_it_has_not_read_about(make_engine: Any) -> None:
    """Paused, the loop reads nothing, so no datagram and no read of the socket's own count
    has told it of the drops: the state must read the kernel's count itself."""
    engine, _ = make_engine(backend="epoll", observe=False)
    engine.pause().result(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for _ in range(2000):  # far more than the receive buffer holds
            client.sendto(b"x" * 1000, ("127.0.0.1", engine.udp_port))
    kernel = _proc_udp_drops(engine.udp_port)
    assert kernel > 0, "the burst fitted: nothing to count"
    assert engine.state().result(5)["listeners"]["udp"]["dropped"] == kernel
    engine.resume().result(5)
