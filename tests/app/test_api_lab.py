"""Breakpoints, bug zoo, kernel truth, code view and replay over HTTP."""

from __future__ import annotations

import json
import socket
import threading

from app.main import create_app
from app.settings import Settings
from tests.conftest import run_asgi
from tests.mux.conftest import recv_exactly, send_quietly, wait_until

from .conftest import live_app


def test_breakpoints_past_the_cap_get_a_409_that_says_what_to_do(live):
    from mux.breakpoints import MAX_BREAKPOINTS

    c = live.client
    ids = [c.post("/api/breakpoints", json={"when": "writable", "fd": 99999}).json()["id"]
           for _ in range(MAX_BREAKPOINTS)]
    r = c.post("/api/breakpoints", json={"when": "readable"})
    assert r.status_code == 409 and "delete one first" in r.json()["detail"]
    for bp_id in ids:
        assert c.delete(f"/api/breakpoints/{bp_id}").status_code == 200


def test_breakpoints_api(live):
    c = live.client
    r = c.post("/api/breakpoints", json={"when": "readable", "fd": 99999})
    assert r.status_code == 201
    bp = r.json()
    assert bp["when"] == "readable" and isinstance(bp["id"], int)
    assert [b["id"] for b in c.get("/api/breakpoints").json()] == [bp["id"]]
    assert c.post("/api/breakpoints", json={"when": "queue_over"}).status_code == 422
    r = c.post("/api/breakpoints", json={"when": "readable", "depth": 5})  # would be ignored
    assert r.status_code == 422 and "queue_over" in r.text
    assert c.post("/api/breakpoints", json={"when": "never"}).status_code == 422
    assert c.delete(f"/api/breakpoints/{bp['id']}").status_code == 200
    assert c.delete(f"/api/breakpoints/{bp['id']}").status_code == 404
    with live.connect() as sock:
        sock.sendall(b"a")
        recv_exactly(sock, 1)
        fd = c.get("/api/state").json()["connections"][0]["fd"]
        bp = c.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
        sock.sendall(b"b")
        wait_until(lambda: c.get("/api/state").json()["loop"] == "paused")
        listed = c.get("/api/breakpoints").json()
        assert listed[0]["hits"] == 1
        c.post("/api/loop", json={"action": "resume"})


def test_flaws_api(live):
    c = live.client
    flaws = c.get("/api/flaws").json()
    assert {f["name"] for f in flaws} == {
        "eof_ignored", "poll_equality", "hup_before_in", "et_no_drain",
        "write_interest_stuck", "close_without_unregister", "udp_wrong_address"}
    assert all({"name", "title", "on", "detections"} <= set(f) for f in flaws)
    assert c.post("/api/flaws/eof_ignored", json={"on": True}).status_code == 200
    r = c.post("/api/flaws/hup_before_in", json={"on": True})
    assert r.status_code == 409 and "eof_ignored" in r.json()["detail"]
    assert c.post("/api/flaws/bogus", json={"on": True}).status_code == 404
    assert c.post("/api/flaws/eof_ignored", json={"on": "yes"}).status_code == 422
    assert c.post("/api/flaws/eof_ignored", json={"on": False}).status_code == 200
    assert not any(f["on"] for f in c.get("/api/flaws").json())


