"""`--record` edges the other recorder tests leave open: a file filled to its limit exactly,
a file put at the path after ours was deleted, what each rotated file holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import pytest

import app.record
from app.record import JsonlRecorder
from tests.app.test_replay import START_STATE, FakeCapture

ROOT = Path(__file__).resolve().parents[2]


def wait_event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "ts": 0.5, "kind": "wait", "backend": "epoll", "registered": 3,
            "timeout_ms": None, "ready": 0, "duration_us": 250}


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_a_file_takes_events_up_to_its_limit_exactly(tmp_path: Path) -> None:
    """The limit bounds a file's events: events that make it exactly full still belong in it;
    only the one past the limit starts the next file."""
    line = len(orjson.dumps(wait_event(100)) + b"\n")  # seqs 100..999: lines of one length
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=5 * line / 2**20)  # exactly five events' bytes
    rec.write_snapshot(START_STATE, 99, 1.0)
    rec([wait_event(100)])  # (a file's first batch goes in whole: nothing to rotate yet)
    rec([wait_event(seq) for seq in range(101, 106)])  # the sixth is past the limit
    rec.close()
    full, new = lines_of(path.with_name("r.jsonl.1")), lines_of(path)
    assert [e["seq"] for e in full[1:]] == [100, 101, 102, 103, 104]
    assert path.with_name("r.jsonl.1").stat().st_size == len(
        orjson.dumps(full[0]) + b"\n") + 5 * line
    assert new[0]["type"] == "snapshot" and new[0]["seq"] == 104
    assert [e["seq"] for e in new[1:]] == [105]


def test_a_batch_that_fills_a_file_exactly_does_not_rotate_it(tmp_path: Path) -> None:
    line = len(orjson.dumps(wait_event(100)) + b"\n")
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=5 * line / 2**20)
    rec.write_snapshot(START_STATE, 99, 1.0)
    rec([wait_event(100)])
    rec([wait_event(seq) for seq in range(101, 105)])  # five in all: full, not past it
    assert not path.with_name("r.jsonl.1").exists()
    rec([wait_event(105)])
    rec.close()
    assert [e["seq"] for e in lines_of(path.with_name("r.jsonl.1"))[1:]] == [
        100, 101, 102, 103, 104]
    assert [e["seq"] for e in lines_of(path)[1:]] == [105]


def test_a_first_batch_larger_than_the_limit_goes_in_whole(tmp_path: Path) -> None:
    """A file with no event yet is not rotated, however large the batch: rotating it would
    make a segment of a snapshot alone (and push an older one out)."""
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=0.001)  # ~1 KB
    rec.write_snapshot(START_STATE, 0, 1.0)
    rec([wait_event(seq) for seq in range(1, 51)])  # ~7 KB
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    assert [e["seq"] for e in lines_of(path)[1:]] == list(range(1, 51))


def _failed(rec: JsonlRecorder) -> Future[FakeCapture]:
    future: Future[FakeCapture] = Future()
    future.set_exception(RuntimeError("engine stopped"))
    return future


def _fresh(rec: JsonlRecorder) -> Future[FakeCapture]:
    future: Future[FakeCapture] = Future()
    future.set_result(FakeCapture(rec._last_seq, {"fresh": True}))
    return future


def _filled_until_asked(rec: JsonlRecorder, asked: list[int]) -> int:
    """Start `rec` (at a tiny limit) and feed it one event a batch until its source was
    asked for a capture; the last seq fed."""
    rec.write_snapshot(START_STATE, 0, 1.0)
    seq = 0
    while not asked:
        seq += 1
        assert seq < 100, "never full"
        rec([wait_event(seq)])
    return seq


def _fed_until_asked_again(path: Path, answer: Callable[[JsonlRecorder], Future[FakeCapture]],
                           after_start: Callable[[], object] = lambda: None) -> int:
    """A recorder at a tiny limit, fed one event a batch until it asked its source for a
    capture twice; the second ask must have waited for the retry time (0.5 s in these
    tests). Returns the last seq fed."""
    asked: list[float] = []
    rec: JsonlRecorder

    def source() -> Future[FakeCapture]:
        asked.append(time.monotonic())
        return answer(rec)

    rec = JsonlRecorder(path, max_mb=0.001, snapshot_source=source)
    rec.write_snapshot(START_STATE, 0, 1.0)
    after_start()
    seq = 0
    deadline = time.monotonic() + 5
    while len(asked) < 2:
        assert time.monotonic() < deadline, "never asked again"
        seq += 1
        rec([wait_event(seq)])
    rec.close()
    assert asked[1] - asked[0] >= 0.5, asked
    return seq


def test_a_capture_that_failed_is_asked_again_only_after_the_retry_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log says "tried again in 60 s": the engine is not asked for a capture on every
    batch (every 30 ms) while it cannot give one; once the retry time is past, it is."""
    monkeypatch.setattr(app.record, "ROTATE_RETRY", 0.5)
    path = tmp_path / "r.jsonl"
    seq = _fed_until_asked_again(path, _failed)
    assert [e["seq"] for e in lines_of(path)[1:]] == list(range(1, seq + 1))


