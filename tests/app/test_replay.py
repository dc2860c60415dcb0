"""`muxscope replay` and `--record` rotation: 409 before validation, the client cap, every
recorded file replayable on its own (SPEC §1, §4)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from app import recording as replay_module
from app.main import create_app
from app.record import JsonlRecorder
from app.record_thread import RecorderThread
from app.settings import Settings
from tests.conftest import run_asgi, wait_until
from tests.mux.conftest import recv_exactly

from .conftest import live_app
from .test_hardening import read_until_closed
from .test_hub import assert_closed_by_server, raw_websocket

ROOT = Path(__file__).resolve().parents[2]
START_STATE = {"listeners": {"tcp": {"fd": 3, "port": 9000}, "udp": None}, "connections": []}


def write_recording(path: Path, events: int = 5, snapshot: bool = True) -> Path:
    lines = []
    if snapshot:
        lines.append({"type": "snapshot", "state": START_STATE, "seq": 10, "started_at": 1.0})
    lines += [wait_event(11 + i) for i in range(events)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


WAIT = {"backend": "epoll", "registered": 3, "timeout_ms": None, "ready": 0, "duration_us": 250}


def wait_event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": 0.001 * seq, "kind": "wait", **WAIT}


def replay_server(path: Path, **settings: Any) -> Any:
    return run_asgi(create_app(Settings(http_port=0, replay_file=path, **settings)))


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[httpx.Client]:
    with replay_server(write_recording(tmp_path / "r.jsonl")) as base, \
            httpx.Client(base_url=base, timeout=10) as client:
        yield client


# ------------------------------------------------------------------ 409 before validation


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/backend", {"name": "select", "trigger": "edge"}),  # a 422 if it were live
    ("POST", "/api/backend", {"name": "poll", "bogus": 1}),
    ("POST", "/api/loop", {"delay_ms": -5}),
    ("POST", "/api/load", {}),
    ("POST", "/api/breakpoints", {"when": "never"}),
    ("POST", "/api/flaws/eof_ignored", {"on": "yes"}),
    ("POST", "/api/connections/notanfd/close", None),
    ("DELETE", "/api/load", None),
    ("DELETE", "/api/breakpoints/notanid", None),
    ("PUT", "/api/state", {"x": 1}),
    ("PATCH", "/api/backend", {"name": "poll"}),
    ("POST", "/api/no-such-endpoint", None),
    ("POST", "/", None),  # outside /api too: a live run answers these with 405
    ("DELETE", "/static/app.js", None),
])
def test_replay_refuses_every_change_with_409_before_validation(
        replay: httpx.Client, method: str, path: str, body: Any) -> None:
    r = replay.request(method, path, json=body)
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "replay" in detail and "live" in detail
    assert r.headers["content-security-policy"]  # still answered through the security layer


def test_replay_409_even_for_a_body_that_is_not_json(replay: httpx.Client) -> None:
    r = replay.post("/api/loop", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 409


def test_replay_reads_still_work(replay: httpx.Client) -> None:
    assert replay.get("/api/state").status_code == 200
    assert replay.get("/api/flaws").status_code == 200
    assert replay.get("/api/trace?format=chrome").status_code == 200
    assert replay.get("/api/trace?format=nope").status_code == 422  # GETs validate as usual


def test_replay_security_checks_come_before_the_409(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl")
    with replay_server(path, token="t0ken") as base, httpx.Client(base_url=base) as c:
        body = {"name": "select", "trigger": "edge"}
        auth = {"Authorization": "Bearer t0ken"}
        evil = c.post("/api/backend", json=body, headers={**auth, "Origin": "http://evil.test"})
        assert evil.status_code == 403
        rebind = c.post("/api/backend", json=body, headers={**auth, "Host": "evil.test"})
        assert rebind.status_code == 403
        assert c.post("/api/backend", json=body).status_code == 401
        assert c.post("/api/backend", json=body, headers=auth).status_code == 409


# ------------------------------------------------------------------ --max-clients


def test_replay_caps_websocket_clients_with_1013(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl")
    with replay_server(path, max_clients=2) as base:
        url = base.replace("http", "ws", 1) + "/ws"
        first = ws_connect(url, open_timeout=5, close_timeout=1)
        second = ws_connect(url, open_timeout=5, close_timeout=1)
        with first, second:
            for ws in (first, second):
                assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
            with ws_connect(url, open_timeout=5, close_timeout=1) as third:
                code, reason = read_until_closed(third)
            assert code == 1013, (code, reason)
            assert "max 2" in reason, reason
            for ws in (first, second):  # the accepted ones are unaffected
                assert json.loads(ws.recv(timeout=5))["type"] in ("events", "stats")
        # once one has gone, a new browser gets in
        wait_until(lambda: _snapshot_ok(url), timeout=5, what="a free slot after closing")


def test_replay_closes_a_browser_that_stops_reading_and_frees_its_slot(tmp_path: Path) -> None:
    """SPEC §6 in replay too: a client that never reads is closed after the send timeout,
    never fed without bound, and the --max-clients slot it held goes to the next browser."""
    # ~7 MB of frames: more than the server's socket buffer (4 MiB at most) and the stalled
    # client's (4 KiB) hold, so the server's sends must block.
    path = write_recording(tmp_path / "big.jsonl", events=60_000)
    app = create_app(Settings(http_port=0, replay_file=path, max_clients=1))
    app.state.hub.send_timeout = 0.5
    with run_asgi(app) as base:
        url = base.replace("http", "ws", 1) + "/ws"
        stalled = raw_websocket(url)
        try:
            wait_until(lambda: app.state.hub.clients == 1, 5, "the stalled client's slot")
            # not a byte read meanwhile: the server must give up on its own
            wait_until(lambda: app.state.hub.clients == 0, 10, "the server to give up on it")
            assert_closed_by_server(stalled, timeout=10)
        finally:
            stalled.close()
        with ws_connect(url, open_timeout=5, close_timeout=1, max_size=None) as browser:
            assert json.loads(browser.recv(timeout=5))["type"] == "snapshot"


def _snapshot_ok(url: str) -> bool:
    """True once a new browser gets a snapshot (the server notices a departure on its next
    stats frame, within a second)."""
    try:
        with ws_connect(url, open_timeout=5, close_timeout=1) as ws:
            return json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    except ConnectionClosed:
        return False


def test_replay_stats_count_what_the_recording_holds(tmp_path: Path) -> None:
    """bytes_in/bytes_out/waits/connections in replay's stats frames come from the recorded
    events, not zeros."""
    path = tmp_path / "r.jsonl"
    lines = [{"type": "snapshot", "state": {**START_STATE, "connections": [{"fd": 7}]},
              "seq": 10, "started_at": 1.0}]
    body = [("wait", WAIT), ("accept", {"fd": 8, "listener": 3, "peer": "127.0.0.1:5"}),
            ("recv", {"fd": 8, "bytes": 9, "preview": "record me"}),
            ("send", {"fd": 8, "bytes": 9, "partial": False}), ("wait", WAIT),
            ("recv", {"fd": 7, "bytes": 3, "preview": "abc"}),
            ("close", {"fd": 7, "reason": "eof"})]
    lines += [{"seq": 11 + i, "ts": 0.001 * i, "kind": kind, **fields}
              for i, (kind, fields) in enumerate(body)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with replay_server(path) as base:
        with ws_connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
            frame = json.loads(ws.recv(timeout=5))
            while frame["type"] != "stats":
                frame = json.loads(ws.recv(timeout=5))
    assert {k: frame[k] for k in ("events_total", "connections", "bytes_in", "bytes_out",
                                  "waits")} == {"events_total": 17, "connections": 1,
                                                "bytes_in": 12, "bytes_out": 9, "waits": 2}


def events_frames(base: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The snapshot and every events frame a browser receives before the first stats frame."""
    with ws_connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
        snapshot = json.loads(ws.recv(timeout=5))
        frames = []
        while (frame := json.loads(ws.recv(timeout=5)))["type"] != "stats":
            frames.append(frame)
    return snapshot, [*frames, frame]


