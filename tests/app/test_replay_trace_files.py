"""Files `muxscope replay` is given that were not written with --record: the page's trace
downloads (app/recording.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.recording import load_recording
from app.settings import Settings
from tests.conftest import run_asgi, wait_until
from tests.mux.conftest import recv_exactly

from .conftest import live_app


def trace_of_a_live_engine(tmp_path: Path, backend: str,
                            then: Callable[[httpx.Client, socket.socket], None] | None = None,
                            **flags: object) -> Path:
    """`GET /api/trace?format=jsonl` of a real engine after one echo (and `then`, given the
    API client and the echo socket), saved as the page's "Events as JSON lines" link saves it."""
    with live_app(backend=backend, **flags) as live:
        port = live.client.get("/api/state").json()["listeners"]["tcp"]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"hello")
            assert recv_exactly(sock, 5) == b"hello"
            if then is not None:
                then(live.client, sock)
        wait_until(lambda: b'"kind":"close"' in live.client.get("/api/trace").content,
                   what="the close in the trace")
        path = tmp_path / "trace.jsonl"
        path.write_bytes(live.client.get("/api/trace", params={"format": "jsonl"}).content)
    return path


def _from_the_first(path: Path, match: Callable[[dict[str, Any]], bool]) -> Path:
    """The trace from its first event that `match`es: as a ring that has wrapped holds it."""
    lines = path.read_bytes().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if match(json.loads(line)))
    cut = path.with_name("cut.jsonl")
    cut.write_bytes(b"".join(lines[start:]))
    return cut


@pytest.mark.parametrize(("backend", "flags", "trigger", "oneshot"), [
    ("poll", {}, "level", False),
    ("epoll", {"trigger": "edge", "oneshot": True}, "edge", True),
])
def test_a_trace_download_replays_on_the_backend_its_waits_name(
        tmp_path: Path, backend: str, flags: dict, trigger: str, oneshot: bool) -> None:
    """It has no snapshot line: replay made one up, always epoll and paused (a poll trace
    was shown as epoll's fd sets), and said nothing."""
    snapshot, events = load_recording(trace_of_a_live_engine(tmp_path, backend, **flags))
    state = snapshot["state"]
    assert state["backend"]["name"] == backend
    assert (state["backend"]["trigger"], state["backend"]["oneshot"]) == (trigger, oneshot)
    assert state["loop"] == "running"


@pytest.mark.parametrize("write", ["queued", "eager"])
def test_a_trace_download_replays_with_the_write_strategy_its_echoes_show(
        tmp_path: Path, write: str) -> None:
    """Replay said `queued` whatever the trace was of (a black-box review, session 45)."""
    snapshot, _ = load_recording(trace_of_a_live_engine(tmp_path, "epoll", write=write))
    assert snapshot["state"]["backend"]["write"] == write
    assert "the write strategy" not in snapshot["note"]


def test_a_trace_without_an_echo_says_its_write_strategy_is_unknown(tmp_path: Path) -> None:
    path = trace_of_a_live_engine(tmp_path, "epoll", write="eager")
    kept = [line for line in path.read_bytes().splitlines(keepends=True)
            if json.loads(line)["kind"] not in ("recv", "send", "queue")]
    path.write_bytes(b"".join(kept))
    snapshot, _ = load_recording(path)
    assert "the write strategy (queued or eager)" in snapshot["note"]


def _switch(backend: dict[str, Any]) -> Callable[[httpx.Client, socket.socket], None]:
    def then(client: httpx.Client, sock: socket.socket) -> None:
        assert client.post("/api/backend", json=backend).status_code == 200
        sock.sendall(b"again")
        assert recv_exactly(sock, 5) == b"again"
    return then


def test_a_trace_with_a_later_switch_replays_from_the_backend_it_began_on(
        tmp_path: Path) -> None:
    """A switch re-registers every fd with the new backend's flags before its `backend` event:
    they were taken as the start's, and a level-triggered start replayed as edge, one-shot."""
    path = trace_of_a_live_engine(tmp_path, "epoll", _switch(
        {"name": "epoll", "trigger": "edge", "oneshot": True}))
    backend = load_recording(path)[0]["state"]["backend"]
    assert (backend["name"], backend["trigger"], backend["oneshot"]) == ("epoll", "level", False)


