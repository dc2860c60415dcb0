"""Pacing by acknowledgement (`hub.ACK_WINDOW_EVENTS`): a client that says what it has taken in
is sent at most a window past that, and skips (with exact `dropped`) what it could not take;
a client that never acknowledges is served as before."""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.hub import ACK_WINDOW_EVENTS, BATCH_EVENTS, Hub
from app.routes.live import _acked_seq
from tests.app.test_hub import Live, check_accounting, expect_close, reaches
from tests.app.test_hub import live as live  # noqa: F401 - the fixture, shared
from tests.conftest import run_async
from tests.conftest import wait_until as wait_for

Frame = dict[str, Any]


def publish(hub: Hub, first: int, count: int) -> int:
    """Events first..first+count-1, a pump tick's worth at a time; returns the last seq."""
    for start in range(first, first + count, 4 * BATCH_EVENTS):
        stop = min(first + count, start + 4 * BATCH_EVENTS)
        hub.publish([{"seq": seq, "kind": "recv"} for seq in range(start, stop)])
    return first + count - 1


def test_an_acking_client_waits_for_room_and_then_gets_the_newest() -> None:
    async def scenario() -> None:
        hub = Hub(max_queue_bytes=64 << 20)
        async with hub.subscribe() as sub:
            sub.start_after(0)
            sub.ack(0)
            last = publish(hub, 1, 3 * ACK_WINDOW_EVENTS)
            assert sub.queued_events < ACK_WINDOW_EVENTS + BATCH_EVENTS   # only the newest kept
            frames = []
            while (frame := await sub.next_frame(0.05)) is not None:
                frames.append(orjson.loads(frame))
            sent = sum(len(f["events"]) for f in frames)
            assert 0 < ACK_WINDOW_EVENTS - BATCH_EVENTS < sent <= ACK_WINDOW_EVENTS
            assert sub.unacked_events == sent and sub.queued_events > 0   # held back, not sent
            sub.ack(frames[-1]["events"][-1]["seq"])
            more = orjson.loads(await sub.next_frame(1.0) or b"null")
            frames.append(more)
            assert more["events"][-1]["seq"] <= last
            received, dropped = check_accounting(0, frames)
            assert received + dropped == frames[-1]["events"][-1]["seq"]
            assert dropped >= ACK_WINDOW_EVENTS   # the oldest were skipped, not queued
            assert sub.dropped_total == dropped

    run_async(scenario())


def test_what_went_out_before_the_first_ack_counts_as_in_flight() -> None:
    """The queue a page finds at connect (up to 4 MiB) goes out before its first ack: that
    ack must not open a whole window on top of it."""
    async def scenario() -> None:
        hub = Hub(max_queue_bytes=64 << 20)
        async with hub.subscribe() as sub:
            sub.start_after(0)
            last = publish(hub, 1, 15_000)
            while await sub.next_frame(0.05) is not None:   # not paced yet: all of it
                pass
            sub.ack(1000)   # the page has taken in 1,000 of the 15,000 sent
            assert sub.paced and sub.unacked_events == last - 1000
            publish(hub, last + 1, 2000)
            assert await sub.next_frame(0.05) is None   # 14,000 in flight: no room
            assert sub.blocked_for() > 0
            sub.ack(last)
            assert sub.blocked_for() == 0
            frame = orjson.loads(await sub.next_frame(1.0) or b"null")
            assert frame["events"][0]["seq"] == last + 1 and frame["dropped"] == 0

    run_async(scenario())


def test_a_client_that_never_acks_gets_all_its_queue_keeps() -> None:
    async def scenario() -> None:
        hub = Hub(max_queue_bytes=64 << 20)
        async with hub.subscribe() as sub:
            sub.start_after(0)
            last = publish(hub, 1, 3 * ACK_WINDOW_EVENTS)
            frames = []
            while (frame := await sub.next_frame(0.05)) is not None:
                frames.append(orjson.loads(frame))
            assert check_accounting(0, frames) == (last, 0)
            assert not sub.paced and sub.unacked_events == 0

    run_async(scenario())


