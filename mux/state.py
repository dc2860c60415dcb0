"""The engine's state as GET /api/state shows it, captured cheaply on the loop thread.

With 10,000 connections, building ~20,000 dicts takes tens of milliseconds — time the echo
loop would stand still. So the loop thread only copies plain tuples (`capture`), and the
caller's thread turns them into the JSON-ready body (`StateCapture.to_dict`).
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import backends
from .backends import FD_SETSIZE, READABLE, WRITABLE

if TYPE_CHECKING:
    from .engine import Engine

ConnRow = tuple[int, str, int, int, int, int, int, bool, bool, bool]
RegRow = tuple[int, str, int]


@dataclass
class StateCapture:
    head: dict[str, Any]
    interest_names: Callable[[int], list[str]]
    connections: list[ConnRow]
    registrations: list[RegRow]
    seq: int

    def to_dict(self) -> dict[str, Any]:
        names = self.interest_names
        return {
            **self.head,
            "registrations": [{"fd": fd, "role": role, "interest": names(mask)}
                              for fd, role, mask in self.registrations],
            "connections": [
                {"fd": fd, "peer": peer, "interest": names(mask), "queue_depth": depth,
                 "pending_bytes": pending, "bytes_in": b_in, "bytes_out": b_out,
                 "reading_paused": paused, "lingering": lingering, "generated": generated}
                for fd, peer, mask, depth, pending, b_in, b_out, paused, lingering, generated
                in self.connections],
        }


def _mark_generated(engine: Engine) -> None:
    """Mark the load generator's clients that its accept did not know yet (accepted in the
    moment between the client's connect call and its noting its own address)."""
    owns = engine.is_generated
    if owns is None:
        return
    for conn in engine.connections.values():
        if not conn.generated and owns(conn.peer):
            conn.generated = True


def capture(engine: Engine) -> StateCapture:
    """Copy what the state body needs; call on the loop thread."""
    loop = engine.loop
    backend = loop.backend
    interest = loop.interest
    handlers = loop.handlers
    _mark_generated(engine)
    conns = [(c.fd, c.peer, interest.get(c.fd, 0), len(c.queue), c.pending_bytes, c.bytes_in,
              c.bytes_out, c.reading_paused, c.lingering, c.generated)
             for c in engine.connections.values()]
    regs = [(fd, handlers[fd].role, mask) for fd, mask in interest.items()]
    head = {
        "backend": {**backend.describe(), "write": engine.write_mode},
        "available": backends.available(),
        **engine.loop_state(),
        "paused_at": engine.paused_at,
        "listeners": {
            "tcp": {"fd": engine.listener.fd, "port": engine.listener.port,
                    "host": engine.listener.host},
            "udp": engine.udp.describe() if engine.udp else None,
        },
        "control_fd": engine.control_fd,
        "limits": {"fd_setsize": FD_SETSIZE,
                   "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                   "max_connections": engine.max_connections,
                   # the queue panel draws the high-water line and names the low-water mark
                   "high_water": engine.high_water, "low_water": engine.low_water},
        "last_wait": _last_wait(engine),
        "breakpoints": [bp.describe() for bp in engine.breakpoints.items.values()],
        "flaw": None if engine.flaws.active is None else engine.flaws.active.name,
        "stats": _stats(engine),
    }
    # the names of every generic mask, looked up here on the loop thread: to_dict() runs on
    # another thread, and the backend's name cache is the loop thread's to fill and clear
    names = {mask: backend.interest_names(mask) for mask in range((READABLE | WRITABLE) + 1)}
    return StateCapture(head, names.__getitem__, conns, regs, engine.observers.seq)


def _stats(engine: Engine) -> dict[str, Any]:
    stats = engine.stats
    bytes_in, bytes_out = engine.byte_tally.totals()
    return {"bytes_in": bytes_in, "bytes_out": bytes_out, "waits": stats.waits,
            "wait_us": stats.wait_us, "accepted": stats.accepted,
            "connections": stats.connections, "events_total": engine.observers.seq,
            # replay's /metrics counts a rotated segment's waits per backend from here
            "waits_by_backend": engine.wait_tally.read()[1]}


def _last_wait(engine: Engine) -> dict[str, Any] | None:
    loop = engine.loop
    if loop.last_wait is None:
        return None
    names = loop.last_ready_backend.names  # after a switch: the old backend's words
    ready_list = [{"fd": fd, "flags": names(native)} for fd, native in loop.last_ready]
    fields = {k: v for k, v in loop.last_wait.items() if k not in ("seq", "ts", "kind")}
    out = {**fields, "ready_list": ready_list}
    if loop.last_ready_backend is not loop.backend:  # switched since (a new epoll on a new
        out["made_by"] = loop.last_ready_backend.describe()  # trigger too): which one waited
    return out
