"""A full disk when a file's snapshot line is written: the file must not start with events."""

import errno
import io
import logging
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.record import JsonlRecorder


class _Full(io.FileIO):
    """A file whose writes fail with ENOSPC while `full` is set."""

    full = False

    def write(self, data: Any) -> int:
        if _Full.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


class _Capture:
    def __init__(self, seq: int) -> None:
        self.seq = seq

    def to_dict(self) -> dict[str, Any]:
        return {"connections": [{"fd": 9, "bytes_in": self.seq, "bytes_out": self.seq}]}


def _events(first: int, n: int) -> list[dict[str, Any]]:
    return [{"kind": "recv", "fd": 9, "bytes": 1, "seq": s, "ts": s / 1000}
            for s in range(first, first + n)]


def test_a_snapshot_lost_to_a_full_disk_is_written_before_the_next_events(tmp_path, monkeypatch):
    monkeypatch.setattr(JsonlRecorder, "_open",
                        lambda self: _Full(self.path, "wb" if self.rotates else "ab"))
    path = tmp_path / "r.jsonl"
    seq = 0

    def source() -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(_Capture(seq))
        return done

    _Full.full = True  # full from the start: the start snapshot is lost
    recorder = JsonlRecorder(path, max_mb=1, snapshot_source=source)
    recorder.write_snapshot({"connections": []}, 0, 0.0)
    recorder(_events(1, 10))
    seq = 10
    _Full.full = False
    recorder(_events(11, 10))
    recorder.close()
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert lines[0]["type"] == "snapshot" and lines[0]["seq"] == 0
    assert [e["seq"] for e in lines[1:]] == list(range(11, 21))  # 1-10: a gap replay counts


def test_a_snapshot_lost_to_a_full_disk_is_written_at_close_when_no_event_came(
        tmp_path, monkeypatch):
    """A run that ended before any event batch left a 0-byte file, which replay refuses."""
    monkeypatch.setattr(JsonlRecorder, "_open",
                        lambda self: _Full(self.path, "wb" if self.rotates else "ab"))
    path = tmp_path / "r.jsonl"
    _Full.full = True
    recorder = JsonlRecorder(path)
    recorder.write_snapshot({"connections": []}, 5, 0.0)
    _Full.full = False
    recorder.close()
    [line] = path.read_bytes().splitlines()
    assert orjson.loads(line)["type"] == "snapshot" and orjson.loads(line)["seq"] == 5


def test_events_a_recording_lost_are_counted_in_the_metrics():
    """A full disk (or a writer left behind) was said on stderr only."""
    from pathlib import Path

    from tests.app.conftest import live_app
    from tests.conftest import wait_until

    def lost(text: str) -> float:
        return next((float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith("muxscope_record_lost_events_total")), -1.0)

    with live_app(record=Path("/dev/full")) as live, live.connect() as sock:
        sock.sendall(b"ping")
        wait_until(lambda: lost(live.client.get("/metrics").text) > 0, 10, "a lost batch")
    with live_app() as live:
        assert lost(live.client.get("/metrics").text) == -1.0  # no --record: no such family


def test_a_folder_gone_at_a_rotation_and_back_loses_no_segment(tmp_path) -> None:
    """The recording's folder moved away (an unmount) when a file was full: the full file was
    closed before the new one could be made, and once the folder came back the reopen
    truncated that segment, its events not even counted as lost. The full file goes on now."""
    folder = tmp_path / "rec"
    folder.mkdir()
    path = folder / "run.jsonl"
    recorder = JsonlRecorder(path, max_mb=0.01)  # ~10 KB of events a file
    recorder.write_snapshot({"connections": []}, 0, 0.0)
    recorder(_events(1, 100))
    folder.rename(tmp_path / "away")
    recorder(_events(101, 100))
    recorder(_events(201, 100))  # full: the rotation cannot make a new file
    (tmp_path / "away").rename(folder)
    recorder(_events(301, 5))
    recorder.close()
    seqs = [orjson.loads(line)["seq"] for file in sorted(folder.iterdir())
            for line in file.read_bytes().splitlines()]
    assert sorted(set(seqs) - {0}) == list(range(1, 306))  # every event, in some file
    assert recorder.lost_total == 0


def test_a_new_file_that_cannot_be_made_leaves_the_full_one_under_its_name(
        tmp_path, monkeypatch) -> None:
    """No fd for the next file (EMFILE) after the full one was moved to FILE.1: FILE was
    missing, the full file written on as FILE.1, while the warning said FILE went on."""
    path = tmp_path / "run.jsonl"
    real_mkstemp, real_file_io = tempfile.mkstemp, io.FileIO
    made = [0]

    def failing(*args: Any, **kwargs: Any) -> Any:
        made[0] += 1
        if made[0] <= 3:  # the rotation's first three tries
            raise OSError(errno.EMFILE, "Too many open files")
        return real_mkstemp(*args, **kwargs)

    def file_io(name: Any, mode: str = "r", *args: Any, **kwargs: Any) -> io.FileIO:
        if isinstance(name, (str, Path)) and made[0] <= 3:  # (the code before: its open)
            made[0] += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_file_io(name, mode, *args, **kwargs)

    monkeypatch.setattr("app.record.ROTATE_RETRY", 0)
    recorder = JsonlRecorder(path, max_mb=0.01)  # ~10 KB of events a file
    path.chmod(0o640)
    monkeypatch.setattr(tempfile, "mkstemp", failing)
    monkeypatch.setattr(io, "FileIO", file_io)
    recorder.write_snapshot({"connections": []}, 0, 0.0)
    first = 1
    while not path.with_name("run.jsonl.1").exists() and first < 2000:
        recorder(_events(first, 40))  # past the limit: three rotations fail, then one not
        first += 40
        assert path.exists(), f"{path.name} missing before seq {first}"
    recorder(_events(first, 5))
    first += 5
    recorder.close()
    assert made[0] >= 4, "the rotation was not tried four times"
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["run.jsonl", "run.jsonl.1"], files  # no staging left
    assert path.stat().st_mode & 0o777 == 0o640  # the new file has the recording's mode
    seqs = [orjson.loads(line)["seq"] for file in files
            for line in file.read_bytes().splitlines()]
    assert sorted(set(seqs) - {0}) == list(range(1, first))  # nothing lost
    assert recorder.lost_total == 0


