"""The echo servers the benchmark compares; each runs in its own subprocess (see `serve`).

Every server is started by a `start_*` function that returns a `Running`: the TCP port it
listens on, a `stop` callable, and an optional `extra` callable that reports variant-specific
figures (the engine's wait counters) as a JSON-able dict. The bare loops are in `baseline`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"


@dataclass
class Running:
    port: int
    stop: Callable[[], None]
    extra: Callable[[], dict[str, Any]] = field(default=lambda: {})
    http_port: int | None = None


# --- (c) stdlib asyncio Protocol echo server: the reference -------------------------------


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def start_asyncio() -> Running:
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    started = threading.Event()

    async def boot() -> None:
        server = await loop.create_server(_EchoProtocol, HOST, 0, backlog=4096)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(boot())
        loop.run_forever()

    threading.Thread(target=run, name="asyncio-echo", daemon=True).start()
    started.wait(10)
    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)

    return Running(port=ready[0], stop=stop)


# --- (a) the muxscope engine, unobserved (or with a wait-only counter) ---------------------


class WaitCpu:
    """Wraps the engine backend's ``wait`` to add up the CPU time the call itself costs.

    The engine's own ``stats.wait_us`` is wall time, which includes blocking until the next
    message arrives; the thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) around the call counts only
    the kernel's scan and the backend's own Python work. Benchmark-only: it reaches into
    ``engine.loop.backend``, which is not part of the engine's public API.
    """

    def __init__(self, engine: Any) -> None:
        self.cpu_s = 0.0
        self.ok = False
        backend = getattr(getattr(engine, "loop", None), "backend", None)
        if backend is not None and hasattr(backend, "wait"):
            inner = backend.wait
            clock = time.thread_time

            def wait(timeout: float | None) -> Any:
                t0 = clock()
                try:
                    return inner(timeout)
                finally:
                    self.cpu_s += clock() - t0

            backend.wait = wait
            self.ok = True


def _thread_cpu_s(name: str) -> float:
    """CPU seconds of the live thread called `name` (from /proc schedstat, ns precision)."""
    for t in threading.enumerate():
        if t.name == name and t.native_id is not None:
            try:
                with open(f"/proc/self/task/{t.native_id}/schedstat") as f:
                    return int(f.read().split()[0]) / 1e9
            except OSError:
                return 0.0
    return 0.0


def _stats_dict(stats: Any) -> dict[str, Any]:
    if hasattr(stats, "as_dict"):
        return dict(stats.as_dict())
    names = getattr(stats, "__slots__", ()) or vars(stats)
    return {name: getattr(stats, name) for name in names}


def start_engine(
    backend: str, trigger: str, write: str, count_waits: bool = False
) -> Running:
    from mux import Engine, EngineConfig  # imported late: the engine may not exist yet

    cfg = EngineConfig(
        host=HOST, tcp_port=0, udp=False, backend=backend, trigger=trigger, write=write,
        max_connections=12_000,
    )
    engine = Engine(cfg)
    wait_cpu = WaitCpu(engine) if count_waits else None
    engine.start()

    def extra() -> dict[str, Any]:
        out: dict[str, Any] = {"stats": _stats_dict(engine.stats),
                               "engine_cpu_s": _thread_cpu_s("mux-engine")}
        if wait_cpu is not None and wait_cpu.ok:
            out["wait_cpu_s"] = wait_cpu.cpu_s
        return out

    def stop() -> None:
        engine.stop()
        engine.join(timeout=5)

    return Running(port=engine.tcp_port, stop=stop, extra=extra)


# --- (b) the app as it runs, with uvicorn in this process ----------------------------------


def _settings(settings_cls: Any, write: str) -> Any:
    """Build the app's Settings for a loopback run on free ports, whatever its exact shape."""
    wanted: dict[str, Any] = {
        "host": HOST, "http_port": 0, "echo_port": 0, "udp": False, "no_udp": True,
        "udp_port": None, "max_connections": 12_000, "backend": "epoll",
        "trigger": "level", "write": write,
    }
    names = _field_names(settings_cls)
    return settings_cls(**{k: v for k, v in wanted.items() if k in names})


def _field_names(cls: Any) -> set[str]:
    if hasattr(cls, "model_fields"):
        return set(cls.model_fields)
    if hasattr(cls, "__dataclass_fields__"):
        return set(cls.__dataclass_fields__)
    import inspect

    return set(inspect.signature(cls).parameters)


def http_json(port: int, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
    """A small JSON HTTP client on 127.0.0.1 (stdlib only)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _wait_http(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            http_json(port, "GET", "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("the app did not answer /healthz")


def start_app(write: str, backend: str = "epoll", budget: int | None = None) -> Running:
    """The app exactly as ``muxscope`` serves it: create_app + uvicorn, in this process.

    `budget` replaces the app's observation budget (events/s shown to pages): a what-if row
    that shows what watching costs per event shown."""
    import uvicorn

    from app import main as app_main
    from app.main import UVICORN_OPTIONS, create_app
    from app.settings import Settings

    if budget is not None:
        app_main.OBSERVE_BUDGET = budget

    app = create_app(_settings(Settings, write))
    from app.run import bind_http

    sock = bind_http(HOST, 0)  # as `muxscope` makes it: TCP_NODELAY on what it accepts
    http_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                          name="uvicorn")
    th.start()
    _wait_http(http_port, time.monotonic() + 20)
    from app.run import settle_heap

    settle_heap()  # as `muxscope` does once it has started
    state = http_json(http_port, "POST", "/api/backend",
                      {"name": backend, "trigger": "level", "write": write})
    port = int(state["listeners"]["tcp"]["port"])
    engine = getattr(getattr(app, "state", None), "engine", None)

    def stop() -> None:
        server.should_exit = True
        th.join(timeout=5)
        if engine is not None:
            engine.stop()
            engine.join(timeout=5)

    return Running(port=port, stop=stop, http_port=http_port)
