"""The HTTP API of SPEC §4 against a real uvicorn and a real engine."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.mux.conftest import recv_exactly, wait_until

from .conftest import live_app


def test_the_page_preloads_every_module_it_imports(live):
    """The page's modules came an import level at a time (three levels: its load took
    0.4-0.7 s on loopback); each is named for `modulepreload`, and each one named is served."""
    import re
    from posixpath import dirname, normpath

    page = live.client.get("/").text
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', page))
    # every module the page imports, followed from main.js through each file's own imports
    imported, todo = set(), ["/static/js/main.js"]
    while todo:
        url = todo.pop()
        if url in imported:
            continue
        imported.add(url)
        source = live.client.get(url)
        assert source.status_code == 200, url
        for spec in re.findall(r"""(?:from|import\(?)\s*['"](\.[^'"]+)['"]""", source.text):
            todo.append(normpath(dirname(url) + "/" + spec))
    assert len(imported) > 20 and "/static/vendor/uPlot.esm.js" in imported
    assert imported <= preloaded, imported - preloaded


def test_healthz_and_state_shape(live):
    assert live.client.get("/healthz").json() == {"ok": True}
    for path in ("/", "/healthz", "/metrics"):  # `curl -I` got 405
        head = live.client.head(path)
        assert head.status_code == 200 and head.content == b"", path
    state = live.client.get("/api/state").json()
    assert state["backend"] == {**state["backend"], "name": "epoll", "trigger": "level",
                                "oneshot": False, "write": "queued"}
    assert set(state["available"]) >= {"select", "poll", "epoll"}
    assert state["loop"] == "running" and state["delay_ms"] == 0
    assert state["listeners"]["tcp"]["port"] == live.engine.tcp_port
    udp = state["listeners"]["udp"]
    assert {"fd", "port", "received", "echoed", "dropped"} <= set(udp)
    assert state["limits"]["fd_setsize"] == 1024
    assert state["limits"]["max_connections"] == 10_000
    assert state["connections"] == []


def test_the_openapi_schema_gives_every_operation_an_id_of_its_own(live):
    """/healthz answered GET and HEAD through one route, so both had one operation id, and
    each fetch of the schema logged FastAPI's "Duplicate Operation ID" warning."""
    schema = live.client.get("/api/openapi.json")
    assert schema.status_code == 200
    ids = [op["operationId"] for item in schema.json()["paths"].values() for op in item.values()]
    assert len(ids) > 10 and len(ids) == len(set(ids)), sorted(ids)


def test_state_lists_a_connection(live):
    with live.connect() as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        state = live.client.get("/api/state").json()
        (conn,) = state["connections"]
        assert conn["peer"] == f"127.0.0.1:{sock.getsockname()[1]}"
        assert conn["bytes_in"] == conn["bytes_out"] == 5
        assert conn["interest"] == ["EPOLLIN"]
        assert {"queue_depth", "pending_bytes", "reading_paused"} <= set(conn)


def test_switch_backend_keeps_connections(live):
    with live.connect() as sock:
        for body, expect in (({"name": "poll"}, ["POLLIN"]),
                             ({"name": "epoll", "trigger": "edge", "oneshot": True,
                               "write": "eager"}, ["EPOLLIN", "EPOLLET", "EPOLLONESHOT"]),
                             ({"name": "select"}, ["read"])):
            r = live.client.post("/api/backend", json=body)
            assert r.status_code == 200, r.text
            state = r.json()
            assert state["backend"]["name"] == body["name"]
            assert state["connections"][0]["interest"] == expect
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
        assert state["backend"]["write"] == "eager"  # omitted write: unchanged


@pytest.mark.parametrize("body", [
    {"name": "select", "trigger": "edge"},
    {"name": "poll", "oneshot": True},
    {"name": "kqueue"},
    {"name": "epoll", "extra": 1},
    {"name": "epoll", "oneshot": "yes"},
    {},
])
def test_backend_validation_is_422(live, body):
    r = live.client.post("/api/backend", json=body)
    assert r.status_code == 422
    assert "detail" in r.json()
    assert live.client.get("/api/state").json()["backend"]["name"] == "epoll"


@pytest.mark.parametrize(("path", "body"), [
    ("/api/backend", {"name": "poll", "write": None}),
    ("/api/backend", {"name": "poll", "trigger": None}),
    ("/api/loop", {"action": None, "delay_ms": 5}),
    ("/api/loop", {"action": "pause", "delay_ms": None}),
    ("/api/breakpoints", {"when": "readable", "fd": None}),
])
def test_an_optional_field_given_as_null_is_422_not_left_out(live, path, body):
    """`"write": null` switched the backend as if it were left out (and `"action": null` set
    slow motion), while `"trigger": null` was a 422: null is a wrong type for every field."""
    r = live.client.post(path, json=body)
    assert r.status_code == 422, r.text
    field = next(k for k, v in body.items() if v is None)
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.text
    state = live.client.get("/api/state").json()
    assert (state["backend"]["name"], state["delay_ms"], state["breakpoints"]) == ("epoll", 0, [])


def test_a_required_field_given_as_null_says_so_without_calling_it_optional(live):
    r = live.client.post("/api/flaws/eof_ignored", json={"on": None})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "on"] and "optional" not in error["msg"], error


