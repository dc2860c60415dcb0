"""`muxscope replay FILE`: the page over a recorded JSONL file, with no echo server.

The websocket sends the recorded snapshot, then every recorded event in order (`dropped`: the
seq gaps the recording has, as a live run would have counted them),
then stats once a second (their counters as the recording tells them), to at most
`--max-clients` browsers at once (the next one is closed with 1013 and a reason, as in a live
run; one that stops reading is closed with 1008, as in a live run). Every POST, PUT, PATCH and
DELETE answers 409 (`ReplayGuard`), on any path and before its body is even read: there is
nothing live to change, so whether the body would have been valid does not matter (SPEC §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.hub import Batch, Hub, HubFull, events_frame
from app.metrics import Metrics
from app.recording import MAX_REPLAY_EVENTS, read_recording
from app.routes.live import (
    SHUTTING_DOWN,
    TOO_SLOW,
    close_politely,
    closed_for_shutdown,
    send_frame,
    until_shutdown,
)
from app.routes.release import release
from app.security import UNSAFE_METHODS, ASGIApp, Receive, Scope, Send
from app.settings import Settings
from app.trace import TraceRing

log = logging.getLogger(__name__)
router = APIRouter()
FRAME_EVENTS = 2000
#: a file this large says how far its reading has got (~1 s of reading, ~250,000 events)
PROGRESS_FROM_BYTES = 25 << 20
PROGRESS_EVERY_S = 2.0
REPLAY_REFUSAL = (b'{"detail":"this is a replay of a recording: there is no live engine to '
                  b'change. Run muxscope without replay to control a live echo server."}')


class ReplayGuard:
    """Pure ASGI middleware: 409 for every POST/PUT/PATCH/DELETE in replay, on any path.

    It sits inside the security middleware (whose 403/401 come first) and outside the routes,
    so it answers before FastAPI validates a body (which would otherwise make a malformed
    request a 422) and for paths no route knows.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _changes_state(scope):
            await send({"type": "http.response.start", "status": 409, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(REPLAY_REFUSAL)).encode())]})
            await send({"type": "http.response.body", "body": REPLAY_REFUSAL})
            return
        await self.app(scope, receive, send)


def _changes_state(scope: Scope) -> bool:
    """Every POST, PUT, PATCH and DELETE, on any path (SPEC §4: all answer 409 in replay)."""
    return scope.get("method", "GET").upper() in UNSAFE_METHODS


class RecordedCounts:
    """The stats frame's counters as a recording's events tell them, counted a chunk at a time
    as replay reads the file: what they add to the snapshot's, which may come only at the
    file's end (app/recording.py makes one up for a file without), so `totals` takes it then.
    Events the recording lacks (not shown live, so not recorded) are not counted."""

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = self.waits = 0
        self.waits_by_backend: dict[str, int] = {}
        self.last_seq: int | None = None
        # fd -> open after its last accept or close: a set's adds and discards in order, of
        # which only the last one of each fd tells
        self._opened: dict[Any, bool] = {}
        # the same where a recv, send or queue of an fd also says it is open (see `totals`)
        self._opened_by_events: dict[Any, bool] = {}
        self._udp = {"received": 0, "from_self": 0, "echoed": 0}
        self._udp_dropped: int | None = None  # the kernel's total, as the last error said

    def __call__(self, events: list[dict[str, Any]]) -> None:
        opened, by_events, udp = self._opened, self._opened_by_events, self._udp
        for event in events:
            kind, moved = event["kind"], event.get("bytes", 0)  # an int: the reader checked
            if kind in ("recv", "send", "queue") and "fd" in event:
                by_events[event["fd"]] = True
            if kind == "recv":
                self.bytes_in += moved
            elif kind == "send":
                self.bytes_out += moved
            elif kind == "wait":
                self.waits += 1
                backend = event.get("backend")  # (the reader's check requires it)
                if isinstance(backend, str):
                    self.waits_by_backend[backend] = self.waits_by_backend.get(backend, 0) + 1
            elif kind == "accept":
                opened[event["fd"]] = by_events[event["fd"]] = True
            elif kind == "close":
                opened[event.get("fd")] = by_events[event.get("fd")] = False
            elif kind == "error" and type(event.get("udp_dropped")) is int:
                self._udp_dropped = max(self._udp_dropped or 0, event["udp_dropped"])
            elif kind == "datagram":
                if event.get("dir") == "in":
                    udp["received"] += 1
                    udp["from_self"] += event.get("from_self") is True
                elif not event.get("misdirected"):  # the bug zoo's reply to itself: live
                    udp["echoed"] += 1               # counts no echo either
        if events:
            self.last_seq = events[-1]["seq"]

    def totals(self, state: dict[str, Any], by_events: bool = False) -> dict[str, Any]:
        """Engine-lifetime totals as live: the snapshot's own (a rotated segment starts
        mid-run) plus the events', and the connections open at the end (the snapshot's, plus
        accepts, less closes). `by_events`: the file had no snapshot line (a trace download;
        its made-up snapshot says `unknown_before`): a connection open before its first
        event shows only in its own events, as the page's connection list counts it (it said
        50, the stats 0)."""
        base = state.get("stats") or {}
        changes = self._opened_by_events if by_events else self._opened
        open_fds = {c["fd"] for c in state.get("connections", []) if changes.get(c["fd"], True)}
        open_fds.update(fd for fd, is_open in changes.items() if is_open)
        totals: dict[str, Any] = {
            "connections": len(open_fds),
            "bytes_in": _count(base, "bytes_in") + self.bytes_in,
            "bytes_out": _count(base, "bytes_out") + self.bytes_out,
            "waits": _count(base, "waits") + self.waits}
        udp_state = (state.get("listeners") or {}).get("udp")
        if isinstance(udp_state, dict):  # UDP events count only where the snapshot had UDP
            udp = {key: _count(udp_state, key) + self._udp.get(key, 0)
                   for key in ("received", "from_self", "echoed", "dropped")}
            if self._udp_dropped is not None:
                udp["dropped"] = max(udp["dropped"], self._udp_dropped)
            totals["udp"] = udp
        return totals


