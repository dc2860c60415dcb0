"""Child of `muxscope bench --only instructions`, run under valgrind: ROUNDS echo rounds of
50 connections x 1 KiB through one engine (or the bare select loop), in this one process, over
socketpairs. ``python -m app.benchkit.instr_driver VARIANT ROUNDS``.

VARIANT is ``bare:queued``, ``bare:eager`` or ``<backend>:<write>:<observer>`` with observer
``off`` (nobody listens), ``active`` (a sink, every iteration over the budget: events numbered,
none built — the app's usual iteration under load) or ``watched`` (every event built).
The engine is not started: the driver calls ``loop.run_once`` itself, once per half of the echo
(queued) or once (eager), so every round does the same work.
"""

from __future__ import annotations

import collections
import select
import socket
import sys
from collections.abc import Callable
from typing import Any

CONNS = 50
MESSAGE = b"m" * 1024


def _pairs() -> tuple[list[socket.socket], list[socket.socket]]:
    servers, peers = [], []
    for _ in range(CONNS):
        server, peer = socket.socketpair()
        server.setblocking(False)
        servers.append(server)
        peers.append(peer)
    return servers, peers


def bare(write: str, servers: list[socket.socket]) -> Callable[[], None]:
    """The least a select echo loop does per iteration (the floor the engine is read against)."""
    socks = {s.fileno(): s for s in servers}
    queues: dict[int, collections.deque[bytes]] = {fd: collections.deque() for fd in socks}
    readers, writers = set(socks), set[int]()
    buf = bytearray(65536)
    view = memoryview(buf)

    def queued() -> None:
        r, w, _ = select.select(readers, writers, (), 0.25)
        for fd in r:
            queue = queues[fd]
            queue.append(socks[fd].recv(65536))
            if len(queue) == 1:
                writers.add(fd)
        for fd in w:
            queue = queues[fd]
            while queue:
                chunk = queue[0]
                sent = socks[fd].send(chunk)
                if sent < len(chunk):
                    queue[0] = chunk[sent:]
                    break
                queue.popleft()
            if not queue:
                writers.discard(fd)

    def eager() -> None:
        r, _, _ = select.select(readers, (), (), 0.25)
        for fd in r:
            n = socks[fd].recv_into(buf)
            socks[fd].send(view[:n])

    return queued if write == "queued" else eager


def engine(backend: str, write: str, observer: str,
           servers: list[socket.socket]) -> Callable[[], None]:
    from mux import READABLE, Engine, EngineConfig, TcpConnection

    budget = 1 if observer == "active" else None  # 1/s: each 100 ms window shows nothing
    eng = Engine(EngineConfig(tcp_port=0, udp=False, backend=backend, write=write,
                              observe_budget=budget))
    if observer != "off":
        sink: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        eng.observers.add(sink.append)
    for i, server in enumerate(servers):
        eng.loop.register(TcpConnection(eng, server, f"pair {i}"), READABLE)
    return eng.loop.run_once


def main(argv: list[str]) -> int:
    variant, rounds = argv[0], int(argv[1])
    kind, write, *rest = variant.split(":")
    servers, peers = _pairs()
    step = bare(write, servers) if kind == "bare" else engine(kind, write, rest[0], servers)
    halves = 2 if write == "queued" else 1
    # The peers read into one buffer: `recv(65536)` allocated 64 KiB and shrank it a message,
    # in glibc's malloc, whose cost moved by ~200 instructions a message with the heap's
    # layout, i.e. with any change to the server's code (docs/BENCHMARKS-history.md "Run
    # BJ", session 38).
    sink = bytearray(65536)
    for _ in range(rounds):
        for peer in peers:
            peer.send(MESSAGE)
        for _ in range(halves):
            step()
        for peer in peers:
            peer.recv_into(sink)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
