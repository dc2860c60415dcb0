"""Per-event cost of observation, and the engine's own cost per message, in-process.

The call sites are the engine's own pattern: `if obs.watched: obs.emit({...})` and, when
throttled, `elif obs.active: obs.seq += 1`. The per-message table drives one real
`TcpConnection` on a socketpair (no wait call: readable, then writable for queued) and
subtracts the same socket operations done bare. Nothing here is asserted: it prints numbers.
"""

from __future__ import annotations

import collections
import socket
import time
import timeit
from collections.abc import Callable
from typing import Any

from mux import READABLE, WRITABLE, Engine, EngineConfig, Observers, TcpConnection, preview

NUMBER = 100_000
REPEAT = 7


def _cost_ns(fn: Callable[[], Any], number: int = NUMBER, repeat: int = REPEAT) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def _send_site(obs: Observers) -> Callable[[], None]:
    def site() -> None:
        if obs.watched:
            obs.emit({"kind": "send", "fd": 7, "bytes": 1024, "partial": False})
        elif obs.active:
            obs.seq += 1
    return site


def _recv_site(obs: Observers, data: memoryview) -> Callable[[], None]:
    def site() -> None:
        if obs.watched:
            obs.emit({"kind": "recv", "fd": 7, "bytes": len(data), "preview": preview(data)})
        elif obs.active:
            obs.seq += 1
    return site


def run(number: int = NUMBER, repeat: int = REPEAT) -> list[dict[str, Any]]:
    nobody = Observers()
    watched = Observers()
    sink: collections.deque[dict[str, Any]] = collections.deque(maxlen=100_000)
    watched.add(sink.append)
    # what the engine passes: a view of its receive buffer
    text = memoryview(bytearray(b"x" * 1024))
    binary = memoryview(bytearray(range(256)) * 4)
    baseline = _cost_ns(lambda: None, number, repeat)
    rows = [
        ("send event, nobody watching (two guards)", _send_site(nobody)),
        ("send event, one deque sink", _send_site(watched)),
        ("recv event + preview (1 KiB text), nobody watching", _recv_site(nobody, text)),
        ("recv event + preview (1 KiB text), one deque sink", _recv_site(watched, text)),
        ("recv event + preview (1 KiB binary), one deque sink", _recv_site(watched, binary)),
    ]
    return [{"case": name, "ns": round(_cost_ns(fn, number, repeat) - baseline, 1),
             "number": number, "repeat": repeat} for name, fn in rows]


def per_message(messages: int = 20_000) -> list[dict[str, Any]]:
    """ns per 1 KiB message through the engine's dispatch (`on_ready` when watched, the batch
    dispatch when not), beyond the bare recv/send of the same bytes."""
    out = []
    for write in ("eager", "queued"):
        for mode in ("unobserved", "throttled", "watched"):
            ns = _message_ns(write, mode, messages)
            out.append({"case": f"{write}, {mode}", "ns": round(ns), "messages": messages})
    return out


def _message_ns(write: str, mode: str, messages: int) -> float:
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="poll", write=write))
    if mode != "unobserved":
        sink: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)
        engine.observers.add(sink.append)
    server, peer = socket.socketpair()
    server.setblocking(False)
    conn = TcpConnection(engine, server, "socketpair")
    engine.loop.register(conn, READABLE)
    msg, obs = b"m" * 1024, engine.observers

    # handed over as the loop does: a watched iteration calls on_ready, an unwatched one the
    # engine's batch dispatch (mux/hot.py)
    backend = engine.loop.backend
    if mode == "watched":
        def readable() -> None:
            conn.on_ready(READABLE)

        def writable() -> None:
            conn.on_ready(WRITABLE)
    else:
        dispatch = engine.loop.dispatch_unwatched
        reads = [(conn.fd, backend.native_interest(READABLE))]
        writes = [(conn.fd, backend.native_interest(WRITABLE))]

        def readable() -> None:
            dispatch(reads, backend)

        def writable() -> None:
            dispatch(writes, backend)

    def through_engine(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            peer.send(msg)
            obs.watched = mode == "watched"
            readable()
            if write == "queued":
                writable()
            peer.recv(65536)
        return time.perf_counter() - t0

    def bare(n: int) -> float:
        buf = bytearray(65536)
        t0 = time.perf_counter()
        for _ in range(n):
            peer.send(msg)
            k = server.recv_into(buf)
            server.send(memoryview(buf)[:k])
            peer.recv(65536)
        return time.perf_counter() - t0

    try:
        through_engine(1000)
        best = min(through_engine(messages) for _ in range(3))
        floor = min(bare(messages) for _ in range(3))
    finally:
        conn.close("user")
        peer.close()
        engine.stop()  # never started: closes the listener and the backend at once
    return (best - floor) / messages * 1e9


def render(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["case"]) for r in rows)
    number, repeat = rows[0].get("number", NUMBER), rows[0].get("repeat", REPEAT)
    lines = [f"Per-event observation cost (in-process, timeit min of {repeat} x {number:,}; "
             "call overhead subtracted)",
             f"{'case':<{width}}  ns/event", f"{'-' * width}  --------"]
    lines += [f"{r['case']:<{width}}  {r['ns']:8.1f}" for r in rows]
    return "\n".join(lines) + "\n"


def render_messages(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["case"]) for r in rows)
    count = rows[0]["messages"] if rows else 0
    lines = ["Engine cost per 1 KiB message through its dispatch (socketpair, poll; "
             f"min of 3 x {count:,}; the bare recv_into + send of the same bytes subtracted)",
             f"{'write, iteration':<{width}}  ns/message", f"{'-' * width}  ----------"]
    lines += [f"{r['case']:<{width}}  {r['ns']:10,}" for r in rows]
    if any(r["ns"] < 0 for r in rows):  # a printed -496 read as a finding, not as noise
        lines.append("(a negative cost: the difference of two timings on a busy machine is "
                     "noise; read this table for its larger gaps)")
    return "\n".join(lines) + "\n"
