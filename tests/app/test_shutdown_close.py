"""Ctrl-C or SIGTERM tells every page why its websocket ends: closed with 1001 and a reason,
live and in replay. (Left to uvicorn, it was 1012 "service restart" with no reason, and the
page could only show the code: a black-box review, session 46.)"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.main import create_app
from app.settings import Settings
from tests.app.test_cli import launch
from tests.app.test_replay_edges import snapshot, wait_event, write
from tests.conftest import run_asgi


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("mode", ["live", "replay"])
def test_a_page_is_told_the_server_is_shutting_down(tmp_path: Path, mode: str, sig: int) -> None:
    if mode == "live":
        args = ["--http-port", "0", "--echo-port", "0", "--no-udp"]
    else:
        recording = write(tmp_path / "r.jsonl", [snapshot(10), wait_event(11)])
        args = ["replay", str(recording), "--http-port", "0"]
    with launch(*args) as run:
        url = run.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")[1]
        with connect(url.replace("http", "ws", 1) + "ws", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
            code, stderr = run.stop(sig)
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # the frames sent before the close, then the close
                    ws.recv(timeout=10)
        assert code == 0, stderr
    assert closed.value.rcvd is not None, "no close frame: the connection was cut"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1001, "muxscope is shutting down")


@pytest.mark.parametrize("mode", ["live", "replay"])
def test_a_page_that_connects_while_the_others_are_told_gets_only_the_close(
        tmp_path: Path, mode: str) -> None:
    """The listener is still open while the pages are told (a page reconnecting at once
    lands then): it was sent a replay's snapshot and its events before its 1001 (the
    session's code review); now it is closed before anything is sent."""
    settings = (Settings(http_port=0, echo_port=0, udp=False) if mode == "live" else
                Settings(http_port=0, replay_file=write(tmp_path / "r.jsonl",
                                                       [snapshot(10), wait_event(11)])))
    app = create_app(settings)
    with run_asgi(app) as base:
        app.state.closing.set()  # as say_goodbye does (nobody waits on it yet)
        with connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws, \
                pytest.raises(ConnectionClosed) as closed:
            frame = ws.recv(timeout=5)
            raise AssertionError(f"a frame before the close: {frame[:80]!r}")
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "muxscope is shutting down")


def test_an_app_served_twice_waits_on_its_own_loops_shutdown(tmp_path: Path) -> None:
    """The shutdown event was made with the app, and a second serve (another event loop)
    waited on the first one's: its page was closed at once with 1001 (the code review)."""
    path = write(tmp_path / "r.jsonl", [snapshot(10), wait_event(11)])
    app = create_app(Settings(http_port=0, replay_file=path))
    for _ in range(2):
        with run_asgi(app) as base, \
                connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
            # (the first serve's wait bound the event: the second's raised, at its first
            # stats frame, and that ended the page as a shutdown would)
            frames = [json.loads(ws.recv(timeout=5)) for _ in range(4)]
            assert [f["type"] for f in frames] == ["snapshot", "events", "stats", "stats"]
