"""Reading a recording for `muxscope replay`: a JSONL file written with --record (a snapshot
line, then events), checked line by line, or a file of events only (a trace download), whose
missing start state is made up from what its events imply and said to be unknown."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from app.event_schema import FIELDS, problems

log = logging.getLogger(__name__)
#: replay parses a recording into memory (~0.6 KB an event while it loads, so ~1.3 GB at
#: the bound; once loaded it keeps the events encoded, about the file's size). A segment of
#: the default --record-max-mb (100) holds about 1,000,000 events.
MAX_REPLAY_EVENTS = 2_000_000
#: a file this large is refused before it is read (recorded events average ~100 bytes a line)
MAX_REPLAY_BYTES = 400 << 20
#: the longest line read (a snapshot of 10,000 connections is ~2 MB): past it, not a recording
MAX_LINE_BYTES = 64 << 20
_TOO_BIG = ("which replay would hold in memory; replay one segment of a recording made with a "
            "smaller --record-max-mb (100 MB holds about 1,000,000 events)")


def _expects(snapshot: dict[str, Any] | None, events: list[dict[str, Any]]) -> str:
    """Said when a file fails before anything in it was read: maybe it is no recording."""
    if snapshot is not None or events:
        return ""
    return ("; muxscope replay reads JSON lines: a file written by --record, or the page's "
            "trace download as JSON lines")


def load_recording(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(snapshot frame, events). A rotated segment without a snapshot gets a minimal one.

    ValueError, naming the file and line, for what `--record` never writes: a line that is
    not a JSON object, a snapshot whose state is not an object (or whose connections are not
    objects with an integer fd), an event without an integer `seq` and a string `kind` or
    whose fields are not what SPEC §3 says (app/event_schema.py, leniently: older recordings
    and kinds it does not know pass), or a file with neither snapshot nor events; and for a
    file of more than MAX_REPLAY_BYTES (refused before reading) or MAX_REPLAY_EVENTS events.

    Also for seq numbers that go back (files joined out of order, newest first): the page's
    accounting would go wrong silently. Rotated files joined oldest first replay as one.

    A last line cut short (no newline, not JSON: the recording was still being written, or
    its writer was killed) is left out with a warning; the lines before it are replayed."""
    snapshot: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
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
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.endswith(b"\n"):  # the last line, cut short
                    cut_short = True
                    if snapshot is None and not events:  # said below, as the error
                        break
                    log.warning("%s:%d: the last line is cut short (was the recording still "
                                "being written?); replaying the lines before it", path, number)
                    break
                raise ValueError(f"{path}:{number}: not JSON ({exc}){_expects(snapshot, events)}"
                                 ) from None
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{number}: not a JSON object{_expects(snapshot, events)}")
            if item.get("type") == "snapshot":
                _check_snapshot(item, f"{path}:{number}")
                if snapshot is not None or events:
                    _joins(item.get("seq"), last_seq, f"{path}:{number}")
                last_seq = _in_order(item.get("seq"), last_seq, f"{path}:{number}", equal_ok=True)
                snapshot = snapshot or item
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
                if len(events) == MAX_REPLAY_EVENTS:
                    raise ValueError(f"{path}: more than {MAX_REPLAY_EVENTS:,} events, {_TOO_BIG}")
                events.append(item)
    if unknown_kinds:  # a newer muxscope's, or an edit: replayed, shown in the log only
        log.warning("%s: %s of a kind this muxscope does not know (%s): replayed as they "
                    "are", path,
                    f"{sum(unknown_kinds.values()):,} event(s)",
                    ", ".join(f"{kind!r} ×{n:,}" for kind, n in sorted(unknown_kinds.items())))
    if snapshot is None and not events:
        if cut_short:
            raise ValueError(f"{path}: its only line is cut short, not JSON: a recording "
                             "stopped while writing its first line, or not a recording")
        raise ValueError(f"{path}: no snapshot and no events in it; is it a file written by "
                         "muxscope --record?")
    if snapshot is None:
        snapshot = _snapshot_from_events(events)
    # What the recording does not say keeps the §4 shape (e.g. an older, partial snapshot).
    empty, state = _empty_state(), snapshot.get("state") or {}
    snapshot["state"] = {**empty, **state,
                         "limits": {**empty["limits"], **(state.get("limits") or {})}}
    return snapshot, events


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


