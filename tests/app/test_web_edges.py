"""Edges of the web layer the other files leave open: the pump's isolation and its shutdown
drain, the hub's frame size, the optional fields of stats frames, and what a lingering close
answers over the API and says in the stats frames (SPEC §4, docs/ARCHITECTURE.md)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as ws_connect

from app.bridge import DEFAULT_MAX_BATCH, EventTap, deliver, flush
from app.hub import BATCH_EVENTS, MAX_FRAME_BYTES, Hub, Subscription, encode_batches
from app.main import create_app
from app.routes.live import _stats_frame
from app.settings import Settings
from tests.app.conftest import Live, live_app
from tests.conftest import run_asgi, run_async, wait_until
from tests.mux.conftest import recv_exactly


def _events(first: int, count: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"seq": seq, "kind": "recv", "fd": 7, "bytes": 1, "preview": "x" * pad}
            for seq in range(first, first + count)]


# --------------------------------------------------------------------------- pump, no network


def test_a_failing_encoded_consumer_neither_stops_the_hub_nor_the_others() -> None:
    """The trace ring takes the encoded batches beside the hub: if it raised, the exception
    left `deliver`, the pump task died, and every page froze for good. Each consumer's failure
    is logged and isolated; the batch still reaches the hub and the consumers after it."""
    hub = Hub()
    seen: list[int] = []
    taken: list[int] = []

    def broken(batches: list[Any]) -> None:
        raise RuntimeError("a consumer bug")

    async def scenario() -> dict[str, Any]:
        async with hub.subscribe() as sub:
            sub.start_after(0)
            deliver(_events(1, 3), hub, consumers=[lambda b: seen.extend(e["seq"] for e in b)],
                    encoded_consumers=[broken, lambda bs: taken.extend(b.count for b in bs)])
            return dict(orjson.loads(await sub.next_frame(2.0) or b"null"))

    frame = run_async(scenario())
    assert [e["seq"] for e in frame["events"]] == [1, 2, 3] and frame["dropped"] == 0
    assert seen == [1, 2, 3] and taken == [3]


def test_the_shutdown_flush_delivers_a_full_tap_not_only_its_first_batch() -> None:
    """At shutdown the engine's last events (every connection's `close ... shutdown`) are
    still in the tap; the final flush must hand all of them to the recorder and the trace,
    not the first DEFAULT_MAX_BATCH only (a recording's tail would be lost)."""
    total = DEFAULT_MAX_BATCH * 2 + 500
    tap = EventTap(maxlen=total)
    for event in _events(1, total):
        tap.sink(event)
    got: list[int] = []
    flush(tap, Hub(), consumers=[lambda batch: got.extend(e["seq"] for e in batch)])
    assert len(tap) == 0
    assert got == list(range(1, total + 1))


def test_a_frame_coalesces_queued_batches_only_up_to_one_mebibyte() -> None:
    """A client that fell behind gets its queue in frames of about MAX_FRAME_BYTES, not in one
    frame of all it holds (a 4 MiB text frame to parse at once on the page), and the split
    loses nothing: the next frame starts where the last ended, with `dropped` 0."""
    events = _events(1, BATCH_EVENTS * 40, pad=80)  # ~4 MB in 40 batches
    batches = encode_batches(events)
    assert sum(len(b.data) for b in batches) > 2 * MAX_FRAME_BYTES

    async def scenario() -> list[dict[str, Any]]:
        sub = Subscription(max_queue_bytes=64 << 20)
        sub.start_after(0)
        for batch in batches:
            sub.push(batch)
        frames = []
        while sub.queued_bytes:
            raw = await sub.next_frame(1.0)
            assert raw is not None
            assert len(raw) <= MAX_FRAME_BYTES + 100, len(raw)
            frames.append(orjson.loads(raw))
        return frames

    frames = run_async(scenario())
    assert len(frames) >= 3
    seqs = [e["seq"] for f in frames for e in f["events"]]
    assert seqs == list(range(1, len(events) + 1))
    assert all(f["dropped"] == 0 for f in frames)


# --------------------------------------------------------------------------- stats frames


@pytest.mark.parametrize(("key", "value"), [
    ("lingering", [9, 12]),
    ("record_lost", 17),
    ("load", {"connections": 3, "cap": 300, "errors": 1, "wrong": 0, "closed": 0}),
    ("udp", {"received": 4, "echoed": 4, "dropped": 2, "pending": 0, "reading_paused": False}),
])
def test_a_stats_frame_carries_each_optional_figure_it_is_given(key: str, value: Any) -> None:
    """SPEC §4's stats frame: `lingering` (no event says when one begins), `record_lost`
    (a full disk under --record), `load` (the generated clients) and `udp` (the kernel's drop
    count comes with no event) reach the page only in these frames."""
    numbers = {"events_total": 5, "connections": 1, "bytes_in": 2, "bytes_out": 2, "waits": 3,
               key: value}
    frame = orjson.loads(_stats_frame(lambda: dict(numbers), Subscription(1 << 20)))
    assert frame[key] == value
    assert frame["type"] == "stats" and frame["events_total"] == 5


def test_closing_a_flooding_client_answers_lingering_and_the_stats_frames_list_it(
        live: Live) -> None:
    """POST /api/connections/{fd}/close on a client still sending: the answer says
    `lingering: true` (the connection stays until the peer's EOF, SPEC §4), and the stats
    frames list the fd under `lingering` until it has gone."""
    sock = live.connect()
    stop = threading.Event()

    def flood() -> None:
        chunk = b"f" * 65536
        try:
            while not stop.is_set():
                sock.sendall(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=flood, daemon=True)
    try:
        wait_until(lambda: live.engine.counters()["connections"] == 1, 5, "the accept")
        fd = live.client.get("/api/state").json()["connections"][0]["fd"]
        sender.start()
        wait_until(lambda: live.client.get("/api/state").json()["connections"][0][
            "reading_paused"], 10, "the flood to pause reading")
        res = live.client.post(f"/api/connections/{fd}/close")
        assert (res.status_code, res.json()) == (200, {"closed": fd, "lingering": True})
        with ws_connect(live.ws_url, max_size=None, open_timeout=5) as ws:
            deadline = time.monotonic() + 5
            while True:
                assert time.monotonic() < deadline, "no stats frame listed the lingering fd"
                frame = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if frame["type"] == "stats" and frame.get("lingering") == [fd]:
                    break
        stop.set()
        sock.shutdown(socket.SHUT_WR)  # the peer's EOF ends the lingering close
        wait_until(lambda: live.engine.counters()["lingering"] == [], 10, "the close")
    finally:
        stop.set()
        sock.close()
        sender.join(5)


# --------------------------------------------------------------------------- trace downloads


@pytest.mark.parametrize(("fmt", "media_type", "filename"), [
    ("jsonl", "application/x-ndjson", "muxscope-trace.jsonl"),
    ("chrome", "application/json", "muxscope-trace.json"),
])
def test_a_trace_download_is_an_attachment_with_its_own_name_and_type(
        live: Live, fmt: str, media_type: str, filename: str) -> None:
    """The page's "Download trace" links save a file: without Content-Disposition the browser
    showed the JSON inline, and jsonl is newline-delimited JSON (one event a line), not one
    JSON document."""
    with live.connect() as sock:
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"
    wait_until(lambda: b'"send"' in live.client.get("/api/trace").content, 5, "the send")
    res = live.client.get("/api/trace", params={"format": fmt})
    assert res.status_code == 200
    assert res.headers["content-type"].split(";")[0] == media_type
    assert res.headers["content-disposition"] == f'attachment; filename="{filename}"'
    if fmt == "jsonl":
        events = [json.loads(line) for line in res.text.splitlines()]
        assert events and all("seq" in e and "kind" in e for e in events)
    else:
        assert any(e.get("ph") == "X" and e["name"] == "send" for e in res.json()["traceEvents"])


# --------------------------------------------------------------------------- page and metrics


def test_the_page_passes_the_token_on_only_when_the_server_has_one() -> None:
    """With --token the page is opened as /?token=...: the page's scripts read the token from
    `data-token` for every API call and the websocket (else each one is a 401). Without
    --token, a `?token=` in a link is not echoed into the page."""
    with live_app(token="s3cr3t") as running:
        page = running.client.get("/", params={"token": "s3cr3t"}).text
        assert 'data-token="s3cr3t"' in page
        assert 'data-replay="0"' in page
    with live_app() as running:
        assert 'data-token=""' in running.client.get("/", params={"token": "x"}).text


def test_the_page_loads_nothing_from_another_site() -> None:
    """SPEC: the page works offline and its CSP allows 'self' only: no script, style or font
    from a CDN."""
    with live_app() as running:
        page = running.client.get("/").text
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)