def test_replay_counts_the_recordings_seq_gaps_as_dropped(tmp_path: Path) -> None:
    """SPEC §4: a client's seq gaps add up to its `dropped`. A recording has gaps where its
    tap overflowed; replay said dropped 0 for them."""
    path = tmp_path / "gaps.jsonl"
    lines = [{"type": "snapshot", "state": START_STATE, "seq": 10, "started_at": 1.0},
             *(wait_event(seq) for seq in (11, 12, 20, 21, 50))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with replay_server(path) as base:
        snapshot, frames = events_frames(base)
    *events, stats = frames
    seqs = [e["seq"] for frame in events for e in frame["events"]]
    assert seqs == [11, 12, 20, 21, 50]
    gaps = seqs[-1] - snapshot["seq"] - len(seqs)
    assert sum(frame["dropped"] for frame in events) == gaps == 35
    assert stats["dropped_total"] == 35 and stats["events_total"] == 50


def test_replay_of_a_recording_cut_mid_line_serves_the_lines_before_it(tmp_path: Path) -> None:
    """A recording whose writer was killed (or that is still being written) ends mid-line."""
    whole = write_recording(tmp_path / "r.jsonl", 5).read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(whole[:-20])
    with replay_server(cut) as base:
        _, frames = events_frames(base)
    assert [e["seq"] for frame in frames[:-1] for e in frame["events"]] == [11, 12, 13, 14]
    middle = tmp_path / "middle.jsonl"  # a bad line with more after it is still an error
    lines = whole.splitlines(keepends=True)
    middle.write_bytes(b"".join([*lines[:2], lines[2][:-20] + b"\n", *lines[3:]]))
    with pytest.raises(ValueError, match=r"middle.jsonl:3: not JSON"):
        create_app(Settings(http_port=0, replay_file=middle))


def test_a_recording_cut_within_its_first_line_is_said_so(tmp_path: Path) -> None:
    """A server killed just after start leaves half a snapshot line: replay said "no
    snapshot and no events; is it a file written by muxscope --record?" (it was)."""
    whole = write_recording(tmp_path / "r.jsonl", 5).read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(whole[:40])
    with pytest.raises(ValueError, match=r"cut.jsonl: its only line is cut short"):
        create_app(Settings(http_port=0, replay_file=cut))


def test_replay_takes_an_older_recording_and_exports_it_whole(tmp_path: Path) -> None:
    """Fields and kinds this version does not write (a flaw's `fd: null` before session 9, a
    kind added later) are replayed; the chrome export of it is one complete JSON document."""
    path = write_recording(tmp_path / "r.jsonl", 3)
    with path.open("a") as f:
        f.write(json.dumps({"seq": 14, "ts": 0.2, "kind": "flaw", "name": "eof_ignored",
                            "message": "m", "fd": None}) + "\n")
        f.write(json.dumps({"seq": 15, "ts": 0.3, "kind": "flaw", "name": "eof_ignored",
                            "message": "m"}) + "\n")  # no fd: before session 17
        f.write(json.dumps({"seq": 16, "ts": 0.3, "kind": "later", "what": 1}) + "\n")
    with replay_server(path) as base, httpx.Client(base_url=base, timeout=10) as c:
        r = c.get("/api/trace?format=chrome")
        assert r.status_code == 200
        names = {e.get("name") for e in r.json()["traceEvents"]}
    assert {"epoll wait", "flaw", "later"} <= names


def test_replay_metrics_are_the_recordings_in_the_live_names(tmp_path: Path) -> None:
    """SPEC §4: /metrics is Prometheus text with `muxscope_` names; in replay it held only a
    comment. It tells the recording's totals now, as the stats frames do."""
    path = write_recording(tmp_path / "r.jsonl", 4)
    with path.open("a") as f:
        for seq, kind, extra in ((15, "recv", {"preview": "hi"}), (16, "send", {"partial": False})):
            f.write(json.dumps({"seq": seq, "ts": 0.02, "kind": kind, "fd": 7, "bytes": 2,
                                **extra}) + "\n")
    with replay_server(path) as base, httpx.Client(base_url=base, timeout=10) as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in r.text.splitlines() if line and not line.startswith("#")}
    assert samples['muxscope_events_total{kind="wait"}'] == 4
    assert samples['muxscope_events_total{kind="recv"}'] == 1
    assert samples['muxscope_waits_total{backend="epoll"}'] == 4
    assert samples['muxscope_bytes_total{direction="in"}'] == 2
    assert samples['muxscope_bytes_total{direction="out"}'] == 2
    assert samples["muxscope_engine_events_total"] == 16
    assert samples['muxscope_wait_duration_us_count{backend="epoll"}'] == 4


