"""Shared fixtures: keep them small and generic."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import uvicorn

T = TypeVar("T")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn.Server that signals when it is accepting requests."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        """uvicorn's, with a 10 ms tick instead of 100: a test's stop waited 50 ms on average
        for the tick to see `should_exit` (a few hundred servers a run)."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def run_asgi(app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn in a thread, on `port` (0: a free one); yield the
    base URL. A port given again after the first server stopped is a restarted server."""
    from app.run import bind_http  # the dashboard's own socket, as `muxscope` makes it

    sock = bind_http(host, port)
    port = sock.getsockname()[1]
    from app.main import UVICORN_OPTIONS

    options: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": 3,
                               **UVICORN_OPTIONS}
    options.update(config)
    server = _Server(uvicorn.Config(app, **options))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-test", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.ready.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        yield f"http://{netloc}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        sock.close()


@contextlib.contextmanager
def port_held(port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """Keep `port` from every other bind while this test's server is down: a socket bound to
    it that never listens, so a connection to it is refused as with no server at all. Without
    it, another worker's app could pick the port (bind(0) passes over any port with a socket
    on it) and take this test's page's reconnects as echo connections: a stray readiness that
    once came before another test's own (CI, session 51). SO_REUSEADDR: bound over the
    stopped server's TIME_WAIT sockets; a server started again on the port may bind beside
    it (neither listens at bind time), though the tests close it first."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        yield
    finally:
        sock.close()


@pytest.fixture(scope="session")
def serve_asgi() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with serve_asgi(app) as base_url:`` runs ``app`` on 127.0.0.1 on a free port."""
    return run_asgi


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` on a thread of its own: once a browser test has started
    Playwright's sync API, this thread counts as running an event loop, and `asyncio.run`
    here raises (test order decided whether an app test passed)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0,
               what: str | Callable[[], str] = "", interval: float = 0.005) -> Any:
    """Poll `predicate` every `interval` s until it returns something truthy (returned), or
    fail at `timeout`. `what` may be a function, called at the failure: it can say what the
    predicate saw last."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said or predicate}")
        time.sleep(interval)
