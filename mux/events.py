"""The event vocabulary of SPEC §3, and the safe preview of untrusted bytes.

Events are plain dicts (they are the wire format); the TypedDicts below document their
fields at no run-time cost.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, NotRequired, TypedDict

PREVIEW_BYTES = 64


class _Escapes(dict[int, str]):
    """str.translate's table for a preview: a character maps to itself when printable, else to
    its UTF-8 bytes as \\xNN (\\t \\n \\r by name). Filled as characters are met, so that
    translate runs in C once they are known; bounded (random bytes decode to many): full, it
    starts afresh, so characters seen once long ago cannot keep out the ones in use."""

    LIMIT = 4096

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char.isprintable() and not _INVISIBLE.match(char):
            escaped = char
        else:
            escaped = _NAMED.get(char) or "".join(f"\\x{b:02x}" for b in char.encode("utf-8"))
        if len(self) >= self.LIMIT:
            self.clear()
        self[code] = escaped
        return escaped


#: Unicode's default-ignorable characters that str.isprintable() passes (marks and letters
#: drawn as nothing: variation selectors, Hangul fillers, the grapheme joiner, Mongolian
#: selectors); the others (U+200B, bidi controls, ...) are format characters it refuses.
_INVISIBLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f"
                        "\uffa0\U000e0000-\U000e0fff]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPES = _Escapes()

Kind = Literal[
    "wait", "ready", "interest", "accept", "recv", "send", "queue", "datagram",
    "backpressure", "close", "backend", "loop", "error", "flaw",
]
CloseReason = Literal["eof", "reset", "error", "user", "shutdown"]


class Event(TypedDict, total=False):
    seq: int
    ts: float
    kind: Kind
    fd: int


class WaitEvent(Event):
    backend: str
    registered: int
    timeout_ms: int | None
    timeout_us: int  # select only: its struct timeval's microseconds
    ready: int
    duration_us: int  # wall time, asleep included
    cpu_us: int  # the loop thread's CPU time in the call (a shown wait only)


def wait_event(backend: str, registered: int, timeout: float | None, ready: int, us: float,
               cpu_ns: int | None = None, late: bool = False) -> dict[str, Any]:
    """One wait call as SPEC §3 says it (`timeout` in seconds, None: none; `us`: wall time)."""
    event: dict[str, Any] = {  # the fields of WaitEvent
        "kind": "wait",
        "backend": backend,
        "registered": registered,
        # rounded up, as poll's backend and CPython's epoll.poll pass it to the kernel
        "timeout_ms": None if timeout is None else math.ceil(timeout * 1000),
        "ready": ready,
        "duration_us": int(us),
    }
    if timeout is not None and backend == "select":
        # select takes a struct timeval: CPython passes microseconds (rounded up), not the
        # whole milliseconds above (a pending timer's 249.3 ms was shown as 250 ms)
        event["timeout_us"] = math.ceil(timeout * 1_000_000)
    if late:  # shown after the fact: a breakpoint matched in an iteration nobody was shown
        event["late"] = True
    if cpu_ns is not None:  # (a wait shown only because a sink came during it has none)
        # at most its wall time: the CPU clock's reads bracket the wall clock's, so its
        # interval is longer by two clock calls ("took 4 us, 5 us of it on the CPU")
        event["cpu_us"] = min(cpu_ns // 1000, int(us))
    return event


class RecvEvent(Event):
    bytes: int
    preview: str
    eof: NotRequired[bool]  # recv() returned 0 bytes: the peer's EOF (bytes 0, preview "")


def preview(data: bytes | bytearray | memoryview) -> str:
    """First PREVIEW_BYTES bytes as printable text: UTF-8 where they are (``héllo`` is text a
    person typed), every other byte escaped as ``\\xNN`` (and ``\\n``, ``\\t``, ``\\r``, ``\\\\``).

    ASCII goes through `repr` of bytes, which escapes in C (its `\\'`, made when the bytes hold
    both quotes, loses its backslash: no quote is escaped). Anything else is decoded with
    `backslashreplace`: a byte that is no UTF-8 (telnet IAC, GBK, a character cut at the 64th
    byte) comes out as \\xNN; a character that is not printable (a control, a bidi override,
    a zero-width space, a variation selector or Hangul filler drawn as nothing) is escaped
    as its UTF-8 bytes.
    """
    head: bytes
    if type(data) is memoryview:  # e.g. of the receive buffer: copy its first bytes
        if data.ndim == 1 and data.itemsize == 1:
            head = data[:PREVIEW_BYTES].tobytes()
        else:  # a view of anything but bytes: slice its bytes, not its items
            head = data.tobytes()[:PREVIEW_BYTES]
    else:
        head = bytes(data[:PREVIEW_BYTES])  # bytes(b) is b itself, no copy
    if head.isascii():
        text = head.decode("ascii")
        if text.isprintable() and "\\" not in text:  # common case: nothing to escape
            return text
        escaped = repr(head)[2:-1]
        # repr quotes with ' (escaping every ' as \') only when the bytes hold both quotes;
        # then, and only then, the backslash right before each ' is the escape's
        if b"'" in head and b'"' in head:
            return escaped.replace("\\'", "'")
        return escaped
    # a backslash byte is never part of a UTF-8 sequence: doubled first, so that every
    # backslash of the text is an escape's; each byte that is no UTF-8 becomes \xNN (in C)
    text = head.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    if _INVISIBLE.search(text):  # rare: drawn as nothing, yet isprintable() passes them
        return text.translate(_ESCAPES)
    if text.isprintable():
        return text
    # typed lines end in \n or \r\n: three C replaces settle most of them
    named = text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return named if named.isprintable() else text.translate(_ESCAPES)