def test_replay_answers_409_before_the_body_limit(replay: httpx.Client) -> None:
    """SPEC §4: every POST answers 409 in replay, a body over the 64 KiB limit too (was 413)."""
    r = replay.post("/api/load", content=b"x" * (100 << 10),
                    headers={"content-type": "application/json"})
    assert r.status_code == 409, (r.status_code, r.text[:120])


# ------------------------------------------------------------------ §4 shape without snapshot


def test_replay_refuses_a_recording_larger_than_its_memory_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay holds the events in memory: past MAX_REPLAY_EVENTS it is a clear error (the CLI
    prints it as one line), not gigabytes of dicts."""
    monkeypatch.setattr(replay_module, "MAX_REPLAY_EVENTS", 5)
    create_app(Settings(http_port=0, replay_file=write_recording(tmp_path / "ok.jsonl", 5)))
    big = write_recording(tmp_path / "big.jsonl", 6)
    with pytest.raises(ValueError, match=r"more than 5 events.*--record-max-mb") as caught:
        create_app(Settings(http_port=0, replay_file=big))
    assert str(big) in str(caught.value)
    # a file larger than MAX_REPLAY_BYTES is refused by its size, before it is read
    monkeypatch.setattr(replay_module, "MAX_REPLAY_EVENTS", 10**9)
    monkeypatch.setattr(replay_module, "MAX_REPLAY_BYTES", big.stat().st_size - 1)
    with pytest.raises(ValueError, match=r"MiB, more than .*--record-max-mb"):
        create_app(Settings(http_port=0, replay_file=big))


def test_replay_of_a_pipe_or_device_is_bounded_while_it_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe or a device has no size to refuse before reading: `replay /dev/zero` read one
    endless line until the memory ran out (a MemoryError traceback, 2 GB in under 2 s)."""
    with pytest.raises(ValueError, match=r"/dev/zero: a line longer than 64 MiB"):
        replay_module.load_recording(Path("/dev/zero"))
    monkeypatch.setattr(replay_module, "MAX_REPLAY_BYTES", 1000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    lines = write_recording(tmp_path / "r.jsonl", 40).read_bytes()
    assert len(lines) > 1000

    def write() -> None:
        with contextlib.suppress(BrokenPipeError):  # the reader stops at the bound
            fifo.write_bytes(lines)

    writer = threading.Thread(target=write)
    writer.start()
    with pytest.raises(ValueError, match=r"fifo: more than 0 MiB"):
        replay_module.load_recording(fifo)
    writer.join(5)
    assert not writer.is_alive()


def test_replay_of_a_file_without_snapshot_keeps_the_state_shape(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "r.jsonl", snapshot=False)
    with replay_server(path) as base, httpx.Client(base_url=base) as c:
        state = c.get("/api/state").json()
    tcp = state["listeners"]["tcp"]
    assert isinstance(tcp, dict) and set(tcp) >= {"fd", "port"}
    assert set(state["backend"]) >= {"name", "trigger", "oneshot", "write"}
    assert set(state["limits"]) >= {"fd_setsize", "nofile", "max_connections"}
    assert state["connections"] == [] and state["loop"] in ("running", "paused")


def test_replay_of_an_older_snapshot_fills_in_the_limits_it_lacks(tmp_path: Path) -> None:
    """A snapshot from before the water marks has a `limits` object without them: merged one
    level deep, it replaced the defaults whole and /api/state lacked them."""
    path = tmp_path / "r.jsonl"
    state = {**START_STATE, "limits": {"fd_setsize": 1024, "nofile": 20000,
                                       "max_connections": 10000}}
    path.write_text(json.dumps({"type": "snapshot", "state": state, "seq": 10,
                                "started_at": 1.0}) + "\n")
    with replay_server(path) as base, httpx.Client(base_url=base) as c:
        limits = c.get("/api/state").json()["limits"]
    assert limits == {"fd_setsize": 1024, "nofile": 20000, "max_connections": 10000,
                      "high_water": 1 << 20, "low_water": 256 << 10}


# ------------------------------------------------------------------ recorder rotation


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def segments(path: Path) -> list[Path]:
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, path]  # oldest first


