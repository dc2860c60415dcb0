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
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

SERVER_SEND = "muxscope.server_send"
#: how long a peer gets to take what is left in the write buffer once its handler is done
DRAIN_TIMEOUT = 1.0
_POLL = 0.05


class ServerSendKeeper:
    """Outermost middleware: keeps a websocket's server-side `send` in its scope (for `reset`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def _transport(websocket: WebSocket) -> asyncio.Transport | None:
    protocol: Any = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
    transport = getattr(protocol, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


def reset(websocket: WebSocket) -> bool:
    """Drop the connection now, unsent bytes and all. False if the transport is out of reach."""
    transport = _transport(websocket)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


async def release(websocket: WebSocket) -> None:
    """At the end of a handler: give the peer `DRAIN_TIMEOUT` to take what is still buffered
    (a close frame, the last events), then reset the connection if it has not."""
    transport = _transport(websocket)
    if transport is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT
    while transport.get_write_buffer_size() and loop.time() < deadline:
        await asyncio.sleep(_POLL)
    if transport.get_write_buffer_size():
        reset(websocket)
