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
import os
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.event_schema import problems
from app.hub import Hub, HubFull
from app.metrics import Metrics
from app.routes.live import TOO_SLOW, close_politely, send_frame
from app.routes.release import release
from app.security import UNSAFE_METHODS, ASGIApp, Receive, Scope, Send
from app.settings import Settings
from app.trace import TraceRing

log = logging.getLogger(__name__)
router = APIRouter()
FRAME_EVENTS = 2000
#: replay holds a recording in memory (~0.5 KB an event, so ~1 GB at the bound). A
#: segment of the default --record-max-mb (100) holds about 1,000,000 events.
MAX_REPLAY_EVENTS = 2_000_000
#: a file this large is refused before it is read (recorded events average ~100 bytes a line)
MAX_REPLAY_BYTES = 400 << 20
#: the longest line read (a snapshot of 10,000 connections is ~2 MB): past it, not a recording
MAX_LINE_BYTES = 64 << 20
_TOO_BIG = ("which replay would hold in memory; replay one segment of a recording made with a "
            "smaller --record-max-mb (100 MB holds about 1,000,000 events)")
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


def load_recording(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(snapshot frame, events). A rotated segment without a snapshot gets a minimal one.

    ValueError, naming the file and line, for what `--record` never writes: a line that is
    not a JSON object, a snapshot whose state is not an object (or whose connections are not
    objects with an integer fd), an event without an integer `seq` and a string `kind` or
    whose fields are not what SPEC §3 says (app/event_schema.py, leniently: older recordings
    and kinds it does not know pass), or a file with neither snapshot nor events; and for a
    file of more than MAX_REPLAY_BYTES (refused before reading) or MAX_REPLAY_EVENTS events.

    Also for seq numbers that go back (files joined out of order, newest first): the page's
    accounting would go wrong silently. Rotated files joined oldest first replay as one.

    A last line cut short (no newline, not JSON: the recording was still being written, or
    its writer was killed) is left out with a warning; the lines before it are replayed."""
    snapshot: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    last_seq: int | None = None  # of the last event or snapshot line
    cut_short = False
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_REPLAY_BYTES:
            raise ValueError(f"{path}: {size / 2**20:,.0f} MiB, more than "
                             f"{MAX_REPLAY_BYTES >> 20:,} MiB, {_TOO_BIG}")
        _refuse_a_chrome_trace(f, path)
        for number, line in enumerate(_lines(f, path), 1):
            if number == 1:
                if line.startswith(b"\x1f\x8b"):
                    raise ValueError(f"{path}: gzip-compressed; decompress it first "
                                     f"(zcat {path} > recording.jsonl)")
                line = line.removeprefix(b"\xef\xbb\xbf")  # a BOM some editors add
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.endswith(b"\n"):  # the last line, cut short
                    cut_short = True
                    if snapshot is None and not events:  # said below, as the error
                        break
                    log.warning("%s:%d: the last line is cut short (was the recording still "
                                "being written?); replaying the lines before it", path, number)
                    break
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            if item.get("type") == "snapshot":
                _check_snapshot(item, f"{path}:{number}")
                if snapshot is not None or events:
                    _joins(item.get("seq"), last_seq, f"{path}:{number}")
                last_seq = _in_order(item.get("seq"), last_seq, f"{path}:{number}", equal_ok=True)
                snapshot = snapshot or item
            elif "seq" in item or "kind" in item:
                if type(item.get("seq")) is not int or not isinstance(item.get("kind"), str):
                    raise ValueError(f"{path}:{number}: an event needs an integer seq and a "
                                     "kind")
                found = problems(item, lenient=True)
                if found:
                    raise ValueError(f"{path}:{number}: not an event muxscope writes: "
                                     + "; ".join(found))
                last_seq = _in_order(item["seq"], last_seq, f"{path}:{number}")
                if len(events) == MAX_REPLAY_EVENTS:
                    raise ValueError(f"{path}: more than {MAX_REPLAY_EVENTS:,} events, {_TOO_BIG}")
                events.append(item)
    if snapshot is None and not events:
        if cut_short:
            raise ValueError(f"{path}: its only line is cut short, not JSON: a recording "
                             "stopped while writing its first line, or not a recording")
        raise ValueError(f"{path}: no snapshot and no events in it; is it a file written by "
                         "muxscope --record?")
    if snapshot is None:
        snapshot = _snapshot_from_events(events)
    # What the recording does not say keeps the §4 shape (e.g. an older, partial snapshot).
    empty, state = _empty_state(), snapshot.get("state") or {}
    snapshot["state"] = {**empty, **state,
                         "limits": {**empty["limits"], **(state.get("limits") or {})}}
    return snapshot, events


def _refuse_a_chrome_trace(f: BinaryIO, path: Path) -> None:
    """The page's Download trace is one JSON document, often one line longer than any line a
    recording has: said as what it is, before the lines are read (it was refused as "no
    snapshot and no events", or as a line too long)."""
    peek = getattr(f, "peek", None)
    head = (peek(256) if peek is not None else b"")[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{") and b'"traceEvents"' in head:
        raise ValueError(f"{path}: a Chrome trace (the page's Download trace): open it in "
                         "Perfetto or chrome://tracing; replay reads a file written with "
                         "--record")


def _snapshot_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A file of events only (a `GET /api/trace?format=jsonl` download, or a recording's
    snapshot line cut off): what the engine was before its first event is not in it, only
    what its events imply. The backend is the one its first wait names, or the `from` of a
    switch before that wait (a poll trace was shown as epoll); epoll's trigger and one-shot as
    its registrations before any switch say; the loop's state as its first loop event
    implies. `unknown_before` is the first seq, `note` what the page should say."""
    first_seq = events[0]["seq"] - 1 if events else 0
    name = _first_backend(events)
    backend: dict[str, Any] = {}
    unknown = ["the fds registered then"]
    if name is not None:
        backend["name"] = name
    else:
        unknown.append("the backend")
    if name == "epoll":
        marks = _epoll_marks(events)
        if marks is None:
            unknown.append("whether epoll was edge-triggered or one-shot")
        else:
            backend["trigger"], backend["oneshot"] = marks
    state: dict[str, Any] = {"loop": _loop_before(events)}
    if backend:
        state["backend"] = {**_empty_state()["backend"], **backend}
    note = (f"this file has no snapshot line (a trace download?), so what the engine held "
            f"before its first event (seq {first_seq + 1:,}) is not known: {'; '.join(unknown)}"
            ". Its events show the rest")
    return {"type": "snapshot", "state": state, "seq": first_seq, "started_at": 0.0,
            "unknown_before": first_seq + 1, "note": note}


def _first_backend(events: list[dict[str, Any]]) -> str | None:
    """The backend the engine ran when the file begins: a switch's `from`, when one comes
    before the first wait; else the first wait's."""
    for event in events:
        if event["kind"] == "backend":
            name = event.get("from")
            break
        if event["kind"] == "wait":
            name = event.get("backend")
            break
    else:
        return None
    return name if name in ("select", "poll", "epoll") else None


def _loop_before(events: list[dict[str, Any]]) -> str:
    """The loop's state before the file's first `loop` event, by what that event changed: a
    resume or a step was made on a paused loop, a pause or a breakpoint's hit on a running
    one, and a slow-motion or flaw change left the state as it says. Running without one."""
    event = next((e for e in events if e["kind"] == "loop"), None)
    if event is None:
        return "running"
    state, cause = event.get("state"), event.get("cause")
    if cause == "command":  # Pause or Resume
        return "paused" if state == "running" else "running"
    if cause == "step" or state == "step":
        return "paused"
    if cause == "breakpoint":
        return "running"
    return "running" if state == "running" else "paused"


def _epoll_marks(events: list[dict[str, Any]]) -> tuple[str, bool] | None:
    """(trigger, oneshot) as the registrations before any switch show them; None with none to
    go by (an idle engine's trace registers nothing). A switch's re-registrations (`moved`)
    carry the new backend's flags, and come before its `backend` event."""
    flags: set[str] = set()
    seen = False
    for event in events:
        if event["kind"] == "backend" or event.get("moved"):
            break
        if event["kind"] == "interest" and event.get("op") != "unregister":
            seen = True
            flags.update(event.get("flags") or ())
    if not seen:
        return None
    return ("edge" if "EPOLLET" in flags else "level"), "EPOLLONESHOT" in flags


def _in_order(seq: Any, last: int | None, where: str, equal_ok: bool = False) -> int | None:
    """`seq` if it follows `last` (a snapshot may repeat the seq of the event before it: a
    rotated file's snapshot does); ValueError when it goes back."""
    if type(seq) is not int:
        return last
    if last is not None and (seq < last or (seq == last and not equal_ok)):
        raise ValueError(f"{where}: seq {seq} after seq {last}: the recording goes back in "
                         "time (files joined out of order?). Replay each rotated file on its "
                         "own, or join them oldest first: FILE.5 ... FILE.1 FILE")
    return seq


def _lines(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """The lines of `f`, each of at most MAX_LINE_BYTES, in all at most MAX_REPLAY_BYTES:
    a pipe or a device has no size to check before reading (`replay /dev/zero` read one
    endless line until the memory ran out)."""
    total = 0
    while line := f.readline(MAX_LINE_BYTES + 1):
        total += len(line)
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"{path}: a line longer than {MAX_LINE_BYTES >> 20} MiB: not a "
                             "recording")
        if total > MAX_REPLAY_BYTES:
            raise ValueError(f"{path}: more than {MAX_REPLAY_BYTES >> 20:,} MiB, {_TOO_BIG}")
        yield line


def _joins(seq: Any, last: int | None, where: str) -> None:
    """A snapshot inside the file (rotated files joined): fine where it repeats the seq of the
    event before it, which is where a rotation writes it; after a gap, the state it holds
    (what the left-out events did) would be lost on the page: ValueError."""
    if type(seq) is int and last is not None and seq > last:
        raise ValueError(f"{where}: a snapshot at seq {seq} after seq {last}: the recorder left "
                         f"{seq - last} events out here, and what they did is only in this "
                         "snapshot. Replay the files before and after it on their own")


def _check_snapshot(item: dict[str, Any], where: str) -> None:
    state = item.get("state", {})
    if not isinstance(state, dict):
        raise ValueError(f"{where}: a snapshot whose state is not an object")
    connections = state.get("connections", [])
    if not (isinstance(connections, list) and all(
            isinstance(c, dict) and type(c.get("fd")) is int for c in connections)):
        raise ValueError(f"{where}: a snapshot whose connections are not objects with an "
                         "integer fd")
    if type(item.get("seq", 0)) is not int:
        raise ValueError(f"{where}: a snapshot whose seq is not an integer")
    for key in ("backend", "listeners", "limits", "stats"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise ValueError(f"{where}: a snapshot whose {key} is not an object")


def _empty_state() -> dict[str, Any]:
    """The /api/state shape of SPEC §4 with nothing known: the recording did not say."""
    return {"backend": {"name": "epoll", "trigger": "level", "oneshot": False,
                        "write": "queued", "fd": None, "maxevents": None},
            "available": [], "loop": "paused", "delay_ms": 0,
            "listeners": {"tcp": {"fd": None, "port": None}, "udp": None},
            "control_fd": None, "connections": [], "registrations": [], "breakpoints": [],
            "last_wait": None,
            "limits": {"fd_setsize": 1024, "nofile": 0, "max_connections": 0,
                       "high_water": 1 << 20, "low_water": 256 << 10}}


def recorded_totals(state: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The stats frame's counters as the recording tells them, engine-lifetime totals as live:
    the snapshot's own (a rotated segment starts mid-run) plus TCP bytes in `recv`/`send`
    events, `wait` events and UDP `datagram` events; and the connections open at its end (the
    snapshot's, plus accepts, less closes). Events the recording lacks (not shown live, so not
    recorded) are not counted."""
    base = state.get("stats") or {}
    open_fds = {c["fd"] for c in state.get("connections", [])}
    bytes_in, bytes_out, waits = (_count(base, key) for key in ("bytes_in", "bytes_out", "waits"))
    udp_state = (state.get("listeners") or {}).get("udp")
    udp = ({key: _count(udp_state, key) for key in ("received", "echoed", "dropped")}
           if isinstance(udp_state, dict) else None)
    for event in events:
        kind, moved = event["kind"], event.get("bytes", 0)  # an int: load_recording checked
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
        elif kind == "datagram" and udp is not None:
            udp["received" if event.get("dir") == "in" else "echoed"] += 1
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
    totals = recorded_totals(snapshot["state"], events)
    last_seq = last.get("seq", snapshot.get("seq", 0))
    return {"engine": None, "load": None, "trace": ring,
            "metrics": replay_metrics(snapshot["state"], events, totals, last_seq),
            "replay_state": {**snapshot["state"], "loop": "paused"},
            "replay_snapshot": snapshot, "replay_events": events,
            "started_at": snapshot.get("started_at", 0.0), "tap": None,
            # No events are published to it: it only counts the browsers (--max-clients).
            "hub": Hub(max_clients=settings.max_clients),
            "replay_totals": totals,
            "replay_summary": {"events": len(events), "last_seq": last.get("seq")},
            "replay_note": note}


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
    """The snapshot frame, the recorded events in frames of FRAME_EVENTS, then the same stats
    frame once a second, for ever."""
    snapshot = state.replay_snapshot
    yield orjson.dumps({**snapshot, "replay": True})
    events = state.replay_events
    last_seq = snapshot.get("seq", 0)
    dropped_total = 0
    for start in range(0, len(events), FRAME_EVENTS):
        chunk = events[start:start + FRAME_EVENTS]
        # what the recording lacks (its tap overflowed, a batch failed) is `dropped`, as live:
        # the seq gaps a client sees add up to it (SPEC §4)
        dropped = max(0, chunk[-1]["seq"] - last_seq - len(chunk))
        last_seq, dropped_total = chunk[-1]["seq"], dropped_total + dropped
        yield orjson.dumps({"type": "events", "events": chunk, "dropped": dropped})
    stats = orjson.dumps({"type": "stats", "events_total": last_seq,
                          "dropped_total": dropped_total, **state.replay_totals,
                          "replay": True})
    while True:
        yield stats
        await asyncio.sleep(1.0)