def test_kernel_truth_matches_engine(live):
    with live.connect() as sock:
        sock.sendall(b"hello")
        recv_exactly(sock, 5)
        kernel = live.client.get("/api/kernel").json()
        state = live.client.get("/api/state").json()
        assert kernel["epoll"]["fd"] == state["backend"]["fd"]
        assert {i["fd"] for i in kernel["epoll"]["interest"]} == {
            r["fd"] for r in state["registrations"]}
        (conn,) = kernel["connections"]
        fd = state["connections"][0]["fd"]
        assert conn["fd"] == fd and conn["recv_queue"] == 0

        def send_queue(of: int) -> int:
            return next(c["send_queue"] for c in live.client.get("/api/kernel").json()[
                "connections"] if c["fd"] == of)

        # the echo was read (and acknowledged): the kernel holds nothing more for this peer
        wait_until(lambda: send_queue(fd) == 0, what="the echo acknowledged")
        # a peer that sends and never reads: the echo waits in the server's send queue
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", live.engine.tcp_port))
            stalled.settimeout(10)
            threading.Thread(target=send_quietly, args=(stalled, b"x" * (1 << 20)),
                             daemon=True).start()
            peer = f"127.0.0.1:{stalled.getsockname()[1]}"
            stalled_fd = wait_until(lambda: next((c["fd"] for c in live.client.get(
                "/api/state").json()["connections"] if c["peer"] == peer), None))
            wait_until(lambda: send_queue(stalled_fd) > 0, what="echo held in the send queue")
            assert send_queue(fd) == 0
            stalled.shutdown(socket.SHUT_RDWR)  # ends the sender's blocked sendall
    assert live.client.post("/api/backend", json={"name": "poll"}).status_code == 200
    assert live.client.get("/api/kernel").json()["epoll"] is None


def test_code_view(live):
    code = live.client.get("/api/code").json()
    recv = code["recv"]
    assert [h["qualname"] for h in recv] == ["TcpConnection.on_ready", "TcpConnection._on_data"]
    last = recv[-1]
    line = last["lines"][last["highlight"][0] - last["first_line"]]
    assert '"kind": "recv"' in line


def test_code_view_highlights_a_line_in_every_function_of_every_chain(live):
    """Each function of a chain shows where it calls the next one, the last where it builds the
    event: a chain that names a function the code no longer goes through highlights nothing."""
    code = live.client.get("/api/code").json()
    for kind, chain in code.items():
        for link in chain:
            assert link["highlight"], f"{kind}: nothing highlighted in {link['qualname']}"


def test_code_view_highlights_the_close_of_the_call_that_failed(live):
    """on_ready closes a connection in three places when a call fails: its recv, its send, or
    (`inline`) the batch dispatch's, which left the close to it. A close event says which
    (`call`, `inline`), and the code view highlights that one line, not all three (it did)."""
    code = live.client.get("/api/code").json()
    sites = {"recv": '"recv", exc', "send": '"send", exc', "inline": "inline=True"}
    for reason in ("reset", "error"):
        for site, text in sites.items():
            on_ready, close = code[f"close@{reason}-{site}"]
            assert (on_ready["qualname"], close["qualname"]) == ("TcpConnection.on_ready",
                                                                 "TcpClosing.close")
            lines = [on_ready["lines"][n - on_ready["first_line"]] for n in on_ready["highlight"]]
            assert len(lines) == 1 and text in lines[0] and ".close(" in lines[0], (site, lines)
    # a recording made before close events said which call failed: all three, as before
    assert len(code["close@reset"][0]["highlight"]) == 3
    # a flaw's handler that calls on_ready for each side: the side of the call that failed
    for site, side in (("recv", "on_ready(READABLE)"), ("send", "on_ready(WRITABLE)")):
        handler = code[f"close@reset-{site}@poll_equality"][0]
        lines = [handler["lines"][n - handler["first_line"]] for n in handler["highlight"]]
        assert len(lines) == 1 and side in lines[0], (site, lines)


def test_code_view_highlights_a_hooked_call_not_the_def_line(live):
    """The loop calls the engine's handler-failure code through its hook attribute: the line
    highlighted is that call (it was the `def` line, whose name matched)."""
    caller = live.client.get("/api/code").json()["error@crash"][0]
    assert caller["qualname"] == "Loop._handler_failed"
    (line,) = [caller["lines"][n - caller["first_line"]] for n in caller["highlight"]]
    assert "self.handler_error_hook(handler, exc)" in line