@pytest.mark.parametrize("rate", ["NaN", "Infinity", "-Infinity"])
def test_a_rate_that_is_not_a_number_is_422_saying_so(live, rate):
    """`"rate": NaN` was refused as not "less than or equal to 1000" (a black-box review)."""
    body = '{"connections": 1, "message_size": 8, "rate": ' + rate + "}"
    r = live.client.post("/api/load", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "rate"] and "finite" in error["msg"], error
    assert live.client.get("/api/load").json()["connections"] == 0


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/connections/{fd}/close"), ("DELETE", "/api/load"),
    ("DELETE", "/api/breakpoints/{bp}")])
def test_a_request_that_takes_no_body_refuses_fields_and_accepts_none_or_empty(live, method, path):
    """SPEC §4: unknown fields are a 422 on every endpoint; here every field is one (they were
    ignored, and the connection closed). No body, or `{}`, is the request itself."""
    # (one that never fires: a readable one on any fd would pause the loop at the echo)
    bp = live.client.post("/api/breakpoints", json={"when": "hup", "fd": 1_000_000}).json()["id"]
    with live.connect() as sock:
        sock.sendall(b"x")
        recv_exactly(sock, 1)
        fd = next(c["fd"] for c in live.client.get("/api/state").json()["connections"])
        url = path.format(fd=fd, bp=bp)
        for body in ({"x": 1}, {"closing": True}, []):
            r = live.client.request(method, url, json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["detail"][0]["loc"][0] == "body", r.text
        state = live.client.get("/api/state").json()
        assert [c["fd"] for c in state["connections"]] == [fd]  # nothing was done
        assert [b["id"] for b in state["breakpoints"]] == [bp]
        r = live.client.request(method, url, json={})
        assert r.status_code == 200, r.text
    if method == "DELETE" and "load" not in path:
        assert live.client.request(method, url).status_code == 404  # done once; no body either


def test_select_refused_with_fd_above_setsize(live):
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with live.connect() as sock:
            sock.sendall(b"x")
            recv_exactly(sock, 1)
            r = live.client.post("/api/backend", json={"name": "select"})
            assert r.status_code == 409
            assert "1024" in r.json()["detail"] and "fd 1" in r.json()["detail"]
    finally:
        for fd in held:
            os.close(fd)


def test_loop_control(live):
    c = live.client
    assert c.post("/api/loop", json={"action": "step"}).status_code == 409
    assert c.post("/api/loop", json={"action": "pause"}).json() == {"loop": "paused",
                                                                     "delay_ms": 0}
    assert c.get("/api/state").json()["loop"] == "paused"
    waits = live.engine.stats.waits
    assert c.post("/api/loop", json={"action": "step"}).status_code == 200
    wait_until(lambda: live.engine.stats.waits == waits + 1)
    assert c.post("/api/loop", json={"action": "resume"}).json()["loop"] == "running"
    assert c.post("/api/loop", json={"delay_ms": 100}).json() == {"loop": "running",
                                                                  "delay_ms": 100}
    for bad in ({"delay_ms": 5001}, {"delay_ms": -1}, {"action": "jump"}, {},
                {"action": "pause", "delay_ms": 5}, {"delay_ms": "10"}):
        assert c.post("/api/loop", json=bad).status_code == 422, bad
    assert c.get("/api/state").json()["delay_ms"] == 100


def test_close_connection(live):
    with live.connect() as sock:
        sock.sendall(b"x")
        recv_exactly(sock, 1)
        fd = live.client.get("/api/state").json()["connections"][0]["fd"]
        res = live.client.post(f"/api/connections/{fd}/close")
        assert (res.status_code, res.json()) == (200, {"closed": fd, "lingering": False})
        assert sock.recv(1) == b""
    assert live.client.post(f"/api/connections/{fd}/close").status_code == 404
    assert live.client.post("/api/connections/abc/close").status_code == 422


def test_load_generator_and_cap(live):
    c = live.client
    r = c.post("/api/load", json={"connections": 20, "message_size": 100, "rate": 10})
    assert r.status_code == 202 and r.json() == {"connections": 20, "cap": 300}
    wait_until(lambda: live.engine.stats.connections == 20, what="20 connections")
    wait_until(lambda: live.engine.counters()["bytes_out"] >= 20 * 100, what="echo traffic")
    # every client checked its echo: none wrong, none failed
    assert c.get("/api/load").json() == {"connections": 20, "cap": 300, "errors": 0, "wrong": 0,
                                           "closed": 0}
    r = c.post("/api/load", json={"connections": 281, "message_size": 1, "rate": 0})
    assert r.status_code == 409 and "300" in r.json()["detail"]
    for bad in ({"connections": 0, "message_size": 1, "rate": 0},
                {"connections": 1, "message_size": 2 << 20, "rate": 0},
                {"connections": 1, "message_size": 1, "rate": 1001},
                {"connections": 1, "message_size": 1}):
        assert c.post("/api/load", json=bad).status_code == 422
    assert c.delete("/api/load").status_code == 200
    assert c.get("/api/load").json()["connections"] == 0
    wait_until(lambda: live.engine.stats.connections == 0, what="load clients gone")


def test_load_past_the_connection_limit_is_refused_not_counted_as_running():
    """Clients past --max-connections would be accepted and closed at once, and the answer
    counted them as running: the request is refused instead, naming the limit."""
    with live_app(max_connections=5) as live:
        c = live.client
        with live.connect() as sock:
            sock.sendall(b"a")
            recv_exactly(sock, 1)
            r = c.post("/api/load", json={"connections": 5, "message_size": 8, "rate": 0})
            assert r.status_code == 409
            assert "at most 5" in r.json()["detail"] and "1 are open" in r.json()["detail"]
            # paused, the server accepts none of them: they count all the same
            assert c.post("/api/loop", json={"action": "pause"}).status_code == 200
            r = c.post("/api/load", json={"connections": 4, "message_size": 8, "rate": 0})
            assert r.status_code == 202 and r.json()["connections"] == 4
            r = c.post("/api/load", json={"connections": 1, "message_size": 8, "rate": 0})
            assert r.status_code == 409 and "5 are open or connecting" in r.json()["detail"]
            assert c.post("/api/loop", json={"action": "resume"}).status_code == 200
            wait_until(lambda: len(c.get("/api/state").json()["connections"]) == 5,
                       what="five connections")
            r = c.post("/api/load", json={"connections": 1, "message_size": 8, "rate": 0})
            assert r.status_code == 409
        assert c.delete("/api/load").status_code == 200
        wait_until(lambda: c.post("/api/load", json={"connections": 4, "message_size": 8,
                                                     "rate": 0}).status_code == 202,
                   what="room again once the load is gone")


def test_load_requests_at_once_cannot_both_pass_the_connection_limit():
    import concurrent.futures

    with live_app(max_connections=10) as live:
        body = {"connections": 7, "message_size": 8, "rate": 0}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(lambda _: live.client.post("/api/load", json=body)
                                      .status_code, range(2)))
        assert answers == [202, 409]
        assert live.client.delete("/api/load").status_code == 200


