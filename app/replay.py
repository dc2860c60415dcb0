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
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.hub import Batch, Hub, HubFull, events_frame
from app.metrics import Metrics
from app.recording import load_recording
from app.routes.live import TOO_SLOW, close_politely, send_frame
from app.routes.release import release
from app.security import UNSAFE_METHODS, ASGIApp, Receive, Scope, Send
from app.settings import Settings
from app.trace import TraceRing

log = logging.getLogger(__name__)
router = APIRouter()
FRAME_EVENTS = 2000
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


def recorded_totals(state: dict[str, Any], events: list[dict[str, Any]],
                    by_events: bool = False) -> dict[str, Any]:
    """The stats frame's counters as the recording tells them, engine-lifetime totals as live:
    the snapshot's own (a rotated segment starts mid-run) plus TCP bytes in `recv`/`send`
    events, `wait` events and UDP `datagram` events; and the connections open at its end (the
    snapshot's, plus accepts, less closes). Events the recording lacks (not shown live, so not
    recorded) are not counted."""
    base = state.get("stats") or {}
    open_fds = {c["fd"] for c in state.get("connections", [])}
    # `by_events`: the file had no snapshot line (a trace download; its made-up snapshot says
    # `unknown_before`): a connection open before its first event shows only in its own
    # events, as the page's connection list counts it (it said 50, the stats 0)
    bytes_in, bytes_out, waits = (_count(base, key) for key in ("bytes_in", "bytes_out", "waits"))
    udp_state = (state.get("listeners") or {}).get("udp")
    udp = ({key: _count(udp_state, key)
            for key in ("received", "from_self", "echoed", "dropped")}
           if isinstance(udp_state, dict) else None)
    for event in events:
        kind, moved = event["kind"], event.get("bytes", 0)  # an int: load_recording checked
        if by_events and kind in ("recv", "send", "queue") and "fd" in event:
            open_fds.add(event["fd"])
        if kind == "recv":
            bytes_in += moved
        elif kind == "send":
            bytes_out += moved
        elif kind == "wait":
            waits += 1
        elif kind == "accept":
            open_fds.add(event["fd"])
        elif kind == "close":
            open_fds.discard(event.get("fd"))
        elif kind == "error" and udp is not None and type(event.get("udp_dropped")) is int:
            udp["dropped"] = max(udp["dropped"], event["udp_dropped"])  # the kernel's total
        elif kind == "datagram" and udp is not None:
            if event.get("dir") == "in":
                udp["received"] += 1
                udp["from_self"] += event.get("from_self") is True
            elif not event.get("misdirected"):  # the bug zoo's reply to itself: live counts
                udp["echoed"] += 1               # no echo either
    totals: dict[str, Any] = {"connections": len(open_fds), "bytes_in": bytes_in,
                              "bytes_out": bytes_out, "waits": waits}
    if udp is not None:
        totals["udp"] = udp
    return totals


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


def replay_metrics(state: dict[str, Any], events: list[dict[str, Any]],
                   totals: dict[str, Any], last_seq: int) -> Metrics:
    """`/metrics` over a recording: the same `muxscope_*` families as live, as the recording
    tells them (its totals, its events counted once by kind, its waits' durations)."""
    waits_by_backend: dict[str, int] = {}
    recorded = (state.get("stats") or {}).get("waits_by_backend")
    if isinstance(recorded, dict):
        waits_by_backend.update({k: v for k, v in recorded.items() if type(v) is int})
    for event in events:
        if event["kind"] == "wait":
            backend = event["backend"]
            waits_by_backend[backend] = waits_by_backend.get(backend, 0) + 1
    stats = {**totals, "waits_by_backend": waits_by_backend, "events_total": last_seq}
    metrics = Metrics(lambda: stats, lambda: 0)
    for start in range(0, len(events), FRAME_EVENTS):
        metrics(events[start:start + FRAME_EVENTS])
    return metrics


def build_replay_state(settings: Settings) -> dict[str, Any]:
    assert settings.replay_file is not None
    snapshot, events = load_recording(Path(settings.replay_file))
    note = snapshot.pop("note", None)
    if note:
        log.warning("%s: %s", settings.replay_file, note)
    ring = TraceRing(max(1, len(events)), baseline=_byte_baseline(snapshot["state"]))
    ring(events)
    last = events[-1] if events else {}
    totals = recorded_totals(snapshot["state"], events, by_events="unknown_before" in snapshot)
    last_seq = last.get("seq", snapshot.get("seq", 0))
    return {"engine": None, "load": None, "trace": ring,
            "metrics": replay_metrics(snapshot["state"], events, totals, last_seq),
            "replay_state": {**snapshot["state"], "loop": "paused"},
            # the events are streamed from the ring's encoded batches (its maxlen holds them
            # all): the list of dicts, ~7 times the file's size, is not kept
            "replay_snapshot": snapshot,
            "started_at": snapshot.get("started_at", 0.0), "tap": None,
            # No events are published to it: it only counts the browsers (--max-clients).
            "hub": Hub(max_clients=settings.max_clients),
            "replay_totals": totals,
            "replay_summary": {"events": len(events), "last_seq": last.get("seq")},
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
    sender = asyncio.create_task(_stream(websocket))
    reader = asyncio.create_task(_until_disconnect(websocket))
    try:
        await asyncio.wait((sender, reader), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader):
            task.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


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

