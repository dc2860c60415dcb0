"""`--record FILE`: the snapshot, then every event, as JSON lines, rotated by size.

Every file the recorder starts, the first and each rotated one, begins with a snapshot line,
so that `muxscope replay` can open any of them on its own. A snapshot says "the state after
event `seq`", and the file then holds the events after `seq`: that is what replay's seq
accounting (and the websocket's `dropped` counts) relies on.

The recorder runs on its own thread (`app/record_thread.py`: a file or a pipe that stops
taking writes must stall neither the asyncio loop nor the engine). `--record-max-mb` bounds a
file's events; its snapshot line comes on top (with 10,000 connections a snapshot alone is
~2 MB). At the limit it asks the engine for a capture (`snapshot_source`, the same cheap copy
a browser gets on connect: taken between two waits on the engine thread, formatted here),
waits for it, and keeps writing to the file until it holds every event up to the capture's
`seq`; then it rotates and starts the new file with that capture. When the events still to
come up to that seq are more than a pump batch (MAX_LAG_EVENTS: the pump far behind the
engine, in a readiness storm), it rotates at once and says so: those events are left out (a
seq gap between the files), as the capture's state holds what they did. Without a source, or
when the capture fails or takes longer than `capture_timeout`, the new file starts with the
snapshot taken at start instead, with `seq` set to the last seq written: its state is stale
(the connections and counters of the start), but the events that follow still count from the
right place.

The disk is not trusted to cooperate. A write that fails (the disk full, the file's folder
gone) is cut back off the file, so the file never holds half a line; the events it carried are
lost and show as a seq gap, which replay counts as `dropped`, and are counted in `/metrics`
(`muxscope_record_lost_events_total`). The failure is logged once, and
recording resumes by itself when writing works again (a file deleted under it is made anew,
starting with a fresh capture; a rotation that cannot move the old files goes on in the same
file and is tried again a minute later). Only a regular file is rotated: `--record /dev/null`
or a FIFO is written to, never renamed (a FIFO is opened by the recorder's thread: it waits
there for a reader). At most KEEP_ROTATED rotated files are kept (so at most KEEP_ROTATED + 1
times `--record-max-mb`, plus a pump batch of events (~3 MB at most) and a snapshot each, on
disk); moving an earlier run's recording aside and dropping the oldest segment are logged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

import orjson

from app.bridge import DEFAULT_MAX_BATCH
from app.notices import Notices
from app.record_paths import (
    SegmentNotMade,
    append_whole,
    is_fifo,
    next_segment,
    open_segment,
    own_fd,
    real_path,
    regular_path,
    remove_stale_staging,
    shift_old_files,
)

log = logging.getLogger(__name__)
KEEP_ROTATED = 5
CAPTURE_TIMEOUT = 2.0
ROTATE_RETRY = 60.0  # seconds, after a rotation that could not move the old files
#: how many events past the limit a file may take to reach the capture's seq: one pump batch
#: (the recorder is normally up to a batch behind the engine); more is a storm's backlog
MAX_LAG_EVENTS = DEFAULT_MAX_BATCH

Line = tuple[int, bytes]  # (seq, encoded line)


class Capture(Protocol):
    """What `mux.Engine.capture()` resolves to (kept structural: app.record needs no mux)."""

    seq: int

    def to_dict(self) -> dict[str, Any]: ...


#: Returns a Future of a `Capture` (typed Any: Future is invariant, and mux's class is not ours).
SnapshotSource = Callable[[], "Future[Any]"]


class JsonlRecorder:
    """A pump consumer. Rotation: FILE -> FILE.1 -> FILE.2 ... (at most KEEP_ROTATED kept)."""

    def __init__(self, path: str | os.PathLike[str], max_mb: float = 100,
                 snapshot_source: SnapshotSource | None = None,
                 capture_timeout: float = CAPTURE_TIMEOUT) -> None:
        #: this process's own fd N, when FILE names it (/dev/stdout...): written through a dup
        self._own_fd = own_fd(path)
        # a symlink to a file: the file is what rotates (FILE.1 beside it), not the link
        self.path = Path(path) if self._own_fd is not None else real_path(path)
        self._notices = Notices()
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.snapshot_source = snapshot_source
        self.capture_timeout = capture_timeout
        #: a device, a pipe or a symlink (/dev/null, a FIFO, /dev/stdout) is written to, never
        #: rotated or renamed
        self.rotates = regular_path(self.path, self._own_fd)
        if self.rotates:
            remove_stale_staging(self.path)
        if self.rotates and self.path.exists() and self.path.stat().st_size:
            self._shift_old_files()  # an earlier run's recording becomes FILE.1, kept whole
            log.warning("--record: the earlier recording %s is now %s.1", self.path,
                        self.path.name)
        # a FIFO's open waits for a reader: the recorder's thread makes it (_ensure_file)
        self._file: io.FileIO | None = None if is_fifo(self.path, self._own_fd) else self._open()
        self._size = 0
        self._snapshot_size = 0  # the current file's snapshot line: not counted in the limit
        self._skip_through = 0  # events up to this seq are in the current file's snapshot
        self._last_written = 0  # the seq of the last event (or snapshot) the file really holds
        self._failure: str | None = None  # the write error being reported, until one works
        self._no_rotation_until = 0.0  # after a rotation that could not move the old files
        self._lost = 0  # events lost to failed writes since that error
        self.lost_total = 0  # ... and since the start (muxscope_record_lost_events_total)
        #: events left out at rotations far behind the engine (a seq gap between two files,
        #: the next one's snapshot holding what they did; in the same metric)
        self.left_out_total = 0
        #: (lo, hi) -> how many events with lo < seq <= hi were dropped before they reached
        #: the recorder, and counted there (RecorderThread's full queue): not counted again
        self.dropped_between: Callable[[int, int], int] = lambda lo, hi: 0
        self._events_in_file = 0
        self._last_seq = 0
        self._start_state: dict[str, Any] | None = None
        self._start_seq = 0
        self._started_at = 0.0
        self._capture: Future[Any] | None = None
        self._capture_since = 0.0
        self._next: tuple[dict[str, Any], int] | None = None
        self._rotating = False
        self._skip_to_snapshot: bool | None = None  # this rotation leaves the lag out
        #: the current file's snapshot line, when writing it failed (a full disk): written
        #: before any event, so that no file starts without one (the events lost meanwhile
        #: are a seq gap after it, which replay counts as `dropped`)
        self._pending_snapshot: tuple[bytes, int] | None = None

    def write_snapshot(self, state: dict[str, Any], seq: int, started_at: float) -> None:
        """The start snapshot: written now, and kept for rotations that get no fresher one."""
        self._start_state, self._started_at, self._start_seq = state, started_at, seq
        self._write_snapshot_line(state, seq)

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self._ensure_file()  # (a fresh file's snapshot may hold some of these events)
        skip = self._skip_through
        lines = [(event["seq"], orjson.dumps(event) + b"\n") for event in batch
                 if event["seq"] > skip]
        if not self._rotating and self._full(sum(len(data) for _, data in lines)):
            fit = self._fitting(lines)  # what still fits under the limit goes in first
            self._write_lines(lines[:fit])
            lines = lines[fit:]
            self._begin_rotation()
        if self._rotating:
            lines = self._rotate_when_ready(lines)
        self._write_lines(lines)

    def _fitting(self, lines: list[Line]) -> int:
        room = self.max_bytes - self._events_bytes()
        for i, (_, data) in enumerate(lines):
            room -= len(data)
            if room < 0:
                return i
        return len(lines)

    def close(self) -> None:
        self._notices.flush()
        if self._file is not None:
            self._write_pending_snapshot()  # a file is never left without its snapshot line
            self._file.close()

    def _ensure_file(self) -> None:
        """A file deleted under us is made anew, starting with a fresh capture (the state now:
        the events up to its seq are in it), or without one with the start snapshot at the
        last seq written. A file not made yet (a FIFO waiting for its reader, a folder missing
        at the start) starts the same way. An fstat a batch: ~1 us every 30 ms."""
        if self._file is not None:
            try:
                if self._own_fd is not None or os.fstat(self._file.fileno()).st_nlink:
                    return
            except OSError:
                return
            self._file.close()
            self._file = None
            log.warning("--record: %s was deleted; starting it anew", self.path)
        self.rotates = regular_path(self.path, self._own_fd)  # a FIFO gone: a file now
        if is_fifo(self.path, self._own_fd):
            log.info("--record: %s is a FIFO: waiting for a reader", self.path)
        try:
            if self.rotates and self.path.exists() and self.path.stat().st_size:
                # a file put at the path meanwhile (ours deleted, or never made): kept as
                # FILE.1, never truncated by the reopen
                self._shift_old_files()
            self._file = self._open()
        except OSError as exc:
            self._failed(exc)
            return
        self._size = self._snapshot_size = self._events_in_file = 0
        self._rotating, self._capture, self._next = False, None, None  # nothing to rotate
        self._skip_to_snapshot = None
        state, seq = self._fresh_snapshot()
        self._write_snapshot_line(state, seq)

    def _fresh_snapshot(self) -> tuple[dict[str, Any], int]:
        """A capture of the engine now, waited for (this runs on the recorder's thread), or
        the start snapshot at the last seq written; the events up to its seq are in it."""
        capture = (self.snapshot_source() if self.snapshot_source is not None
                   and self._start_state is not None else None)
        self._wait_for(capture, time.monotonic())
        state, seq = self._resolve(capture)
        self._skip_through = max(self._skip_through, seq)
        return state, seq

    def _open(self) -> io.FileIO:
        return open_segment(self.path, self._own_fd, self.rotates)

    def _events_bytes(self) -> int:
        return self._size - self._snapshot_size

    def _full(self, incoming: int) -> bool:
        """Time to ask for the next file's snapshot: at the limit (its events only)."""
        return (self.rotates and self._events_in_file > 0
                and self._events_bytes() + incoming > self.max_bytes
                and time.monotonic() >= self._no_rotation_until)

    def _begin_rotation(self) -> None:
        self._rotating = True
        self._capture_since = time.monotonic()
        self._capture = self.snapshot_source() if self.snapshot_source else None

    def _rotate_when_ready(self, lines: list[Line]) -> list[Line]:
        """Write what belongs to the full file; rotate once it holds every event up to the
        snapshot's seq, or at once when those are more than a pump batch (they are left out:
        the snapshot holds what they did). Returns the lines for the file written next."""
        state, seq = self._next_snapshot()
        if self.snapshot_source is not None and not self._captured(self._capture):
            # a stopped engine (the shutdown's last events) or a stuck one: the next file would
            # start with the start state labelled as now; this one goes on past its limit
            self._notices.warn("capture", "--record: no snapshot of the engine could be "
                               "taken; %s goes on past its limit (tried again in %d s)",
                               self.path, ROTATE_RETRY)
            self._no_rotation_until = time.monotonic() + ROTATE_RETRY
            self._end_rotation()
            return lines
        if self._skip_to_snapshot is None:  # decided once, when the capture's seq is known
            self._skip_to_snapshot = seq - self._last_seq > MAX_LAG_EVENTS
        if self._skip_to_snapshot:
            behind = seq - self._last_seq
            if not self._rotate():  # the same file goes on: nothing may be left out of it
                self._end_rotation()
                return lines
            self.left_out_total += max(0, behind - self.dropped_between(self._last_seq, seq))
            self._notices.warn("behind", "--record: the recording was %d events behind the "
                               "engine; they are left out of %s, whose snapshot holds what "
                               "they did", behind, self.path)
            self._start_next(state, seq)
            return [line for line in lines if line[0] > seq]
        self._write_lines([line for line in lines if line[0] <= seq])
        later = [line for line in lines if line[0] > seq]
        if later or self._last_seq >= seq:
            if self._rotate():
                self._start_next(state, seq)
            else:
                self._end_rotation()
            return later
        return []

    def _start_next(self, state: dict[str, Any], seq: int) -> None:
        """The new file (just opened by `_rotate`) starts with the snapshot at `seq`."""
        self._skip_through = max(self._skip_through, seq)
        self._write_snapshot_line(state, seq)
        self._end_rotation()

    def _end_rotation(self) -> None:
        self._rotating, self._capture, self._next = False, None, None
        self._skip_to_snapshot = None

    def _next_snapshot(self) -> tuple[dict[str, Any], int]:
        """(state, seq) for the next file: the capture, waited for (this is the recorder's own
        thread; the engine answers between two waits, ~1 ms), or the fallback."""
        if self._next is None:
            self._wait_for(self._capture, self._capture_since)
            self._next = self._resolve(self._capture)
        return self._next

    def _wait_for(self, capture: Future[Any] | None, since: float) -> None:
        """Until `capture` is done, or `capture_timeout` after `since` (then: the fallback)."""
        if capture is not None:
            left = self.capture_timeout - (time.monotonic() - since)
            with contextlib.suppress(Exception):  # a stopped engine, a timeout: fallback
                capture.result(timeout=max(0.0, left))

    @staticmethod
    def _captured(capture: Future[Any] | None) -> bool:
        return capture is not None and capture.done() and capture.exception() is None

    def _resolve(self, capture: Future[Any] | None) -> tuple[dict[str, Any], int]:
        if capture is not None and self._captured(capture):
            taken: Capture = capture.result()
            return taken.to_dict(), taken.seq
        return (self._start_state or {}), max(self._last_written, self._start_seq)

    def _write_snapshot_line(self, state: dict[str, Any], seq: int) -> None:
        self._last_seq = max(self._last_seq, seq)
        line = orjson.dumps({"type": "snapshot", "state": state, "seq": seq,
                             "started_at": self._started_at}) + b"\n"
        first = self._size == 0
        if first:
            self._pending_snapshot = None  # a new file: this line replaces an earlier one's
        if self._write(line):
            self._snapshot_size = len(line) if self._size == len(line) else self._snapshot_size
            self._last_written = max(self._last_written, seq)
        elif first:
            self._pending_snapshot = (line, seq)

    def _write_pending_snapshot(self) -> bool:
        """The current file's snapshot line, if it could not be written before: now."""
        if self._pending_snapshot is None:
            return True
        line, seq = self._pending_snapshot
        if not self._write(line):
            return False
        self._pending_snapshot = None
        self._snapshot_size = len(line)
        self._last_written = max(self._last_written, seq)
        return True

    def _write_lines(self, lines: list[Line]) -> None:
        if not lines:
            return
        self._last_seq = max(self._last_seq, max(seq for seq, _ in lines))
        if self._write_pending_snapshot() and self._write(b"".join(data for _, data in lines)):
            self._events_in_file += len(lines)
            self._last_written = self._last_seq
        else:
            self._lost += len(lines)
            self.lost_total += len(lines)

    def _shift_old_files(self) -> None:
        def dropped(oldest: Path) -> None:
            self._notices.warn("oldest", "--record: dropped the oldest segment %s (%d are "
                               "kept)", oldest, KEEP_ROTATED)
        shift_old_files(self.path, KEEP_ROTATED, dropped)

    def _write(self, data: bytes) -> bool:
        """Append `data` whole, or not at all: a failed write is cut back off the file (a
        full disk must not leave half a line, which would make the file unreplayable)."""
        if self._file is None:  # no file could be made (see _ensure_file): lost
            return False
        try:
            append_whole(self._file, data)
        except OSError as exc:
            self._failed(exc)
            return False
        self._size += len(data)
        if self._failure is not None:
            log.warning("--record: writing to %s again; %d events were lost (a seq gap in "
                        "the file)", self.path, self._lost)
            self._failure, self._lost = None, 0
        return True

    def _failed(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if self._failure != reason:  # once per kind of failure, not once per batch
            self._failure = reason
            log.error("--record: cannot write to %s: %s; events are lost until it can",
                      self.path, reason)

    def _rotate(self) -> bool:
        """Move the full file aside and start a new one; False (and the same file goes on,
        under its own name) when the new one cannot be made or the old files cannot be moved,
        tried again after ROTATE_RETRY seconds (record_paths.next_segment says how)."""
        try:
            new_file = next_segment(self.path, self._file, self._shift_old_files)
        except SegmentNotMade as exc:
            self._notices.warn("rotate", "--record: cannot start a new file beside %s (%s); "
                               "it goes on growing, and the rotation is tried again in %d s",
                               self.path, exc.strerror or exc, ROTATE_RETRY)
            self._no_rotation_until = time.monotonic() + ROTATE_RETRY
            return False
        except OSError as exc:  # renames refused (a folder not writable, a FILE.N in the way)
            self._notices.warn("rotate", "--record: cannot rotate %s (%s: %s); it goes on "
                               "growing, and the rotation is tried again in %d s", self.path,
                               exc.filename or self.path, exc.strerror or exc, ROTATE_RETRY)
            self._no_rotation_until = time.monotonic() + ROTATE_RETRY
            return False
        if self._file is not None:
            self._file.close()
        self._file = new_file
        self._size = self._snapshot_size = 0
        self._events_in_file = 0
        self._notices.warn("rotated", "--record: %s reached its limit: its events so far are "
                           "now %s.1 (muxscope replay %s.1), and %s starts again", self.path,
                           self.path, self.path, self.path.name)
        return True
