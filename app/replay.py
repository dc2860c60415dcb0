"""`muxscope replay FILE`: the page over a recorded JSONL file, with no echo server.

The websocket sends the recorded snapshot, then every recorded event in order (dropped 0),
then stats once a second; every state-changing request answers 409 (see routes/api.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.settings import Settings
from app.trace import TraceRing

router = APIRouter()
FRAME_EVENTS = 2000


def load_recording(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(snapshot frame, events). A rotated segment without a snapshot gets a minimal one."""
    snapshot: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if item.get("type") == "snapshot":
                snapshot = snapshot or item
            elif "seq" in item and "kind" in item:
                events.append(item)
    if snapshot is None:
        first = events[0]["seq"] - 1 if events else 0
        snapshot = {"type": "snapshot", "state": _empty_state(), "seq": first,
                    "started_at": 0.0}
    return snapshot, events


def _empty_state() -> dict[str, Any]:
    return {"backend": {"name": "epoll", "trigger": "level", "oneshot": False,
                        "write": "queued", "fd": None, "maxevents": None},
            "available": [], "loop": "paused", "delay_ms": 0,
            "listeners": {"tcp": None, "udp": None}, "connections": [], "registrations": [],
            "limits": {"fd_setsize": 1024, "nofile": 0, "max_connections": 0}}


def build_replay_state(settings: Settings) -> dict[str, Any]:
    assert settings.replay_file is not None
    snapshot, events = load_recording(Path(settings.replay_file))
    ring = TraceRing(max(1, len(events)))
    ring(events)
    last = events[-1] if events else {}
    return {"engine": None, "load": None, "trace": ring, "metrics": None,
            "replay_state": {**snapshot["state"], "loop": "paused"},
            "replay_snapshot": snapshot, "replay_events": events,
            "started_at": snapshot.get("started_at", 0.0), "hub": None, "tap": None,
            "replay_summary": {"events": len(events), "last_seq": last.get("seq")}}


@router.websocket("/ws")
async def replay_stream(websocket: WebSocket) -> None:
    state = websocket.app.state
    await websocket.accept()
    try:
        await websocket.send_text(orjson.dumps(
            {**state.replay_snapshot, "replay": True}).decode())
        events = state.replay_events
        for start in range(0, len(events), FRAME_EVENTS):
            chunk = events[start:start + FRAME_EVENTS]
            await websocket.send_text(orjson.dumps(
                {"type": "events", "events": chunk, "dropped": 0}).decode())
        last = events[-1] if events else {}
        while True:
            await websocket.send_text(orjson.dumps({
                "type": "stats", "events_total": last.get("seq", 0), "dropped_total": 0,
                "connections": len(state.replay_state.get("connections", [])),
                "bytes_in": 0, "bytes_out": 0, "waits": 0, "replay": True}).decode())
            await asyncio.sleep(1.0)
    except (WebSocketDisconnect, RuntimeError):
        return
