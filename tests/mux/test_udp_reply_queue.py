"""UDP replies that wait (mux/udp.py): a reply the kernel refused for now (EAGAIN) holds back
the ones after it, so echoes keep their order; once the queue is empty the socket is watched
for reading alone again; a reply the network refuses for good (EPERM: a firewall) is said and
not queued, so it does not hold back everyone else's."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from mux.backends import READABLE

from .conftest import RefusingOnce, SocketStandIn, wait_until

SENT = 10


class Firewalled(SocketStandIn):
    """The engine's UDP socket, whose replies to one address fail with EPERM, as a firewall's
    (an iptables REJECT on output) would: there is no such rule on loopback here."""

    def __init__(self, real: socket.socket, blocked: tuple[str, int]) -> None:
        super().__init__(real)
        self.blocked = blocked

    def sendto(self, data: bytes, addr: Any) -> int:
        if tuple(addr[:2]) == self.blocked:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return self.real.sendto(data, addr)


def _client() -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(3)
    return client


@pytest.mark.parametrize(("backend", "trigger"), [("poll", "level"), ("epoll", "edge")])
def test_a_reply_held_back_by_eagain_keeps_its_place_and_reading_alone_resumes(
        make_engine: Any, backend: str, trigger: str) -> None:
    """Ten datagrams wait for one wake-up; the first one's reply is refused for now. The nine
    after it are read in the same go (edge mode), and must queue behind it, not overtake it.
    Once all is sent, the socket is watched for reading only (write interest left on would
    report the idle socket writable on every wait: a busy loop, level-triggered)."""
    engine, _ = make_engine(backend=backend, trigger=trigger)
    udp = engine.udp
    refusing = RefusingOnce(udp.sock)
    engine.call(setattr, udp, "sock", refusing).result(5)
    with _client() as client:
        engine.pause().result(5)
        for i in range(SENT):
            client.sendto(b"%04d" % i, ("127.0.0.1", engine.udp_port))
        engine.resume().result(5)
        echoes = [client.recvfrom(100)[0] for _ in range(SENT)]
    assert refusing.refused == 1
    assert echoes == [b"%04d" % i for i in range(SENT)]
    wait_until(lambda: engine.state().result(5)["listeners"]["udp"]["pending"] == 0,
               what="the reply queue empty")
    assert engine.call(lambda: engine.loop.interest[udp.fd]).result(5) == READABLE
    engine.call(setattr, udp, "sock", refusing.real).result(5)


def test_a_reply_the_network_refuses_is_said_and_does_not_hold_back_the_others(
        make_engine: Any) -> None:
    engine, rec = make_engine()
    udp = engine.udp
    with _client() as blocked, _client() as other:
        firewalled = Firewalled(udp.sock, blocked.getsockname()[:2])
        engine.call(setattr, udp, "sock", firewalled).result(5)
        blocked.sendto(b"to be refused", ("127.0.0.1", engine.udp_port))
        said = rec.wait_for("error", cause="udp")
        assert "Operation not permitted" in said["message"] and said["fd"] == udp.fd
        other.sendto(b"still echoed", ("127.0.0.1", engine.udp_port))
        assert other.recvfrom(100)[0] == b"still echoed"
        state = engine.state().result(5)["listeners"]["udp"]
        assert (state["received"], state["echoed"], state["pending"]) == (2, 1, 0)
        assert state["reading_paused"] is False
        engine.call(setattr, udp, "sock", firewalled.real).result(5)
