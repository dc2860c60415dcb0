"""`muxscope replay` edges the other replay tests leave open: seq order inside a file, the
counts of a recording of more than one events frame, a snapshot-only segment."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

import app.replay as replay_module
from app.main import create_app
from app.recording import load_recording, read_recording
from app.replay import FRAME_EVENTS, build_replay_state, recorded_totals
from app.settings import Settings
from tests.conftest import run_asgi

START_STATE = {"listeners": {"tcp": {"fd": 3, "port": 9000}, "udp": None}, "connections": [],
               "loop": "running"}
WAIT = {"backend": "epoll", "registered": 3, "timeout_ms": None, "ready": 0, "duration_us": 250}


def wait_event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": 0.001 * seq, "kind": "wait", **WAIT}


def snapshot(seq: int) -> dict[str, Any]:
    return {"type": "snapshot", "state": START_STATE, "seq": seq, "started_at": 1.0}


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_two_segments_joined_across_a_gap_are_refused_even_without_events_between(
        tmp_path: Path) -> None:
    """A segment of its snapshot alone (begun at shutdown) joined with the next one, whose
    snapshot comes after a lag left out: the second state would be lost on the page."""
    path = write(tmp_path / "joined.jsonl", [snapshot(10), snapshot(50), wait_event(51)])
    with pytest.raises(ValueError, match=r"joined.jsonl:2: a snapshot at seq 50 after seq 10"):
        load_recording(path)


def test_a_snapshot_one_seq_past_the_event_before_it_is_a_gap(tmp_path: Path) -> None:
    path = write(tmp_path / "joined.jsonl",
                 [snapshot(0), wait_event(1), wait_event(2), snapshot(3), wait_event(4)])
    with pytest.raises(ValueError, match=r"joined.jsonl:4: a snapshot at seq 3 after seq 2"):
        load_recording(path)
    same = write(tmp_path / "rotated.jsonl",
                 [snapshot(0), wait_event(1), wait_event(2), snapshot(2), wait_event(3)])
    _, events = load_recording(same)  # where a rotation writes it: joined fine
    assert [e["seq"] for e in events] == [1, 2, 3]


@pytest.mark.parametrize("lines", [
    [snapshot(10), wait_event(11), wait_event(11)],  # an event twice
    [snapshot(10), wait_event(10)],  # an event the snapshot already holds
], ids=["twice", "at-the-snapshots-seq"])
def test_an_event_that_repeats_a_seq_is_refused(tmp_path: Path,
                                                lines: list[dict[str, Any]]) -> None:
    path = write(tmp_path / "r.jsonl", lines)
    with pytest.raises(ValueError, match=r"r.jsonl:\d: seq \d+ after seq \d+"):
        load_recording(path)


def test_the_dropped_total_adds_up_the_gaps_of_every_frame(tmp_path: Path) -> None:
    """More events than one frame holds, with gaps in each frame: the stats frame's
    `dropped_total` is the sum of every frame's `dropped`, as live."""
    seqs = [s for s in range(11, 11 + 3 * FRAME_EVENTS) if s % 100 != 0]  # a gap every 100
    path = write(tmp_path / "r.jsonl", [snapshot(10), *(wait_event(s) for s in seqs)])
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base, \
            ws_connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
        frames = []
        while (frame := json.loads(ws.recv(timeout=5)))["type"] != "stats":
            frames.append(frame)
    assert len(frames) >= 2 and all(f["dropped"] > 0 for f in frames)
    gaps = seqs[-1] - 10 - len(seqs)
    assert sum(f["dropped"] for f in frames) == gaps == frame["dropped_total"] > 0


def test_a_segment_of_its_snapshot_alone_counts_the_runs_events(tmp_path: Path) -> None:
    """The file begun at shutdown may hold only its snapshot: its /metrics counts the run's
    events up to that snapshot's seq, as the stats frames do."""
    path = write(tmp_path / "r.jsonl", [snapshot(500)])
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base:
        text = httpx.get(base + "/metrics", timeout=10).text
        state = httpx.get(base + "/api/state", timeout=10).json()
    assert "muxscope_engine_events_total 500.0" in text.splitlines(), [
        line for line in text.splitlines() if "engine_events" in line]
    assert state["loop"] == "paused"  # nothing runs in a replay, whatever was recorded