def assert_each_file_replayable(path: Path, left_out: int = 0) -> list[list[dict[str, Any]]]:
    """Every file starts with a snapshot; its events count on from the snapshot's seq. The
    seqs between two files are the ones the recorder said it left out (`left_out`: a rotation
    far behind the engine), no more, and none twice."""
    files = [lines_of(p) for p in segments(path)]
    assert len(files) >= 2, "no rotation happened"
    for lines in files:
        snapshot, events = lines[0], lines[1:]
        assert snapshot["type"] == "snapshot", snapshot
        assert [e["seq"] for e in events] == list(
            range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(events)))
    gaps = [newer[0]["seq"] - older[-1]["seq"]
            for older, newer in zip(files, files[1:], strict=False)]
    assert min(gaps) >= 0, gaps  # nothing twice
    assert sum(gaps) == left_out, (gaps, left_out)  # nothing lost unsaid
    return files


def test_rotated_files_start_with_the_start_snapshot_without_a_source(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=0.001)
    rec.write_snapshot(START_STATE, 0, 5.0)
    for seq in range(1, 200):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    rec.close()
    files = assert_each_file_replayable(path)
    assert all(f[0]["state"] == START_STATE and f[0]["started_at"] == 5.0 for f in files)


@dataclass
class FakeCapture:
    seq: int
    state: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.state


def test_rotation_waits_for_the_engine_capture_and_splits_at_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    asked: list[int] = []
    current = [0]

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        asked.append(current[0])
        # the engine captures a little later than asked (three more events by then), and
        # answers after a while: the recorder's thread waits for it
        threading.Timer(0.2, future.set_result,
                        [FakeCapture(current[0] + 3, {"fresh": True})]).start()
        return future

    rec = JsonlRecorder(path, max_mb=0.001, snapshot_source=source, capture_timeout=60)
    rec.write_snapshot(START_STATE, 0, 0.0)
    while not asked:
        current[0] += 1
        rec([{"seq": current[0], "ts": 0.0, "kind": "wait"}])
    asked_at = asked[0]
    rec([{"seq": s, "ts": 0.0, "kind": "wait"} for s in range(asked_at + 1, asked_at + 3)])
    assert not path.with_name("r.jsonl.1").exists()  # still short of the capture's seq
    rec([{"seq": s, "ts": 0.0, "kind": "wait"} for s in range(asked_at + 3, asked_at + 6)])
    rec.close()
    old, new = lines_of(path.with_name("r.jsonl.1")), lines_of(path)
    assert old[-1]["seq"] == asked_at + 3
    assert [e["seq"] for e in old[1:]] == list(range(1, asked_at + 4))  # nothing left out
    assert new[0] == {"type": "snapshot", "state": {"fresh": True}, "seq": asked_at + 3,
                      "started_at": 0.0}
    assert [e["seq"] for e in new[1:]] == [asked_at + 4, asked_at + 5]