def test_trace_exports(live):
    with live.connect() as sock:
        for _ in range(3):
            sock.sendall(b"trace me")
            recv_exactly(sock, 8)
    # the pump moves events to the ring every ~30 ms
    wait_until(lambda: b'"send"' in live.client.get("/api/trace?format=jsonl").content)
    lines = live.client.get("/api/trace?format=jsonl").text.splitlines()
    events = [json.loads(line) for line in lines]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and {"wait", "recv", "send"} <= {e["kind"] for e in events}
    chrome = live.client.get("/api/trace?format=chrome").json()
    trace = chrome["traceEvents"]
    assert all({"ph", "pid", "tid"} <= set(e) for e in trace)
    slices = [e for e in trace if e["ph"] == "X"]
    assert slices and all(e["dur"] >= 1 and isinstance(e["ts"], float | int) for e in slices)
    starts = {e["id"] for e in trace if e["ph"] == "s"}
    finishes = {e["id"] for e in trace if e["ph"] == "f"}
    assert finishes and finishes <= starts
    counters = [e for e in trace if e["ph"] == "C"]
    assert counters and all(isinstance(v, int | float) for e in counters
                            for v in e["args"].values())
    assert json.loads(json.dumps(chrome)) == chrome
    assert live.client.get("/api/trace?format=xml").status_code == 422


