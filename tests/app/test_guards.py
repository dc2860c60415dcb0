"""Guards at their exact edges: the Host header's port range, a kernel refusal answered as a
409, and a snapshot's own seq never sent again. (The token compared whole, and the Host port
checked at the server, are in test_security.py, beside the servers they run on.)"""

from __future__ import annotations

import errno
import os
from concurrent.futures import Future
from typing import Any

import orjson
import pytest

from app.hub import Hub
from app.security import host_header_is_loopback
from tests.conftest import run_async

from .conftest import Live

# ----------------------------------------------------------------- Host port range


@pytest.mark.parametrize(("host", "expected"), [
    ("localhost:0", False),
    ("127.0.0.1:0", False),
    ("127.0.0.1:65536", False),
    ("[::1]:65536", False),
    ("localhost:99999", False),
    ("localhost:1", True),
    ("127.0.0.1:65535", True),
    ("[::1]:65535", True),
])
def test_a_host_header_port_must_be_a_real_port(host: str, expected: bool) -> None:
    """A port is 1-65535: `localhost:0` or `127.0.0.1:65536` names no server that could
    answer, so such a Host is refused like any malformed one."""
    assert host_header_is_loopback(host) is expected


# ----------------------------------------------------------------- a kernel refusal is a 409


def test_a_kernel_refusal_of_an_engine_command_is_a_409_saying_so(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError from the engine (e.g. epoll_create failing with EMFILE on a switch) is
    something the user can act on, not a server error: 409 with the kernel's own words.
    (Running the process out of fds for real would starve the HTTP server too: the engine's
    answer is played here.)"""
    def refused(*args: Any, **kwargs: Any) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        future.set_exception(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
        return future

    monkeypatch.setattr(live.engine, "switch_backend", refused)
    r = live.client.post("/api/backend", json={"name": "poll"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"the kernel refused: {os.strerror(errno.EMFILE)}"
    monkeypatch.undo()
    assert live.client.get("/api/state").json()["backend"]["name"] == "epoll"  # unchanged


# ----------------------------------------------------------------- the snapshot's own seq


@pytest.mark.parametrize("queued_before_start", [False, True])
def test_a_batch_starting_at_the_snapshots_seq_is_sent_without_that_event(
        queued_before_start: bool) -> None:
    """The snapshot says seq 5 and covers it: a batch 5..8 (published before or after the
    subscription's start) goes out as 6..8, with dropped 0 — sending 5 again would make the
    client's gap count negative (dropped -1) and show the event twice."""
    async def scenario() -> bytes | None:
        hub = Hub()
        async with hub.subscribe() as sub:
            if queued_before_start:
                hub.publish([{"seq": s} for s in range(5, 9)])
                sub.start_after(5)
            else:
                sub.start_after(5)
                hub.publish([{"seq": s} for s in range(5, 9)])
            return await sub.next_frame(1.0)

    frame = orjson.loads(run_async(scenario()) or b"null")
    assert frame == {"type": "events", "dropped": 0,
                     "events": [{"seq": 6}, {"seq": 7}, {"seq": 8}]}