def test_no_rotation_without_a_capture_of_the_engine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A capture that fails (the engine stopped: the shutdown's own `close` events filled the
    file) started the next file with the *start* state labelled with the last seq: the wrong
    backend, no connections, zero counters, then closes of connections it never listed. The
    full file now goes on past its limit, and the log says so."""
    path = tmp_path / "r.jsonl"

    def failing() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        future.set_exception(RuntimeError("engine stopped"))
        return future

    rec = JsonlRecorder(path, max_mb=0.001, snapshot_source=failing)
    rec.write_snapshot(START_STATE, 0, 0.0)
    with caplog.at_level("WARNING", logger="app.record"):
        for seq in range(1, 100):
            rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
        rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    lines = lines_of(path)
    assert lines[0]["state"] == START_STATE and lines[0]["seq"] == 0
    assert [e["seq"] for e in lines[1:]] == list(range(1, 100))
    assert "no snapshot of the engine could be taken" in caplog.text


def test_one_of_our_own_fds_is_written_through_never_renamed_nor_overwritten(
        tmp_path: Path) -> None:
    """`--record /dev/stdout > run.jsonl 2>&1`: /dev/stdout is a symlink to /proc/self/fd/1,
    which is_file() followed to the shell's file. The recorder renamed the link at the limit,
    and its own offset (a second open) wrote over the banner and over log lines."""
    target = tmp_path / "shell-redirect.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # the shell's `>`: no append
    try:
        os.write(fd, b"banner\n")
        rec = JsonlRecorder(f"/proc/self/fd/{fd}", max_mb=0.001)
        assert not rec.rotates
        rec.write_snapshot(START_STATE, 0, 5.0)
        for seq in range(1, 50):
            rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
        os.write(fd, b"a log line\n")  # another writer of the same file (2>&1)
        for seq in range(50, 100):
            rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
        rec.close()
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shell-redirect.txt"]
    lines = target.read_bytes().splitlines()
    assert lines[0] == b"banner" and lines[51] == b"a log line"
    assert [json.loads(line).get("seq") for line in lines[1:51] + lines[52:]] == list(range(100))


def test_another_processs_pipe_by_its_proc_path_is_written_to(tmp_path: Path) -> None:
    """/proc/PID/fd/N of a pipe resolves to "pipe:[inode]": resolving every symlink made
    `--record /proc/PID/fd/N` fail with "no such file"."""
    out = tmp_path / "from-the-pipe.jsonl"
    with out.open("wb") as sink:
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=sink)
    try:
        rec = JsonlRecorder(f"/proc/{cat.pid}/fd/0", max_mb=0.001)
        assert not rec.rotates
        rec.write_snapshot(START_STATE, 0, 5.0)
        for seq in range(1, 100):
            rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
        rec.close()
    finally:
        assert cat.stdin is not None
        cat.stdin.close()
        cat.wait(10)
    assert [json.loads(line).get("seq") for line in out.read_bytes().splitlines()] == list(
        range(100))


def test_a_symlink_to_a_file_rotates_the_file_and_keeps_the_link(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "run.jsonl"
    link = tmp_path / "rec.jsonl"
    link.symlink_to(Path("data") / "run.jsonl")  # relative, as `ln -s` makes it
    rec = JsonlRecorder(link, max_mb=0.001)
    rec.write_snapshot(START_STATE, 0, 5.0)
    for seq in range(1, 200):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    rec.close()
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (tmp_path / "data" / "run.jsonl.1").is_file()
    assert_each_file_replayable(target)


def test_live_recording_rotates_with_fresh_snapshots_that_replay_serves(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with live_app(record=path, record_max_mb=0.02, udp=False) as live, live.connect() as sock:
        fd = wait_until(lambda: live.client.get("/api/state").json()["connections"],
                        what="the connection")[0]["fd"]
        deadline = time.monotonic() + 20
        recorder = live.app.state.recorder
        while not path.with_name("run.jsonl.2").exists():
            assert time.monotonic() < deadline, "the recording never rotated twice"
            sock.sendall(b"rotate me please\n")
            recv_exactly(sock, 17)
            # the writer kept up with (a busy machine starves its thread: more than a pump
            # batch behind at a rotation, it leaves that lag out, which is checked below)
            while recorder.backlog and time.monotonic() < deadline:
                time.sleep(0.001)
        before_close = live.client.get("/api/state").json()["stats"]["events_total"]
    files = assert_each_file_replayable(path, left_out=recorder.recorder.left_out_total)
    fresh = [lines[0] for lines in files[1:] if lines[0]["seq"] <= before_close]
    assert fresh, "no rotation while the connection was open"
    for snapshot in fresh:  # the engine's state at the rotation, not the start's: our fd in it
        assert fd in [c["fd"] for c in snapshot["state"]["connections"]]
    for segment, lines in zip(segments(path), files, strict=True):
        with replay_server(segment) as base, httpx.Client(base_url=base) as c:
            state = c.get("/api/state").json()
            assert state["listeners"]["tcp"]["port"] == live.engine.tcp_port
            # a segment's /metrics counts the waits from the run's start, as live (it counted
            # the segment's own: the snapshot's stats had no waits by backend)
            waits = lines[0]["state"]["stats"]["waits"] + sum(
                1 for line in lines[1:] if line.get("kind") == "wait")
            assert f'muxscope_waits_total{{backend="epoll"}} {float(waits)}' in \
                c.get("/metrics").text.splitlines()
            with ws_connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
                snap = json.loads(ws.recv(timeout=5))
                assert snap["type"] == "snapshot" and snap["seq"] == lines[0]["seq"]
                following = json.loads(ws.recv(timeout=5))
                if len(lines) > 1:  # (the file begun at shutdown may hold only its snapshot)
                    assert following["events"][0] == lines[1]


def test_recording_over_an_existing_file_keeps_the_old_one_whole(tmp_path: Path) -> None:
    """A second run with the same --record FILE starts a fresh file with its own snapshot
    first; the earlier recording moves to FILE.1 untouched (never appended to, never lost)."""
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b'{"type":"snapshot","seq":0,"state":{},"started_at":1}\n{"seq":1}\n')
    old = path.read_bytes()
    rec = JsonlRecorder(path)
    rec.write_snapshot({"loop": "running"}, 5, 2.0)
    rec([{"seq": 6, "ts": 0.1, "kind": "wait"}])
    rec.close()
    assert (tmp_path / "rec.jsonl.1").read_bytes() == old
    first, second = path.read_bytes().splitlines()
    assert json.loads(first)["type"] == "snapshot" and json.loads(first)["seq"] == 5
    assert json.loads(second)["seq"] == 6


# ------------------------------------------------------------------ the disk does not cooperate

_FILL_PAST_A_SIZE_LIMIT = """
import json, resource, sys
from pathlib import Path
from app.record import JsonlRecorder
from app.recording import load_recording

path = Path(sys.argv[1])
wait = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": None, "ready": 0,
        "duration_us": 250}
rec = JsonlRecorder(path)
rec.write_snapshot({}, 0, 1.0)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # a disk that fills up (EFBIG)
for seq in range(1, 400, 10):
    rec([{"seq": s, "ts": s / 1000, **wait} for s in range(seq, seq + 10)])
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # and has room again
rec([{"seq": s, "ts": s / 1000, **wait} for s in range(401, 411)])
rec.close()
_, events = load_recording(path)
print(json.dumps([e["seq"] for e in events]))
"""


def test_a_write_that_fails_leaves_no_half_line_and_recording_resumes(tmp_path: Path) -> None:
    """A full disk (here a file size limit: EFBIG) used to leave half a line in the file,
    which replay then refused, and a traceback a batch. The failed write is cut back off, the
    failure is said once, and the events after it are recorded again."""
    path = tmp_path / "rec.jsonl"
    run = subprocess.run([sys.executable, "-c", _FILL_PAST_A_SIZE_LIMIT, str(path)],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-800:]
    seqs = json.loads(run.stdout)
    assert seqs[:10] == list(range(1, 11)) and seqs[-10:] == list(range(401, 411)), seqs
    assert len(seqs) < 410  # some were lost: a seq gap, which replay counts as dropped
    assert run.stderr.count("cannot write") == 1 and "Traceback" not in run.stderr, run.stderr
    assert "writing to" in run.stderr and "again" in run.stderr


_FILL_STDOUT_PAST_A_SIZE_LIMIT = """
import json, os, resource, sys
from app.record import JsonlRecorder

