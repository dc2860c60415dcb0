"""Files `muxscope replay` is given that were not written with --record: the page's trace
downloads (app/replay.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.replay import load_recording
from app.settings import Settings
from tests.conftest import run_asgi, wait_until
from tests.mux.conftest import recv_exactly

from .conftest import live_app


def _trace_of_a_live_engine(tmp_path: Path, backend: str, **flags: object) -> Path:
    """`GET /api/trace?format=jsonl` of a real engine after one echo, saved as the page's
    "Events as JSON lines" link saves it."""
    with live_app(backend=backend, **flags) as live:
        port = live.client.get("/api/state").json()["listeners"]["tcp"]["port"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"hello")
            assert recv_exactly(sock, 5) == b"hello"
        wait_until(lambda: b'"kind":"close"' in live.client.get("/api/trace").content,
                   what="the close in the trace")
        path = tmp_path / "trace.jsonl"
        path.write_bytes(live.client.get("/api/trace", params={"format": "jsonl"}).content)
    return path


@pytest.mark.parametrize(("backend", "flags", "trigger", "oneshot"), [
    ("poll", {}, "level", False),
    ("epoll", {"trigger": "edge", "oneshot": True}, "edge", True),
])
def test_a_trace_download_replays_on_the_backend_its_waits_name(
        tmp_path: Path, backend: str, flags: dict, trigger: str, oneshot: bool) -> None:
    """It has no snapshot line: replay made one up, always epoll and paused (a poll trace
    was shown as epoll's fd sets), and said nothing."""
    snapshot, events = load_recording(_trace_of_a_live_engine(tmp_path, backend, **flags))
    state = snapshot["state"]
    assert state["backend"]["name"] == backend
    assert (state["backend"]["trigger"], state["backend"]["oneshot"]) == (trigger, oneshot)
    assert state["loop"] == "running"
    assert snapshot["unknown_before"] == events[0]["seq"]


def test_the_replayed_page_says_what_a_file_without_a_snapshot_cannot_know(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _trace_of_a_live_engine(tmp_path, "poll")
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
