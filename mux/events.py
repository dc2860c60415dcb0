"""The event vocabulary of SPEC §3, and the safe preview of untrusted bytes.

Events are plain dicts (they are the wire format); the TypedDicts below document their
fields at no run-time cost.
"""

from __future__ import annotations

from typing import Literal, TypedDict

PREVIEW_BYTES = 64

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
    ready: int
    duration_us: int


class RecvEvent(Event):
    bytes: int
    preview: str


def preview(data: bytes | bytearray | memoryview) -> str:
    """First PREVIEW_BYTES bytes as printable ASCII text.

    `repr` of bytes escapes every non-printable byte (``\\n``, ``\\x00``, ``\\xff``...) in C,
    so any byte sequence, telnet IAC and invalid UTF-8 included, becomes safe text.
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
    return repr(head)[2:-1]