def test_a_trace_that_begins_at_a_switch_replays_from_the_backend_switched_from(
        tmp_path: Path) -> None:
    """The first wait is the new backend's: the engine ran the switch's `from` until then."""
    path = trace_of_a_live_engine(tmp_path, "poll", _switch({"name": "epoll", "trigger": "edge"}))
    cut = _from_the_first(path, lambda e: bool(e.get("moved")))
    snapshot, _ = load_recording(cut)
    assert snapshot["state"]["backend"]["name"] == "poll"
    assert "(seq " in snapshot["note"] and "the backend" not in snapshot["note"]


def test_a_trace_of_an_idle_edge_engine_says_its_trigger_is_unknown(tmp_path: Path) -> None:
    """No registration in it to tell edge from level: it replayed as level, and said nothing."""
    with live_app(backend="epoll", trigger="edge") as live:
        # an idle loop blocks in one wait (no timeout): a state read (the control fd) ends it
        wait_until(lambda: live.client.get("/api/state").is_success
                   and b'"kind":"wait"' in live.client.get("/api/trace").content,
                   what="a wait in the trace")
        path = tmp_path / "idle.jsonl"
        path.write_bytes(live.client.get("/api/trace", params={"format": "jsonl"}).content)
    snapshot, _ = load_recording(path)
    assert snapshot["state"]["backend"]["name"] == "epoll"
    assert "whether epoll was edge-triggered or one-shot" in snapshot["note"]


def test_a_trace_that_begins_while_the_loop_is_paused_replays_paused(tmp_path: Path) -> None:
    """The first `loop` event tells what went before it: a step was made on a paused loop (it
    replayed as running), a pause on a running one."""
    def pause_and_step(client: httpx.Client, sock: socket.socket) -> None:
        for action in ("pause", "step"):
            assert client.post("/api/loop", json={"action": action}).status_code == 200
        wait_until(lambda: b'"state":"step"' in client.get("/api/trace").content,
                   what="the step taken")  # a resume before it would make it moot
        assert client.post("/api/loop", json={"action": "resume"}).status_code == 200

    path = trace_of_a_live_engine(tmp_path, "epoll", pause_and_step)
    assert load_recording(path)[0]["state"]["loop"] == "running"  # its first: the pause
    cut = _from_the_first(path, lambda e: e.get("kind") == "loop" and e.get("state") == "step")
    assert load_recording(cut)[0]["state"]["loop"] == "paused"


def test_the_replayed_page_says_what_a_file_without_a_snapshot_cannot_know(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = trace_of_a_live_engine(tmp_path, "poll")
    first = json.loads(path.read_bytes().splitlines()[0])["seq"]
    app = create_app(Settings(http_port=0, replay_file=path))
    assert "no snapshot line" in caplog.text  # said on stderr at start
    with run_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/").text
        assert 'id="replay-note"' in page and f"(seq {first:,})" in page
        assert client.get("/api/state").json()["backend"]["name"] == "poll"


def test_a_recording_replays_without_a_note(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"type": "snapshot", "state": {}, "seq": 0, "started_at": 1.0})
                    + "\n")
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        assert 'id="replay-note"' not in client.get("/").text


def test_a_chrome_trace_is_refused_with_where_to_open_it(tmp_path: Path) -> None:
    """It was refused as having "no snapshot and no events", as if it were empty."""
    with live_app() as live:
        chrome = live.client.get("/api/trace", params={"format": "chrome"}).content
    path = tmp_path / "muxscope-trace.json"
    path.write_bytes(chrome)
    with pytest.raises(ValueError, match="a Chrome trace .* open it in Perfetto"):
        load_recording(path)


def test_a_trace_download_whose_first_bytes_say_trace_events_is_no_chrome_trace(
        tmp_path: Path) -> None:
    """A client that sent "traceEvents": its recv's preview is in the first line, and the
    file was refused as a Chrome trace."""
    path = tmp_path / "trace.jsonl"
    path.write_text(json.dumps({"seq": 1, "ts": 0.1, "kind": "recv", "fd": 7, "bytes": 11,
                                "preview": "traceEvents"}) + "\n")
    snapshot, events = load_recording(path)
    assert [e["seq"] for e in events] == [1]
