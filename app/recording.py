"""Reading a recording for `muxscope replay`: a JSONL file written with --record (a snapshot
line, then events), checked line by line, or a file of events only (a trace download), whose
missing start state is made up from what its events imply and said to be unknown."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from app.event_schema import FIELDS, problems
from app.implied import Facts, Implied

log = logging.getLogger(__name__)
#: replay keeps a recording's events encoded, about the file's size (it reads a chunk at a
#: time: a list of every parsed event took ~0.6 KB an event, so ~1.3 GB at the bound). A
#: segment of the default --record-max-mb (100) holds about 1,000,000 events.
MAX_REPLAY_EVENTS = 2_000_000
#: a file this large is refused before it is read (recorded events average ~100 bytes a line)
MAX_REPLAY_BYTES = 400 << 20
#: the longest line read (a snapshot of 10,000 connections is ~2 MB): past it, not a recording
MAX_LINE_BYTES = 64 << 20
#: events handed on at a time while reading: whole hub batches (app/hub.py BATCH_EVENTS)
READ_CHUNK_EVENTS = 8 * 1024
EventSink = Callable[[list[dict[str, Any]]], None]
Progress = Callable[[int, int, int], None]  # (bytes read, file size, events read)
_TOO_BIG = ("which replay would hold in memory; replay one segment of a recording made with a "
            "smaller --record-max-mb (100 MB holds about 1,000,000 events)")


def _expects(read_any: bool) -> str:
    """Said when a file fails before anything in it was read: maybe it is no recording."""
    if read_any:
        return ""
    return ("; muxscope replay reads JSON lines: a file written by --record, or the page's "
            "trace download as JSON lines")


def load_recording(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(snapshot frame, events): `read_recording` with every event kept in a list."""
    events: list[dict[str, Any]] = []
    snapshot, _ = read_recording(path, events.extend)
    return snapshot, events


