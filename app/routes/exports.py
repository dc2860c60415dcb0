"""Trace downloads (GET /api/trace): bounded in number, and ended when the client stalls.

Each download holds memory until it ends: a jsonl one the trace ring's batches of its start
(~23 MB when the ring is full, kept after the live ring has moved on), a chrome one its
recv->send flow pairing too (up to ~25 MB more). So each format has a few slots, and the next
download gets a 409; and a client that stops reading (its socket buffers full) for
`STALL_S` is let go (reset, so the kernel's buffers go too), so it cannot keep a slot, and
that memory, for as long as it stays connected. A slow client that keeps reading is never let
go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from app.routes.release import abort, transport_of, unsent_bytes

log = logging.getLogger(__name__)

MAX_EXPORTS = 2  # per format
#: seconds a download may go without its client taking a single byte of it
STALL_S = 30.0
PROGRESS_POLL = 0.5  # s: how often a waiting send looks at what the client has taken


@dataclass(frozen=True)
class Format:
    media_type: str
    filename: str
    slots: threading.BoundedSemaphore


CHROME = Format("application/json", "muxscope-trace.json", threading.BoundedSemaphore(MAX_EXPORTS))
JSONL = Format("application/x-ndjson", "muxscope-trace.jsonl",
               threading.BoundedSemaphore(MAX_EXPORTS))


def start(fmt: Format, chunks: Callable[[], Iterator[bytes]]) -> StreamingResponse:
    """The download's response, if a slot is free (else 409); `chunks` is called only then."""
    if not fmt.slots.acquire(blocking=False):
        raise HTTPException(409, f"{MAX_EXPORTS} trace downloads are already running: try "
                                 "again when one has finished")
    try:
        body = _Released(chunks(), fmt.slots)
    except BaseException:
        fmt.slots.release()
        raise
    return _ExportResponse(body, media_type=fmt.media_type, headers={
        "Content-Disposition": f'attachment; filename="{fmt.filename}"'})


class _Stalled(Exception):
    pass


class _Progress:
    """Sends pieces of a download, and lets its client go (a reset: asyncio's buffer and the
    kernel's send queue dropped) when it takes no byte for `STALL_S`. Progress is bytes taken
    (asyncio's buffer plus the kernel's send queue going down), never how long one `send`
    waits: a send waits until the client has taken most of a piece (uvicorn's flow control),
    which on a slow link is longer than STALL_S while bytes flow the whole time."""

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.transport = transport
        self.stalled = False

    async def send(self, send: Send, message: Message) -> None:
        if self.transport is None:  # not uvicorn's transport: no way to watch it, or abort
            await send(message)
            return
        task = asyncio.ensure_future(send(message))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STALL_S
        unsent = unsent_bytes(self.transport)
        try:
            while not (await asyncio.wait({task}, timeout=PROGRESS_POLL))[0]:
                left = unsent_bytes(self.transport)
                if left < unsent:  # the client is reading
                    give_up = loop.time() + STALL_S
                unsent = left
                if loop.time() >= give_up:
                    self.stalled = True
                    abort(self.transport)
                    raise _Stalled
        finally:
            if not task.done():
                task.cancel()
        task.result()


class _ExportResponse(StreamingResponse):
    """Gives the slot back as soon as the response is over, however it ended: a client that
    leaves mid-download only stops the iteration, and the abandoned iterator was then freed by
    the garbage collector, tens of seconds later (every download meanwhile: 409). A client
    that takes nothing for `STALL_S` is let go (`_Progress`)."""

    def __init__(self, chunks: _Released, **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._released = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        progress = _Progress(transport_of(scope))

        async def send_or_let_go(message: Message) -> None:
            await progress.send(send, message)

        try:
            await super().__call__(scope, receive, send_or_let_go)
        except BaseException:
            if not progress.stalled:  # also when wrapped in an exception group: the flag says
                raise
            log.warning("a trace download's client took nothing for %.0f s: let go", STALL_S)
            await _disconnected(receive)
        finally:
            self._released.release()
            self._released.close()


async def _disconnected(receive: Receive) -> None:
    """Until the server has seen the reset (else it logs "ASGI callable returned without
    completing response" for a response that was ended on purpose)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            while (await receive())["type"] != "http.disconnect":
                pass


class _Released:
    """`chunks`, giving back the slot when they end or fail, or when the response is dropped
    before it ever started (a generator's `finally` would not run then)."""

    def __init__(self, chunks: Iterator[bytes], slots: threading.BoundedSemaphore) -> None:
        self._chunks = chunks
        self._slots = slots
        self._held = True
        self._lock = threading.Lock()

    def __iter__(self) -> _Released:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._slots.release()

    def close(self) -> None:
        """Free the converter's state now (a chrome export's flow pairing holds ~25 MB)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # still running in a worker thread: it ends with the iterator
                pass

    def __del__(self) -> None:
        self.release()
