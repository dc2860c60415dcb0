"""Letting go of a websocket whose peer takes nothing (SPEC §6: a browser that stops reading is
disconnected, never held with unbounded buffers).

Ending the ASGI handler is not enough. uvicorn then calls `transport.close()`, and asyncio's
close waits for the transport's write buffer to drain, which a peer that reads nothing never
lets happen: the TCP connection stayed established for good, with megabytes in the kernel's send
buffer, past `--max-clients`, and it held up shutdown until uvicorn's graceful timeout. ASGI has
no "abort"; the `send` callable the server hands the app is a method of its protocol object, which
holds the transport. `ServerSendKeeper` keeps that `send` in the scope, and `reset` aborts the
transport through it (with SO_LINGER 0, so the kernel drops what it holds too). Under a server
that does not work that way both do nothing, and the connection ends as the server decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from mux import socket_queues

SERVER_SEND = "muxscope.server_send"
#: a peer that takes not one byte in this long, once its handler is done, is reset...
STALL_TIMEOUT = 1.0
#: ...and one that is still taking them, but slowly, gets this long in all (the server's
#: graceful-shutdown timeout, so a shutdown is never held up longer by it)
DRAIN_LIMIT = 5.0
_POLL = 0.05


class ServerSendKeeper(FastAPI):
    """The app, keeping the server's own `send` in every websocket's and request's scope (for
    `reset`, and for trace downloads: exports.py). Here, not in a middleware: Starlette's
    outermost middleware, ServerErrorMiddleware, hands the ones inside it a `send` of its own
    on HTTP."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http"):
            scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


def transport_of(scope: Scope) -> asyncio.Transport | None:
    protocol: Any = getattr(scope.get(SERVER_SEND), "__self__", None)
    transport = getattr(protocol, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def reset(websocket: WebSocket) -> bool:
    """Drop the connection now, unsent bytes and all. False if the transport is out of reach."""
    transport = transport_of(websocket.scope)
    if transport is None:
        return False
    abort(transport)
    return True


def abort(transport: asyncio.Transport) -> None:
    """Close with a reset: asyncio's buffer and the kernel's send queue are dropped."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def unsent_bytes(transport: asyncio.Transport) -> int:
    """Bytes not yet taken by the peer: asyncio's buffer plus the kernel's send queue."""
    queued = 0
    sock = transport.get_extra_info("socket")
    if sock is not None:
        queued = max(0, socket_queues(sock.fileno())["send_queue"])  # -1: unknown
    return transport.get_write_buffer_size() + queued


async def taken_in_time(transport: asyncio.Transport, done: Callable[[], bool],
                        stall: float, poll: float, limit: float | None = None,
                        wake: asyncio.Future[Any] | None = None) -> bool:
    """Wait until `done()`; False when the peer takes no byte for `stall` seconds (or, with
    `limit`, has not finished within it). Progress is bytes taken: asyncio's buffer plus the
    kernel's send queue going down. `wake`: a future whose end is worth looking at at once."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    give_up = now + limit if limit is not None else None
    stalled_at = now + stall
    unsent = unsent_bytes(transport)
    while not done():
        now = loop.time()
        if now >= stalled_at or (give_up is not None and now >= give_up):
            return False
        if wake is None:
            await asyncio.sleep(poll)
        else:
            await asyncio.wait({wake}, timeout=poll)
        left = unsent_bytes(transport)
        if left < unsent:  # the peer is reading
            stalled_at = loop.time() + stall
        unsent = left
    return True


async def release(websocket: WebSocket) -> None:
    """At the end of a handler: let the peer take what is still in asyncio's write buffer (a
    close frame, the last events); reset the connection if it stops taking bytes for
    `STALL_TIMEOUT`, or has not taken them all within `DRAIN_LIMIT`. A slow reader that keeps
    reading is not a stuck one: it gets its close frame."""
    transport = transport_of(websocket.scope)
    if transport is None:
        return
    if not await taken_in_time(transport, lambda: not transport.get_write_buffer_size(),
                               STALL_TIMEOUT, _POLL, DRAIN_LIMIT):
        reset(websocket)