def test_metrics_parse(live):
    with live.connect() as sock:
        sock.sendall(b"12345")
        recv_exactly(sock, 5)
    wait_until(lambda: "muxscope_events_total" in live.client.get("/metrics").text)
    text = live.client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"muxscope_bytes", "muxscope_connections", "muxscope_waits",
            "muxscope_events", "muxscope_wait_duration_us"} <= set(families)
    bytes_in = next(s.value for s in families["muxscope_bytes"].samples
                    if s.labels.get("direction") == "in")
    assert bytes_in == 5
    # prometheus_client's own Counters added `*_created` gauges (the collectors' counters had
    # none), under the counter's HELP; in a replay they held its start time
    assert "_created" not in text


def test_metrics_count_udp_datagrams(live):
    """The UDP echo's counters were in /api/state only: the kernel's drops never reached
    Prometheus."""
    import socket as socketlib

    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        for payload in (b"one", b"two"):
            udp.sendto(payload, ("127.0.0.1", live.engine.udp_port))
            assert udp.recvfrom(64)[0] == payload
    families = {f.name: f for f in text_string_to_metric_families(
        live.client.get("/metrics").text)}
    counts = {s.labels["result"]: s.value for s in families["muxscope_udp_datagrams"].samples
              if s.name.endswith("_total")}
    assert counts == {"received": 2, "echoed": 2, "dropped": 0}
    assert "received (in) and sent back (out)" in families["muxscope_bytes"].documentation


def test_an_ipv6_peer_is_written_in_brackets():
    """SPEC §3's "ip:port": "::1:4000" cannot be split at its colon; "[::1]:4000" can."""
    from mux.sockets import peer_name

    assert peer_name(("127.0.0.1", 4000)) == "127.0.0.1:4000"
    assert peer_name(("::1", 4000, 0, 0)) == "[::1]:4000"


