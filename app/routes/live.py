"""WS /ws: a snapshot, then events and stats frames (SPEC §4), bounded per client (SPEC §6).

The handler subscribes to the hub *before* asking for the snapshot, then drops what the
snapshot already covers (`start_after(seq)`), so no event falls between the two. Two tasks run
per socket: the writer (frames from the hub, a stats frame every half second) and the reader
(which takes the page's acks, `hub.ACK_WINDOW_EVENTS`, and watches for disconnects and
misbehaving clients). Whichever ends first ends both.
Every send is bounded by `hub.send_timeout`: a client that stops reading is closed with 1008
(reset if it does not take the close either: `routes/release.py`) and unsubscribed, never
buffered without bound, never allowed to stall the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.hub import Hub, HubFull, Subscription
from app.routes.release import release, reset

log = logging.getLogger(__name__)

router = APIRouter()

STATS_INTERVAL = 0.5  # SPEC: at least once a second; half that leaves room for a slow send
MAX_CLIENT_TEXT = 64 << 10
CLOSE_TIMEOUT = 1.0
#: lingering fds a stats frame lists at most (a user can close 10,000 streaming clients; the
#: page shows 200 rows): the frame stays small
MAX_LINGERING_LISTED = 1000
STATS_KEYS = ("events_total", "connections", "bytes_in", "bytes_out", "waits")

SnapshotProvider = Callable[[], Awaitable[tuple[dict[str, Any], int, float]]]
StatsProvider = Callable[[], dict[str, Any]]
Close = tuple[int, str]
#: the close for a client that did not take a frame within the send timeout
TOO_SLOW: Close = (1008, "client too slow")
#: the close each browser gets when muxscope shuts down (uvicorn's own, left to it, is 1012
#: "service restart" with no reason: the page could only show the code)
SHUTTING_DOWN: Close = (1001, "muxscope is shutting down")


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    try:
        async with hub.subscribe() as subscription:
            await websocket.accept()
            await _serve(websocket, hub, subscription)
    except HubFull as exc:  # raised on entry only, before anything was accepted
        # Accept first: a close before accept is an HTTP 403 and the reason would be lost.
        await websocket.accept()
        await close_politely(websocket, (1013, str(exc)))
    finally:
        await release(websocket)


async def _serve(websocket: WebSocket, hub: Hub, subscription: Subscription) -> None:
    """Run the writer and the reader until either ends, then close if one asked to."""
    if await closed_for_shutdown(websocket):
        return
    tasks = (asyncio.create_task(_write_frames(websocket, hub, subscription)),
             asyncio.create_task(_read_client(websocket, subscription)),
             asyncio.create_task(until_shutdown(websocket)))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    close = next((c for c in (task.result() for task in done) if c is not None), None)
    if close is not None:
        await close_politely(websocket, close)


async def _write_frames(websocket: WebSocket, hub: Hub, subscription: Subscription) -> Close | None:
    """Snapshot, then events and stats until the client goes away or is too slow."""
    provider: SnapshotProvider = websocket.app.state.snapshot_provider
    stats: StatsProvider = websocket.app.state.stats_provider
    try:
        state, last_seq, started_at = await provider()
    except Exception:
        log.exception("snapshot for a websocket client failed")
        return 1011, "snapshot unavailable"
    snapshot = {"type": "snapshot", "state": state, "seq": last_seq, "started_at": started_at}
    try:
        if not await send_frame(websocket, _dumps(snapshot), hub.send_timeout):
            return TOO_SLOW
        subscription.start_after(last_seq)
        return await _stream(websocket, hub, subscription, stats)
    except WebSocketDisconnect:
        return None


async def _stream(
    websocket: WebSocket, hub: Hub, subscription: Subscription, stats: StatsProvider
) -> Close | None:
    loop = asyncio.get_running_loop()
    next_stats = loop.time()
    while True:
        frame = await subscription.next_frame(max(0.0, next_stats - loop.time()))
        if frame is not None and not await send_frame(websocket, frame, hub.send_timeout):
            return TOO_SLOW
        if frame is None and subscription.blocked_for() > hub.ack_timeout:
            return TOO_SLOW   # it acks, but stopped: as a client whose send timed out
        if loop.time() >= next_stats:
            stats_frame = _stats_frame(stats, subscription)
            if not await send_frame(websocket, stats_frame, hub.send_timeout):
                return TOO_SLOW
            next_stats = loop.time() + STATS_INTERVAL


def _stats_frame(stats: StatsProvider, subscription: Subscription) -> bytes:
    numbers = stats()
    frame: dict[str, Any] = {"type": "stats", "dropped_total": subscription.dropped_total}
    frame.update((key, numbers.get(key, 0)) for key in STATS_KEYS)
    if numbers.get("lingering"):  # fds in a lingering close: no event says when one begins
        frame["lingering"] = numbers["lingering"][:MAX_LINGERING_LISTED]
    if numbers.get("record_lost"):  # events --record could not write (a full disk)
        frame["record_lost"] = numbers["record_lost"]
    if numbers.get("load"):  # the generated clients now: every page's "Add clients" line
        frame["load"] = numbers["load"]
    if numbers.get("udp") is not None:  # the kernel's drop count comes with no event: here
        frame["udp"] = numbers["udp"]
    return _dumps(frame)


async def _read_client(websocket: WebSocket, subscription: Subscription) -> Close | None:
    """Take acks (`{"type": "ack", "seq": n}`: `Subscription.ack`) and ignore other small text
    messages; close on binary or oversized text; end on disconnect."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            return 1003, "binary frames are not accepted"
        text = message.get("text") or ""
        if len(text) > MAX_CLIENT_TEXT or len(text.encode()) > MAX_CLIENT_TEXT:
            return 1009, f"message too big (max {MAX_CLIENT_TEXT >> 10} KiB)"
        seq = _acked_seq(text)
        if seq is not None:
            subscription.ack(seq)