def test_a_file_put_at_the_path_after_ours_was_deleted_is_kept_whole(tmp_path: Path) -> None:
    """Our file deleted, and someone else's put at its name (a copy back, another tool): the
    recorder makes its file anew, and the one it found there moves to FILE.1, never truncated."""
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path)
    rec.write_snapshot(START_STATE, 0, 1.0)
    rec([wait_event(seq) for seq in range(1, 4)])
    path.unlink()
    theirs = b"someone else's file\n"
    path.write_bytes(theirs)
    rec([wait_event(seq) for seq in range(4, 6)])
    rec.close()
    assert path.with_name("r.jsonl.1").read_bytes() == theirs
    lines = lines_of(path)
    assert lines[0]["type"] == "snapshot" and lines[0]["seq"] == 3
    assert [e["seq"] for e in lines[1:]] == [4, 5]


def _lagging_recorder(path: Path, ahead: int) -> JsonlRecorder:
    """A recorder whose engine, when asked at the limit, is `ahead` events past what the
    recorder has written (the full file's last event) by then."""
    rec: JsonlRecorder

    def source() -> Future[FakeCapture]:
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(rec._last_seq + ahead, {"fresh": True}))
        return future

    rec = JsonlRecorder(path, max_mb=0.01, snapshot_source=source)  # ~75 events a file
    rec.write_snapshot(START_STATE, 0, 1.0)
    rec([wait_event(1)])
    return rec


def test_a_lag_of_one_pump_batch_is_written_not_left_out(tmp_path: Path) -> None:
    """Up to a pump batch (MAX_LAG_EVENTS) behind the engine is normal: the full file takes
    those events, and no seq gap is left between the files."""
    path = tmp_path / "r.jsonl"
    rec = _lagging_recorder(path, app.record.MAX_LAG_EVENTS)
    rec([wait_event(seq) for seq in range(2, app.record.MAX_LAG_EVENTS + 200)])
    rec.close()
    old, new = lines_of(path.with_name("r.jsonl.1")), lines_of(path)
    assert rec.left_out_total == 0
    assert [e["seq"] for e in old[1:]] == list(range(1, old[-1]["seq"] + 1))
    assert new[0]["type"] == "snapshot" and new[0]["seq"] == old[-1]["seq"]
    assert [e["seq"] for e in new[1:]] == list(range(new[0]["seq"] + 1,
                                                     app.record.MAX_LAG_EVENTS + 200))


def test_a_lag_left_out_never_repeats_the_snapshots_own_seq(tmp_path: Path) -> None:
    """Far behind: the new file starts with the capture at seq S and takes the events after
    S only (an event S after the snapshot S: replay refuses the file as going back)."""
    from app.recording import load_recording

    path = tmp_path / "r.jsonl"
    rec = _lagging_recorder(path, app.record.MAX_LAG_EVENTS + 10)
    last = 2 * app.record.MAX_LAG_EVENTS
    rec([wait_event(seq) for seq in range(2, last + 1)])
    rec.close()
    snapshot, events = load_recording(path)
    assert rec.left_out_total > 0
    assert [e["seq"] for e in events] == list(range(snapshot["seq"] + 1, last + 1))


def test_a_file_that_reaches_the_captures_seq_rotates_at_once(tmp_path: Path) -> None:
    """The full file holds every event up to the capture's seq: it rotates at once, not when
    a later event comes (an idle engine may send none before the run ends)."""
    path = tmp_path / "r.jsonl"
    asked: list[int] = []
    rec: JsonlRecorder

    def source() -> Future[FakeCapture]:
        asked.append(rec._last_seq + 1)  # the engine is the one event of this batch ahead
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(asked[-1], {"fresh": True}))
        return future

    rec = JsonlRecorder(path, max_mb=0.001, snapshot_source=source)
    seq = _filled_until_asked(rec, asked)
    assert path.with_name("r.jsonl.1").exists(), "the full file waited for a later event"
    assert lines_of(path) == [{"type": "snapshot", "state": {"fresh": True}, "seq": seq,
                               "started_at": 1.0}]
    # the new file holds no event yet: a batch past its limit goes in whole (rotated, it
    # would leave a segment of its snapshot alone)
    rec([wait_event(s) for s in range(seq + 1, seq + 51)])
    rec.close()
    assert lines_of(path.with_name("r.jsonl.1"))[-1]["seq"] == seq == asked[0]
    assert not path.with_name("r.jsonl.2").exists()
    assert [e["seq"] for e in lines_of(path)[1:]] == list(range(seq + 1, seq + 51))


_APPEND_ON_A_FULL_DISK = """
import os, resource, sys
from app.record import JsonlRecorder

fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)  # the shell's `>>`
rec = JsonlRecorder(f"/proc/self/fd/{fd}")
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.fstat(fd).st_size, hard))  # full already
rec.write_snapshot({}, 0, 1.0)
rec([{"seq": 1, "ts": 0.0, "kind": "wait"}])
rec.close()
"""


