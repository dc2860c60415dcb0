"""Readiness breakpoints pause the real loop on the iteration that matched."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from typing import Any

import pytest

from mux import Engine, EngineConfig
from mux.backends import WRITABLE

from .conftest import connect, recv_exactly, send_quietly, wait_until


def _hit_readable(engine, rec, sock: socket.socket, data: bytes) -> tuple[int, dict, dict]:
    """A readable breakpoint on `sock`'s server fd, hit by sending `data`: (fd, bp, hit)."""
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    bp = engine.add_breakpoint("readable", fd=fd).result(5)
    sock.sendall(data)
    return fd, bp, rec.wait_for("loop", state="paused", breakpoint=bp["id"])


def _iteration_before(rec, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The shown events from the last wait before `event` up to it ([] without one)."""
    before = [e for e in rec.events if e["seq"] < event["seq"]]
    waits = [i for i, e in enumerate(before) if e["kind"] == "wait"]
    return before[waits[-1]:] if waits else []


def test_readable_breakpoint_fires_on_the_right_iteration(make_engine):
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd, bp, hit = _hit_readable(engine, rec, sock, b"stop here")
        assert engine.paused
        assert hit["fd"] == fd  # which fd matched: for "any fd" breakpoints, the one to look at
        # The iteration that paused is the one whose wait reported fd readable.
        iteration = _iteration_before(rec, hit)
        assert any(e["kind"] == "ready" and e["fd"] == fd for e in iteration)
        assert any(e["kind"] == "recv" and e["fd"] == fd for e in iteration)
        listed = engine.list_breakpoints().result(5)
        assert listed[0]["hits"] == 1 and listed[0]["last_wait"] == engine.stats.waits
        assert listed[0]["last_fd"] == fd
        assert engine.remove_breakpoint(bp["id"]).result(5) is True
        assert engine.remove_breakpoint(bp["id"]).result(5) is False
        engine.resume().result(5)
        assert recv_exactly(sock, 9) == b"stop here"


def test_the_state_says_which_breakpoint_holds_the_loop_until_it_runs_again(make_engine):
    """A page opened after the hit sees no `loop` event: the state body is all it reads."""
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        assert engine.state().result(5)["paused_at"] is None
        bp = engine.add_breakpoint("readable", fd=fd).result(5)
        sock.sendall(b"hold")
        hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"])
        assert engine.state().result(5)["paused_at"] == {
            "breakpoint": bp["id"], "wait": hit["wait"], "fd": fd, "steps": 0}
        engine.step().result(5)  # its wait returns at once: the echo is queued, writable
        wait_until(lambda: engine.state().result(5)["paused_at"]["steps"] == 1)
        assert recv_exactly(sock, 4) == b"hold"
        engine.step().result(5)  # nothing to do: its wait blocks
        # read during that wait (answered when it ends, within its timeout): its `loop step`
        # event is out, so it counts already (a page opened then never sees that event)
        wait_until(lambda: len(rec.of("loop", state="step")) == 2)
        assert engine.state().result(5)["paused_at"]["steps"] == 2
        assert engine.paused
        # deleted while it holds the loop: the state named it with nothing saying it was gone
        assert engine.remove_breakpoint(bp["id"]).result(5) is True
        assert engine.state().result(5)["paused_at"] == {
            "breakpoint": bp["id"], "wait": hit["wait"], "fd": fd, "steps": 2, "deleted": True}
        engine.resume().result(5)
        assert engine.state().result(5)["paused_at"] is None
        engine.pause().result(5)  # a client's pause: no breakpoint holds the loop
        assert engine.state().result(5)["paused_at"] is None
        engine.resume().result(5)


def test_other_fds_do_not_trigger(make_engine):
    engine, rec = make_engine()
    with connect(engine.tcp_port) as a, connect(engine.tcp_port) as b:
        wait_until(lambda: len(engine.connections) == 2)
        fd_b = max(engine.connections)
        engine.add_breakpoint("readable", fd=fd_b).result(5)
        a.sendall(b"a")
        assert recv_exactly(a, 1) == b"a"
        assert not engine.paused
        b.sendall(b"b")
        rec.wait_for("loop", state="paused")


def test_a_breakpoint_on_any_fd_ignores_the_engines_own_control_fd(make_engine):
    """Every command (each API request) makes the control fd readable: "readable, any fd"
    paused the loop on the dashboard's own requests, and even on its own creation."""
    engine, rec = make_engine(wait_timeout=0.05)
    bp = engine.add_breakpoint("readable").result(5)
    for _ in range(20):  # commands, each one a wake-up of the control fd
        assert engine.list_breakpoints().result(5)[0]["hits"] == 0
    assert not engine.paused
    assert any(e["kind"] == "ready" and e["fd"] == engine.control_fd for e in rec.events)
    with connect(engine.tcp_port) as sock:  # a connection's readiness still matches
        hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"])
        assert hit["fd"] == engine.listener.fd  # the listener: a client is waiting
        engine.remove_breakpoint(bp["id"]).result(5)
        engine.resume().result(5)
        sock.sendall(b"on")
        assert recv_exactly(sock, 2) == b"on"
    own = engine.add_breakpoint("readable", fd=engine.control_fd).result(5)  # named: matches
    engine.list_breakpoints().result(5)
    rec.wait_for("loop", state="paused", breakpoint=own["id"])


def test_hup_breakpoint(make_engine):
    engine, rec = make_engine(backend="select")
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    bp = engine.add_breakpoint("hup").result(5)
    sock.close()
    rec.wait_for("loop", state="paused", breakpoint=bp["id"])
    assert rec.of("close", fd=fd)


def test_queue_over_and_backpressure_breakpoints(make_engine):
    engine, rec = make_engine(so_sndbuf=4096)
    bp_q = engine.add_breakpoint("queue_over", depth=3).result(5)
    with connect(engine.tcp_port) as sock:
        payload = os.urandom(4 << 20)
        threading.Thread(target=send_quietly, args=(sock, payload), daemon=True).start()
        rec.wait_for("loop", state="paused", breakpoint=bp_q["id"], timeout=10)
        depths = [e["depth"] for e in rec.of("queue")]
        assert max(depths) > 3
        engine.remove_breakpoint(bp_q["id"]).result(5)
        bp_b = engine.add_breakpoint("backpressure").result(5)
        engine.resume().result(5)
        rec.wait_for("loop", state="paused", breakpoint=bp_b["id"], timeout=10)
        assert rec.of("backpressure", paused=True)


def test_queue_over_fires_as_a_queue_grows_past_its_depth_not_while_it_stays(make_engine):
    """A client that does not read keeps its queue deep: the breakpoint fired on every wait
    after Resume (Resume acted as Step). It fires again once the queue has been back under."""
    engine, rec = make_engine(so_sndbuf=4096)
    bp = engine.add_breakpoint("queue_over", depth=3).result(5)
    size = 1 << 20
    with connect(engine.tcp_port) as sock:
        # a receive buffer that stays small (128 KiB: two chunks): one that grew while the
        # first echo was read can take much of the second at once on loopback, and the queue
        # may then never pass 3 (the second hit did not come in 10 s once in CI; the cause
        # believed, not seen)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        fd = rec.wait_for("accept")["fd"]

        def depth() -> int:
            return engine.call(lambda: len(engine.connections[fd].queue)).result(5)

        def hits() -> list[dict[str, Any]]:
            return rec.of("loop", state="paused", breakpoint=bp["id"])

        sender = threading.Thread(target=send_quietly, args=(sock, os.urandom(size)),
                                  daemon=True)
        sender.start()
        wait_until(lambda: len(hits()) == 1, timeout=10, what="the first hit")
        engine.resume().result(5)
        sender.join(10)  # all of it read by the server; the client reads nothing back yet
        waits = engine.stats.waits
        for _ in range(5):  # each command wakes the loop: a wait, then the check
            engine.call(lambda: None).result(5)
        assert len(hits()) == 1 and not engine.paused
        assert engine.stats.waits >= waits + 5 and depth() > 3
        # read the echo: the queue drains, then grows past 3 again, which fires again
        assert len(recv_exactly(sock, size)) == size
        wait_until(lambda: depth() == 0, what="the queue drained")
        threading.Thread(target=send_quietly, args=(sock, os.urandom(size)), daemon=True).start()
        wait_until(lambda: len(hits()) == 2, timeout=10, what="the second hit")
        assert engine.list_breakpoints().result(5)[0]["hits"] == 2
        engine.resume().result(5)


def test_two_queues_growing_past_the_depth_in_one_iteration_each_pause_the_loop(make_engine):
    """Both were taken as over at the first check, which named only one: the other, still
    over its depth, never paused the loop."""
    engine, _ = make_engine()
    bps = engine.breakpoints

    def checks() -> list[int | None]:
        bp = bps.add("queue_over", depth=3)
        backend = engine.loop.backend
        fired = []
        for depths in ({7: 10, 8: 10}, {7: 11, 8: 11}, {7: 12, 8: 12}):
            fired.append(bp.last_fd if bps.check([], backend, depths) is bp else None)
        bps.remove(bp.id)
        return fired

    assert engine.call(checks).result(5) == [7, 8, None]


def test_the_loop_runs_breakpoint_code_only_while_one_is_set(make_engine):
    """The check is a loop hook added with the first breakpoint and removed with the last, so
    with none set no breakpoint code runs per iteration."""
    engine, _ = make_engine()
    hooks = engine.loop.after_iteration
    assert hooks == []
    first = engine.add_breakpoint("readable").result(5)
    second = engine.add_breakpoint("hup").result(5)
    assert len(hooks) == 1
    assert engine.remove_breakpoint(first["id"]).result(5) is True
    assert len(hooks) == 1  # one breakpoint still set
    assert engine.remove_breakpoint(second["id"]).result(5) is True
    assert hooks == []


def test_a_note_taken_for_a_removed_breakpoint_does_not_fire_a_later_one(make_engine):
    engine, _ = make_engine()
    bps = engine.breakpoints

    def note_then_remove_then_add() -> tuple[int, bool]:
        bp = bps.add("backpressure")
        bps.note("backpressure", 7)  # a handler noted it in this iteration...
        bps.remove(bp.id)            # ...and the breakpoint went away before the check
        later = bps.add("backpressure")
        fired = bps.check([], engine.loop.backend, {}) is not None
        bps.remove(later.id)
        return len(bps.notes), fired

    notes_left, fired = engine.call(note_then_remove_then_add).result(5)
    assert not fired
    assert notes_left == 0


@pytest.mark.parametrize(("src", "dst"), [("select", "epoll"), ("epoll", "select")])
def test_a_switch_in_the_batch_does_not_make_a_writable_fd_hit_a_readable_breakpoint(
        src: str, dst: str) -> None:
    """The breakpoint reads the ready list in the words of the backend whose wait returned it:
    select's write bit (2) is EPOLLPRI to epoll, EPOLLOUT (4) select's except bit."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend=src, wait_timeout=0.5))
    loop = engine.loop
    events: list[dict[str, Any]] = []
    engine.observers.add(events.append)  # watched: the loop keeps last_ready
    client = socket.create_connection(("127.0.0.1", engine.tcp_port))
    try:
        while not engine.connections:
            loop.run_once()
        (fd,) = engine.connections
        client.sendall(b"x")
        while not engine.connections[fd].queue:  # queued: recv -> queue, write interest on
            loop.run_once()
        engine.breakpoints.add("readable", fd=fd)
        switched = engine.switch_backend(dst)  # the control fd is ready in the same wait
        loop.run_once()  # ready: the control fd (switch) and the connection (writable only)
        switched.result(1)
        assert client.recv(1) == b"x"
        mine = [loop.last_ready_backend.generic(n) for f, n in loop.last_ready if f == fd]
        assert mine == [WRITABLE], f"precondition: fd {fd} reported writable only: {mine}"
        hit = engine.breakpoints.take_hit()
        assert hit is None, f"'readable' on fd {fd} hit, though only writable ({src} -> {dst})"
    finally:
        client.close()
        engine.stop()


def test_a_hup_breakpoint_on_the_closing_fd_still_fires_then_goes_with_its_connection(
        make_engine):
    """A breakpoint on fd N belongs to that connection: the hang-up that closes it still hits
    it, and then it is gone, so it never fires for a later connection the kernel numbers N."""
    engine, rec = make_engine(backend="epoll")
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    bp = engine.add_breakpoint("hup", fd=fd).result(5)
    sock.close()
    rec.wait_for("loop", state="paused", breakpoint=bp["id"])
    assert rec.of("close", fd=fd)
    assert engine.list_breakpoints().result(5) == []
    engine.resume().result(5)
    with connect(engine.tcp_port) as again:
        assert rec.wait_for("accept", fd=fd)["fd"] == fd  # the kernel reuses the number
        again.sendall(b"x")
        assert recv_exactly(again, 1) == b"x"
        assert not engine.paused


def test_a_readable_breakpoint_does_not_move_to_the_next_connection_on_its_fd(make_engine):
    engine, rec = make_engine(backend="poll")
    first = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    engine.add_breakpoint("readable", fd=fd).result(5)
    other = engine.add_breakpoint("backpressure").result(5)  # no fd: stays
    assert engine.close_connection(fd).result(5) is True
    first.close()
    with connect(engine.tcp_port) as second:
        rec.wait_for("accept", fd=fd)
        second.sendall(b"ab")
        assert recv_exactly(second, 2) == b"ab"
        assert not engine.paused
    assert [b["id"] for b in engine.list_breakpoints().result(5)] == [other["id"]]


def test_breakpoints_are_capped(make_engine):
    from mux.breakpoints import MAX_BREAKPOINTS

    engine, _ = make_engine()
    for _ in range(MAX_BREAKPOINTS):
        engine.add_breakpoint("writable", fd=99).result(5)
    with pytest.raises(RuntimeError, match="delete one first"):
        engine.add_breakpoint("readable").result(5)
    first = engine.list_breakpoints().result(5)[0]["id"]
    assert engine.remove_breakpoint(first).result(5)
    engine.add_breakpoint("readable", fd=99).result(5)


def test_a_breakpoint_set_after_its_fds_close_waits_for_the_next_connection(make_engine):
    """Set while paused, after a user close of that fd (before the next iteration's check):
    it answered 201, then vanished at the next iteration."""
    engine, rec = make_engine(backend="epoll")
    first = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    old = engine.add_breakpoint("readable", fd=fd).result(5)  # the first connection's
    # The client sockets live in this process too: the second one's fd is taken now, and the
    # first stays open, so that neither takes the fd the server frees (the server's next
    # accept must get it; a client socket got it, depending on the fds earlier tests left).
    second = socket.socket()
    engine.pause().result(5)
    assert engine.close_connection(fd).result(5) is True
    bp = engine.add_breakpoint("hup", fd=fd).result(5)
    engine.resume().result(5)
    second.settimeout(10)
    second.connect(("127.0.0.1", engine.tcp_port))
    with first, second:
        wait_until(lambda: len(rec.of("accept")) == 2, what="the second connection accepted")
        assert rec.of("accept")[1]["fd"] == fd, "the test needs the freed fd given again"
        second.sendall(b"x")  # readable: the old breakpoint's, which must be gone
        assert recv_exactly(second, 1) == b"x"
        assert [b["id"] for b in engine.list_breakpoints().result(5)] == [bp["id"]]
        assert old["id"] not in [e.get("breakpoint") for e in rec.of("loop")]
    rec.wait_for("loop", state="paused", breakpoint=bp["id"])  # the new one: its hang-up


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_a_reset_hits_a_hup_breakpoint_on_every_backend(make_engine, backend):
    """select reports a reset only as readable (then recv fails): the hup breakpoint on that
    fd was dropped with the connection without ever firing."""
    engine, rec = make_engine(backend=backend)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    bp = engine.add_breakpoint("hup", fd=fd).result(5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    rec.wait_for("loop", state="paused", breakpoint=bp["id"])
    assert rec.of("close", fd=fd, reason="reset")


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_a_writable_breakpoint_needs_the_kernels_out_bit(make_engine, backend):
    """An error or a hang-up is handed to the handler as both readable and writable (so that
    either half finds it), and a writable breakpoint fired on a reset's IN|ERR|HUP, which
    select, reporting the same reset as readable only, did not."""
    import select as sel

    engine, _ = make_engine(backend=backend)
    IN, ERR, HUP, OUT = ((sel.POLLIN, sel.POLLERR, sel.POLLHUP, sel.POLLOUT) if backend == "poll"
                         else (sel.EPOLLIN, sel.EPOLLERR, sel.EPOLLHUP, sel.EPOLLOUT))

    def matches() -> list[str | None]:
        bps, backend_now = engine.breakpoints, engine.loop.backend
        found = []
        for when, native in (("writable", IN | ERR | HUP), ("readable", IN | ERR | HUP),
                             ("writable", OUT | ERR), ("readable", HUP)):
            bp = bps.add(when, fd=7)
            hit = bps.check([(7, native)], backend_now, {})
            found.append(None if hit is None else hit.when)
            bps.remove(bp.id)
        return found

    assert engine.call(matches).result(5) == [None, "readable", "writable", None]


def test_a_hup_breakpoint_fires_when_the_eof_ignored_flaw_reads_the_eof(make_engine):
    """The flaw reads the peer's EOF (0 bytes) and goes on: the hang-up was never noted, so a
    hup breakpoint did not fire on any backend, though the flaw itself reported it."""
    engine, rec = make_engine(backend="poll")
    engine.set_flaw("eof_ignored", True).result(5)
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        bp = engine.add_breakpoint("hup", fd=fd).result(5)
        sock.shutdown(socket.SHUT_WR)
        hit = rec.wait_for("loop", state="paused", breakpoint=bp["id"])
        assert hit["fd"] == fd
    engine.set_flaw("eof_ignored", False).result(5)


def test_a_hang_up_found_between_waits_fires_no_breakpoint_on_the_next_wait(make_engine):
    """A user's close while the loop is paused found the peer's reset: the note stayed, and the
    next Step's wait (that had nothing of it) paused at the hup breakpoint."""
    engine, rec = make_engine(backend="poll")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", engine.tcp_port))
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):  # echoes it never reads: the server queues them
        while True:
            sock.send(b"q" * 65536)
    wait_until(lambda: engine.connections[fd].queue, timeout=10)
    engine.pause().result(5)
    bp = engine.add_breakpoint("hup").result(5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert engine.close_connection(fd).result(5) is True
    close = rec.wait_for("close", fd=fd)
    engine.step().result(5)

    def paused_after_the_close() -> list[dict[str, Any]]:
        return [e for e in rec.of("loop", state="paused") if e["seq"] > close["seq"]]

    wait_until(paused_after_the_close)
    stepped = paused_after_the_close()[0]
    assert "breakpoint" not in stepped, stepped
    assert engine.list_breakpoints().result(5)[0]["hits"] == 0
    assert engine.remove_breakpoint(bp["id"]).result(5)


def test_every_breakpoint_that_matched_counts_the_hit(make_engine):
    """Two breakpoints matching one wait: the pause names the first, and both count it (the
    second's hits stayed at 0)."""
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        mine = engine.add_breakpoint("readable", fd=fd).result(5)
        anyone = engine.add_breakpoint("readable").result(5)
        sock.sendall(b"x")
        rec.wait_for("loop", state="paused", breakpoint=mine["id"])
        listed = {b["id"]: b for b in engine.list_breakpoints().result(5)}
        assert listed[mine["id"]]["hits"] == listed[anyone["id"]]["hits"] == 1
        assert listed[anyone["id"]]["last_fd"] == fd
        assert listed[anyone["id"]]["last_wait"] == listed[mine["id"]]["last_wait"]


def test_a_breakpoint_hit_in_an_iteration_not_shown_shows_that_wait(make_engine):
    """Over the observation budget an iteration is counted, not shown: a breakpoint that
    matched in one paused the loop with no wait before its `loop` event, and the state's
    `last_wait` was an older wait (the page named the wrong iteration)."""
    engine, rec = make_engine(observe_budget=1)  # under 1 event a window: nothing is shown
    with connect(engine.tcp_port) as sock:
        fd, bp, hit = _hit_readable(engine, rec, sock, b"x")
        iteration = _iteration_before(rec, hit)
        assert [e["fd"] for e in iteration if e["kind"] == "ready"] == [fd], iteration
        assert all(e["late"] for e in iteration if e["kind"] in ("wait", "ready"))
        last = engine.state().result(5)["last_wait"]
        assert [r["fd"] for r in last["ready_list"]] == [fd]
        sock.sendall(b"y")  # a Step that matches again shows its wait too
        engine.step().result(5)
        wait_until(lambda: len(rec.of("loop", state="paused", breakpoint=bp["id"])) == 2)
        stepped = rec.of("loop", state="paused", breakpoint=bp["id"])[1]
        assert any(e["kind"] == "ready" and e["fd"] == fd for e in _iteration_before(rec, stepped))
        engine.resume().result(5)
        assert recv_exactly(sock, 2) == b"xy"
