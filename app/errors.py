"""Validation errors as FastAPI's usual 422 body, safe for any input.

FastAPI echoes the offending `input` back. Python's json parser accepts NaN and Infinity and
integers of any size, which the default handler then fails to render (a 500). Such values are
turned into strings here; the body keeps its usual shape. JSON's `\\ud800` escapes decode to lone
surrogates, which UTF-8 cannot encode (another 500): they become U+FFFD, in keys and values.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_INT_LIMIT = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT_LIMIT:
        return str(value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _text(value: str) -> str:
    """`value` with every lone surrogate replaced by U+FFFD (unchanged if there is none)."""
    return _SURROGATE.sub("\ufffd", value)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _safe(jsonable_encoder(exc.errors()))}, status_code=422)
