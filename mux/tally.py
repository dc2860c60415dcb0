"""Totals that other threads read while the loop thread changes them, with no lock: the
bytes of every connection ever, and the waits of each backend used.

Both are counters for Prometheus too, whose `rate()` takes any decrease for a reset: a read
must never see one go back, even when it overlaps a close or a backend switch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tcp import TcpConnection


class Stats:
    """Counters kept whether or not anybody watches; plain ints, read from any thread."""

    __slots__ = ("closed_bytes_in", "closed_bytes_out", "waits", "wait_us", "accepted",
                 "connections")

    def __init__(self) -> None:
        # Bytes of connections already closed; open ones keep their own counts (one increment
        # per message instead of two), and tally.ByteTally adds them up.
        self.closed_bytes_in = self.closed_bytes_out = 0
        self.waits = self.accepted = self.connections = 0
        self.wait_us = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class ByteTally:
    """TCP bytes in and out of all connections ever: the closed ones' sums in `Stats`, the
    open ones' on each connection (one increment per message, not two)."""

    def __init__(self, stats: Stats, connections: dict[int, TcpConnection]) -> None:
        self._stats = stats
        self._connections = connections
        self._moves = 0  # odd while a closing connection's bytes move (a seqlock)

    def retire(self, conn: TcpConnection) -> None:
        """Take `conn` out of the open connections, its bytes into the closed sums (loop
        thread)."""
        stats = self._stats
        self._moves += 1
        self._connections.pop(conn.fd, None)
        stats.closed_bytes_in += conn.bytes_in
        stats.closed_bytes_out += conn.bytes_out
        self._moves += 1

    def totals(self) -> tuple[int, int]:
        """(bytes in, bytes out); any thread. A read that overlaps a move is taken again, so
        no connection is counted twice or not at all."""
        stats = self._stats
        for _ in range(100):
            moves = self._moves
            live = list(self._connections.values())  # one C-level copy: atomic under the GIL
            got = (stats.closed_bytes_in + sum(c.bytes_in for c in live),
                   stats.closed_bytes_out + sum(c.bytes_out for c in live))
            if moves % 2 == 0 and moves == self._moves:
                break
        return got


class WaitTally:
    """Waits by backend: those of the backends used before, and the current one's since it
    came in, as one tuple replaced whole by a switch, so any thread reads it in one go."""

    def __init__(self, stats: Stats, backend: str) -> None:
        self._stats = stats
        self._split: tuple[dict[str, int], str, int] = ({}, backend, 0)

    def switched(self, name: str) -> None:
        """The loop now waits on backend `name` (loop thread)."""
        past, current, at_switch = self._split
        waits = self._stats.waits
        self._split = ({**past, current: past.get(current, 0) + waits - at_switch}, name, waits)

    def read(self) -> tuple[int, dict[str, int]]:
        """(all waits, waits by backend), read together; any thread."""
        for _ in range(100):  # the waits read must belong to the split read with them
            split = self._split
            waits = self._stats.waits
            if self._split is split:
                break
        past, name, at_switch = split
        by_backend = dict(past)
        by_backend[name] = by_backend.get(name, 0) + waits - at_switch
        return waits, by_backend