def test_code_view_names_each_path_of_a_kind(live):
    """One kind, several paths: the close a user asked for, the queue depth after a send, a
    backpressure release each get the chain they really come from."""
    code = live.client.get("/api/code").json()
    chains = {key: [h["qualname"] for h in code[key]] for key in code}
    assert chains["close@user"] == ["Engine._close_connection", "TcpClosing.shut_down",
                                    "TcpClosing.close"]
    # the interest change after a close's flush: shut_down's write half, not a readiness's
    assert chains["interest@user"] == ["Engine._close_connection", "TcpClosing.shut_down",
                                       "TcpConnection.on_ready", "TcpConnection._after_write",
                                       "Registrations.set_interest"]
    assert chains["interest@shutdown"][0] == "Engine._shutdown"
    assert chains["interest@user-emptied"] == ["Engine._close_connection",
                                               "TcpClosing.shut_down",
                                               "TcpConnection.on_ready",
                                               "Registrations.set_interest"]
    assert chains["interest@linger"] == ["Engine._close_connection", "TcpClosing.shut_down",
                                         "Registrations.set_interest"]
    assert chains["interest@rearm-early"][:2] == ["EngineCommands._read_kernel",
                                                  "Registrations.rearm_now"]
    # an `error` by its `cause`: every one was shown as the listener's out-of-fds path
    assert chains["error"] == ["TcpListener._out_of_fds", "Engine.error"]
    assert chains["error@crash"] == ["Loop._handler_failed", "Engine._handler_failed",
                                     "Engine.error"]
    assert chains["close@crash"] == ["Engine._handler_failed", "TcpClosing.close"]
    assert chains["error@refused"] == ["TcpListener.on_ready", "Engine.adopt", "Engine._refuse",
                                       "Engine.error"]
    assert chains["close@refused"] == chains["error@refused"][:-1]  # _refuse emits it itself
    assert chains["error@recovered"][-2:] == ["TcpListener._recovered", "Engine.error"]
    assert chains["error@udp"] == ["UdpEcho._error", "Engine.error"]
    assert chains["close@shutdown"] == ["Engine._shutdown", "TcpClosing.shut_down",
                                        "TcpClosing.close"]
    assert chains["close"] == ["TcpConnection.on_ready", "TcpConnection._on_eof",
                               "TcpClosing.close"]
    # a user's close that lingered, ended by the peer's EOF or by the deadline
    assert chains["close@linger-eof"] == ["Lingerer.on_ready", "Lingerer.close",
                                          "TcpClosing.close"]
    assert chains["close@linger-reset"] == chains["close@linger-eof"]  # its read got an RST
    assert chains["close@linger-deadline"] == ["Lingerer.expire", "TcpClosing.close"]
    assert chains["queue@send"] == ["TcpConnection.on_ready"]
    assert chains["recv@eof"] == ["TcpConnection.on_ready", "TcpConnection._on_eof",
                                  "TcpConnection.emit_eof_read"]
    # eof_ignored reads 0 bytes in its own handler and shows each such read, ignoring it
    assert chains["recv@eof@eof_ignored"] == ["EofIgnored.connection_ready",
                                              "TcpConnection.emit_eof_read"]
    # a user's close sends the queue through on_ready's write half; an eager send's failure
    # closes inside recv's handler (with a flaw on that reads, the flaw's handler heads it)
    assert chains["send@user"] == ["Engine._close_connection", "TcpClosing.shut_down",
                                    "TcpConnection.on_ready"]
    assert chains["close@eager-reset"] == ["TcpConnection.on_ready", "TcpConnection._on_data",
                                           "TcpClosing.close"]
    assert chains["close@eager-error@eof_ignored"] == ["EofIgnored.connection_ready",
                                                       "TcpConnection._on_data",
                                                       "TcpClosing.close"]
    # every `loop` event was shown as a step's, a Pause button's too
    assert chains["loop"] == ["LoopControl._set_paused", "LoopControl._emit_loop"]
    assert chains["loop@step"] == ["LoopControl._step", "LoopControl._emit_loop"]
    assert chains["loop@breakpoint"] == ["LoopControl._pause_at_breakpoint",
                                         "LoopControl._emit_loop"]
    assert chains["loop@delay"] == ["LoopControl._set_delay", "LoopControl.emit_loop_state",
                                    "LoopControl._emit_loop"]
    assert chains["loop@flaw"] == ["FlawZoo.set", "LoopControl.emit_loop_state",
                                   "LoopControl._emit_loop"]
    assert chains["backpressure@release"][-1] == "TcpConnection._set_backpressure"
    # queued and unwatched: the batch dispatch's own read paused it (mux/hot.py)
    assert chains["backpressure@inline"] == ["EchoDispatch.run",
                                             "TcpConnection._set_backpressure"]
    # a flaw on: its own handler heads the chain, then what it calls (it reads, or it hands on)
    assert chains["recv@eof_ignored"] == ["EofIgnored.connection_ready",
                                          "TcpConnection._on_data"]
    assert chains["send@eager@et_no_drain"] == ["EtNoDrain.connection_ready",
                                                "TcpConnection._on_data"]
    # hup_before_in closes on its own only on a hang-up: a close otherwise comes through on_ready
    assert chains["close@hup_before_in"] == ["HupBeforeIn.connection_ready",
                                             "TcpConnection.on_ready", "TcpConnection._on_eof",
                                             "TcpClosing.close"]
    # ... and on a hang-up its own code closes (such a `close` event carries `flaw`)
    assert chains["close@early@hup_before_in"] == ["HupBeforeIn.connection_ready",
                                                   "TcpClosing.close"]
    assert chains["close@early@eof_ignored"] == ["EofIgnored.connection_ready", "recv_once",
                                                 "TcpClosing.close"]
    # et_no_drain calls _on_eof itself: on_ready is not on its way to a close
    assert chains["close@et_no_drain"] == ["EtNoDrain.connection_ready",
                                           "TcpConnection._on_eof", "TcpClosing.close"]
    assert chains["interest@register"][-2:] == ["Registrations.register",
                                                "Registrations._emit_interest"]
    assert chains["interest@moved"] == ["Engine._switch", "Registrations.switch",
                                        "Registrations._emit_interest"]
    # paths the code view put down to another (a bug zoo audit): the queue left at EOF flushed
    # then closed by the write half (shown as closed by _on_eof); a datagram echoed (shown as
    # received); a one-shot re-arm, a stale fd dropped, a flaw's hang-up bit (shown as a
    # handler's set_interest, or nothing)
    assert chains["close@flushed"] == ["TcpConnection.on_ready", "TcpConnection._after_write",
                                       "TcpClosing.close"]
    assert chains["datagram@out"] == ["UdpEcho._receive_one", "UdpEcho._try_send",
                                      "UdpEcho._emit"]
    assert chains["datagram@flush"][:2] == ["UdpEcho.on_ready", "UdpEcho._flush"]
    assert chains["interest@rearm"][-2:] == ["Registrations._rearm_fd",
                                             "Registrations._emit_interest"]
    assert chains["interest@stale"][-2:] == ["Registrations.discard_stale",
                                             "Registrations._emit_interest"]
    assert chains["interest@crash"] == ["Engine._handler_failed", "Registrations.discard_stale",
                                        "Registrations._emit_interest"]
    assert chains["interest@flaw"][-2:] == ["Registrations.reapply_interest",
                                            "Registrations._emit_interest"]
    assert chains["interest@flaw-off"][0] == "Flaw.deactivate"