def test_only_a_well_formed_ack_moves_the_window() -> None:
    assert _acked_seq('{"type":"ack","seq":12}') == 12
    assert _acked_seq('{"type": "ack", "seq": 0}') == 0
    for text in ('{"type":"ack","seq":"12"}', '{"type":"ack","seq":-1}', '{"type":"ack"}',
                 '{"type":"ack","seq":true}', '{"type":"hello","seq":3}', "[1]", "ack 12", ""):
        assert _acked_seq(text) is None, text


def test_over_a_real_socket_an_acking_reader_is_paced_and_exact(live: Any) -> None:  # noqa: F811
    session: Live = live(max_queue_bytes=64 << 20)
    ws = session.connect()
    snapshot = orjson.loads(ws.recv(timeout=5))
    ws.send(ack(snapshot["seq"]))
    wait_for(lambda: session.hub.subscriptions and all(s.paced for s in session.hub.subscriptions),
             5, "the ack taken")
    session.source.emit(5 * ACK_WINDOW_EVENTS)
    marker = session.source.last_seq
    frames: list[Frame] = []
    # without an ack, at most the window arrives: then stats frames only
    deadline = time.monotonic() + 10
    while sum(len(f.get("events", ())) for f in frames) < ACK_WINDOW_EVENTS - BATCH_EVENTS:
        assert time.monotonic() < deadline, "the window's events did not arrive"
        frames.append(orjson.loads(ws.recv(timeout=5)))
    stats_seen = 0
    while stats_seen < 2:   # a second of stats frames (two a second): no events among them
        frame = orjson.loads(ws.recv(timeout=5))
        assert frame["type"] == "stats", "events past the window before an ack"
        stats_seen += 1
    events = [f for f in frames if f["type"] == "events"]
    assert sum(len(f["events"]) for f in events) <= ACK_WINDOW_EVENTS
    ws.send(ack(events[-1]["events"][-1]["seq"]))
    frames += read_until_acking(ws, marker)
    received, dropped = check_accounting(snapshot["seq"], frames)
    assert received + dropped == marker - snapshot["seq"]
    assert dropped > 0 and received < 3 * ACK_WINDOW_EVENTS


def ack(seq: int) -> str:
    return orjson.dumps({"type": "ack", "seq": seq}).decode()


def read_until_acking(ws: Any, seq: int) -> list[Frame]:
    """Frames until one reaches `seq`, acknowledging every events frame."""
    frames: list[Frame] = []
    deadline = time.monotonic() + 10
    while not (frames and reaches(seq)(frames[-1])):
        assert time.monotonic() < deadline, f"seq {seq} never arrived"
        frame = orjson.loads(ws.recv(timeout=5))
        frames.append(frame)
        if frame["type"] == "events":
            ws.send(ack(frame["events"][-1]["seq"]))
    return frames


def test_a_client_that_acks_then_stops_is_closed_like_one_that_stopped_reading(
        live: Any) -> None:  # noqa: F811
    """Its window fits in the buffers on the way and stats frames are small: no send would
    time out, and it would keep its slot (16 at most) for good."""
    session: Live = live(max_queue_bytes=64 << 20, ack_timeout=1.0)
    ws = session.connect()
    snapshot = orjson.loads(ws.recv(timeout=5))
    ws.send(ack(snapshot["seq"]))
    wait_for(lambda: session.hub.subscriptions and all(s.paced for s in session.hub.subscriptions),
             5, "the ack taken")
    session.source.emit(3 * ACK_WINDOW_EVENTS)   # it reads on, but acks no more
    started = time.monotonic()
    assert expect_close(ws, timeout=10) == (1008, "client too slow")
    assert time.monotonic() - started > 1.0   # not before the ack timeout
    wait_for(lambda: session.hub.clients == 0, 5, "its slot freed")
