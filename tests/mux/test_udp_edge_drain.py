"""Edge-triggered UDP: one readiness report stands for every datagram queued so far, so the
server must read until EAGAIN each time; and after a backpressure pause, the datagrams that
came meanwhile bring no new edge, so reading must start again without waiting for one."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import mux.udp

from .conftest import RefusingOnce, wait_until

SENT = 60  # far below what the socket's default receive buffer holds: the kernel drops none
BOUND = 10


def _client() -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2)
    return client


def _replies(client: socket.socket, count: int) -> list[bytes]:
    """Up to `count` replies, stopping at the first 2 s of silence (the test then says how
    many came, rather than a bare timeout)."""
    got: list[bytes] = []
    try:
        while len(got) < count:
            got.append(client.recvfrom(100)[0])
    except TimeoutError:
        pass
    return got


def _send_while_paused(engine: Any, client: socket.socket) -> None:
    """Every datagram waits in the kernel before the loop's next wait: a single edge for all."""
    engine.pause().result(5)
    for i in range(SENT):
        client.sendto(b"%04d" % i, ("127.0.0.1", engine.udp_port))
    engine.resume().result(5)


@pytest.mark.parametrize("oneshot", [False, True])
def test_edge_mode_echoes_every_datagram_that_one_edge_announced(make_engine, oneshot):
    """Datagrams queued while the loop was paused are reported by one edge: reading a single
    one per report would leave the rest in the kernel until more traffic came (never here)."""
    engine, rec = make_engine(backend="epoll", trigger="edge", oneshot=oneshot)
    with _client() as client:
        _send_while_paused(engine, client)
        echoes = _replies(client, SENT)
    assert len(echoes) == SENT, f"{len(echoes)} of {SENT} datagrams echoed"
    assert echoes == [b"%04d" % i for i in range(SENT)]
    wait_until(lambda: engine.udp.echoed == SENT, 5, "every datagram echoed")
    assert engine.udp.dropped == 0


def test_edge_mode_reads_again_at_once_when_udp_backpressure_ends(make_engine, monkeypatch):
    """The queue fills (one refused reply makes the next ones queue behind it), reading pauses
    with datagrams still in the kernel, the queue drains on the writable report and reading
    resumes: those datagrams made their edge before the pause, so the server reads them in
    that same iteration (no wait in between) rather than count on another readiness report."""
    monkeypatch.setattr(mux.udp, "MAX_PENDING_REPLIES", BOUND)
    engine, rec = make_engine(backend="epoll", trigger="edge")
    udp = engine.udp
    refusing = RefusingOnce(udp.sock)
    engine.call(setattr, udp, "sock", refusing).result(5)
    try:
        with _client() as client:
            _send_while_paused(engine, client)
            echoes = _replies(client, SENT)
    finally:
        engine.call(setattr, udp, "sock", refusing.real).result(5)
    assert len(echoes) == SENT, f"{len(echoes)} of {SENT} datagrams echoed"
    assert echoes == [b"%04d" % i for i in range(SENT)]  # every one, in order
    wait_until(lambda: rec.of("backpressure", fd=udp.fd, paused=False), 5, "reading resumed")
    events = list(rec.events)
    resumed = next(i for i, e in enumerate(events)
                   if e["kind"] == "backpressure" and e["fd"] == udp.fd and not e["paused"])
    after = events[resumed + 1:]
    first_read = next(i for i, e in enumerate(after)
                      if e["kind"] == "datagram" and e["fd"] == udp.fd and e["dir"] == "in")
    waits = [e for e in after[:first_read] if e["kind"] == "wait"]
    assert not waits, "after the resume, reading waited for a new readiness report"