def test_record_and_replay(tmp_path):
    path = tmp_path / "run.jsonl"
    with live_app(record=path) as live:
        with live.connect() as sock:
            for word in (b"one", b"two", b"three"):
                sock.sendall(word)
                recv_exactly(sock, len(word))
        wait_until(lambda: b'"send"' in path.read_bytes())
        live_waits = live.client.get("/api/trace?format=jsonl").text.count('"wait"')
    lines = path.read_bytes().splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "snapshot" and "state" in first
    recorded = [json.loads(x) for x in lines[1:]]
    assert [e["seq"] for e in recorded] == list(range(first["seq"] + 1,
                                                      first["seq"] + 1 + len(recorded)))
    assert live_waits > 0
    app = create_app(Settings(http_port=0, replay_file=path))
    with run_asgi(app) as base:
        import httpx
        from websockets.sync.client import connect as ws_connect

        with httpx.Client(base_url=base) as c:
            assert c.post("/api/loop", json={"action": "pause"}).status_code == 409
            assert c.post("/api/backend", json={"name": "poll"}).status_code == 409
            invalid = c.post("/api/backend", json={"name": "select", "trigger": "edge"})
            assert invalid.status_code == 409 and "replay" in invalid.json()["detail"]
            assert c.delete("/api/load").status_code == 409
            assert c.get("/api/state").json()["backend"]["name"] == "epoll"
            trace = c.get("/api/trace?format=jsonl").text.splitlines()
            assert len(trace) == len(recorded)
        with ws_connect(base.replace("http", "ws") + "/ws") as ws:
            snap = json.loads(ws.recv(timeout=5))
            assert snap["type"] == "snapshot" and snap["seq"] == first["seq"]
            got = []
            while len(got) < len(recorded):
                frame = json.loads(ws.recv(timeout=5))
                if frame["type"] == "events":
                    got += frame["events"]
            assert got == recorded


