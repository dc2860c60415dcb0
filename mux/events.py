"""The event vocabulary of SPEC §3, and the safe preview of untrusted bytes.

Events are plain dicts (they are the wire format); the TypedDicts below document their
fields at no run-time cost.
"""

from __future__ import annotations

from typing import Literal, TypedDict

PREVIEW_BYTES = 64
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}

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
    """First PREVIEW_BYTES bytes as printable text: UTF-8 where they are (``héllo`` is text a
    person typed), every other byte escaped as ``\\xNN`` (and ``\\n``, ``\\t``, ``\\r``, ``\\\\``).

    ASCII goes through `repr` of bytes, which escapes in C (its `\\'`, made when the bytes hold
    both quotes, loses its backslash: no quote is escaped). Anything else is decoded with
    `surrogateescape`: a byte that is no UTF-8 (telnet IAC, GBK, a character cut at the 64th
    byte) comes back as a lone surrogate and is escaped as that byte; a character that is not
    printable (a control, a bidi override, a zero-width space) is escaped as its UTF-8 bytes.
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
        # every ' of a single-quoted repr is \' (and a backslash of the bytes \\): the
        # backslash right before each quote is the escape's
        return escaped.replace("\\'", "'") if "\\'" in escaped else escaped
    text = head.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escaped, text))


def _escaped(char: str) -> str:
    """One character of a non-ASCII preview, printable."""
    if char.isprintable() and char != "\\":
        return char
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is no UTF-8, through surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))