def test_a_replayed_page_says_it_is_a_replay(tmp_path: Path) -> None:
    """`muxscope replay FILE` serves the same page, flagged (`data-replay`, the badge): the
    scripts then hide the live controls and keep 100,000 events instead of 20,000."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"type": "snapshot", "state": {}, "seq": 0, "started_at": 1.0})
                    + "\n")
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/").text
    assert 'data-replay="1"' in page and 'id="replay-badge"' in page


def _metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_metrics_count_every_event_by_kind_and_the_bytes_each_way(live: Live) -> None:
    """/metrics: `muxscope_events_total{kind}` counts each event the web layer saw (many of a
    kind come in one pump batch), `muxscope_bytes_total{direction}` the TCP bytes each way,
    `muxscope_connections` the open connections."""
    with live.connect() as sock:
        for i in range(100):
            message = b"m%03d" % i
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message
        wait_until(lambda: _metric(live.client.get("/metrics").text,
                                   "muxscope_connections") == 1, 5, "the connection gauge")

        def counted() -> bool:
            trace = live.client.get("/api/trace").text
            events = [json.loads(line) for line in trace.splitlines() if line]
            text = live.client.get("/metrics").text
            return all(_metric(text, "muxscope_events_total", kind=kind)
                       == sum(1 for e in events if e["kind"] == kind)
                       for kind in ("recv", "send", "wait"))

        wait_until(counted, 5, "the events by kind to match the trace")
        text = live.client.get("/metrics").text
        assert _metric(text, "muxscope_bytes_total", direction="in") == 400
        assert _metric(text, "muxscope_bytes_total", direction="out") == 400
    wait_until(lambda: _metric(live.client.get("/metrics").text,
                               "muxscope_connections") == 0, 5, "the close")


def test_metrics_say_bytes_out_apart_from_bytes_in_while_echoes_wait(live: Live) -> None:
    """A client that sends and does not read: what came in is more than what went out (the
    rest waits in the queue, reading paused). /metrics must say each direction's own count,
    as the engine's counters do, not one number twice."""
    with live.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)

        def fill_until_reading_pauses() -> bool:
            """Send what fits, again until the server pauses: one burst that ended at the
            first EAGAIN could leave the server's queue under its high-water mark (seen on a
            loaded box)."""
            with contextlib.suppress(BlockingIOError):
                for _ in range(256):  # 16 MiB at most a call
                    sock.send(b"f" * 65536)
            return live.client.get("/api/state").json()["connections"][0]["reading_paused"]

        wait_until(fill_until_reading_pauses, 10, "reading to pause", interval=0.05)
        wait_until(lambda: live.engine.counters()["bytes_in"]
                   > live.engine.counters()["bytes_out"] > 0, 5, "echoes to wait")

        def agrees() -> bool:
            counters = live.engine.counters()
            text = live.client.get("/metrics").text
            return (_metric(text, "muxscope_bytes_total", direction="in"),
                    _metric(text, "muxscope_bytes_total", direction="out")) == (
                counters["bytes_in"], counters["bytes_out"])

        wait_until(agrees, 5, "/metrics to say each direction's bytes")