def _snapshot_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A file of events only (a `GET /api/trace?format=jsonl` download, or a recording's
    snapshot line cut off): what the engine was before its first event is not in it, only
    what its events imply. The backend is the one its first wait names, or the `from` of a
    switch before that wait (a poll trace was shown as epoll); epoll's trigger and one-shot as
    its registrations before any switch say; the write strategy as its echoes show it
    (`_write_before`); the loop's state as its first loop event implies. `unknown_before` is
    the first seq, `note` what the page should say."""
    first_seq = events[0]["seq"] - 1 if events else 0
    name = _first_backend(events)
    backend: dict[str, Any] = {}
    unknown = ["the fds registered then"]
    if name is not None:
        backend["name"] = name
    else:
        unknown.append("the backend")
    if name == "epoll":
        marks = _epoll_marks(events)
        if marks is None:
            unknown.append("whether epoll was edge-triggered or one-shot")
        else:
            backend["trigger"], backend["oneshot"] = marks
    write = _write_before(events)
    if write is None:
        unknown.append("the write strategy (queued or eager)")
    else:
        backend["write"] = write
    state: dict[str, Any] = {"loop": _loop_before(events)}
    if backend:
        state["backend"] = {**_empty_state()["backend"], **backend}
    note = (f"this file has no snapshot line (a trace download?), so what the engine held "
            f"before its first event (seq {first_seq + 1:,}) is not known: {'; '.join(unknown)}"
            ". Its events show the rest")
    return {"type": "snapshot", "state": state, "seq": first_seq, "started_at": 0.0,
            "unknown_before": first_seq + 1, "note": note}


def _first_backend(events: list[dict[str, Any]]) -> str | None:
    """The backend the engine ran when the file begins: a switch's `from`, when one comes
    before the first wait; else the first wait's."""
    for event in events:
        if event["kind"] == "backend":
            name = event.get("from")
            break
        if event["kind"] == "wait":
            name = event.get("backend")
            break
    else:
        return None
    return name if name in ("select", "poll", "epoll") else None


def _loop_before(events: list[dict[str, Any]]) -> str:
    """The loop's state before the file's first `loop` event, by what that event changed: a
    resume or a step was made on a paused loop, a pause or a breakpoint's hit on a running
    one, and a slow-motion or flaw change left the state as it says. Running without one."""
    event = next((e for e in events if e["kind"] == "loop"), None)
    if event is None:
        return "running"
    state, cause = event.get("state"), event.get("cause")
    if cause == "command":  # Pause or Resume
        return "paused" if state == "running" else "running"
    if cause == "step" or state == "step":
        return "paused"
    if cause == "breakpoint":
        return "running"
    return "running" if state == "running" else "paused"


def _write_before(events: list[dict[str, Any]]) -> str | None:
    """The write strategy before any switch, as the echoes show it; None with none to go by.
    A queued echo puts what a recv read in the queue (its `queue` event comes next for that
    fd, in the same handler call); an eager one sends it at once (`send` next), and queues it
    only behind a queue or after a partial send: one `send` right after a `recv` says eager.
    A `backend` event ends the search (it says the new strategy); a seq gap forgets the recvs
    before it."""
    read: set[Any] = set()  # fds whose last event seen was a recv of bytes
    queued = False
    last_seq = None
    for event in events:
        kind = event["kind"]
        if kind == "backend":
            break
        seq = event.get("seq")
        if isinstance(seq, int) and last_seq is not None and seq != last_seq + 1:
            read.clear()
        last_seq = seq
        fd = event.get("fd")
        if kind == "recv" and event.get("bytes"):
            read.add(fd)
        elif fd in read and kind in ("send", "queue"):
            if kind == "send":
                return "eager"
            queued = True
            read.discard(fd)
    return "queued" if queued else None


def _epoll_marks(events: list[dict[str, Any]]) -> tuple[str, bool] | None:
    """(trigger, oneshot) as the registrations before any switch show them; None with none to
    go by (an idle engine's trace registers nothing). A switch's re-registrations (`moved`)
    carry the new backend's flags, and come before its `backend` event."""
    flags: set[str] = set()
    seen = False
    for event in events:
        if event["kind"] == "backend" or event.get("moved"):
            break
        if event["kind"] == "interest" and event.get("op") != "unregister":
            seen = True
            flags.update(event.get("flags") or ())
    if not seen:
        return None
    return ("edge" if "EPOLLET" in flags else "level"), "EPOLLONESHOT" in flags


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
