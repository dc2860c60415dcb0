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

from app.routes.release import abort, taken_in_time, transport_of, unsent_bytes

log = logging.getLogger(__name__)

MAX_EXPORTS = 2  # per format
#: seconds a download may go without its client taking a single byte of it. Generous: the
#: kernel reopens a slow reader's window only once it has taken 64-130 KB, so a reader at
#: 1 kB/s shows no progress for up to ~2 minutes
STALL_S = 150.0
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
    if _shutting_down:
        raise HTTPException(503, "the server is shutting down")
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


class _Ended(Exception):
    """The download was ended on purpose (`_Progress.ended` says why)."""


#: the downloads under way, so a shutdown can end them (`end_all`)
_RUNNING: set[_Progress] = set()
_shutting_down = False


def end_all() -> None:
    """Reset every download under way, and any that starts from now on: at shutdown, before
    the server waits for its open connections (a download outlasted that wait, and was
    cancelled with a traceback; one asked for just after the signal too)."""
    global _shutting_down
    _shutting_down = True
    for progress in list(_RUNNING):
        progress.end("shutdown")


class _Progress:
    """Sends pieces of a download, and lets its client go (a reset: asyncio's buffer and the
    kernel's send queue dropped) when it takes no byte for `STALL_S`. Progress is bytes taken
    (asyncio's buffer plus the kernel's send queue going down), never how long one `send`
    waits: a send waits until the client has taken most of a piece (uvicorn's flow control),
    which on a slow link is longer than STALL_S while bytes flow the whole time."""

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.transport = transport
        self.ended: str | None = None  # why it was ended on purpose: "stalled", "shutdown"

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
        if self.transport is not None:
            abort(self.transport)

    async def send(self, send: Send, message: Message) -> None:
        if self.ended is not None:  # the server's send would take the rest quietly, unsent
            raise _Ended
        if self.transport is None:  # not uvicorn's transport: no way to watch it, or abort
            await send(message)
            return
        task = asyncio.ensure_future(send(message))
        try:
            await self._watch(task)
        finally:
            if not task.done():
                task.cancel()
        task.result()

    async def drained(self) -> None:
        """After the last piece: until the client has taken what asyncio and the kernel
        still hold, or is let go (reset: the kernel's queue goes too; else a client that never
        reads keeps it, and its connection, until the keep-alive timeout and beyond).
        """
        if self.transport is not None and self.ended is None:
            await self._watch(None)

    async def _watch(self, task: asyncio.Future[None] | None) -> None:
        """Until `task` is done (None: the client has taken everything, asyncio's buffer
        and our kernel send queue both empty: a small document fits in the kernel's buffers
        whole, and a client that reads none of it was left holding them); `_Ended` on a stall,
        or when ended meanwhile (a shutdown)."""
        transport = self.transport
        assert transport is not None

        def done() -> bool:
            if self.ended is not None:
                return True
            if task is not None:
                return task.done()
            return transport.is_closing() or not unsent_bytes(transport)

        if not await taken_in_time(transport, done, STALL_S, PROGRESS_POLL, wake=task):
            self.end("stalled")
        if self.ended is not None:
            raise _Ended


class _ExportResponse(StreamingResponse):
    """Gives the slot back as soon as the response is over, however it ended: a client that
    leaves mid-download only stops the iteration, and the abandoned iterator was then freed by
    the garbage collector, tens of seconds later (every download meanwhile: 409). A client
    that takes nothing for `STALL_S` is let go (`_Progress`), also after the last piece."""

    def __init__(self, chunks: _Released, **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._released = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        progress = _Progress(transport_of(scope))

        async def send_or_let_go(message: Message) -> None:
            await progress.send(send, message)

        _RUNNING.add(progress)
        if _shutting_down:  # asked for before end_all, started after it
            progress.end("shutdown")
        try:
            await super().__call__(scope, receive, send_or_let_go)
            self._give_back()  # the whole document is out: the slot is free
            await progress.drained()
        except BaseException:
            if progress.ended is None:  # also when wrapped in an exception group: it says
                raise
            if progress.ended == "stalled":
                log.warning("a trace download's client took nothing for %.0f s: let go",
                            STALL_S)
            await _disconnected(receive)
        finally:
            _RUNNING.discard(progress)
            self._give_back()

    def _give_back(self) -> None:
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
