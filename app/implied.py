"""What a file of events only (a trace download; a recording whose snapshot line was cut off)
implies of the engine before its first event, gathered while replay reads it.

Each fact is a scanner: a generator that is sent the events in order, then None at the end of
the file, and returns the fact, often long before the end (the first wait names the backend).
Replay hands its events on a chunk at a time and keeps none of them, so a fact cannot be read
from a list afterwards; written this way each scanner still reads as the loop over the events
that it is.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]
#: sent events (None: the file ended), returns the fact
Scanner = Generator[None, Event | None, Any]


@dataclass(frozen=True)
class Facts:
    first_seq: int  # the seq before the file's first event
    backend: str | None
    epoll_marks: tuple[str, bool] | None  # (trigger, oneshot)
    write: str | None
    loop: str


class Implied:
    """Feeds each event to the scanners still open; `finish` ends the file and says what
    they found."""

    def __init__(self) -> None:
        self._first_seq: int | None = None
        self._open: dict[str, Scanner] = {"backend": first_backend(), "epoll_marks": epoll_marks(),
                                          "write": write_before(), "loop": loop_before()}
        for scanner in self._open.values():
            next(scanner)
        self._found: dict[str, Any] = {}

    def feed(self, event: Event | None) -> None:
        if self._first_seq is None and event is not None:
            self._first_seq = event["seq"] - 1
        for name, scanner in list(self._open.items()):
            try:
                scanner.send(event)
            except StopIteration as stop:
                self._found[name] = stop.value
                del self._open[name]

    def finish(self) -> Facts:
        self.feed(None)  # every scanner returns at the end
        return Facts(first_seq=self._first_seq or 0, **self._found)


def first_backend() -> Scanner:
    """The backend the engine ran when the file begins: a switch's `from`, when one comes
    before the first wait; else the first wait's (a poll trace was shown as epoll)."""
    name = None
    while (event := (yield)) is not None:
        if event["kind"] == "backend":
            name = event.get("from")
            break
        if event["kind"] == "wait":
            name = event.get("backend")
            break
    return name if name in ("select", "poll", "epoll") else None


def loop_before() -> Scanner:
    """The loop's state before the file's first `loop` event, by what that event changed: a
    resume or a step was made on a paused loop, a pause or a breakpoint's hit on a running
    one, and a slow-motion or flaw change left the state as it says. Running without one."""
    while (event := (yield)) is not None:
        if event["kind"] == "loop":
            break
    else:
        return "running"
    state, cause = event.get("state"), event.get("cause")
    if cause == "command":  # Pause or Resume
        return "paused" if state == "running" else "running"
    if cause == "step" or state == "step":
        return "paused"
    if cause == "breakpoint":
        return "running"
    return "running" if state == "running" else "paused"


def write_before() -> Scanner:
    """The write strategy before any switch, as the echoes show it; None with none to go by.
    A queued echo puts what a recv read in the queue (its `queue` event comes next for that
    fd, in the same handler call); an eager one sends it at once (`send` next), and queues it
    only behind a queue or after a partial send: one `send` right after a `recv` says eager.
    A `backend` event ends the search (it says the new strategy); a seq gap forgets the recvs
    before it."""
    read: set[Any] = set()  # fds whose last event seen was a recv of bytes
    queued = False
    last_seq = None
    while (event := (yield)) is not None:
        kind = event["kind"]
        if kind == "backend":
            break
        seq = event.get("seq")
        if isinstance(seq, int) and last_seq is not None and seq != last_seq + 1:
            read.clear()
        last_seq = seq
        fd = event.get("fd")
        if type(fd) is not int:  # (an unknown kind's fd may be anything: a list is no key)
            continue
        if kind == "recv" and event.get("bytes"):
            read.add(fd)
        elif fd in read and kind in ("send", "queue"):
            if kind == "send":
                return "eager"
            queued = True
            read.discard(fd)
    return "queued" if queued else None


def epoll_marks() -> Scanner:
    """(trigger, oneshot) as the registrations before any switch show them; None with none to
    go by (an idle engine's trace registers nothing). A switch's re-registrations (`moved`)
    carry the new backend's flags, and come before its `backend` event."""
    flags: set[str] = set()
    seen = False
    while (event := (yield)) is not None:
        if event["kind"] == "backend" or event.get("moved"):
            break
        if event["kind"] == "interest" and event.get("op") != "unregister":
            seen = True
            flags.update(event.get("flags") or ())
    if not seen:
        return None
    return ("edge" if "EPOLLET" in flags else "level"), "EPOLLONESHOT" in flags
