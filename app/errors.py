"""Validation errors as FastAPI's usual 422 body, safe for any input.

FastAPI echoes the offending `input` back. Python's json parser accepts NaN and Infinity and
integers of any size, which the default handler then fails to render (a 500). Such values are
turned into strings here; the body keeps its usual shape. JSON's `\\ud800` escapes decode to lone
surrogates, which UTF-8 cannot encode (another 500): they become U+FFFD, in keys and values.
A deeply nested `input` (a few KB of `{"a":{"a":...}}`) would take the encoder past Python's
recursion limit (a 500 again): below `MAX_INPUT_DEPTH` levels it is shown as "...".

FastAPI answers 400 ("There was an error parsing the body") when its JSON parser raises anything
but `JSONDecodeError`: an integer of more than 4,300 digits (CPython's int limit), nesting
deeper than the parser's recursion allows. `JsonRoute` turns those into the usual 422
`json_invalid` error, as SPEC §4 asks of out-of-range numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

_INT_LIMIT = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")


MAX_INPUT_DEPTH = 32


def _safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_LIMIT:
        return str(value)
    if isinstance(value, dict | list | tuple) and depth >= MAX_INPUT_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {_safe(k): _safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v, depth + 1) for v in value]
    return value


def _text(value: str) -> str:
    """`value` with every lone surrogate replaced by U+FFFD (unchanged if there is none)."""
    return _SURROGATE.sub("\ufffd", value)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # depth-limited before FastAPI's (recursive) encoder sees it; then made JSON-safe again
    errors = [_safe(error) for error in exc.errors()]
    return JSONResponse({"detail": _safe(jsonable_encoder(errors))}, status_code=422)


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body)
            except json.JSONDecodeError:
                raise
            except (ValueError, RecursionError) as exc:  # the int digit limit, deep nesting
                raise json.JSONDecodeError(str(exc), "", 0) from exc
        return self._json


class JsonRoute(APIRoute):
    """An APIRoute whose JSON parse failures are all `JSONDecodeError`, hence 422s."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_JsonRequest(request.scope, request.receive))

        return route
