"""The flight recorder (a bounded ring of recent events) and its exports.

Events are kept encoded (orjson bytes, ~120 B each) rather than as dicts (~500 B), so the
default ring of 200,000 events — hours of interactive use — costs tens of MB, not hundreds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from app.hub import Batch, encode_batches

DEFAULT_RING_EVENTS = 200_000
LOOP_TID = 0
#: the track of the holes in the seq numbers: events the engine numbered but never showed
#: (iterations over the observation budget, a tap that overflowed), which a trace viewer
#: would otherwise draw as a quiet spell
GAP_TID = -1
GAP_TRACK = "not recorded (seq gaps)"
JSONL_CHUNK_LINES = 2000  # lines per chunk of the jsonl download
CHROME_CHUNK_EVENTS = 5000  # trace events per chunk of the chrome download


class TraceRing:
    """Keeps (about) the last `maxlen` events as the pump's encoded batches: no second
    encoding on the hot path, ~100 bytes an event. Whole batches are evicted, oldest first."""

    def __init__(self, maxlen: int = DEFAULT_RING_EVENTS,
                 baseline: dict[int, tuple[int, int]] | None = None) -> None:
        self._batches: deque[Batch] = deque()
        self._count = 0
        self.maxlen = maxlen
        #: fd -> (bytes received, bytes sent) of each connection open before the first event
        #: kept, where known (a replay's snapshot): the chrome export's echo arrows need them
        self.baseline = baseline or {}

    def add_batches(self, batches: list[Batch]) -> None:
        """Append; evict whole batches while the rest still hold `maxlen` events (the
        excess inside the oldest batch is skipped when read, not re-encoded here)."""
        for batch in batches:
            self._batches.append(batch)
            self._count += batch.count
        while self._batches and self._count - self._batches[0].count >= self.maxlen:
            self._count -= self._batches.popleft().count

    def __call__(self, events: list[dict[str, Any]]) -> None:
        self.add_batches(encode_batches(events))

    def batches(self) -> tuple[Batch, ...]:
        """The batches held now, oldest first (the first may hold events older than
        `maxlen`, which `events()` skips)."""
        return tuple(self._batches)

    def __len__(self) -> int:
        return min(self._count, self.maxlen)

    def events(self) -> Iterator[dict[str, Any]]:
        batches = list(self._batches)
        skip = max(0, sum(b.count for b in batches) - self.maxlen)
        for batch in batches:
            events = orjson.loads(batch.data)
            yield from events[skip:] if skip else events
            skip = max(0, skip - len(events))

    def jsonl(self) -> Iterator[bytes]:
        dumps = orjson.dumps
        for event in self.events():
            yield dumps(event) + b"\n"

    def jsonl_chunks(self, lines: int = JSONL_CHUNK_LINES) -> Iterator[bytes]:
        """`jsonl()` joined `lines` at a time: a StreamingResponse runs a sync iterator one
        thread-pool hop per item, which made a line per item take ~15 s for 80,000 events."""
        chunk: list[bytes] = []
        for line in self.jsonl():
            chunk.append(line)
            if len(chunk) >= lines:
                yield b"".join(chunk)
                chunk.clear()
        if chunk:
            yield b"".join(chunk)


Baseline = dict[int, tuple[int, int]]


def to_chrome(events: Iterable[dict[str, Any]], started_at: float = 0.0,
              baseline: Baseline | None = None) -> dict[str, Any]:
    """Trace Event Format (Perfetto, chrome://tracing): a track per fd plus a loop track;
    waits as slices, readiness as instants, queue depth and bytes as counters, and flow
    arrows from each recv to the send that echoes its first byte (see _FlowMatcher)."""
    gaps = SeqGaps()
    trace_events = list(_chrome_events(events, baseline, gaps))
    return {"traceEvents": trace_events, "displayTimeUnit": "ms",
            "otherData": _other_data(started_at, gaps)}


def chrome_chunks(events: Iterable[dict[str, Any]], started_at: float = 0.0,
                  per_chunk: int = CHROME_CHUNK_EVENTS,
                  baseline: Baseline | None = None) -> Iterator[bytes]:
    """`to_chrome(...)` encoded as JSON in pieces of about `per_chunk` trace events, so a
    download holds one piece at a time (the whole document of a full ring is ~60 MB, and
    building it at once cost ~90 MB a request: twenty at once took the server to 1.9 GB)."""
    gaps = SeqGaps()
    yield b'{"traceEvents":['
    chunk: list[bytes] = []
    first = True
    for trace_event in _chrome_events(events, baseline, gaps):
        chunk.append(orjson.dumps(trace_event))
        if len(chunk) >= per_chunk:
            yield (b"" if first else b",") + b",".join(chunk)
            first = False
            chunk.clear()
    if chunk:
        yield (b"" if first else b",") + b",".join(chunk)
    yield (b'],"displayTimeUnit":"ms","otherData":' + orjson.dumps(_other_data(started_at, gaps))
           + b"}")


class SeqGaps:
    """The holes between consecutive events' seqs, counted as a trace is converted."""

    def __init__(self) -> None:
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.last_us = 0.0
        self.holes = 0
        self.missing = 0

    def after(self, event: dict[str, Any], us: float) -> dict[str, Any] | None:
        """The gap slice before `event` (on GAP_TID), if its seq does not follow the last."""
        seq = event.get("seq")
        if not isinstance(seq, int):
            return None
        last, last_us = self.last_seq, self.last_us
        self.last_seq, self.last_us = seq, us
        if self.first_seq is None:
            self.first_seq = seq
        if last is None or seq <= last + 1:
            return None
        missing = seq - last - 1
        self.holes += 1
        self.missing += missing
        return {"pid": 1, "tid": GAP_TID, "ph": "X", "cat": "gap", "ts": last_us,
                "dur": max(1.0, us - last_us), "name": f"{missing:,} events not recorded",
                "args": {"after_seq": last, "before_seq": seq, "missing": missing}}


def _other_data(started_at: float, gaps: SeqGaps) -> dict[str, Any]:
    """The trace's metadata: what a viewer shows of it does not say what is missing, inside
    it (the seq gaps) or before it (`events_before_first`: the ring keeps the newest events,
    so a long session's trace starts after its first; a rotated recording's file too)."""
    first = gaps.first_seq
    return {"started_at": started_at, "source": "muxscope", "seq_gaps": gaps.holes,
            "events_not_recorded": gaps.missing, "first_seq": first, "last_seq": gaps.last_seq,
            "events_before_first": max(0, first - 1) if first is not None else 0}


def _chrome_events(events: Iterable[dict[str, Any]], baseline: Baseline | None = None,
                   gaps: SeqGaps | None = None) -> Iterator[dict[str, Any]]:
    tracks: dict[int, str] = {LOOP_TID: "loop"}
    flows = _FlowMatcher(baseline or {})
    totals = {"in": 0, "out": 0}
    gaps = gaps if gaps is not None else SeqGaps()
    for event in events:
        us = event["ts"] * 1e6
        kind = event["kind"]
        if (gap := gaps.after(event, us)) is not None:
            tracks.setdefault(GAP_TID, GAP_TRACK)
            yield gap
        # a loop event's fd (a breakpoint's) is in its args: the pause is the loop's, on its track
        fd = event.get("fd") if kind != "loop" else None
        if fd is not None and fd not in tracks:
            tracks[fd] = f"fd {fd}"
        if kind == "accept" and fd is not None:
            flows.start(fd)  # a new connection (maybe on a reused fd number) starts at byte 0
        elif kind == "close" and fd is not None:
            flows.forget(fd)
        elif kind == "queue" and fd is not None:
            flows.queued(fd, event["pending_bytes"])
        yield from _convert(event, kind, us, fd, flows, totals)
    for tid, name in tracks.items():
        yield {"ph": "M", "name": "thread_name", "pid": 1, "tid": tid,
               "args": {"name": name}}
    yield {"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
           "args": {"name": "muxscope engine"}}


def _convert(event: dict[str, Any], kind: str, us: float, fd: int | None,
             flows: _FlowMatcher, totals: dict[str, int]) -> list[dict[str, Any]]:
    base = {"pid": 1, "tid": LOOP_TID if fd is None else fd}
    args = {k: v for k, v in event.items() if k not in ("ts", "kind")}
    if kind == "wait":
        dur = max(1, int(event["duration_us"]))
        return [{**base, "ph": "X", "name": f"{event['backend']} wait", "cat": "wait",
                 "ts": us - dur, "dur": dur, "args": args}]
    if kind in ("recv", "send"):
        totals["in" if kind == "recv" else "out"] += event["bytes"]
        slice_ = {**base, "ph": "X", "name": kind, "cat": "io", "ts": us, "dur": 1,
                  "args": args}
        counter = {"pid": 1, "tid": LOOP_TID, "ph": "C", "name": "bytes", "ts": us,
                   "args": dict(totals)}
        return [slice_, counter, *flows.match(kind, event, base, us)]
    if kind == "queue":
        return [{"pid": 1, "tid": fd, "ph": "C", "name": f"queue fd {fd}", "ts": us,
                 "args": {"depth": event["depth"], "pending_bytes": event["pending_bytes"]}}]
    return [{**base, "ph": "i", "s": "t", "name": kind if kind != "ready" else
             "ready " + "|".join(event.get("flags", [])), "cat": kind, "ts": us,
             "args": args}]


class _FlowMatcher:
    """Pairs each recv with the send that carries its first byte back (FIFO per fd).

    That takes each connection's byte offsets: counted from its `accept`, or from a known
    baseline (a replay's snapshot). A connection first seen mid-stream (a ring that has wrapped,
    a rotated segment without a baseline) has bytes queued that no event here says: its arrows
    would end at the wrong send. So it gets none until the stream says how far apart the two
    counts are: a `queue` event (pending bytes after a put or a get), or, in eager writing, a
    send of a recv's whole bytes right after it (nothing was queued: both counts meet)."""

    def __init__(self, baseline: Baseline) -> None:
        self._pending: dict[int, deque[tuple[int, int]]] = {}  # fd -> (flow id, start offset)
        self._received: dict[int, int] = {fd: got for fd, (got, _) in baseline.items()}
        self._sent: dict[int, int] = {fd: sent for fd, (_, sent) in baseline.items()}
        self._aligned: set[int] = set(baseline)
        self._last_recv: dict[int, int] = {}  # unaligned fd -> bytes of its latest event, a recv
        self._next_id = 1

    def start(self, fd: int) -> None:
        self.forget(fd)
        self._received[fd] = self._sent[fd] = 0
        self._aligned.add(fd)

    def forget(self, fd: int) -> None:
        """The connection on `fd` is gone: its unechoed bytes' flows stay open, and the next
        connection on that fd number must not inherit its offsets (its sends would end the
        dead connection's arrows)."""
        self._pending.pop(fd, None)
        self._received.pop(fd, None)
        self._sent.pop(fd, None)
        self._aligned.discard(fd)
        self._last_recv.pop(fd, None)

    def queued(self, fd: int, pending_bytes: int) -> None:
        """A queue event: received - sent = `pending_bytes` now."""
        if fd not in self._aligned:
            self._received.setdefault(fd, 0)
            self._sent[fd] = self._received[fd] - pending_bytes
            self._aligned.add(fd)
            self._last_recv.pop(fd, None)

    def match(self, kind: str, event: dict[str, Any], base: dict[str, Any],
              us: float) -> list[dict[str, Any]]:
        fd, n = event["fd"], event["bytes"]
        if not n:  # the EOF's recv, or an empty send: no byte to draw an arrow for
            return []
        if fd not in self._aligned:
            self._align(kind, fd, n, event)
            return []
        if kind == "recv":
            start = self._received.get(fd, 0)
            self._received[fd] = start + n
            flow_id, self._next_id = self._next_id, self._next_id + 1
            self._pending.setdefault(fd, deque()).append((flow_id, start))
            return [{**base, "ph": "s", "id": flow_id, "name": "echo", "cat": "flow",
                     "ts": us}]
        start = self._sent.get(fd, 0)
        self._sent[fd] = end = start + n
        ends = []
        pending = self._pending.get(fd)
        while pending and pending[0][1] < end:
            flow_id, _ = pending.popleft()
            ends.append({**base, "ph": "f", "bp": "e", "id": flow_id, "name": "echo",
                         "cat": "flow", "ts": us})
        return ends

    def _align(self, kind: str, fd: int, n: int, event: dict[str, Any]) -> None:
        """Count the bytes of a connection whose offsets are not known yet; an eager echo of
        a whole recv right after it says both counts meet there."""
        if kind == "recv":
            self._received[fd] = self._received.get(fd, 0) + n
            self._last_recv[fd] = n
            return
        echoed_whole = self._last_recv.pop(fd, None) == n and not event.get("partial")
        if echoed_whole:
            self._sent[fd] = self._received.get(fd, 0)
            self._aligned.add(fd)