def test_a_download_counts_a_connection_only_its_queue_events_show() -> None:
    state: dict[str, Any] = {"loop": "running", "connections": []}
    events = [{"seq": 10, "ts": 0.1, "kind": "queue", "fd": 9, "depth": 1,
               "pending_bytes": 5}]
    assert recorded_totals(state, events, by_events=True)["connections"] == 1


def test_a_recording_an_editor_saved_with_a_bom_replays(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [snapshot(10), wait_event(11)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    first, events = load_recording(path)
    assert first["seq"] == 10 and [e["seq"] for e in events] == [11]


def test_a_download_that_begins_at_a_breakpoints_hit_replays_from_a_running_loop(
        tmp_path: Path) -> None:
    """A breakpoint is hit by a running loop: the file's state before it is `running`."""
    path = write(tmp_path / "trace.jsonl", [
        wait_event(11),
        {"seq": 12, "ts": 0.02, "kind": "loop", "state": "paused", "cause": "breakpoint",
         "breakpoint": 1},
    ])
    first, _ = load_recording(path)
    assert first["state"]["loop"] == "running"


def test_a_segments_echo_arrows_count_from_its_snapshots_bytes(tmp_path: Path) -> None:
    """fd 7 had received 100 bytes and sent 90 when the segment began (10 still queued): the
    next recv's bytes are echoed by the second send, not by the first (which sends the 10)."""
    conn = {"fd": 7, "peer": "127.0.0.1:5", "bytes_in": 100, "bytes_out": 90}
    path = write(tmp_path / "r.jsonl", [
        {**snapshot(10), "state": {**START_STATE, "connections": [conn]}},
        {"seq": 11, "ts": 1.0, "kind": "recv", "fd": 7, "bytes": 5, "preview": "hello"},
        {"seq": 12, "ts": 2.0, "kind": "send", "fd": 7, "bytes": 10, "partial": False},
        {"seq": 13, "ts": 3.0, "kind": "send", "fd": 7, "bytes": 5, "partial": False},
    ])
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base:
        trace = httpx.get(base + "/api/trace", params={"format": "chrome"}, timeout=10).json()
    sends = sorted(e["ts"] for e in trace["traceEvents"]
                   if e.get("ph") == "X" and e.get("name") == "send")
    ends = [e["ts"] for e in trace["traceEvents"] if e.get("ph") == "f"]
    assert len(sends) == 2 and ends == [sends[1]], (sends, ends)


def test_the_replays_snapshot_frame_says_it_is_a_replay(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [snapshot(10), wait_event(11)])
    with run_asgi(create_app(Settings(http_port=0, replay_file=path))) as base, \
            ws_connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["type"] == "snapshot" and first["replay"] is True and first["seq"] == 10


def test_events_of_an_unknown_kind_replay_and_are_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A kind this muxscope does not know (a newer one's, an edit) was replayed without a
    word, while a known kind's missing field is refused (a black-box review, session 45)."""
    teleport = {"seq": 12, "ts": 0.012, "kind": "teleport", "fd": 3}
    path = write(tmp_path / "r.jsonl", [snapshot(10), wait_event(11), teleport, wait_event(13),
                                        {**teleport, "seq": 14}])
    _, events = load_recording(path)
    assert [e["kind"] for e in events] == ["wait", "teleport", "wait", "teleport"]
    assert "2 event(s) of a kind this muxscope does not know ('teleport' ×2)" in caplog.text
    caplog.clear()
    load_recording(write(tmp_path / "known.jsonl", [snapshot(10), wait_event(11)]))
    assert "does not know" not in caplog.text


def test_replay_reads_a_recording_a_chunk_at_a_time(tmp_path: Path) -> None:
    """The events are handed on as they are read, never all at once: a list of every parsed
    event held ~0.6 KB an event (1.3 GB at the bound). A bad line after 1,000 good ones
    finds ten full chunks already handed on."""
    lines = [snapshot(10), *(wait_event(s) for s in range(11, 1011))]
    path = write(tmp_path / "r.jsonl", lines)
    path.write_bytes(path.read_bytes() + b"[not json\n")
    chunks: list[int] = []
    with pytest.raises(ValueError, match=r"r.jsonl:1002: not JSON"):
        read_recording(path, lambda events: chunks.append(len(events)), chunk_events=100)
    assert chunks == [100] * 10


def test_loading_a_replay_holds_little_more_than_what_it_keeps(tmp_path: Path) -> None:
    """Loading 60,000 events (a 7.7 MiB file) needs ~3 MiB more than the encoded events it
    keeps (Python's own allocations, tracemalloc): one chunk of parsed events. Parsed into
    one list first, it needed ~25 MiB more (3.3 times the file's size)."""
    path = write(tmp_path / "r.jsonl", [snapshot(10), *(wait_event(s) for s in range(11, 60_011))])
    size = path.stat().st_size
    tracemalloc.start()
    try:
        state = build_replay_state(Settings(http_port=0, replay_file=path))
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert state["replay_summary"] == {"events": 60_000, "last_seq": 60_010}
    assert len(state["trace"]) == 60_000
    assert peak - kept < size / 2, (
        f"loading peaked {(peak - kept) / 2**20:.1f} MiB over the {kept / 2**20:.1f} MiB it "
        f"keeps, for a {size / 2**20:.1f} MiB file")


def test_reading_a_large_recording_says_how_far_it_has_got(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A large file takes seconds to read before the dashboard's URL is printed: its reading
    is said on stderr as it goes (here every chunk, with the thresholds at zero), then its
    end. A small file says nothing."""
    path = write(tmp_path / "r.jsonl", [snapshot(10), *(wait_event(s) for s in range(11, 20_011))])
    build_replay_state(Settings(http_port=0, replay_file=path))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(replay_module, "PROGRESS_FROM_BYTES", 0)
    monkeypatch.setattr(replay_module, "PROGRESS_EVERY_S", 0.0)
    build_replay_state(Settings(http_port=0, replay_file=path))
    lines = capsys.readouterr().err.splitlines()
    said = [re.fullmatch(rf"muxscope replay: {re.escape(str(path))}: (\d+)% read \(([\d,]+) "
                         r"events, 0 s\)", line) for line in lines[:2]]
    assert all(said), lines
    assert [m[2] for m in said if m] == ["8,192", "16,384"]  # a chunk, two chunks
    assert [int(m[1]) for m in said if m] == [pytest.approx(41, abs=1), pytest.approx(82, abs=1)]
    assert lines[2].startswith(f"muxscope replay: {path}: 20,000 events read in ")
    assert len(lines) == 3


def test_an_unknown_kinds_fd_of_any_type_is_replayed(tmp_path: Path) -> None:
    """An unknown kind passes with any fields: a list for an fd made the reader's look for
    the write strategy raise TypeError (not a ValueError: no "not a recording" line), in a
    file the reader read before (the code review)."""
    odd = {"seq": 1, "ts": 0.0, "kind": "mystery", "fd": [1]}
    recv = {"seq": 2, "ts": 0.002, "kind": "recv", "fd": 7, "bytes": 3, "preview": "hi\n"}
    for lines in ([odd, wait_event(2), snapshot(2), wait_event(3)],
                  [odd, recv, {"seq": 3, "ts": 0.003, "kind": "send", "fd": 7, "bytes": 3,
                               "partial": False}]):
        first, events = load_recording(write(tmp_path / "r.jsonl", lines))
        assert [e["seq"] for e in events] == [e["seq"] for e in lines if "kind" in e]
    assert first["state"]["backend"]["write"] == "eager"  # the file without a snapshot
