"""The event path EventTap -> pump -> Hub -> WS /ws, on a real uvicorn with real sockets.

A synthetic source thread stands in for the engine: it numbers events with consecutive seqs and
pushes them through a real `EventTap.sink`; the real `pump` runs in the app's lifespan. Every
test checks SPEC §4's promise: per client, the seq gaps since the snapshot add up exactly to the
sum of `dropped`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.bridge import EventTap, pump
from app.hub import Batch, Hub, HubFull
from app.routes.live import router, send_frame
from tests.conftest import run_asgi, run_async
from tests.conftest import wait_until as wait_for

Frame = dict[str, Any]
ServeAsgi = Callable[..., contextlib.AbstractContextManager[str]]


# --------------------------------------------------------------------------- synthetic source


class Source:
    """Stands in for the engine: consecutive seqs at the source, pushed into a sink."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self.last_seq = 0
        self.started_at = time.time()
        self._t0 = time.monotonic()

    def emit(self, count: int) -> None:
        sink, t0 = self.sink, self._t0
        for _ in range(count):
            seq = self.last_seq + 1
            event = {"seq": seq, "ts": time.monotonic() - t0, "kind": "recv", "fd": 7,
                     "bytes": 42, "preview": "hello \\xff world"}  # fmt: skip
            self.last_seq = seq  # before the sink: a snapshot saying `seq` covers this event
            sink(event)

    def snapshot(self) -> tuple[dict[str, Any], int, float]:
        return {"backend": {"name": "synthetic"}}, self.last_seq, self.started_at

    def stats(self) -> dict[str, Any]:
        total = self.last_seq
        return {"events_total": total, "connections": 1, "bytes_in": 42 * total,
                "bytes_out": 42 * total, "waits": total // 10}  # fmt: skip


class Producer:
    """Runs `Source.emit` on a thread, either at a paced rate or as fast as it can."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, target: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=target, name="synthetic-source", daemon=True)
        self._thread.start()

    def paced(self, rate: float, duration: float) -> None:
        """About `rate` events/s for `duration` s, in 10 ms steps."""

        def target() -> None:
            per_step, end = max(1, int(rate / 100)), time.monotonic() + duration
            while not self._stop.is_set() and time.monotonic() < end:
                self.source.emit(per_step)
                self._stop.wait(0.01)

        self.run(target)

    def join(self, timeout: float = 10) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the producer did not finish"

    def stop(self) -> None:
        self._stop.set()
        self.join()


@dataclass
class Live:
    url: str
    hub: Hub
    tap: EventTap
    source: Source
    producer: Producer
    clients: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def connect(self, max_queue: int | None = None) -> ClientConnection:
        """A client; with `max_queue`, it stops reading its socket once that many frames wait."""
        # A small receive buffer: a client that stops reading pushes back on the server soon.
        sock = socket.create_connection(urlsplit_hostport(self.url), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        client = connect(self.url, sock=sock, max_size=None, max_queue=max_queue,
                         open_timeout=5, close_timeout=1)  # fmt: skip
        return self.clients.enter_context(client)


def urlsplit_hostport(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def make_app(hub: Hub, tap: EventTap, source: Source) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(pump(tap, hub, interval=0.03))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def snapshot_provider() -> tuple[dict[str, Any], int, float]:
        return source.snapshot()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    app.state.hub = hub
    app.state.tap = tap
    app.state.snapshot_provider = snapshot_provider
    app.state.stats_provider = source.stats
    app.state.closing = asyncio.Event()  # as create_app's (set at shutdown: live.say_goodbye)
    return app


@pytest.fixture
def live(serve_asgi: ServeAsgi) -> Iterator[Callable[..., Live]]:
    """`live(**hub_options)` starts the app on uvicorn; everything is torn down afterwards."""
    stack = contextlib.ExitStack()

    def start(tap_size: int = 100_000, **hub_options: Any) -> Live:
        hub, tap = Hub(**hub_options), EventTap(maxlen=tap_size)
        source = Source(tap.sink)
        base = stack.enter_context(serve_asgi(make_app(hub, tap, source)))
        session = Live(base.replace("http://", "ws://") + "/ws", hub, tap, source, Producer(source))
        stack.callback(close_all, session)
        return session

    with stack:
        yield start


def close_all(session: Live) -> None:
    session.producer.stop()
    session.clients.close()


# --------------------------------------------------------------------------- reading frames


def read_until(ws: ClientConnection, done: Callable[[Frame], bool], timeout: float) -> list[Frame]:
    """Frames until `done(frame)` is true; fails the test if that takes more than `timeout`."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"gave up after {len(frames)} frames"
        frame = orjson.loads(ws.recv(timeout=remaining))
        frame["_at"] = time.monotonic()
        frames.append(frame)
        if done(frame):
            return frames


def reaches(seq: int) -> Callable[[Frame], bool]:
    return lambda f: f["type"] == "events" and f["events"][-1]["seq"] >= seq


def check_accounting(snapshot_seq: int, frames: list[Frame]) -> tuple[int, int]:
    """Per frame: seqs ascend and their gaps since the previous frame equal `dropped`."""
    previous, received, dropped = snapshot_seq, 0, 0
    for frame in (f for f in frames if f["type"] == "events"):
        seqs = [event["seq"] for event in frame["events"]]
        assert seqs and seqs[0] > previous and seqs == sorted(set(seqs))
        assert seqs[-1] - previous - len(seqs) == frame["dropped"]
        previous, received, dropped = seqs[-1], received + len(seqs), dropped + frame["dropped"]
    return received, dropped


def expect_close(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read (and ignore) frames until the server's close frame; return its code and reason."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - the loop is the wait
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


# --------------------------------------------------------------------------- hub, no network


def test_start_after_trims_a_straddling_batch_and_frames_account_exactly() -> None:
    async def scenario() -> list[Frame]:
        hub = Hub(max_queue_bytes=1 << 20)
        async with hub.subscribe() as sub:
            hub.publish([{"seq": s, "kind": "x"} for s in (1, 2, 3, 4)])
            hub.publish([{"seq": s, "kind": "x"} for s in (7, 8)])  # 5 and 6 were lost
            sub.start_after(2)
            hub.publish([{"seq": 10, "kind": "x"}])  # 9 was lost
            frames = [orjson.loads(await sub.next_frame(1.0) or b"null")]
            assert await sub.next_frame(0.01) is None
            assert (sub.dropped_total, sub.events_sent, sub.queued_bytes) == (3, 5, 0)
            return frames

    (frame,) = run_async(scenario())  # three batches coalesced into one frame
    assert frame == {"type": "events", "dropped": 3,
                     "events": [{"seq": s, "kind": "x"} for s in (3, 4, 7, 8, 10)]}  # fmt: skip


def test_events_still_in_flight_at_the_snapshot_are_trimmed_later() -> None:
    async def scenario() -> bytes | None:
        hub = Hub()
        async with hub.subscribe() as sub:
            sub.start_after(5)  # the snapshot covers 1..5; 3..5 were still in the tap
            hub.publish([{"seq": s} for s in range(3, 9)])
            hub.publish([{"seq": s} for s in range(1, 4)])  # entirely covered: never queued
            return await sub.next_frame(1.0)

    frame = run_async(scenario())
    assert frame == b'{"type":"events","dropped":0,"events":[{"seq":6},{"seq":7},{"seq":8}]}'


def test_queue_is_bounded_in_bytes_and_drops_oldest_first() -> None:
    async def scenario() -> None:
        hub = Hub(max_queue_bytes=4096)
        async with hub.subscribe() as sub:
            sub.start_after(0)
            for seq in range(1, 2001):
                hub.publish([{"seq": seq, "kind": "recv", "preview": "x" * 20}])
                assert sub.queued_bytes <= 4096
            frame = orjson.loads(await sub.next_frame(1.0) or b"null")
            kept = [event["seq"] for event in frame["events"]]
            assert kept == list(range(2001 - len(kept), 2001))  # the newest survive
            assert frame["dropped"] == 2000 - len(kept) > 0
            assert hub.peak_queued_bytes <= 4096

    run_async(scenario())


def test_hub_refuses_beyond_max_clients_and_frees_the_slot() -> None:
    async def scenario() -> None:
        hub = Hub(max_clients=1)
        async with hub.subscribe():
            with pytest.raises(HubFull, match=r"too many dashboard clients \(max 1\)"):
                async with hub.subscribe():
                    pass
        async with hub.subscribe():
            assert hub.clients == 1

    run_async(scenario())


def test_tap_drain_takes_at_most_limit_oldest_first_and_leaves_the_rest() -> None:
    """Only the tap's bound drops events (the oldest, at append); a drain never does, so a
    burst the pump takes over several ticks reaches a recording whole."""
    tap = EventTap(maxlen=100)
    for seq in range(1, 151):
        tap.sink({"seq": seq})
    assert [e["seq"] for e in tap.drain(limit=30)] == list(range(51, 81))
    assert [e["seq"] for e in tap.drain(limit=30)] == list(range(81, 111))
    assert [e["seq"] for e in tap.drain()] == list(range(111, 151))
    assert len(tap) == 0 and tap.drain() == []


def test_pump_feeds_hub_and_consumers_and_survives_a_failing_one() -> None:
    seen: list[int] = []

    def broken(batch: list[dict[str, Any]]) -> None:
        raise ValueError("a broken consumer")

    async def scenario() -> Frame:
        hub, tap = Hub(), EventTap()
        consumers = [broken, lambda batch: seen.extend(e["seq"] for e in batch)]
        task = asyncio.create_task(pump(tap, hub, interval=0.005, consumers=consumers))
        async with hub.subscribe() as sub:
            sub.start_after(0)
            for seq in (1, 2, 3):  # a lone surrogate cannot be UTF-8: replaced, not lost
                tap.sink({"seq": seq, "preview": "\udcff"})
            frame = orjson.loads(await sub.next_frame(2.0) or b"null")
        task.cancel()
        return frame

    frame = run_async(scenario())
    assert [e["seq"] for e in frame["events"]] == [1, 2, 3] == seen and frame["dropped"] == 0
    assert frame["events"][0]["preview"] == "?"


# --------------------------------------------------------------------------- over the wire


def test_snapshot_first_then_every_event_in_order_at_interactive_rate(live: Any) -> None:
    session: Live = live()
    session.producer.paced(rate=3000, duration=30)  # stopped below, once enough came after
    wait_for(lambda: session.source.last_seq > 500, 5, "the source to start")
    ws = session.connect()  # mid-stream: batches straddle the snapshot's seq
    snapshot = orjson.loads(ws.recv(timeout=5))
    assert snapshot["type"] == "snapshot" and snapshot["state"]["backend"]["name"] == "synthetic"
    assert snapshot["seq"] > 0 and snapshot["started_at"] == session.source.started_at
    # (a 1.5 s run left ~1 s for the handshake and the snapshot to get more than 1,000 after it)
    wait_for(lambda: session.source.last_seq > snapshot["seq"] + 1500, 10, "events after it")
    session.producer.stop()
    final = session.source.last_seq
    assert final - snapshot["seq"] > 1000
    frames = read_until(ws, reaches(final), timeout=10)
    received, dropped = check_accounting(snapshot["seq"], frames)
    assert dropped == 0 and received == final - snapshot["seq"]


def test_flood_with_a_slow_reader_stays_exact_and_bounded(live: Any) -> None:
    bound = 512 << 10
    session: Live = live(max_queue_bytes=bound)
    ws = session.connect(max_queue=2)
    snapshot = orjson.loads(ws.recv(timeout=5))
    flood_done = threading.Event()

    def flood() -> None:
        session.source.emit(200_000)
        wait_for(lambda: len(session.tap) == 0, 10, "the pump to drain the tap")
        session.source.emit(1)  # a marker at rest: it cannot be dropped anywhere
        flood_done.set()  # after the marker: a frame reaching the flood's end is not the end

    session.producer.run(flood)
    frames: list[Frame] = []
    deadline = time.monotonic() + 15
    while not (flood_done.is_set() and frames and reaches(session.source.last_seq)(frames[-1])):
        assert time.monotonic() < deadline, "the marker never arrived"
        frames.append(orjson.loads(ws.recv(timeout=deadline - time.monotonic())))
        time.sleep(0.05)  # a slow reader
    received, dropped = check_accounting(snapshot["seq"], frames)
    assert received + dropped == session.source.last_seq - snapshot["seq"]
    assert dropped > 0, "the flood should have overflowed the queue"
    assert 0 < session.hub.peak_queued_bytes <= bound


def test_a_client_that_never_reads_neither_stalls_the_source_nor_stays(live: Any) -> None:
    session: Live = live(max_queue_bytes=256 << 10, send_timeout=1.0)
    stalled = raw_websocket(session.url)
    try:
        wait_for(lambda: session.hub.clients == 1, 5, "the raw client to subscribe")
        deadline = time.monotonic() + 15
        while session.hub.clients:  # produce until the server has given up on the client
            assert time.monotonic() < deadline, "the stalled client was never disconnected"
            started = time.monotonic()
            session.source.emit(100_000)
            assert time.monotonic() - started < 5.0, "producing was stalled by a client"
            time.sleep(0.2)  # the producer's pace between bursts, not a wait
        assert session.hub.peak_queued_bytes <= 256 << 10
        assert_closed_by_server(stalled, timeout=10)
    finally:
        stalled.close()


def test_more_than_max_clients_get_a_close_with_the_reason(live: Any) -> None:
    session: Live = live(max_clients=2)
    first, second = session.connect(), session.connect()
    for ws in (first, second):
        assert orjson.loads(ws.recv(timeout=5))["type"] == "snapshot"
    extra = session.connect()
    assert expect_close(extra) == (1013, "too many dashboard clients (max 2): close another "
                                        "muxscope tab, or start it with a larger --max-clients")
    first.close()
    wait_for(lambda: session.hub.clients == 1, 5, "the closed client to unsubscribe")
    again = session.connect()
    assert orjson.loads(again.recv(timeout=5))["type"] == "snapshot"


def test_stats_frames_arrive_at_least_once_a_second(live: Any) -> None:
    session: Live = live()
    session.producer.paced(rate=500, duration=10)
    ws = session.connect()
    start = time.monotonic()
    frames = read_until(ws, lambda f: time.monotonic() - start > 3.2, timeout=6)
    stats = [f for f in frames if f["type"] == "stats"]
    arrivals = [start] + [f["_at"] for f in stats]
    assert len(stats) >= 3
    assert max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) < 1.0
    keys = {"type", "events_total", "dropped_total", "connections", "bytes_in", "bytes_out",
            "waits", "_at"}  # fmt: skip
    assert all(set(f) == keys for f in stats)
    assert stats[-1]["events_total"] > stats[0]["events_total"] and stats[-1]["dropped_total"] == 0


def test_a_binary_frame_closes_that_client_and_the_others_keep_receiving(live: Any) -> None:
    session: Live = live()
    session.producer.paced(rate=1000, duration=10)
    rude, polite = session.connect(), session.connect()
    snapshot = orjson.loads(polite.recv(timeout=5))
    rude.send("hello")  # a small text frame is ignored
    read_until(rude, lambda f: f["type"] == "events", timeout=5)
    rude.send(b"\x00\x01binary")
    assert expect_close(rude) == (1003, "binary frames are not accepted")
    wait_for(lambda: session.hub.clients == 1, 5, "the rude client to unsubscribe")
    target = session.source.last_seq + 200
    frames = read_until(polite, reaches(target), timeout=10)
    assert check_accounting(snapshot["seq"], frames)[1] == 0


def test_an_oversized_text_frame_closes_with_1009(live: Any) -> None:
    session: Live = live()
    ws = session.connect()
    assert orjson.loads(ws.recv(timeout=5))["type"] == "snapshot"
    ws.send("x" * ((64 << 10) + 1))
    code, reason = expect_close(ws)
    # uvicorn refuses it itself now (ws_max_size: it had buffered up to 16 MiB a client first)
    assert code == 1009 and "exceeds limit of 65536 bytes" in reason, (code, reason)
    wait_for(lambda: session.hub.clients == 0, 5, "the client to unsubscribe")


def test_a_send_after_uvicorn_closed_the_socket_itself_is_a_disconnect() -> None:
    """uvicorn closes a websocket itself on a frame over ws_max_size (1009), invalid UTF-8
    (1007) or a protocol error, and then refuses any send with a RuntimeError: a writer that
    was between frames must take that as the client gone, not end in an ASGI traceback."""
    outcome: Future[str] = Future()
    app = FastAPI()

    @app.websocket("/ws")
    async def closed_under_the_writer(websocket: WebSocket) -> None:
        await websocket.accept()
        message = await websocket.receive()   # uvicorn's own close comes as a disconnect
        try:
            await send_frame(websocket, b'{"type": "late"}', 1.0)
            outcome.set_result(f"sent after {message}")
        except WebSocketDisconnect as exc:
            outcome.set_result(f"disconnect {exc.code}")
        except BaseException as exc:
            outcome.set_result(f"{type(exc).__name__}: {exc}")
            raise

    with run_asgi(app) as base, connect(base.replace("http", "ws", 1) + "/ws",
                                        open_timeout=5, close_timeout=1) as ws:
        ws.send("x" * ((64 << 10) + 1))
        assert expect_close(ws)[0] == 1009
        assert outcome.result(timeout=5) == "disconnect 1006"


# --------------------------------------------------------------------------- a raw client


def raw_websocket(url: str) -> socket.socket:
    """Complete a websocket handshake on a socket with a tiny receive buffer, then never read."""
    host, port = urlsplit_hostport(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def assert_closed_by_server(sock: socket.socket, timeout: float) -> None:
    """Read what the server had buffered; the server must then end the TCP connection."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return
        except TimeoutError:
            continue
        except ConnectionResetError:
            return
    pytest.fail("the server kept the stalled connection open")


def test_a_batch_keeps_no_int_of_the_events_it_encodes() -> None:
    """A batch outlives its events (the trace ring, a replay): a seq int of theirs that it
    kept pinned the memory arena they were parsed into, so a replay of a million events
    held 656 MB after loading instead of 151 (session 45)."""
    events = [orjson.loads(b'{"seq": %d, "ts": 0.5, "kind": "wait"}' % seq)
              for seq in (10**6, 10**6 + 1, 10**12)]
    batch = Batch.encode(events)
    assert (batch.first_seq, batch.last_seq) == (10**6, 10**12)
    assert batch.first_seq is not events[0]["seq"]
    assert batch.last_seq is not events[-1]["seq"]
