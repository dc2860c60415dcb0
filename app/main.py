"""The app factory: the engine thread, the event pump and the routes, for one Settings."""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401 - now, not at shutdown (see _lifespan)
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import __version__
from app.bridge import EventTap, flush, pump
from app.errors import validation_error
from app.hub import Hub
from app.metrics import Metrics
from app.record import JsonlRecorder
from app.record_thread import RecorderThread
from app.routes import api, live, pages
from app.routes.release import ServerSendKeeper
from app.run import quiet_accept_errors
from app.security import BodyLimitMiddleware, SecurityMiddleware, install_denial_log_filter
from app.settings import Settings
from app.trace import TraceRing
from mux import Engine, EngineConfig, LoadGenerator

HERE = Path(__file__).resolve().parent

#: uvicorn options every server of this app uses (CLI, benchmark, tests). permessage-deflate
#: is off: on loopback it saves nothing, and compressing every frame was the largest single
#: cost of watching (16% of the server's samples in a profile at 75,000 events/s).
#: ws_max_size: the largest message a page may send (routes/live.py refuses more than 64 KiB
#: anyway); uvicorn's default, 16 MiB, was buffered whole before that check, per client.
UVICORN_OPTIONS: dict[str, Any] = {"ws_per_message_deflate": False,
                                   "ws_max_size": live.MAX_CLIENT_TEXT}
#: High-volume events per second the engine shows the page (mux.observe explains the budget):
#: just above the 20,000/s a page must receive (whole iterations overshoot it by ~2 %), because
#: every event shown costs the server ~2.6 us (1.5 on the engine thread, 1.1 on the web side):
#: at 25,000/s that was ~0.6 us per round trip of queued echo (docs/BENCHMARKS-history.md,
#: session 5).
OBSERVE_BUDGET = 21_000
#: the engine's wait timeout with nothing scheduled while a page watches: an idle loop's
#: waits then time out four times a second, so the page shows a loop that is alive and what a
#: timed-out wait is. With no page open the engine blocks (-1), as asyncio's does: a finite
#: timeout arms a kernel timer on every wait that sleeps (docs/BENCHMARKS-history.md "Run BF").
PAGE_WAIT_TIMEOUT = 0.25