path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # the shell's `>>`
wait = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": None, "ready": 0,
        "duration_us": 250}
rec = JsonlRecorder(f"/proc/self/fd/{fd}")
rec.write_snapshot({}, 0, 1.0)
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.fstat(fd).st_size + 8_000, hard))
for seq in range(1, 400, 10):
    rec([{"seq": s, "ts": s / 1000, **wait} for s in range(seq, seq + 10)])
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
rec([{"seq": s, "ts": s / 1000, **wait} for s in range(401, 411)])
rec.close()
"""


def test_a_failed_write_to_our_own_stdout_cuts_back_only_itself(tmp_path: Path) -> None:
    """`--record /dev/stdout >> run.jsonl` on a full disk: the cut-back went to the
    recorder's own byte count, and took 337 of 400 lines written before with it, leaving a
    half line."""
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"".join(b'{"before": %d}\n' % i for i in range(400)))
    run = subprocess.run([sys.executable, "-c", _FILL_STDOUT_PAST_A_SIZE_LIMIT, str(path)],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-800:]
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]  # no half line
    assert lines[:400] == [{"before": i} for i in range(400)]
    seqs = [line["seq"] for line in lines[400:]]
    assert seqs[:2] == [0, 1] and seqs[-1] == 410 and len(seqs) < 411


def test_a_recording_deleted_under_the_recorder_is_made_anew_and_no_segment_is_lost(
        tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=0.001)
    rec.write_snapshot(START_STATE, 0, 5.0)
    for seq in range(1, 120):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    segments_before = sorted(p.name for p in tmp_path.iterdir())
    assert "r.jsonl.2" in segments_before
    path.unlink()
    for seq in range(120, 122):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    rec.close()
    for name in segments_before:  # the rotated ones are untouched: none was pushed out
        if name != "r.jsonl":
            assert (tmp_path / name).exists(), name
    lines = lines_of(path)
    assert lines[0]["type"] == "snapshot" and lines[0]["state"] == START_STATE
    assert [e["seq"] for e in lines[1:]] == [120, 121] and lines[0]["seq"] == 119


def test_a_recording_deleted_under_the_recorder_starts_again_with_the_state_now(
        tmp_path: Path) -> None:
    """The new file started with the snapshot of the *start* (no connections) while 20 were
    open: replayed, it showed none. It now starts with a fresh capture, and the events that
    capture already holds are not written after it."""
    path = tmp_path / "r.jsonl"
    captures: list[int] = []

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        captures.append(103)  # the engine is a little ahead of the recorder
        future.set_result(FakeCapture(103, {"connections": [{"fd": 7}]}))
        return future

    rec = JsonlRecorder(path, snapshot_source=source)
    rec.write_snapshot(START_STATE, 0, 5.0)
    rec([wait_event(seq) for seq in range(1, 100)])
    path.unlink()
    rec([wait_event(seq) for seq in range(100, 106)])
    rec.close()
    lines = lines_of(path)
    assert captures == [103]
    assert lines[0] == {"type": "snapshot", "state": {"connections": [{"fd": 7}]}, "seq": 103,
                        "started_at": 5.0}
    assert [e["seq"] for e in lines[1:]] == [104, 105]


def test_a_recording_far_behind_the_engine_rotates_at_the_limit_leaving_the_lag_out(
        tmp_path: Path) -> None:
    """In a readiness storm the pump ran tens of thousands of events behind the engine, and a
    full file went on taking every one up to the capture's seq: files of 7.7-9.6 MB at a 1 MB
    limit. Now a lag of more than a pump batch is left out (the capture holds its effect),
    said in the log, and seen as a seq gap between the files."""
    path = tmp_path / "r.jsonl"
    far_ahead = 1_000_000

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(far_ahead, {"fresh": True}))
        return future

    rec = JsonlRecorder(path, max_mb=1, snapshot_source=source)
    rec.write_snapshot(START_STATE, 0, 0.0)
    seq = 0
    while not path.with_name("r.jsonl.1").exists():
        rec([wait_event(s) for s in range(seq + 1, seq + 1001)])
        seq += 1000
        assert seq < far_ahead, "never rotated"
    rec([wait_event(s) for s in range(seq + 1, seq + 1001)])  # still behind: left out
    rec([wait_event(far_ahead + 1)])
    rec.close()
    old, new = lines_of(path.with_name("r.jsonl.1")), lines_of(path)
    assert path.with_name("r.jsonl.1").stat().st_size < 2**20 + 1000
    assert old[-1]["seq"] < far_ahead and new[0]["seq"] == far_ahead
    assert [e["seq"] for e in new[1:]] == [far_ahead + 1]
    # counted where a monitor sees it (muxscope_record_lost_events_total): it counted none
    assert RecorderThread(rec).lost == rec.left_out_total == far_ahead - old[-1]["seq"]


def test_a_lag_is_never_left_out_of_a_file_that_could_not_rotate(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Far behind, and the old files could not be moved (a FILE.5 in the way): the lag was
    left out of the same file, which went on without a snapshot to hold it (811 events gone
    mid-file, and the log said 0 were lost)."""
    path = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.5").mkdir()
    (tmp_path / "r.jsonl.5" / "in-the-way").write_text("x")
    (tmp_path / "r.jsonl.4").write_text("old\n")
    delivered = [0]

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(delivered[0] + 30_000, {"fresh": True}))
        return future

    rec = JsonlRecorder(path, max_mb=1, snapshot_source=source)
    rec.write_snapshot(START_STATE, 0, 0.0)
    with caplog.at_level(logging.WARNING, logger="app.record"):
        for first in range(1, 15_001, 1000):
            rec([wait_event(s) for s in range(first, first + 1000)])
            delivered[0] = first + 999
    rec.close()
    seqs = [e["seq"] for e in lines_of(path)[1:]]
    assert seqs == list(range(1, 15_001)), "events were left out"
    assert "cannot rotate" in caplog.text and "left out" not in caplog.text


