"""Edges of the engine the other files leave open: a backlog larger than one accept batch in
edge mode, byte totals across a close, and UDP's numbering under the observation budget."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from mux import Engine, EngineConfig
from mux.backends import READABLE
from mux.listener import ACCEPT_BATCH
from tests.conftest import wait_until
from tests.mux.conftest import Recorder, connect, recv_exactly

MakeEngine = Callable[..., tuple[Engine, Recorder]]


def test_edge_mode_accepts_a_backlog_larger_than_one_accept_batch(make_engine: MakeEngine
                                                                   ) -> None:
    """Edge-triggered, a readable listener is announced once: the listener accepts
    ACCEPT_BATCH at a time and must come back for the rest by itself, or the clients beyond
    the first batch wait for an edge that only a new client would bring."""
    engine, rec = make_engine(backend="epoll", trigger="edge")
    engine.pause().result(5)  # the backlog fills while the loop is held
    clients = []
    try:
        for _ in range(ACCEPT_BATCH + 22):
            clients.append(connect(engine.tcp_port))
        engine.resume().result(5)
        wait_until(lambda: len(rec.of("accept")) == len(clients), 5,
                   f"all {len(clients)} clients accepted")
        last = clients[-1]
        last.sendall(b"late")
        assert recv_exactly(last, 4) == b"late"
    finally:
        for sock in clients:
            sock.close()


def test_byte_totals_keep_a_closed_connections_bytes(make_engine: MakeEngine) -> None:
    """`bytes_in`/`bytes_out` are all connections ever (Prometheus counters: a decrease reads
    as a reset). A connection's bytes move into the closed sums when it closes: none may be
    lost on the way."""
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"x" * 1000)
        assert recv_exactly(sock, 1000) == b"x" * 1000
        wait_until(lambda: engine.counters()["bytes_out"] == 1000, 5, "the echo counted")
    rec.wait_for("close")
    wait_until(lambda: engine.counters()["connections"] == 0, 5, "the close")
    counters = engine.counters()
    assert (counters["bytes_in"], counters["bytes_out"]) == (1000, 1000)


def _datagram_round(engine: Engine, recorder: Recorder, client: socket.socket,
                    watched: bool) -> tuple[int, list[dict[str, Any]]]:
    """One datagram through the UDP handler's on_ready, watched or throttled: (seq numbers
    taken, events shown)."""
    udp = engine.udp
    assert udp is not None
    obs = engine.observers
    client.sendto(b"dgram", ("127.0.0.1", udp.port))

    def arrived() -> bool:
        try:
            return bool(udp.sock.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:  # not yet (loopback can hand delivery to ksoftirqd)
            return False

    wait_until(arrived, 5, "the datagram to arrive")
    seq0, shown0 = obs.seq, len(recorder.events)
    obs.watched = watched
    udp.on_ready(READABLE)
    assert client.recv(16) == b"dgram"
    return obs.seq - seq0, recorder.events[shown0:]


def test_a_throttled_datagram_takes_the_seq_numbers_a_watched_one_shows() -> None:
    """Beyond the observation budget events are not built, but they still take their seq
    (SPEC §4: the gaps add up to `dropped`). A datagram echoed in an unwatched iteration must
    take two numbers (in and out), as many as a watched one shows."""
    engine = Engine(EngineConfig(tcp_port=0, backend="epoll"))
    recorder = Recorder()
    engine.observers.add(recorder)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.bind(("127.0.0.1", 0))
            taken, shown = _datagram_round(engine, recorder, client, watched=True)
            assert [(e["kind"], e["dir"]) for e in shown] == [("datagram", "in"),
                                                              ("datagram", "out")]
            assert taken == 2
            taken, shown = _datagram_round(engine, recorder, client, watched=False)
            assert shown == [] and taken == 2
    finally:
        engine.stop()  # never started: closes the sockets and the backend at once