def recorded_totals(state: dict[str, Any], events: list[dict[str, Any]],
                    by_events: bool = False) -> dict[str, Any]:
    """`RecordedCounts.totals` of `events` at once."""
    counts = RecordedCounts()
    counts(events)
    return counts.totals(state, by_events)


def _count(numbers: dict[str, Any], key: str) -> int:
    value = numbers.get(key, 0)
    return value if type(value) is int else 0


def _byte_baseline(state: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """fd -> (bytes in, bytes out) of the snapshot's connections (the chrome export's echo
    arrows count from there in a segment that starts mid-connection)."""
    baseline = {}
    for conn in state.get("connections") or []:
        got, sent = conn.get("bytes_in"), conn.get("bytes_out")
        if type(got) is int and type(sent) is int:
            baseline[conn["fd"]] = (got, sent)
    return baseline


def _waits_by_backend(state: dict[str, Any], counts: RecordedCounts) -> dict[str, int]:
    waits: dict[str, int] = {}
    recorded = (state.get("stats") or {}).get("waits_by_backend")
    if isinstance(recorded, dict):
        waits.update({k: v for k, v in recorded.items() if type(v) is int})
    for backend, n in counts.waits_by_backend.items():
        waits[backend] = waits.get(backend, 0) + n
    return waits


class LoadProgress:
    """Says on stderr how far a large file is read, every PROGRESS_EVERY_S (a 400 MB file
    takes ~15 s, before the dashboard's URL is printed), then how long it took."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = self.said = time.monotonic()

    def __call__(self, done: int, size: int, events: int) -> None:
        now = time.monotonic()
        if now - self.said >= PROGRESS_EVERY_S:
            self.said = now
            self._say(f"{done / max(size, 1):.0%} read ({events:,} events, "
                      f"{now - self.started:.0f} s)")

    def done(self, events: int) -> None:
        self._say(f"{events:,} events read in {time.monotonic() - self.started:.1f} s")

    def _say(self, what: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # no stderr to say it on: go on
            print(f"muxscope replay: {self.path}: {what}", file=sys.stderr, flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # read_recording says why
        return 0


def build_replay_state(settings: Settings) -> dict[str, Any]:
    """Reads the recording once, a chunk at a time, into what serving it needs: the trace
    ring (its events encoded, streamed to each browser from there), the counts of the stats
    frame and `/metrics` (the same `muxscope_*` families as live, as the recording tells
    them: its totals, its events counted once by kind, its waits' durations)."""
    assert settings.replay_file is not None
    ring = TraceRing(MAX_REPLAY_EVENTS)  # (its maxlen holds them all)
    counts = RecordedCounts()
    stats: dict[str, Any] = {}  # filled once the file is read
    metrics = Metrics(lambda: stats, lambda: 0)

    def take(events: list[dict[str, Any]]) -> None:
        ring(events)
        counts(events)
        metrics(events)

    path = Path(settings.replay_file)
    progress = LoadProgress(path) if _size(path) >= PROGRESS_FROM_BYTES else None
    snapshot, count = read_recording(path, take, progress=progress)
    if progress is not None:
        progress.done(count)
    note = snapshot.pop("note", None)
    if note:
        log.warning("%s: %s", settings.replay_file, note)
    state = snapshot["state"]
    ring.baseline = _byte_baseline(state)
    totals = counts.totals(state, by_events="unknown_before" in snapshot)
    last_seq = counts.last_seq if count else snapshot.get("seq", 0)
    stats.update(totals, waits_by_backend=_waits_by_backend(state, counts),
                 events_total=last_seq)
    return {"engine": None, "load": None, "trace": ring, "metrics": metrics,
            "replay_state": {**state, "loop": "paused"},
            "replay_snapshot": snapshot,
            "started_at": snapshot.get("started_at", 0.0), "tap": None,
            # No events are published to it: it only counts the browsers (--max-clients).
            "hub": Hub(max_clients=settings.max_clients),
            "replay_totals": totals,
            "replay_summary": {"events": count, "last_seq": counts.last_seq},
            "replay_note": note}


def _frames_of(batches: tuple[Batch, ...]) -> Iterator[list[Batch]]:
    """`batches` grouped into frames of at most FRAME_EVENTS events (a larger batch alone)."""
    frame: list[Batch] = []
    count = 0
    for batch in batches:
        if frame and count + batch.count > FRAME_EVENTS:
            yield frame
            frame, count = [], 0
        frame.append(batch)
        count += batch.count
    if frame:
        yield frame


@router.websocket("/ws")
async def replay_stream(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    try:
        async with hub.subscribe():
            await websocket.accept()
            await _serve(websocket)
    except HubFull as exc:  # before accept; accept first so the reason reaches the browser
        await websocket.accept()
        await close_politely(websocket, (1013, str(exc)))
    finally:
        await release(websocket)


async def _serve(websocket: WebSocket) -> None:
    """Stream until the browser goes; reading notices that at once, so its slot is freed then
    rather than at the next stats frame."""
    if await closed_for_shutdown(websocket):
        return
    sender = asyncio.create_task(_stream(websocket))
    reader = asyncio.create_task(_until_disconnect(websocket))
    shutdown = asyncio.create_task(until_shutdown(websocket))
    try:
        done, _ = await asyncio.wait((sender, reader, shutdown),
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader, shutdown):
            task.cancel()
        await asyncio.gather(sender, reader, shutdown, return_exceptions=True)
    if shutdown in done:
        await close_politely(websocket, SHUTTING_DOWN)


async def _until_disconnect(websocket: WebSocket) -> None:
    """Ignore what the browser sends (replay takes no input); return when it disconnects."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _stream(websocket: WebSocket) -> None:
    """The snapshot, every recorded event, then a stats frame a second until disconnect.

    Every send is bounded as in live mode (SPEC §6): a browser that stops reading is closed
    with 1008 after the hub's send timeout, and its --max-clients slot is freed."""
    state = websocket.app.state
    try:
        async with contextlib.aclosing(_replay_frames(state)) as frames:
            async for frame in frames:
                if not await send_frame(websocket, frame, state.hub.send_timeout):
                    await close_politely(websocket, TOO_SLOW)
                    return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _replay_frames(state: Any) -> AsyncGenerator[bytes, None]:
    """The snapshot frame, the recorded events in frames of whole encoded batches (as the
    trace ring holds them, not encoded again; at most FRAME_EVENTS events a frame unless one
    batch holds more), then the same stats frame once a second, for ever."""
    snapshot = state.replay_snapshot
    yield orjson.dumps({**snapshot, "replay": True})
    last_seq = snapshot.get("seq", 0)
    dropped_total = 0
    for frame in _frames_of(state.trace.batches()):
        count = sum(batch.count for batch in frame)
        # what the recording lacks (its tap overflowed, a batch failed) is `dropped`, as live:
        # the seq gaps a client sees add up to it (SPEC §4)
        dropped = max(0, frame[-1].last_seq - last_seq - count)
        last_seq, dropped_total = frame[-1].last_seq, dropped_total + dropped
        yield events_frame(dropped, frame)
    stats = orjson.dumps({"type": "stats", "events_total": last_seq,
                          "dropped_total": dropped_total, **state.replay_totals,
                          "replay": True})
    while True:
        yield stats
        await asyncio.sleep(1.0)

