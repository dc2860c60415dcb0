"""UDP replies the kernel refuses (EAGAIN) wait in a bounded queue: when it is full the socket
stops being read (backpressure) instead of the server throwing replies away unsaid."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import mux.udp

from .conftest import SocketStandIn, wait_until

BOUND = 20
SENT = 100


class RefusingSocket(SocketStandIn):
    """The engine's UDP socket, whose `sendto` fails with EAGAIN while `refusing` is set:
    loopback never refuses a datagram, so a full send buffer is played here."""

    def __init__(self, real: socket.socket) -> None:
        super().__init__(real)
        self.refusing = True

    def sendto(self, data: bytes, addr: Any) -> int:
        if self.refusing:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self.real.sendto(data, addr)


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_a_full_reply_queue_stops_reading_and_loses_no_reply(make_engine, monkeypatch, backend):
    monkeypatch.setattr(mux.udp, "MAX_PENDING_REPLIES", BOUND)
    engine, rec = make_engine(backend=backend)
    udp = engine.udp
    refusing = RefusingSocket(udp.sock)
    engine.call(setattr, udp, "sock", refusing).result(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(5)
        for i in range(SENT):
            client.sendto(b"%04d" % i, ("127.0.0.1", engine.udp_port))
        wait_until(lambda: udp.reading_paused, 5, "reading paused")
        state = engine.state().result(5)["listeners"]["udp"]
        assert state["reading_paused"] is True
        assert state["pending"] == BOUND and state["received"] == BOUND  # no more read
        assert [(e["paused"], e.get("udp")) for e in rec.of("backpressure")
                if e["fd"] == udp.fd] == [(True, True)]
        engine.call(setattr, refusing, "refusing", False).result(5)
        echoes = [client.recvfrom(100)[0] for _ in range(SENT)]
    assert echoes == [b"%04d" % i for i in range(SENT)]  # every one, in order
    wait_until(lambda: [e["paused"] for e in rec.of("backpressure") if e["fd"] == udp.fd]
               == [True, False], 5, "reading resumed")
    state = engine.state().result(5)["listeners"]["udp"]
    assert state["pending"] == 0 and state["pending_bytes"] == 0
    assert state["reading_paused"] is False and state["echoed"] == SENT
    engine.call(setattr, udp, "sock", refusing.real).result(5)
    # the cause, then its effect: each backpressure event is followed by the interest it sets
    mine = [e for e in list(rec.events) if e.get("fd") == udp.fd
            and e["kind"] in ("backpressure", "interest")]
    after = [(e["paused"], mine[i + 1]["kind"])
             for i, e in enumerate(mine[:-1]) if e["kind"] == "backpressure"]
    assert after == [(True, "interest"), (False, "interest")]