def test_a_rotation_never_writes_over_what_sits_at_a_staging_name(tmp_path) -> None:
    """The next file was made at `.FILE.new`: a file of that name was emptied, a link there
    had its target overwritten, and a folder there stopped every rotation."""
    path = tmp_path / "run.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / ".run.jsonl.new").symlink_to(victim)
    recorder = JsonlRecorder(path, max_mb=0.01)
    recorder.write_snapshot({"connections": []}, 0, 0.0)
    for first in range(1, 801, 40):
        recorder(_events(first, 40))
    recorder.close()
    assert victim.read_text() == "keep me"
    assert path.with_name("run.jsonl.1").exists()


def test_a_staging_file_an_earlier_run_left_empty_is_removed_and_nothing_else(tmp_path) -> None:
    """A crash between making the next file and renaming it left `.FILE.XXXX.new`, empty: the
    next run removes it. A link there, a folder, a file holding bytes or another recording's
    staging file stay."""
    path = tmp_path / "run.jsonl"
    stale = tmp_path / ".run.jsonl.k2j4x9.new"
    stale.touch()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / ".run.jsonl.link.new"
    link.symlink_to(victim)
    holding = tmp_path / ".run.jsonl.full.new"
    holding.write_text("not empty")
    folder = tmp_path / ".run.jsonl.dir.new"
    folder.mkdir()
    other = tmp_path / ".other.jsonl.abc.new"
    other.touch()
    recorder = JsonlRecorder(path, max_mb=1)
    recorder.close()
    assert not stale.exists()
    assert link.is_symlink() and victim.read_text() == "keep me"
    assert holding.read_text() == "not empty" and folder.is_dir() and other.exists()


def test_each_rotation_is_said_once_a_minute_at_most(tmp_path, caplog) -> None:
    """A rotation moved the user's events to FILE.1 and said nothing: the start-up line's
    `muxscope replay FILE` then replayed only the newest file."""
    import logging

    path = tmp_path / "run.jsonl"
    recorder = JsonlRecorder(path, max_mb=0.01)
    recorder.write_snapshot({"connections": []}, 0, 0.0)
    with caplog.at_level(logging.WARNING, logger="app.record"):
        for first in range(1, 801, 40):
            recorder(_events(first, 40))
        recorder.close()
    said = [r.getMessage() for r in caplog.records if "reached its limit" in r.getMessage()]
    assert path.with_name("run.jsonl.2").exists()  # several rotations
    assert said[0] == (f"--record: {path} reached its limit: its events so far are now "
                       f"{path}.1 (muxscope replay {path}.1), and run.jsonl starts again")
    assert len(said) == 2 and said[1].endswith("more like it since)")  # the rest, at the end


def test_a_storms_count_at_the_end_is_said_once(caplog) -> None:
    """The last line of a storm of rotations read "... (and 44 more like it in the last
    minute) (and 92 more like it since)": the count said at the end went on a message that
    already had one."""
    import logging

    from app.notices import Notices

    notices = Notices()
    with caplog.at_level(logging.WARNING, logger="app.record"):
        for _ in range(3):
            notices.warn("oldest", "dropped the oldest segment %s", "F.5")
        notices._last["oldest"] = (notices._last["oldest"][0] - 61, 2)  # a minute later
        notices.warn("oldest", "dropped the oldest segment %s", "F.5")
        notices.warn("oldest", "dropped the oldest segment %s", "F.5")
        notices.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "dropped the oldest segment F.5",
        "dropped the oldest segment F.5 (and 2 more like it in the last minute)",
        "dropped the oldest segment F.5 (and 1 more like it since)"]


def test_each_spell_of_a_full_disk_says_the_events_it_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each spell of a full disk says its own count when writing works again: the count
    was never reset, and the second spell said the first one's events too."""
    monkeypatch.setattr(JsonlRecorder, "_open",
                        lambda self: _Full(self.path, "wb" if self.rotates else "ab"))
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path)
    rec.write_snapshot({}, 0, 1.0)
    with caplog.at_level(logging.WARNING, logger="app.record"):
        for first, n, full in ((1, 5, False), (6, 10, True), (16, 5, False),
                               (21, 3, True), (24, 5, False)):
            _Full.full = full
            rec(_events(first, n))
        _Full.full = False
        rec.close()
    said = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
    assert len(said) == 2 and "; 10 events were lost" in said[0], said
    assert "; 3 events were lost" in said[1], said
    assert rec.lost_total == 13
