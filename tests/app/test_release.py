"""`release` at the end of a websocket handler: a peer that takes nothing is reset, a peer
that is still reading (slowly) is not. Real asyncio transports over loopback TCP; the
"websocket" is only what `release` reads of one: the server's `send`, bound to an object that
holds the transport (as uvicorn's protocol does)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

from app.routes import release as release_mod
from tests.conftest import run_async

PAYLOAD = 4 << 20  # far more than the kernel's buffers hold with these sizes
SMALL_BUFFER = 64 << 10


class _Protocol(asyncio.Protocol):
    """Stands in for uvicorn's protocol object: it holds the transport."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    async def send(self, message: Any) -> None:  # the ASGI send that the scope keeps
        raise NotImplementedError


def _run(reader_rate: float | None) -> tuple[int, bool, float]:
    """Write PAYLOAD to a peer that reads `reader_rate` bytes/s (None: never), then release.
    Returns (bytes the peer got, whether it saw a reset, seconds release took)."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    server_side, _ = listener.accept()
    listener.close()
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    got, reset, stop = [0], [False], threading.Event()

    def read() -> None:
        assert reader_rate is not None
        peer.settimeout(10)
        began = time.monotonic()
        try:
            while got[0] < PAYLOAD and not stop.is_set():
                data = peer.recv(64 << 10)
                if not data:
                    return
                got[0] += len(data)
                # the reader's pace, not a wait for state: kept against the clock, so that each
                # recv's and each oversleep's time on a loaded box does not add up (2.1 s of
                # reading went past DRAIN_LIMIT's 5 s at ~40 % of the rate)
                time.sleep(max(0.0, began + got[0] / reader_rate - time.monotonic()))
        except ConnectionResetError:
            reset[0] = True
        except TimeoutError:
            return

    async def serve() -> float:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_accepted_socket(_Protocol, server_side)
        websocket = SimpleNamespace(scope={release_mod.SERVER_SEND: protocol.send})
        transport.write(b"x" * PAYLOAD)
        started = loop.time()
        await release_mod.release(websocket)  # type: ignore[arg-type]
        took = loop.time() - started
        transport.close()
        return took

    reader = threading.Thread(target=read, daemon=True)
    if reader_rate is not None:
        reader.start()
    try:
        took = run_async(serve())
        if reader_rate is None:
            peer.settimeout(5)
            try:
                while peer.recv(1 << 20):
                    pass
            except ConnectionResetError:
                reset[0] = True
        else:
            reader.join(15)
    finally:
        stop.set()
        peer.close()
    return got[0], reset[0], took


def test_a_peer_that_takes_nothing_is_reset_once_it_stalls() -> None:
    _, reset, took = _run(reader_rate=None)
    assert reset, "the stuck peer was not reset"
    assert took < release_mod.STALL_TIMEOUT + 1.0, took


def test_a_slow_reader_that_keeps_reading_gets_everything() -> None:
    """It was reset whenever asyncio's buffer was not empty one second after the handler,
    however steadily the peer read: it lost its close frame and last events."""
    got, reset, took = _run(reader_rate=2e6)  # ~2 MB/s: about 2 s for what is buffered
    assert not reset, f"a reading peer was reset after {took:.1f} s ({got} bytes)"
    assert took > release_mod.STALL_TIMEOUT, f"done in {took:.2f} s: nothing was left to wait for"
    assert got == PAYLOAD


def test_the_send_queue_of_a_closed_socket_reads_as_unknown() -> None:
    """A transport closed meanwhile gives fd -1: the ioctl raised ValueError, a traceback at
    shutdown with a browser connected."""
    from mux import socket_queues

    sock = socket.socket()
    sock.close()
    assert socket_queues(sock.fileno())["send_queue"] == -1