def test_record_rotation(tmp_path):
    from app.record import JsonlRecorder

    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, max_mb=0.001)  # ~1 KiB
    rec.write_snapshot({"x": 1}, 0, 0.0)
    for seq in range(1, 200):
        rec([{"seq": seq, "ts": 0.0, "kind": "wait"}])
    rec.close()
    assert path.with_name("r.jsonl.1").exists()
    assert path.stat().st_size <= 1100


def test_the_code_is_read_once_not_at_every_request(live) -> None:
    """GET /api/code read and encoded every handler's source each time: 0.26 s of CPU and
    1 MB a request, taken from the engine's thread's share of the process."""
    from app.routes.api import _code_body

    first = live.client.get("/api/code")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    misses = _code_body.cache_info().misses
    assert live.client.get("/api/code").content == first.content
    assert _code_body.cache_info().misses == misses


def test_the_udp_sockets_backpressure_shows_its_own_code(live) -> None:
    """The UDP socket's backpressure events had the key of a connection's: the code panel
    showed TcpConnection._put for a full UDP reply queue."""
    code = live.client.get("/api/code").json()
    pause, release = code["backpressure@udp"], code["backpressure@udp-release"]
    assert [h["qualname"] for h in pause] == [
        "UdpEcho._receive_one", "UdpEcho._queue_reply", "UdpEcho._set_backpressure"]
    assert [h["qualname"] for h in release] == [
        "UdpEcho.on_ready", "UdpEcho._flush", "UdpEcho._set_backpressure"]
    last = pause[-1]
    line = last["lines"][last["highlight"][0] - last["first_line"]]
    assert '"kind": "backpressure"' in line


def test_the_kernels_udp_receive_queue_holds_a_paused_loops_datagrams(live) -> None:
    """The Kernel truth panel had no row for the UDP socket: where a paused loop's burst waits,
    and what the kernel drops of it."""
    udp = live.client.get("/api/state").json()["listeners"]["udp"]
    idle = live.client.get("/api/kernel").json()["udp"]
    assert idle["fd"] == udp["fd"] and idle["recv_queue"] == 0 and idle["next_datagram"] == 0
    assert idle["rcvbuf"] > 0
    assert live.client.post("/api/loop", json={"action": "pause"}).status_code == 200
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for size in (300, 400, 500):
            client.sendto(b"u" * size, ("127.0.0.1", udp["port"]))
        held = wait_until(lambda: (k := live.client.get("/api/kernel").json()["udp"])
                          ["recv_queue"] >= 1200 and k, what="the datagrams in the kernel")
        assert held["next_datagram"] == 300  # SIOCINQ on UDP: the next one's size alone
        assert held["drops"] == 0
        assert live.client.post("/api/loop", json={"action": "resume"}).status_code == 200
        client.settimeout(5)
        assert [len(client.recvfrom(1000)[0]) for _ in range(3)] == [300, 400, 500]
    wait_until(lambda: live.client.get("/api/kernel").json()["udp"]["recv_queue"] == 0,
               what="the queue read")
