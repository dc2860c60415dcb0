"""The JSON API of SPEC §4. Engine calls go through its control door and are awaited."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from app.errors import JsonRoute
from app.schemas import (
    BackendRequest,
    BreakpointRequest,
    FlawRequest,
    LoadRequest,
    LoopRequest,
)
from app.trace import chrome_chunks
from mux import Engine, EngineStopped, FdLimitError, LoadCapError, flaw_catalog, handler_sources

router = APIRouter(route_class=JsonRoute)  # every JSON parse failure is a 422 (app/errors.py)
T = TypeVar("T")


def _engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise HTTPException(409, "this is a replay of a recording: there is no live engine")
    return engine


async def _run(future: Future[T]) -> T:
    """Await an engine command; its refusals become 409s a person can act on."""
    try:
        return await asyncio.wrap_future(future)
    except EngineStopped as exc:  # the loop thread has ended: nothing will answer
        raise HTTPException(503, str(exc)) from None
    except (FdLimitError, LoadCapError, ValueError, RuntimeError) as exc:
        raise HTTPException(409, str(exc)) from None
    except OSError as exc:  # the kernel refused (e.g. a backend could not take an fd)
        raise HTTPException(409, f"the kernel refused: {exc.strerror or exc}") from None


@router.get("/api/state")
async def get_state(request: Request) -> Response:
    if request.app.state.engine is None:
        return _json(request.app.state.replay_state)
    captured = await _run(_engine(request).capture())
    return _json(captured.to_dict())  # formatted here, not on the engine's thread


@router.post("/api/backend")
async def post_backend(body: BackendRequest, request: Request) -> Response:
    engine = _engine(request)
    state = await _run(engine.switch_backend(body.name, body.trigger, body.oneshot, body.write))
    return _json(state)


@router.post("/api/loop")
async def post_loop(body: LoopRequest, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    if body.delay_ms is not None:
        return await _run(engine.set_delay(body.delay_ms))
    action = {"pause": engine.pause, "resume": engine.resume, "step": engine.step}
    return await _run(action[body.action or "pause"]())


@router.post("/api/connections/{fd}/close")
async def close_connection(fd: int, request: Request) -> dict[str, Any]:
    if not await _run(_engine(request).close_connection(fd)):
        raise HTTPException(404, f"fd {fd} is not an open echo connection")
    return {"closed": fd}


@router.post("/api/load", status_code=202)
async def post_load(body: LoadRequest, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    load = request.app.state.load
    open_now = engine.stats.connections
    if open_now + body.connections > engine.max_connections:
        # the server would accept and close the rest at once, and they would count as running
        raise HTTPException(409, f"the echo server holds at most {engine.max_connections} "
                                 f"connections (--max-connections): {open_now} are open, "
                                 f"{body.connections} more asked for")
    total = await _run(load.add(body.connections, body.message_size, body.rate))
    return {"connections": total, "cap": load.cap}


@router.delete("/api/load")
async def delete_load(request: Request) -> dict[str, Any]:
    _engine(request)
    load = request.app.state.load
    await _run(load.remove_all())
    return {"connections": 0, "cap": load.cap}


@router.get("/api/trace")
async def get_trace(request: Request,
                    format: str = Query("jsonl", pattern="^(jsonl|chrome)$")) -> Response:
    ring = request.app.state.trace
    if format == "chrome":
        started_at = request.app.state.started_at
        # up to the ring's 200,000 events: converted piece by piece in the thread pool (the
        # event loop meanwhile keeps pumping events to the pages), never held whole; the
        # recv->send flow pairing still keeps up to ~25 MB per export, so exports at once
        # are bounded too
        if not _CHROME_EXPORTS.acquire(blocking=False):
            raise HTTPException(409, f"{MAX_CHROME_EXPORTS} trace downloads are already "
                                     "running: try again when one has finished")
        return _ExportResponse(_Released(chrome_chunks(ring.events(), started_at,
                                                             baseline=ring.baseline)),
                               media_type="application/json", headers={
            "Content-Disposition": 'attachment; filename="muxscope-trace.json"'})
    return StreamingResponse(ring.jsonl_chunks(), media_type="application/x-ndjson",
                             headers={"Content-Disposition":
                                      'attachment; filename="muxscope-trace.jsonl"'})


MAX_CHROME_EXPORTS = 2
_CHROME_EXPORTS = threading.BoundedSemaphore(MAX_CHROME_EXPORTS)


class _ExportResponse(StreamingResponse):
    """Gives the export slot back as soon as the response is over, however it ended: a client
    that leaves mid-download only stops the iteration, and the abandoned iterator was then
    freed by the garbage collector, tens of seconds later (every download meanwhile: 409)."""

    def __init__(self, chunks: _Released, **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._released = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._released.release()
            self._released.close()


class _Released:
    """`chunks`, giving back the export slot when they end or fail, or when the response is
    dropped before it ever started (a generator's `finally` would not run then)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
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
        _CHROME_EXPORTS.release()

    def close(self) -> None:
        """Free the converter's state now (its flow pairing holds up to ~25 MB)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # still running in a worker thread: it ends with the iterator
                pass

    def __del__(self) -> None:
        self.release()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    if request.app.state.metrics is None:
        return Response("# replay: no live engine\n", media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.post("/api/breakpoints", status_code=201)
async def post_breakpoint(body: BreakpointRequest, request: Request) -> dict[str, Any]:
    return await _run(_engine(request).add_breakpoint(body.when, body.fd, body.depth))


@router.get("/api/breakpoints")
async def get_breakpoints(request: Request) -> list[dict[str, Any]]:
    if request.app.state.engine is None:
        return list(request.app.state.replay_state.get("breakpoints", []))
    return await _run(_engine(request).list_breakpoints())


@router.delete("/api/breakpoints/{bp_id}")
async def delete_breakpoint(bp_id: int, request: Request) -> dict[str, Any]:
    if not await _run(_engine(request).remove_breakpoint(bp_id)):
        raise HTTPException(404, f"no breakpoint with id {bp_id}")
    return {"deleted": bp_id}


@router.get("/api/kernel")
async def get_kernel(request: Request) -> dict[str, Any]:
    return await _run(_engine(request).kernel())


@router.get("/api/flaws")
async def get_flaws(request: Request) -> list[dict[str, Any]]:
    if request.app.state.engine is None:  # replay: the catalogue, all off
        return flaw_catalog()
    return await _run(_engine(request).list_flaws())


@router.post("/api/flaws/{name}")
async def post_flaw(name: str, body: FlawRequest, request: Request) -> list[dict[str, Any]]:
    engine = _engine(request)
    try:
        return await _run(engine.set_flaw(name, body.on))  # a stopped engine: 503, as elsewhere
    except KeyError as exc:
        raise HTTPException(404, exc.args[0]) from None


@router.get("/api/code")
async def get_code() -> dict[str, Any]:
    """The real source of the handler behind each event kind (see mux.codeview)."""
    return await asyncio.to_thread(handler_sources)
