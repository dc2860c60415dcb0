"""The bug zoo: each flaw shows its symptom and its detector fires; off restores echo."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from .conftest import connect, recv_exactly, send_quietly, wait_until


def _echo_ok(engine) -> None:
    with connect(engine.tcp_port) as sock:
        payload = b"x" * 100_000 + b"end"
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload


def _flag(rec, name: str, timeout: float = 5.0, text: str = "") -> dict:
    return wait_until(lambda: next((e for e in rec.of("flaw", name=name)
                                    if text in e["message"]), None),
                      timeout=timeout, what=f"a {name} flag")


def test_listing_and_one_at_a_time(make_engine):
    engine, _ = make_engine()
    flaws = engine.list_flaws().result(5)
    assert [f["name"] for f in flaws] == [
        "eof_ignored", "poll_equality", "hup_before_in", "et_no_drain",
        "write_interest_stuck", "close_without_unregister", "udp_wrong_address"]
    assert not any(f["on"] for f in flaws) and all(f["title"] and f["caption"] for f in flaws)
    engine.set_flaw("eof_ignored", True).result(5)
    with pytest.raises(RuntimeError, match="one flaw at a time"):
        engine.set_flaw("poll_equality", True).result(5)
    with pytest.raises(KeyError):
        engine.set_flaw("nope", True).result(5)
    engine.set_flaw("eof_ignored", False).result(5)


@pytest.mark.parametrize("backend,trigger", [("poll", "level"), ("epoll", "level"),
                                             ("epoll", "edge")])
def test_eof_ignored(make_engine, backend, trigger):
    """Edge-triggered, the EOF is reported once: no busy loop to count, and the detector said
    nothing while the connection leaked."""
    engine, rec = make_engine(backend=backend, trigger=trigger)
    engine.set_flaw("eof_ignored", True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    sock.close()
    flag = _flag(rec, "eof_ignored")
    assert flag["fd"] == fd and "0 bytes" in flag["message"]
    assert fd in engine.connections  # still registered: the bug
    # each wake's read of 0 bytes is shown (the log had only `ready` events, over and over)
    eofs = rec.of("recv", fd=fd, eof=True)
    assert eofs and all(e["bytes"] == 0 for e in eofs)
    if trigger == "level":  # the busy loop: it read 0 bytes THRESHOLD times before the flag
        assert len([e for e in eofs if e["seq"] < flag["seq"]]) >= 20
    engine.set_flaw("eof_ignored", False).result(5)
    rec.wait_for("close", fd=fd)
    # the count, and the seq of the last detection it holds (a page adds only later events)
    flags = rec.of("flaw", name="eof_ignored")
    listed = engine.list_flaws().result(5)[0]
    assert (listed["detections"], listed["detections_seq"]) == (len(flags), flags[-1]["seq"])
    _echo_ok(engine)


def _paused_with_flaw(make_engine, name: str, backend: str):
    """An engine with flaw `name` on and one connection, the loop paused: (engine, rec, sock,
    the connection's fd)."""
    engine, rec = make_engine(backend=backend)
    engine.set_flaw(name, True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    engine.pause().result(5)
    return engine, rec, sock, fd


@pytest.mark.parametrize("name", ["hup_before_in", "poll_equality"])
@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_last_bytes_lost_when_hangup_wins(make_engine, name, backend):
    engine, rec, sock, fd = _paused_with_flaw(make_engine, name, backend)
    sock.sendall(b"my last words")
    sock.shutdown(socket.SHUT_WR)
    engine.resume().result(5)
    flag = _flag(rec, name, text="13 bytes")
    assert flag["fd"] == fd
    assert not rec.of("recv", fd=fd), "the flawed handler read nothing"
    # its own code closed it, and the close says so (the code panel shows that code)
    closes = rec.of("close", fd=fd)
    assert [(c["reason"], c.get("flaw")) for c in closes] == [("eof", name)], closes
    sock.close()
    engine.set_flaw(name, False).result(5)
    _echo_ok(engine)


@pytest.mark.parametrize("name", ["hup_before_in", "poll_equality"])
@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_a_flaws_close_on_a_reset_says_reset(make_engine, name, backend):
    """A reset comes as HUP|ERR: the flawed handler closed it with reason "eof" all the same,
    and the page said the peer had ended cleanly."""
    engine, rec, sock, fd = _paused_with_flaw(make_engine, name, backend)
    sock.sendall(b"then a reset")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    engine.resume().result(5)
    close = rec.wait_for("close", fd=fd)
    assert (close["reason"], close.get("flaw")) == ("reset", name), close
    engine.set_flaw(name, False).result(5)
    _echo_ok(engine)


def test_poll_equality_ignores_in_with_out(make_engine):
    engine, rec = make_engine(backend="poll", so_sndbuf=4096)
    engine.set_flaw("poll_equality", True).result(5)
    with connect(engine.tcp_port) as sock:
        payload = os.urandom(256 << 10)
        threading.Thread(target=send_quietly, args=(sock, payload), daemon=True).start()
        flag = _flag(rec, "poll_equality", timeout=10)
        assert "POLLIN|POLLOUT" in flag["message"]
        assert recv_exactly(sock, len(payload)) == payload  # level-triggered: it catches up
    engine.set_flaw("poll_equality", False).result(5)


def test_et_no_drain_stalls_then_recovers(make_engine):
    # eager: with queued writes every EPOLL_CTL_MOD (write interest on/off) re-checks
    # readiness and reports the leftover bytes again, which hides this bug.
    engine, rec = make_engine(backend="epoll", trigger="edge", write="eager")
    engine.set_flaw("et_no_drain", True).result(5)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"a line longer than sixteen bytes\n")
        flag = _flag(rec, "et_no_drain")
        assert "left in the kernel" in flag["message"]
        assert recv_exactly(sock, 16) == b"a line longer th"  # and then: stalled
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        engine.set_flaw("et_no_drain", False).result(5)
        sock.settimeout(5)
        assert recv_exactly(sock, 17) == b"an sixteen bytes\n"
    _echo_ok(engine)


def test_et_no_drain_says_nothing_where_a_mod_reports_the_rest_again(make_engine):
    """Queued writes turn write interest on and off (EPOLL_CTL_MOD), which re-checks
    readiness: the leftover is reported again and every byte comes back. The detector said
    "will not report them again" all the same."""
    engine, rec = make_engine(backend="epoll", trigger="edge", write="queued")
    engine.set_flaw("et_no_drain", True).result(5)
    payload = bytes(range(100))
    with connect(engine.tcp_port) as sock:
        sock.sendall(payload)
        assert recv_exactly(sock, 100) == payload
    assert not [e for e in rec.events if e["kind"] == "flaw" and e["name"] == "et_no_drain"]
    engine.set_flaw("et_no_drain", False).result(5)


def test_a_detector_speaks_for_a_new_connection_on_a_reused_fd(make_engine):
    """A detector speaks once a second per fd: a new connection given the fd of one flagged
    a moment before stalled just the same, and nothing said so."""
    engine, rec = make_engine(backend="epoll", trigger="edge", write="eager")
    engine.set_flaw("et_no_drain", True).result(5)
    fds = []
    for n in (1, 2):
        sock = connect(engine.tcp_port)
        wait_until(lambda n=n: len(rec.of("accept")) == n, what=f"accept {n}")
        fds.append(rec.of("accept")[-1]["fd"])
        sock.sendall(b"a line longer than sixteen bytes\n")
        wait_until(lambda n=n: len(rec.of("flaw", name="et_no_drain")) == n,
                   what=f"the stall of connection {n} flagged")
        # a reset: the server's next recv fails and it closes the fd at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        wait_until(lambda fd=fds[-1]: fd not in engine.connections, what="the server's close")
    assert fds[0] == fds[1]  # the kernel gives the lowest free fd: the same one
    engine.set_flaw("et_no_drain", False).result(5)


def test_write_interest_stuck_busy_loop(make_engine):
    engine, rec = make_engine(backend="epoll", wait_timeout=1.0)
    engine.set_flaw("write_interest_stuck", True).result(5)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        waits = engine.stats.waits
        flag = _flag(rec, "write_interest_stuck")
        assert "writable wake-ups" in flag["message"]
        assert engine.stats.waits - waits > 100, "the loop should spin on EPOLLOUT"
        engine.set_flaw("write_interest_stuck", False).result(5)
        state = engine.state().result(5)
        assert state["connections"][0]["interest"] == ["EPOLLIN"]
    _echo_ok(engine)


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_close_without_unregister(make_engine, backend):
    engine, rec = make_engine(backend=backend)
    engine.set_flaw("close_without_unregister", True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    if backend == "epoll":
        wait_until(lambda: fd in engine.connections)
        kernel = engine.kernel().result(5)
        assert {i["fd"] for i in kernel["epoll"]["interest"]} == set(engine.loop.interest)
    sock.close()
    flag = _flag(rec, "close_without_unregister")
    expected = {"select": "Bad file descriptor", "poll": "POLLNVAL", "epoll": "stale"}[backend]
    assert expected in flag["message"]
    assert flag["fd"] == fd  # SPEC §3: a flaw names its fd (select's failed wait did not)
    # no unregister event will come, and the close says so (the page keeps the fd's cell)
    close = rec.wait_for("close", fd=fd)
    assert close.get("registered") is True
    assert not [e for e in rec.events if e["kind"] == "interest" and e["fd"] == fd
                and e["op"] == "unregister" and e["seq"] < close["seq"]]
    assert flag["seq"] > close["seq"]  # it describes that close (it came first on epoll)
    if backend == "epoll":
        kernel = engine.kernel().result(5)
        assert fd in engine.loop.interest
        assert fd not in {i["fd"] for i in kernel["epoll"]["interest"]}  # the mismatch
    engine.set_flaw("close_without_unregister", False).result(5)
    wait_until(lambda: fd not in engine.loop.handlers or engine.loop.handlers[fd].closed is False)
    _echo_ok(engine)
    if backend == "epoll":
        kernel = engine.kernel().result(5)
        assert {i["fd"] for i in kernel["epoll"]["interest"]} == set(engine.loop.interest)


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_a_switch_with_stale_fds_left_by_the_flaw_succeeds(make_engine, backend):
    """The closed-but-registered fds cannot move to a new epoll (EBADF): the switch removes
    them first, says so, and goes through; the echo works on the new backend."""
    engine, rec = make_engine(backend=backend)
    engine.set_flaw("close_without_unregister", True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    sock.close()
    _flag(rec, "close_without_unregister")
    assert engine.call(lambda: fd in engine.loop.interest).result(5), "the stale entry"
    state = engine.switch_backend("epoll", "edge").result(5)
    assert (state["backend"]["name"], state["backend"]["trigger"]) == ("epoll", "edge")
    assert [e["fd"] for e in rec.of("flaw") if "switching backend" in e["message"]] == [fd]
    assert fd not in engine.call(lambda: set(engine.loop.interest)).result(5)
    _echo_ok(engine)
    engine.set_flaw("close_without_unregister", False).result(5)


def test_a_switch_does_not_call_a_reused_fd_stale(make_engine):
    """The flaw closes fd N without unregistering it; a new connection is then accepted on
    N (the kernel gives the lowest free fd), which replaces the table's entry. A switch said
    "closed fd(s) [N] are still in the engine's table ... removing them" of that live one."""
    engine, rec = make_engine(backend="epoll")
    engine.set_flaw("close_without_unregister", True).result(5)
    first = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    second = socket.socket()  # its fd is taken now, so the accept below is the one to get N
    first.shutdown(socket.SHUT_WR)  # EOF: the flaw's close; `first` keeps its own fd number
    rec.wait_for("close", fd=fd)
    second.connect(("127.0.0.1", engine.tcp_port))
    accepts = wait_until(lambda: rec.of("accept")[1:] or None, what="a second accept")
    assert accepts[0]["fd"] == fd, "the lowest free fd goes to the next accept"
    wait_until(lambda: fd in engine.connections)
    engine.switch_backend("poll").result(5)
    assert not [e for e in rec.of("flaw") if "switching backend" in e["message"]]
    second.sendall(b"still here")
    assert recv_exactly(second, 10) == b"still here"
    engine.set_flaw("close_without_unregister", False).result(5)
    first.close()
    second.close()


def test_udp_wrong_address(make_engine):
    engine, rec = make_engine()
    engine.set_flaw("udp_wrong_address", True).result(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        client.sendto(b"hello?", ("127.0.0.1", engine.udp_port))
        flag = _flag(rec, "udp_wrong_address")
        assert "this server" in flag["message"]
        with pytest.raises(TimeoutError):
            client.recvfrom(100)
        # the reply to itself was counted as echoed (the client never heard back); its event
        # says so, for the page and a replay to count it as live does
        assert rec.wait_for("datagram", dir="out").get("misdirected") is True
        # ... and it came back in: received, marked as the server's own, never echoed
        own = wait_until(lambda: rec.of("datagram", dir="in")[1:], 5, "the reply coming in")
        assert own[0].get("from_self") is True and "from_self" not in rec.of("datagram")[0]
        udp = engine.state().result(5)["listeners"]["udp"]
        assert (udp["received"], udp["from_self"], udp["echoed"]) == (2, 1, 0)
        engine.set_flaw("udp_wrong_address", False).result(5)
        client.settimeout(5)
        client.sendto(b"now?", ("127.0.0.1", engine.udp_port))
        assert client.recvfrom(100)[0] == b"now?"
        assert engine.state().result(5)["listeners"]["udp"]["echoed"] == 1
        outs = wait_until(lambda: [e for e in rec.of("datagram") if e["dir"] == "out"][1:],
                          5, "the echo's datagram event")
        assert "misdirected" not in outs[0]


def test_write_toggle_keeps_the_flaws_extra_bits(make_engine):
    """A flaw that watches hang-ups adds EPOLLRDHUP to every registration. With nobody
    watching, queued writes switch write interest through the backend's write toggle, which
    must be rebuilt with the new bits: after echoes in both directions of the switch, the
    kernel's own interest list still carries EPOLLRDHUP (and loses it when the flaw is off)."""
    import select

    rdhup = getattr(select, "EPOLLRDHUP", 0x2000)
    engine, _ = make_engine(backend="epoll", write="queued", observe=False)
    engine.set_flaw("hup_before_in", True).result(5)
    with connect(engine.tcp_port) as sock:
        wait_until(lambda: len(engine.connections) == 1)
        fd = next(iter(engine.connections))
        for _ in range(3):  # each echo turns write interest on, then off
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
        assert engine.loop.write_toggle is engine.loop.backend.write_toggle
        assert engine.loop.backend.interest[fd] & rdhup
        engine.set_flaw("hup_before_in", False).result(5)
        for _ in range(3):
            sock.sendall(b"pong")
            assert recv_exactly(sock, 4) == b"pong"
        assert not engine.loop.backend.interest[fd] & rdhup


def test_close_without_unregister_under_one_shot_does_not_end_the_loop(make_engine):
    """One-shot re-arms each fd after its handler (EPOLL_CTL_MOD); the flaw had just closed
    it without unregistering: EBADF from the re-arm, outside the handler's guard, ended the
    engine thread (the echo port refused connections, every API call answered 503)."""
    engine, rec = make_engine(backend="epoll", oneshot=True)
    engine.set_flaw("close_without_unregister", True).result(5)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
    # the call that failed is the re-arm (it said "epoll() failed": no such call, and
    # epoll_wait never fails here)
    flag = _flag(rec, "close_without_unregister", text="failed")
    assert "epoll_ctl(EPOLL_CTL_MOD) re-arming it failed: Bad file descriptor" in \
        flag["message"], flag
    assert engine.state().result(5)["loop"] == "running"  # the loop thread answers
    _echo_ok(engine)  # and still echoes, flaw on
    engine.set_flaw("close_without_unregister", False).result(5)
    _echo_ok(engine)


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_a_flaws_hangup_bit_is_told_as_interest_events(make_engine, backend):
    """hup_before_in and poll_equality add the hang-up bit to every registration and take it
    off again with no event: the page kept showing `POLLIN` where the kernel held
    `POLLIN|POLLRDHUP` (and the bit for good once the flaw was off)."""
    engine, rec = make_engine(backend=backend)
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        rdhup = "POLLRDHUP" if backend == "poll" else "EPOLLRDHUP"
        engine.set_flaw("hup_before_in", True).result(5)
        on = rec.wait_for("interest", fd=fd, cause="flaw")
        assert rdhup in on["flags"] and on["op"] == "modify"
        assert engine.state().result(5)["connections"][0]["interest"] == on["flags"]
        engine.set_flaw("hup_before_in", False).result(5)
        wait_until(lambda: any(e["kind"] == "interest" and e.get("cause") == "flaw"
                               and e["seq"] > on["seq"] and rdhup not in e["flags"]
                               for e in rec.events if e.get("fd") == fd))
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


def test_a_flaws_hangup_bit_changes_nothing_on_select(make_engine):
    engine, rec = make_engine(backend="select")
    with connect(engine.tcp_port):
        rec.wait_for("accept")
        engine.set_flaw("hup_before_in", True).result(5)
        engine.set_flaw("hup_before_in", False).result(5)
        engine.state().result(5)
        assert not [e for e in rec.events if e["kind"] == "interest" and e.get("cause")]


def test_eof_ignored_on_edge_triggered_epoll_still_drains_what_comes(make_engine):
    """The flawed handler read once per report: edge-triggered, that is et_no_drain's bug as
    well, and a 2 MB stream stalled with no word of it (131,072 bytes came back)."""
    engine, rec = make_engine(backend="epoll", trigger="edge", write="eager")
    engine.set_flaw("eof_ignored", True).result(5)
    data = bytes(range(256)) * 8192
    with connect(engine.tcp_port) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,))
        sender.start()
        assert recv_exactly(sock, len(data)) == data
        sender.join(5)
    assert not [e for e in rec.events if e["kind"] == "flaw" and "0 bytes" not in e["message"]]


def test_a_flaw_that_cannot_show_with_this_backend_says_why(make_engine):
    """A teacher switched et_no_drain on with the default backend and saw nothing happen:
    the flaw was on, and nothing said it could not show there."""
    engine, _ = make_engine(backend="select", udp=False)

    def inert() -> dict[str, str | None]:
        return {f["name"]: f["inert"] for f in engine.list_flaws().result(5)}

    said = inert()
    assert "poll or epoll" in said["hup_before_in"]
    assert said["poll_equality"] is None  # select's read|write is no POLLIN either
    assert "edge-triggered epoll" in said["et_no_drain"]
    assert "--no-udp" in said["udp_wrong_address"]
    assert said["eof_ignored"] is None and said["close_without_unregister"] is None
    assert said["write_interest_stuck"] is None  # select, queued: the busy loop
    engine.switch_backend("epoll", "edge").result(5)
    said = inert()
    assert said["hup_before_in"] is None and "write to eager" in said["et_no_drain"]
    assert "trigger to level" in said["write_interest_stuck"]
    engine.set_write_mode("eager").result(5)
    said = inert()
    assert said["et_no_drain"] is None and "write to queued" in said["write_interest_stuck"]
    engine.switch_backend("epoll", "edge", oneshot=True).result(5)
    assert "one-shot off" in inert()["et_no_drain"]


def test_et_no_drain_under_one_shot_reports_no_stall_that_is_not_there(make_engine):
    """One-shot's re-arm (a MOD after every report) reports the leftover again: all 100
    bytes came back, and the detector said "84 bytes left ... will not report them again"."""
    engine, rec = make_engine(backend="epoll", trigger="edge", oneshot=True, write="eager")
    engine.set_flaw("et_no_drain", True).result(5)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"z" * 100)
        assert recv_exactly(sock, 100) == b"z" * 100
    assert not rec.of("flaw", name="et_no_drain")


def test_eof_ignored_under_one_shot_counts_the_reports_it_gets_again(make_engine):
    """Edge-triggered one-shot re-arms the fd after each report: the EOF comes again and
    again (a busy loop), while the flag said it is "not reported again"."""
    engine, rec = make_engine(backend="epoll", trigger="edge", oneshot=True)
    engine.set_flaw("eof_ignored", True).result(5)
    sock = connect(engine.tcp_port)
    rec.wait_for("accept")
    sock.close()
    flag = _flag(rec, "eof_ignored")
    assert "woke the loop" in flag["message"] and "not reported again" not in flag["message"]
    engine.set_flaw("eof_ignored", False).result(5)


def test_eof_ignored_edge_triggered_says_not_reported_again_only_after_the_last_report(
        make_engine):
    """Edge-triggered with queued writes, each echo's write-interest MOD makes epoll check the
    fd again, so the ignored EOF came back after the flaw had said "that EOF is not reported
    again" (a learner saw it reported twice right after)."""
    engine, rec = make_engine(backend="epoll", trigger="edge")  # queued writes
    engine.set_flaw("eof_ignored", True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    sock.sendall(b"first")
    assert recv_exactly(sock, 5) == b"first"
    engine.pause().result(5)
    sock.sendall(b"last-bytes\n")
    sock.shutdown(socket.SHUT_WR)
    engine.resume().result(5)
    assert recv_exactly(sock, 11) == b"last-bytes\n"
    flag = _flag(rec, "eof_ignored")
    assert flag["fd"] == fd and "not reported again" in flag["message"]
    _echo_ok(engine)  # the loop went on: iterations after the flag
    again = [e for e in rec.of("ready", fd=fd)
             if "EPOLLIN" in e["flags"] and e["seq"] > flag["seq"]]
    assert again == [], again
    sock.close()
    engine.set_flaw("eof_ignored", False).result(5)