def _asset_dir(name: str) -> Path:
    """Next to the package in a wheel (force-included), one level up in a source checkout."""
    for candidate in (HERE / name, HERE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"muxscope's {name}/ directory is missing from the installation")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; a live engine binds its listeners here (OSError if it cannot)."""
    settings = settings or Settings()
    if settings.replay:
        from app.replay import build_replay_state

        return _assemble(settings, build_replay_state(settings))
    # A recording is meant to hold the full stream: no budget then (the page still gets what
    # it can take; its own queue counts the rest as dropped).
    budget = None if settings.record else OBSERVE_BUDGET
    engine = Engine(EngineConfig(**settings.engine_config_kwargs(), observe_budget=budget))
    try:
        recorder = (RecorderThread(JsonlRecorder(settings.record, settings.record_max_mb,
                                                 snapshot_source=engine.capture))
                    if settings.record else None)
    except OSError:
        engine.stop()
        raise
    state = _live_state(settings, engine)
    if recorder is not None:
        state["metrics"].watch_recording(lambda: recorder.lost)
        state["stats_provider"] = _with_recording_losses(state["stats_provider"], recorder)
    return _assemble(settings, {**state, "recorder": recorder})


def _with_recording_losses(stats: Callable[[], dict[str, Any]],
                           recorder: RecorderThread) -> Callable[[], dict[str, Any]]:
    """The stats frames say what `--record` lost (a full disk): the page shows it, not only
    stderr and /metrics."""
    def numbers() -> dict[str, Any]:
        figures = stats()
        lost = recorder.lost
        if lost:
            figures["record_lost"] = lost
        return figures
    return numbers


def _with_load(stats: Callable[[], dict[str, Any]],
               load: LoadGenerator) -> Callable[[], dict[str, Any]]:
    """The stats frames say how many generated clients there are (how many failed, how many
    got a wrong echo, how many the server closed): a POST's answer told only the page that
    sent it, and went stale as the server closed some."""
    def numbers() -> dict[str, Any]:
        figures = stats()
        if load.count or load.errors or load.wrong or load.closed:
            figures["load"] = load.describe()
        return figures
    return numbers


def _live_state(settings: Settings, engine: Engine) -> dict[str, Any]:
    tap = EventTap()
    hub = Hub(max_clients=settings.max_clients)
    ring = TraceRing()

    async def snapshot() -> tuple[dict[str, Any], int, float]:
        captured = await asyncio.wrap_future(engine.capture())
        return captured.to_dict(), captured.seq, engine.observers.started_at

    def stats() -> dict[str, Any]:
        return engine.counters()

    def dropped() -> int:
        return sum(s.dropped_total for s in hub.subscriptions)

    metrics = Metrics(stats, dropped)
    return {"engine": engine, "tap": tap, "hub": hub, "trace": ring, "metrics": metrics,
            "snapshot_provider": snapshot, "stats_provider": stats,
            "load": None, "started_at": engine.observers.started_at}


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    asyncio.get_running_loop().set_exception_handler(quiet_accept_errors)
    state = app.state
    # set at shutdown: every websocket is closed (live.say_goodbye); made here, in the loop
    # that serves (an app served twice, as tests do, would wait on the first loop's)
    state.closing = asyncio.Event()
    engine: Engine | None = state.engine
    tasks: list[asyncio.Task[Any]] = []
    recorder = getattr(state, "recorder", None)
    consumers: list[Any] = []
    encoded_consumers: list[Any] = []
    if engine is not None:
        engine.observers.add(state.tap.sink)
        consumers.append(state.metrics)
        encoded_consumers.append(state.trace.add_batches)
        if recorder is not None:
            # The loop thread has not started yet, so reading its state here is safe.
            recorder.write_snapshot(engine.describe(), engine.observers.seq,
                                    engine.observers.started_at)
            consumers.append(recorder)
        state.hub.on_watched = lambda watched: engine.set_wait_timeout(
            PAGE_WAIT_TIMEOUT if watched else None)
        engine.start()
        state.load = LoadGenerator(state.settings.connect_host, engine.tcp_port,
                                   cap=state.settings.load_cap,
                                   max_connections=engine.max_connections, peers=engine.peers,
                                   fd_ceiling=engine.fd_ceiling,
                                   watch_limit=engine.watch_limit)
        engine.is_generated = state.load.owns  # its clients are marked as such (accept, state)
        state.stats_provider = _with_load(state.stats_provider, state.load)
        tasks.append(asyncio.create_task(pump(state.tap, state.hub, consumers=consumers,
                                               encoded_consumers=encoded_consumers)))
    try:
        yield
    finally:
        # The load clients and the engine stop first: their last events (the `close ...
        # shutdown` of every connection) still go through the tap to the recorder and the
        # trace, which the pump's final drain below delivers. The thread hops import nothing
        # (concurrent.futures.thread is imported above): with every fd in use, an import
        # failed with EMFILE here, and the engine was never stopped.
        if state.load is not None:
            await asyncio.to_thread(state.load.close)
        if engine is not None:
            engine.stop()
            await asyncio.to_thread(engine.join, 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if engine is not None:
            flush(state.tap, state.hub, consumers, encoded_consumers)
        if recorder is not None:
            await asyncio.to_thread(recorder.close)


def _page_modules(static: Path) -> list[str]:
    """The page's ES modules, for `<link rel="modulepreload">`: fetched at once instead of an
    import level at a time (three levels: the page's load took 0.4-0.7 s on loopback)."""
    found = [*(static / "js").rglob("*.js"), static / "vendor" / "uPlot.esm.js"]
    return sorted("/static/" + path.relative_to(static).as_posix() for path in found)


def _assemble(settings: Settings, state: dict[str, Any]) -> FastAPI:
    app = ServerSendKeeper(title="muxscope", version=__version__, lifespan=_lifespan,
                           docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.settings = settings
    for key, value in state.items():
        setattr(app.state, key, value)
    app.state.templates = Jinja2Templates(directory=str(_asset_dir("templates")))
    static = _asset_dir("static")
    app.state.modules = _page_modules(static)
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    if settings.replay:
        from app.replay import ReplayGuard
        from app.replay import router as replay_router

        app.include_router(replay_router)
    else:
        app.include_router(live.router)
    app.add_middleware(BodyLimitMiddleware)  # inside the security checks: refused first
    if settings.replay:  # after the security checks, before the body limit: always 409
        app.add_middleware(ReplayGuard)
    app.add_middleware(SecurityMiddleware, loopback_only=settings.loopback,
                       token=settings.token)
    install_denial_log_filter()
    return app