def test_token_guards_api_metrics_and_ws_on_the_real_app():
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    from .conftest import live_app

    with live_app(token="s3cret") as app:
        c = app.client
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200
        for path in ("/api/state", "/metrics"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
            assert c.get(path, params={"token": "s3cret"}).status_code == 200
            assert c.get(path, params={"token": "wrong"}).status_code == 401
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(app.ws_url)
        assert refused.value.response.status_code == 401
        with ws_connect(app.ws_url + "?token=s3cret") as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


def test_a_stopped_engine_answers_503_not_a_hang() -> None:
    """If the loop thread has ended, every command fails at once with a 503 naming it."""
    with live_app() as live:
        live.engine.stop()
        live.engine.join(5)
        r = live.client.get("/api/state", timeout=5)
        assert r.status_code == 503 and "stopped" in r.json()["detail"], r.text
        assert live.client.post("/api/loop", json={"action": "pause"}, timeout=5).status_code == 503
        # the flaw switch answered 409 ("the engine has stopped": nothing a person can do)
        flaw = live.client.post("/api/flaws/eof_ignored", json={"on": True}, timeout=5)
        assert flaw.status_code == 503 and "stopped" in flaw.json()["detail"], flaw.text


def test_chrome_flows_pair_each_connections_own_bytes_on_a_reused_fd():
    """An fd number reused after a connection closed with bytes it never echoed (a reset under
    backpressure): the flow matcher kept the dead connection's offsets, so the new one's send
    ended the old one's arrow and its own recv's arrow never ended."""
    from app.trace import to_chrome

    def ev(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
        return {"seq": seq, "ts": seq / 1000, "kind": kind, "fd": 16, **fields}

    events = [ev(1, "accept", listener=4, peer="127.0.0.1:1"),
              ev(2, "recv", bytes=100, preview="a"), ev(3, "send", bytes=40, partial=True),
              ev(4, "recv", bytes=100, preview="a"),  # never echoed: the peer resets
              ev(5, "close", reason="reset"),
              ev(6, "accept", listener=4, peer="127.0.0.1:2"),
              ev(7, "recv", bytes=10, preview="b"), ev(8, "send", bytes=10, partial=False)]
    trace = to_chrome(events)["traceEvents"]
    starts = {e["ts"]: e["id"] for e in trace if e["ph"] == "s"}
    ends = {e["id"]: e["ts"] for e in trace if e["ph"] == "f"}
    assert ends[starts[2 * 1000.0]] == 3 * 1000.0      # A's first recv → A's send
    assert starts[4 * 1000.0] not in ends                 # A's unechoed recv: no send echoes it
    assert ends[starts[7 * 1000.0]] == 8 * 1000.0      # B's recv → B's own send


def test_chrome_puts_a_breakpoints_pause_on_the_loop_track_not_an_fds():
    """A breakpoint's `loop paused` names the fd that matched: the export put the pause on
    that fd's track, and the loop track read "running", "running" with no pause between."""
    from app.trace import LOOP_TID, to_chrome

    events = [{"seq": 1, "ts": 0.001, "kind": "loop", "state": "running", "delay_ms": 0},
              {"seq": 2, "ts": 0.002, "kind": "loop", "state": "paused", "delay_ms": 0,
               "breakpoint": 1, "wait": 9, "fd": 17},
              {"seq": 3, "ts": 0.003, "kind": "loop", "state": "running", "delay_ms": 0}]
    trace = to_chrome(events)["traceEvents"]
    loops = [e for e in trace if e.get("ph") != "M" and e["name"].startswith("loop")]
    assert [e["tid"] for e in loops] == [LOOP_TID] * 3, loops
    assert loops[1]["args"]["fd"] == 17  # still said, in its args


def _flow_pairs(trace: list[dict[str, Any]]) -> dict[float, float]:
    """recv time -> time of the send its arrow ends at (ms in the trace: seq here)."""
    starts = {e["id"]: e["ts"] for e in trace if e["ph"] == "s"}
    return {starts[e["id"]] / 1000: e["ts"] / 1000 for e in trace if e["ph"] == "f"}


def test_chrome_flows_of_a_connection_first_seen_mid_stream_end_at_the_right_send():
    """A trace that starts mid-connection (a wrapped ring, a rotated segment) counted the
    connection's bytes from 0, so with bytes still queued every arrow ended at a send of
    older bytes: 731 of 1,703 arrows wrong in a replayed segment."""
    from app.trace import to_chrome

    def ev(seq: int, kind: str, **fields: Any) -> dict[str, Any]:
        return {"seq": seq, "ts": seq / 1000, "kind": kind, "fd": 48, **fields}

    # 300 bytes were queued before the trace starts (queued writes)
    events = [ev(1, "recv", bytes=100, preview="x"), ev(2, "queue", depth=4, pending_bytes=400),
              ev(3, "send", bytes=300, partial=False), ev(4, "queue", depth=1, pending_bytes=100),
              ev(5, "recv", bytes=50, preview="y"), ev(6, "queue", depth=2, pending_bytes=150),
              ev(7, "send", bytes=100, partial=False), ev(8, "queue", depth=1, pending_bytes=50),
              ev(9, "send", bytes=50, partial=False), ev(10, "queue", depth=0, pending_bytes=0)]
    pairs = _flow_pairs(to_chrome(events)["traceEvents"])
    # no arrow for the recv before the stream said where it stands; then the right one
    assert pairs == {5: 9}, pairs
    # a replay knows the snapshot's byte counts: every arrow, right
    baseline = {48: (1000, 700)}
    pairs = _flow_pairs(to_chrome(events, baseline=baseline)["traceEvents"])
    assert pairs == {1: 7, 5: 9}, pairs
    # eager writes, nothing queued: an echo of a recv's whole bytes right after it aligns
    eager = [ev(1, "recv", bytes=10, preview="a"), ev(2, "send", bytes=10, partial=False),
             ev(3, "recv", bytes=20, preview="b"), ev(4, "send", bytes=20, partial=False)]
    assert _flow_pairs(to_chrome(eager)["traceEvents"]) == {3: 4}


def test_idle_waits_time_out_only_while_a_page_watches():
    """A page open: the engine's idle waits are given 250 ms, so the page sees the loop alive
    (and what a timed-out wait is). No page: they block (-1), as asyncio's do; a finite
    timeout arms a kernel timer on every wait that sleeps."""
    from websockets.sync.client import connect as ws_connect

    from app.main import PAGE_WAIT_TIMEOUT

    with live_app() as app:
        engine = app.engine

        def timeout() -> Any:
            return engine.call(lambda: engine.loop.wait_timeout).result(5)

        assert timeout() is None
        with ws_connect(app.ws_url) as ws:
            ws.recv(timeout=10)  # the snapshot: subscribed
            assert wait_until(lambda: timeout() == PAGE_WAIT_TIMEOUT, 5, "a page's timeout")
            waits = engine.stats.waits
            # idle, the loop times out on its own: its wait count goes up with no command
            wait_until(lambda: engine.stats.waits >= waits + 3, 5, "idle waits timing out")
        wait_until(lambda: timeout() is None, 5, "no page: blocking waits again")
        trace = app.client.get("/api/trace").text
        timeouts = {json.loads(line).get("timeout_ms", "-") for line in trace.splitlines()
                    if '"kind":"wait"' in line}
        assert 250 in timeouts and None in timeouts, timeouts