def read_recording(path: Path, sink: EventSink, chunk_events: int = READ_CHUNK_EVENTS,
                   progress: Progress | None = None) -> tuple[dict[str, Any], int]:
    """(snapshot frame, number of events); the events go to `sink` in order, a list of at
    most `chunk_events` at a time, as they are read (replay keeps them encoded, ~100 bytes
    an event: a list of them all held ~0.6 KB an event); `progress` is told after each
    chunk how far the file is read (bytes, of its size, and events). A rotated segment
    without a snapshot gets a minimal one.

    ValueError, naming the file and line, for what `--record` never writes: a line that is
    not a JSON object, a snapshot whose state is not an object (or whose connections are not
    objects with an integer fd), an event without an integer `seq` and a string `kind` or
    whose fields are not what SPEC §3 says (app/event_schema.py, leniently: older recordings
    and kinds it does not know pass), or a file with neither snapshot nor events; and for a
    file of more than MAX_REPLAY_BYTES (refused before reading) or MAX_REPLAY_EVENTS events.
    `sink` may have been given events by then: the caller drops what it made of them.

    Also for seq numbers that go back (files joined out of order, newest first): the page's
    accounting would go wrong silently. Rotated files joined oldest first replay as one.

    A last line cut short (no newline, not JSON: the recording was still being written, or
    its writer was killed) is left out with a warning; the lines before it are replayed."""
    snapshot: dict[str, Any] | None = None
    chunk: list[dict[str, Any]] = []
    count = 0
    implied: Implied | None = Implied()  # until a snapshot line says what they would imply
    last_seq: int | None = None  # of the last event or snapshot line
    cut_short = False
    unknown_kinds: dict[str, int] = {}
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_REPLAY_BYTES:
            raise ValueError(f"{path}: {size / 2**20:,.0f} MiB, more than "
                             f"{MAX_REPLAY_BYTES >> 20:,} MiB, {_TOO_BIG}")
        _refuse_a_chrome_trace(f, path)
        for number, line in enumerate(_lines(f, path), 1):
            if number == 1:
                if line.startswith(b"\x1f\x8b"):
                    raise ValueError(f"{path}: gzip-compressed; decompress it first "
                                     f"(zcat {path} > recording.jsonl)")
                line = line.removeprefix(b"\xef\xbb\xbf")  # a BOM some editors add
            if not line.strip():
                continue
            read_any = snapshot is not None or count > 0
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.endswith(b"\n"):  # the last line, cut short
                    cut_short = True
                    if not read_any:  # said below, as the error
                        break
                    log.warning("%s:%d: the last line is cut short (was the recording still "
                                "being written?); replaying the lines before it", path, number)
                    break
                raise ValueError(f"{path}:{number}: not JSON ({exc}){_expects(read_any)}"
                                 ) from None
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{number}: not a JSON object{_expects(read_any)}")
            if item.get("type") == "snapshot":
                _check_snapshot(item, f"{path}:{number}")
                if read_any:
                    _joins(item.get("seq"), last_seq, f"{path}:{number}")
                last_seq = _in_order(item.get("seq"), last_seq, f"{path}:{number}", equal_ok=True)
                snapshot = snapshot or item
                implied = None
            elif "seq" in item or "kind" in item:
                if type(item.get("seq")) is not int or not isinstance(item.get("kind"), str):
                    raise ValueError(f"{path}:{number}: an event needs an integer seq and a "
                                     "kind")
                found = problems(item, lenient=True)
                if found:
                    raise ValueError(f"{path}:{number}: not an event muxscope writes: "
                                     + "; ".join(found))
                last_seq = _in_order(item["seq"], last_seq, f"{path}:{number}")
                if item["kind"] not in FIELDS:
                    unknown_kinds[item["kind"]] = unknown_kinds.get(item["kind"], 0) + 1
                if count == MAX_REPLAY_EVENTS:
                    raise ValueError(f"{path}: more than {MAX_REPLAY_EVENTS:,} events, {_TOO_BIG}")
                count += 1
                if implied is not None:
                    implied.feed(item)
                chunk.append(item)
                if len(chunk) == chunk_events:
                    sink(chunk)
                    chunk = []
                    if progress is not None:
                        progress(f.tell(), size, count)
    if chunk:
        sink(chunk)
    if unknown_kinds:  # a newer muxscope's, or an edit: replayed, shown in the log only
        log.warning("%s: %s of a kind this muxscope does not know (%s): replayed as they "
                    "are", path,
                    f"{sum(unknown_kinds.values()):,} event(s)",
                    ", ".join(f"{kind!r} ×{n:,}" for kind, n in sorted(unknown_kinds.items())))
    if snapshot is None and not count:
        if cut_short:
            raise ValueError(f"{path}: its only line is cut short, not JSON: a recording "
                             "stopped while writing its first line, or not a recording")
        raise ValueError(f"{path}: no snapshot and no events in it; is it a file written by "
                         "muxscope --record?")
    if snapshot is None:
        assert implied is not None
        snapshot = _snapshot_implied(implied.finish())
    # What the recording does not say keeps the §4 shape (e.g. an older, partial snapshot).
    empty, state = _empty_state(), snapshot.get("state") or {}
    snapshot["state"] = {**empty, **state,
                         "limits": {**empty["limits"], **(state.get("limits") or {})}}
    return snapshot, count


def _refuse_a_chrome_trace(f: BinaryIO, path: Path) -> None:
    """The page's Download trace is one JSON document, often one line longer than any line a
    recording has: said as what it is, before the lines are read (it was refused as "no
    snapshot and no events", or as a line too long)."""
    peek = getattr(f, "peek", None)
    head = (peek(256) if peek is not None else b"")[:256].removeprefix(b"\xef\xbb\xbf")
    if re.match(rb'\s*\{\s*"traceEvents"\s*:', head):  # its first key (app/trace.py)
        raise ValueError(f"{path}: a Chrome trace (the page's Download trace): open it in "
                         "Perfetto or chrome://tracing; replay reads a file written with "
                         "--record")