def test_a_first_write_that_fails_on_our_own_appended_stdout_keeps_what_was_there(
        tmp_path: Path) -> None:
    """`--record /dev/stdout >> run.jsonl` on a disk already full: the cut-back of the first
    failed write goes to the end of the file (where an append lands), not to the fd's offset
    (0 before any write), which would empty the file."""
    path = tmp_path / "run.jsonl"
    before = b"".join(b'{"before": %d}\n' % i for i in range(100))
    path.write_bytes(before)
    run = subprocess.run([sys.executable, "-c", _APPEND_ON_A_FULL_DISK, str(path)],
                         capture_output=True, text=True, timeout=30, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-800:]
    assert "cannot write" in run.stderr
    assert path.read_bytes() == before


def test_a_rotation_refused_is_tried_again_only_after_the_retry_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renames refused (a FILE.5 folder in the way): the full file goes on, and the next try
    (a capture of the engine, a staging file, the renames) waits for the retry time instead of
    coming at every batch."""
    monkeypatch.setattr(app.record, "ROTATE_RETRY", 0.5)
    path = tmp_path / "r.jsonl"
    for n in (4, 5):
        (tmp_path / f"r.jsonl.{n}").mkdir()
        (tmp_path / f"r.jsonl.{n}" / "in-the-way").write_text("x")
    seq = _fed_until_asked_again(path, _fresh)
    assert [e["seq"] for e in lines_of(path)[1:]] == list(range(1, seq + 1))
    assert not list(tmp_path.glob(".r.jsonl.*")), "a staging file was left behind"


def test_an_empty_file_at_the_path_is_not_kept_as_a_segment(tmp_path: Path) -> None:
    """`touch run.jsonl` before the run: an empty file holds no recording to keep, so it does
    not become FILE.1 (which would push the earlier segments along, and the oldest out)."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")
    path.with_name("r.jsonl.1").write_bytes(b"the earlier run\n")
    rec = JsonlRecorder(path)
    rec.write_snapshot(START_STATE, 0, 1.0)
    rec([wait_event(1)])
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.1"]
    assert path.with_name("r.jsonl.1").read_bytes() == b"the earlier run\n"
    assert [e.get("seq") for e in lines_of(path)] == [0, 1]


def test_a_new_file_that_cannot_be_made_is_tried_again_only_after_the_retry_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recording's folder gone at the limit (an unmount): no next file can be made, the
    full one goes on, and the next try waits for the retry time."""
    monkeypatch.setattr(app.record, "ROTATE_RETRY", 0.5)
    folder = tmp_path / "rec"
    folder.mkdir()
    path = folder / "r.jsonl"
    seq = _fed_until_asked_again(path, _fresh, lambda: folder.rename(tmp_path / "away"))
    assert [e["seq"] for e in lines_of(tmp_path / "away" / "r.jsonl")[1:]] == list(
        range(1, seq + 1))


def test_a_file_deleted_at_its_rotation_pushes_no_segment_along(tmp_path: Path) -> None:
    """FILE removed just as it fills (here while the engine is asked for the capture): the
    rotation starts the next file, and FILE.1 (an earlier segment) stays where it is; moving
    it along for a FILE that is not there would drop the oldest for nothing."""
    path = tmp_path / "r.jsonl"
    path.with_name("r.jsonl.1").write_bytes(b"an earlier segment\n")
    rec: JsonlRecorder
    asked: list[int] = []

    def source() -> Future[FakeCapture]:
        asked.append(rec._last_seq)
        path.unlink()  # deleted under the recorder, between its checks and the rotation
        future: Future[FakeCapture] = Future()
        future.set_result(FakeCapture(rec._last_seq, {"fresh": True}))
        return future

    rec = JsonlRecorder(path, max_mb=0.001, snapshot_source=source)
    seq = _filled_until_asked(rec, asked)
    rec([wait_event(seq + 1)])
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.1"]
    assert path.with_name("r.jsonl.1").read_bytes() == b"an earlier segment\n"
    lines = lines_of(path)
    assert lines[0]["type"] == "snapshot" and lines[-1]["seq"] == seq + 1


def test_a_symlink_to_one_of_our_own_fds_is_written_through(tmp_path: Path) -> None:
    """`ln -s /dev/stdout out.jsonl; muxscope --record out.jsonl > run.jsonl`: the link is
    followed one step at a time to our fd, which is written to, never rotated or renamed."""
    target = tmp_path / "shell-redirect.jsonl"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    link = tmp_path / "out.jsonl"
    link.symlink_to(f"/proc/self/fd/{fd}")
    try:
        rec = JsonlRecorder(link, max_mb=0.001)
        assert not rec.rotates
        rec.write_snapshot(START_STATE, 0, 1.0)
        for seq in range(1, 60):
            rec([wait_event(seq)])
        rec.close()
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "shell-redirect.jsonl"]
    assert [line.get("seq") for line in lines_of(target)] == list(range(60))