def test_every_segment_dropped_is_counted_in_the_log_by_the_end(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The drops of old segments are said at most once a minute: ~42 were dropped in a 15 s
    storm and the log said one, since the count rode on a next message that never came."""
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=0.001)
    with caplog.at_level(logging.WARNING, logger="app.record"):
        rec.write_snapshot(START_STATE, 0, 0.0)
        for seq in range(1, 400):
            rec([wait_event(seq)])
        rec.close()
    said = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    more = sum(int(m.rsplit("(and ", 1)[1].split()[0]) for m in said if "(and " in m)
    rotated_away = max(int(p.suffix[1:]) for p in tmp_path.glob("r.jsonl.*"))
    assert rotated_away == 5 and len(said) == 2 and len(said) + more > 10, said


def test_a_rotation_that_cannot_move_the_files_says_no_segment_was_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder: the log said "dropping the oldest segment FILE.5", then "cannot
    rotate", and FILE.5 was still there, unchanged."""
    path = tmp_path / "r.jsonl"
    for i in range(1, 6):
        path.with_name(f"r.jsonl.{i}").write_bytes(b"old %d\n" % i)

    def refused(self: Path, target: Any) -> Path:
        raise PermissionError(13, "Permission denied", str(self))

    rec = JsonlRecorder(path, max_mb=0.001)
    monkeypatch.setattr(Path, "replace", refused)
    with caplog.at_level(logging.WARNING, logger="app.record"):
        rec.write_snapshot(START_STATE, 0, 0.0)
        for seq in range(1, 40):
            rec([wait_event(seq)])
        rec.close()
    assert "cannot rotate" in caplog.text
    assert "dropped the oldest" not in caplog.text and "dropping" not in caplog.text
    assert path.with_name("r.jsonl.5").read_bytes() == b"old 5\n"


def test_a_snapshot_larger_than_the_limit_does_not_rotate_every_batch(tmp_path: Path) -> None:
    """With 6,000 connections the snapshot line alone (1.2 MB) passed a 1 MB limit: the file
    rotated on every batch, 180 times in 15 s, each holding a snapshot and a few events. The
    limit is on a file's events; its snapshot comes on top."""
    path = tmp_path / "r.jsonl"
    big = {**START_STATE, "connections": [{"fd": fd, "peer": "127.0.0.1:1"}
                                          for fd in range(100)]}  # ~3 KB
    rec = JsonlRecorder(path, max_mb=0.002)  # ~2 KB
    rec.write_snapshot(big, 0, 0.0)
    for seq in range(1, 11):
        rec([wait_event(seq)])  # ~1.3 KB of events in all
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    assert len(lines_of(path)) == 11


def test_recording_to_a_pipe_never_renames_it(tmp_path: Path) -> None:
    """Only a regular file rotates: `--record /dev/null` (here a FIFO) is never renamed."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = bytearray()

    def drain() -> None:
        with open(fifo, "rb") as f:
            while chunk := f.read(65536):
                got.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    rec = JsonlRecorder(fifo, max_mb=0.001)
    rec.write_snapshot(START_STATE, 0, 5.0)
    for seq in range(1, 100):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    rec.close()
    reader.join(5)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(tmp_path.iterdir()) == [fifo]
    assert got.count(b"\n") == 100  # the snapshot and 99 events, in one stream


def test_a_rotation_that_cannot_move_the_old_files_keeps_the_full_file(tmp_path: Path) -> None:
    """Renames refused (here FILE.4 cannot replace a non-empty FILE.5): the rotation used to
    open FILE anew anyway, truncating the full segment it had not moved, and say 0 lost."""
    path = tmp_path / "t.jsonl"
    for n in (4, 5):
        (tmp_path / f"t.jsonl.{n}").mkdir()
        (tmp_path / f"t.jsonl.{n}" / "in-the-way").write_text("x")
    rec = JsonlRecorder(path, max_mb=0.001)
    rec.write_snapshot(START_STATE, 0, 5.0)
    for seq in range(1, 60):
        rec([wait_event(seq)])
    rec.close()
    lines = lines_of(path)
    assert lines[0]["type"] == "snapshot"
    assert [e["seq"] for e in lines[1:]] == list(range(1, 60)), "events were lost"


def test_replay_totals_start_from_the_snapshots_own():
    """A rotated segment starts mid-run: its stats frames gave `events_total` for the whole
    run but bytes and waits of the segment alone, and never the UDP counts."""
    from app.replay import recorded_totals

    state = {"stats": {"bytes_in": 1000, "bytes_out": 990, "waits": 50},
             "connections": [{"fd": 7}],
             "listeners": {"udp": {"fd": 5, "port": 9000, "received": 3, "echoed": 3,
                                   "dropped": 1}}}
    events = [{"seq": 1, "ts": 0.1, "kind": "wait"},
              {"seq": 2, "ts": 0.1, "kind": "recv", "fd": 7, "bytes": 10},
              {"seq": 3, "ts": 0.1, "kind": "send", "fd": 7, "bytes": 20},
              {"seq": 4, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "in", "bytes": 4},
              {"seq": 5, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "out", "bytes": 4}]
    assert recorded_totals(state, events) == {
        "connections": 1, "bytes_in": 1010, "bytes_out": 1010, "waits": 51,
        "udp": {"received": 4, "from_self": 0, "echoed": 4, "dropped": 1}}


def test_replay_totals_count_no_misdirected_reply_as_echoed():
    """The bug zoo's udp_wrong_address sends the reply to the server itself: live counts no
    echo for it, a replay counted every outgoing datagram."""
    from app.replay import recorded_totals

    state = {"listeners": {"udp": {"fd": 5, "port": 9000, "received": 0, "echoed": 0,
                                   "dropped": 0}}}
    events = [{"seq": 1, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "in", "bytes": 4},
              {"seq": 2, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "out", "bytes": 4,
               "misdirected": True},
              {"seq": 3, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "in", "bytes": 4,
               "from_self": True}]
    assert recorded_totals(state, events)["udp"] == {"received": 2, "from_self": 1, "echoed": 0,
                                                     "dropped": 0}


def test_replay_totals_take_the_kernels_drops_from_their_events():
    """Kernel drops had no event: a replay of a burst said 0 dropped."""
    from app.replay import recorded_totals

    state = {"listeners": {"udp": {"fd": 5, "port": 9000, "received": 0, "echoed": 0,
                                   "dropped": 2}}}
    events = [{"seq": 1, "ts": 0.1, "kind": "error", "fd": 5, "cause": "udp",
               "message": "udp: the kernel dropped 700 datagrams (...): 702 in all",
               "udp_dropped": 702},
              {"seq": 2, "ts": 0.1, "kind": "datagram", "fd": 5, "dir": "in", "bytes": 4}]
    assert recorded_totals(state, events)["udp"] == {"received": 1, "from_self": 0, "echoed": 0,
                                                     "dropped": 702}


def test_replay_totals_of_a_download_count_the_connections_its_events_show():
    """A trace download has no snapshot: the connections open before its first event show
    only in their own events. Its replay's stats said 0 connections beside a page of 50."""
    from app.replay import recorded_totals

    state = {"loop": "running", "connections": []}  # what a file without a snapshot line gets
    events = [{"seq": 10, "ts": 0.1, "kind": "recv", "fd": 7, "bytes": 3},
              {"seq": 11, "ts": 0.1, "kind": "send", "fd": 8, "bytes": 3},
              {"seq": 12, "ts": 0.1, "kind": "queue", "fd": 9, "depth": 0, "pending_bytes": 0},
              {"seq": 13, "ts": 0.1, "kind": "close", "fd": 9, "reason": "eof"}]
    assert recorded_totals(state, events, by_events=True)["connections"] == 2
    # with a snapshot, its connections and the accepts count, not every fd an event names
    assert recorded_totals(state, events)["connections"] == 0


def test_a_downloads_replay_counts_the_connections_its_events_show(tmp_path: Path) -> None:
    """A trace download has no snapshot line, and every loaded state has `connections: []`:
    the check for "no snapshot" never held outside a unit test, and the replay's /metrics said
    0 connections beside a page of 3."""
    path = tmp_path / "trace.jsonl"
    lines = [{"seq": s, "ts": s / 100, "kind": "recv", "fd": fd, "bytes": 3, "preview": "hi\\n"}
             for s, fd in ((11, 7), (12, 8), (13, 9))]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with replay_server(path) as base:
        text = httpx.get(base + "/metrics").text
    assert "muxscope_connections 3.0" in text, [ln for ln in text.splitlines()
                                                if "connections" in ln]


def test_events_a_stalled_writer_left_out_are_not_counted_again_at_the_next_rotation(
        tmp_path: Path) -> None:
    """A writer stalled while the file was full: the batches its queue could not take were
    counted as left out, and the rotation that followed, far behind the engine, counted them
    again in its lag (63,156 reported for a gap of 33,156 events)."""
    path = tmp_path / "r.jsonl"
    engine_seq = [0]

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(engine_seq[0], {"fresh": True}))
        return future

    def batch(n: int) -> list[dict[str, Any]]:
        first = engine_seq[0] + 1
        engine_seq[0] += n
        return [wait_event(s) for s in range(first, engine_seq[0] + 1)]

    rec = JsonlRecorder(path, max_mb=1, snapshot_source=source)
    rec.write_snapshot(START_STATE, 0, 0.0)
    while rec._events_bytes() < 2**20 - 150_000:  # nearly full, written directly
        rec(batch(1000))
    thread = RecorderThread(rec, max_queued=2)
    stalled = threading.Event()
    thread._put(stalled.wait, 0)  # the writer stalls (a slow disk)
    wait_until(lambda: thread.backlog == 0, 5, "the writer stalled")
    thread(batch(3000))  # queued: fills the file
    thread(batch(1000))  # queued
    for _ in range(30):  # left out: the queue is full
        thread(batch(1000))
    stalled.set()
    thread.close()
    files = segments(path)
    written = [e["seq"] for p in files for e in lines_of(p) if "kind" in e]
    snapshot = lines_of(path)[0]["seq"]
    gap = snapshot - max(s for s in written if s < snapshot)
    assert rec.left_out_total > 0  # the rotation left a lag out
    assert thread.lost == gap, (thread.lost, gap)
