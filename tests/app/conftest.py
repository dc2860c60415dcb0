"""A real muxscope app (engine thread included) on a real uvicorn, on free ports."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import run_asgi
from tests.event_schema import assert_events_follow_spec


@dataclass
class Live:
    base: str
    app: Any
    client: httpx.Client

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    @property
    def ws_url(self) -> str:
        return "ws" + self.base[len("http"):] + "/ws"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.engine.tcp_port), timeout=10)


@pytest.fixture
def live() -> Iterator[Live]:
    with live_app() as running:
        yield running


def live_app(**overrides: Any):
    import contextlib

    @contextlib.contextmanager
    def cm() -> Iterator[Live]:
        settings = Settings(**{"http_port": 0, "echo_port": 0, "load_cap": 300, **overrides})
        app = create_app(settings)
        with run_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            yield Live(base, app, client)
        # the events the app passed on (its trace ring holds the last ones), against SPEC §3
        assert_events_follow_spec(app.state.trace.events())
    return cm()


def frames(ws: Any, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read websocket frames until `until(frames)` is true (deadline-bound)."""
    import time

    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"condition not met within {timeout}s; got {len(got)} frames")
        got.append(json.loads(ws.recv(timeout=left)))
    return got


def events_of(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for f in got if f["type"] == "events" for e in f["events"]]