def _acked_seq(text: str) -> int | None:
    """The seq of an ack message, or None for any other text."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "ack":
        return None
    seq = message.get("seq")
    return seq if type(seq) is int and seq >= 0 else None


async def send_frame(websocket: WebSocket, frame: bytes, timeout: float) -> bool:
    """Send one text frame; False if it did not go out within `timeout` seconds."""
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation
    # that stops this writer (bpo-42130), leaving a socket we meant to close still fed.
    try:
        async with asyncio.timeout(timeout):
            await websocket.send_text(frame.decode())
    except TimeoutError:
        return False
    except RuntimeError as exc:
        # the server closed the websocket itself (a protocol error, a message over
        # ws_max_size, invalid UTF-8: 1002/1009/1007) while this writer was between frames;
        # uvicorn then refuses any send with a RuntimeError: the client is gone.
        raise WebSocketDisconnect(1006, str(exc)) from None
    return True


async def until_shutdown(websocket: WebSocket) -> Close:
    """Returns SHUTTING_DOWN once `say_goodbye` has been called."""
    await websocket.app.state.closing.wait()
    return SHUTTING_DOWN


async def closed_for_shutdown(websocket: WebSocket) -> bool:
    """A websocket accepted while the others are told (the listener is still open then: a
    page reconnecting at once) is closed before anything is sent to it: True then."""
    closing: asyncio.Event = websocket.app.state.closing
    if not closing.is_set():
        return False
    await close_politely(websocket, SHUTTING_DOWN)
    return True


async def say_goodbye(app: Any, give_up: Callable[[], bool],
                      timeout: float = CLOSE_TIMEOUT + 0.5) -> None:
    """At shutdown, before the server closes what is left: every websocket, live or replay,
    is closed with SHUTTING_DOWN; returns once they are gone, after `timeout` (a browser that
    does not take its close is reset by `close_politely` within CLOSE_TIMEOUT), or as soon as
    `give_up()` (a second Ctrl-C)."""
    closing: asyncio.Event | None = getattr(app.state, "closing", None)
    if closing is None:  # its lifespan never started: no page was served
        return
    closing.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.state.hub.clients and loop.time() < deadline and not give_up():
        await asyncio.sleep(0.01)  # (the handlers' ends, a few ms; nothing to wait on)


async def close_politely(websocket: WebSocket, close: Close) -> None:
    """Close politely, but never wait long: a peer that does not read may never take it, and is
    then reset (`release.reset`)."""
    code, reason = close
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(code, reason)
    except TimeoutError:
        log.debug("websocket close %d (%s) not taken: connection reset", code, reason)
        reset(websocket)
    except (WebSocketDisconnect, RuntimeError, OSError):
        log.debug("websocket close %d (%s) not delivered", code, reason)


def _dumps(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS)
