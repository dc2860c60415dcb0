"""Generated load on select (a real `muxscope` process): the echo server closes every
connection whose fd is FD_SETSIZE (1024) or more (SPEC §2), so a request for more clients than
select can watch used to get a 202 for all of them while the server kept only those below
1024 (600 asked for, 484 held, `errors` 0). It is a 409 now that says how many fit, and a
request that fits runs whole."""

from __future__ import annotations

import signal

import httpx

from tests.app.test_cli import launch
from tests.conftest import wait_until


def test_a_load_select_cannot_watch_is_a_409_and_one_that_fits_runs_whole() -> None:
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp",
                "--backend", "select") as running:
        url = running.read_until(r"Dashboard: (\S+)")[1]
        with httpx.Client(base_url=url, timeout=10) as api:
            too_many = api.post("/api/load", json={"connections": 600, "message_size": 8,
                                                   "rate": 0})
            assert too_many.status_code == 409, too_many.text
            detail = too_many.json()["detail"]
            assert "select watches only fds below 1024 (FD_SETSIZE)" in detail, detail
            assert "600 more clients need 1200 fds" in detail, detail
            assert "or switch to poll or epoll first" in detail, detail
            assert api.get("/api/load").json()["connections"] == 0  # nothing was made
            fits = api.post("/api/load", json={"connections": 400, "message_size": 8,
                                               "rate": 2})
            assert fits.status_code == 202 and fits.json()["connections"] == 400, fits.text
            wait_until(lambda: len(api.get("/api/state").json()["connections"]) == 400,
                       timeout=15, what="the 400 clients held by the engine")
            state = api.get("/api/state").json()
            assert max(c["fd"] for c in state["connections"]) < 1024
            assert api.get("/api/load").json() == {"connections": 400, "cap": 2000,
                                                   "errors": 0, "wrong": 0, "closed": 0}
            # on poll the same 600 fit (each client's two fds are below the open-file limit)
            assert api.post("/api/backend", json={"name": "poll"}).status_code == 200
            more = api.post("/api/load", json={"connections": 600, "message_size": 8,
                                               "rate": 0})
            assert more.status_code == 202 and more.json()["connections"] == 1000, more.text
            # and select is now refused by the switch itself, naming an fd past 1023
            back = api.post("/api/backend", json={"name": "select"})
            assert back.status_code == 409 and "1024" in back.json()["detail"], back.text
        code, stderr = running.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in stderr, stderr
