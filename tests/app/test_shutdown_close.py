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

from tests.app.test_cli import launch
from tests.app.test_replay_edges import snapshot, wait_event, write


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
