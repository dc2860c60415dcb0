"""The JSON API of SPEC §4. Engine calls go through its control door and are awaited."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Future
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.errors import JsonRoute
from app.routes import exports
from app.schemas import (
    BackendRequest,
    BreakpointRequest,
    FlawRequest,
    LoadRequest,
    LoopRequest,
    NoFields,
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
async def close_connection(fd: int, request: Request,
                           _body: NoFields | None = None) -> dict[str, Any]:
    """`lingering`: the peer is still sending, so the connection stays (discarding its input)
    until the peer's EOF or 5 s; its `close` event comes then, with `lingered`."""
    engine = _engine(request)
    if not await _run(engine.close_connection(fd)):
        raise HTTPException(404, f"fd {fd} is not an open echo connection")
    return {"closed": fd, "lingering": await _run(engine.lingering(fd))}


@router.post("/api/load", status_code=202)
async def post_load(body: LoadRequest, request: Request) -> dict[str, Any]:
    _engine(request)
    load = request.app.state.load
    total = await _run(load.add(body.connections, body.message_size, body.rate))
    return {"connections": total, "cap": load.cap}


@router.get("/api/load")
async def get_load(request: Request) -> dict[str, Any]:
    """The generated clients now: `{connections, cap, errors, wrong}` (as the stats frames'
    `load`), for scripts that added them and want to know how they fare."""
    _engine(request)
    return dict(request.app.state.load.describe())


@router.delete("/api/load")
async def delete_load(request: Request, _body: NoFields | None = None) -> dict[str, Any]:
    _engine(request)
    load = request.app.state.load
    await _run(load.remove_all())
    return {"connections": 0, "cap": load.cap}


@router.get("/api/trace")
async def get_trace(request: Request,
                    format: str = Query("jsonl", pattern="^(jsonl|chrome)$")) -> Response:
    ring = request.app.state.trace
    if format == "chrome":
        # up to the ring's 200,000 events: converted piece by piece in the thread pool (the
        # event loop meanwhile keeps pumping events to the pages), never held whole; the
        # recv->send flow pairing still keeps up to ~25 MB per export
        return exports.start(exports.CHROME, lambda: chrome_chunks(
            ring.events(), request.app.state.started_at, baseline=ring.baseline))
    # a jsonl download holds the ring's batches of its start (~23 MB when full) to its end
    return exports.start(exports.JSONL, ring.jsonl_chunks)


@router.head("/metrics", include_in_schema=False)  # `curl -I` (a route of its own, as /healthz)
@router.get("/metrics")
async def metrics(request: Request) -> Response:
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
async def delete_breakpoint(bp_id: int, request: Request,
                            _body: NoFields | None = None) -> dict[str, Any]:
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


@functools.cache
def _code_body() -> bytes:
    """The sources do not change while the server runs: read and encoded once (0.26 s of CPU
    and 1 MB each time; every page load asks for it, and so could any page, cross-site)."""
    return orjson.dumps(handler_sources())


@router.get("/api/code")
async def get_code() -> Response:
    """The real source of the handler behind each event kind (see mux.codeview)."""
    return Response(await asyncio.to_thread(_code_body), media_type="application/json")