def _snapshot_implied(facts: Facts) -> dict[str, Any]:
    """A file of events only (a `GET /api/trace?format=jsonl` download, or a recording's
    snapshot line cut off): what the engine was before its first event is not in it, only
    what its events imply (app/implied.py). `unknown_before` is the first seq, `note` what
    the page should say."""
    first_seq = facts.first_seq
    backend: dict[str, Any] = {}
    unknown = ["the fds registered then"]
    if facts.backend is not None:
        backend["name"] = facts.backend
    else:
        unknown.append("the backend")
    if facts.backend == "epoll":
        if facts.epoll_marks is None:
            unknown.append("whether epoll was edge-triggered or one-shot")
        else:
            backend["trigger"], backend["oneshot"] = facts.epoll_marks
    if facts.write is None:
        unknown.append("the write strategy (queued or eager)")
    else:
        backend["write"] = facts.write
    state: dict[str, Any] = {"loop": facts.loop}
    if backend:
        state["backend"] = {**_empty_state()["backend"], **backend}
    note = (f"this file has no snapshot line (a trace download?), so what the engine held "
            f"before its first event (seq {first_seq + 1:,}) is not known: {'; '.join(unknown)}"
            ". Its events show the rest")
    return {"type": "snapshot", "state": state, "seq": first_seq, "started_at": 0.0,
            "unknown_before": first_seq + 1, "note": note}


def _in_order(seq: Any, last: int | None, where: str, equal_ok: bool = False) -> int | None:
    """`seq` if it follows `last` (a snapshot may repeat the seq of the event before it: a
    rotated file's snapshot does); ValueError when it goes back."""
    if type(seq) is not int:
        return last
    if last is not None and (seq < last or (seq == last and not equal_ok)):
        raise ValueError(f"{where}: seq {seq} after seq {last}: the recording goes back in "
                         "time (files joined out of order?). Replay each rotated file on its "
                         "own, or join them oldest first: FILE.5 ... FILE.1 FILE")
    return seq


def _lines(f: BinaryIO, path: Path) -> Iterator[bytes]:
    """The lines of `f`, each of at most MAX_LINE_BYTES, in all at most MAX_REPLAY_BYTES:
    a pipe or a device has no size to check before reading (`replay /dev/zero` read one
    endless line until the memory ran out)."""
    total = 0
    while line := f.readline(MAX_LINE_BYTES + 1):
        total += len(line)
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"{path}: a line longer than {MAX_LINE_BYTES >> 20} MiB: not a "
                             "recording")
        if total > MAX_REPLAY_BYTES:
            raise ValueError(f"{path}: more than {MAX_REPLAY_BYTES >> 20:,} MiB, {_TOO_BIG}")
        yield line


def _joins(seq: Any, last: int | None, where: str) -> None:
    """A snapshot inside the file (rotated files joined): fine where it repeats the seq of the
    event before it, which is where a rotation writes it; after a gap, the state it holds
    (what the left-out events did) would be lost on the page: ValueError."""
    if type(seq) is int and last is not None and seq > last:
        raise ValueError(f"{where}: a snapshot at seq {seq} after seq {last}: the recorder left "
                         f"{seq - last} events out here, and what they did is only in this "
                         "snapshot. Replay the files before and after it on their own")


def _check_snapshot(item: dict[str, Any], where: str) -> None:
    state = item.get("state", {})
    if not isinstance(state, dict):
        raise ValueError(f"{where}: a snapshot whose state is not an object")
    connections = state.get("connections", [])
    if not (isinstance(connections, list) and all(
            isinstance(c, dict) and type(c.get("fd")) is int for c in connections)):
        raise ValueError(f"{where}: a snapshot whose connections are not objects with an "
                         "integer fd")
    if type(item.get("seq", 0)) is not int:
        raise ValueError(f"{where}: a snapshot whose seq is not an integer")
    for key in ("backend", "listeners", "limits", "stats"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise ValueError(f"{where}: a snapshot whose {key} is not an object")


def _empty_state() -> dict[str, Any]:
    """The /api/state shape of SPEC §4 with nothing known: the recording did not say."""
    return {"backend": {"name": "epoll", "trigger": "level", "oneshot": False,
                        "write": "queued", "fd": None, "maxevents": None},
            "available": [], "loop": "paused", "delay_ms": 0,
            "listeners": {"tcp": {"fd": None, "port": None}, "udp": None},
            "control_fd": None, "connections": [], "registrations": [], "breakpoints": [],
            "last_wait": None,
            "limits": {"fd_setsize": 1024, "nofile": 0, "max_connections": 0,
                       "high_water": 1 << 20, "low_water": 256 << 10}}
