"""Loop control through the one door: pause, step, resume, slow motion, close."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from mux.kernel import socket_queues

from .conftest import connect, recv_exactly, recv_until_eof, wait_until


def _server_recv_queue(engine, fd: int) -> int:
    """Bytes waiting in the kernel for `fd` (SIOCINQ), read on the loop thread."""
    import fcntl
    import struct
    import termios

    def inq() -> int:
        conn = engine.connections[fd]
        buf = fcntl.ioctl(conn.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    return engine.call(inq).result(5)


def test_pause_stops_waits_and_step_runs_exactly_one(make_engine):
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        fd = rec.wait_for("accept")["fd"]
        assert engine.pause().result(5) == {"loop": "paused", "delay_ms": 0}
        waits_before = engine.stats.waits
        sock.sendall(b"held")
        # The bytes reach the server's kernel buffer, and no wait call picks them up.
        wait_until(lambda: _server_recv_queue(engine, fd) == 4, what="bytes in the kernel")
        assert engine.stats.waits == waits_before
        assert not rec.of("recv", fd=fd, bytes=4)

        seq_before = len(rec.events)
        engine.step().result(5)
        rec.wait_for("loop", state="paused", timeout=5)
        wait_until(lambda: any(e["kind"] == "loop" and e["state"] == "paused"
                               for e in rec.events[seq_before:]))
        stepped = rec.events[seq_before:]
        kinds = [e["kind"] for e in stepped]
        assert kinds[0] == "loop" and stepped[0]["state"] == "step"
        assert kinds.count("wait") == 1
        assert engine.stats.waits == waits_before + 1
        assert rec.of("recv", fd=fd, bytes=4), "the step's wait handled the readable fd"

        engine.resume().result(5)
        assert recv_exactly(sock, 4) == b"held"


def test_steps_asked_for_together_each_run_one_wait(make_engine):
    """Three step requests the loop finds queued at once (two pages, or a script) are three
    waits, not one: each answered request is a step."""

    engine, rec = make_engine(backend="epoll", wait_timeout=0.05)
    engine.pause().result(5)
    release = threading.Event()
    held = engine.call(lambda: release.wait(5))  # the loop thread is busy: the steps queue
    steps = [engine.step() for _ in range(3)]
    start = len(rec.events)
    release.set()
    held.result(5)
    for fut in steps:
        assert fut.result(5)["loop"] == "paused"
    wait_until(lambda: sum(1 for e in rec.events[start:] if e["kind"] == "loop"
                           and e["state"] == "paused") == 3, what="three steps' ends")
    kinds = [e["kind"] for e in rec.events[start:]]
    assert kinds.count("wait") == 3
    assert [e["state"] for e in rec.events[start:] if e["kind"] == "loop"] == [
        "step", "paused"] * 3


def test_a_resume_forgets_steps_not_yet_run(make_engine):
    engine, rec = make_engine(backend="epoll", wait_timeout=0.05)
    engine.pause().result(5)

    release = threading.Event()
    held = engine.call(lambda: release.wait(5))
    steps = [engine.step() for _ in range(2)]
    resumed = engine.resume()
    release.set()
    held.result(5)
    for fut in steps:
        fut.result(5)
    assert resumed.result(5)["loop"] == "running"
    start = len(rec.events)
    engine.pause().result(5)
    engine.step().result(5)  # stale steps would run before this one, as soon as paused
    wait_until(lambda: sum(1 for e in rec.events[start:] if e["kind"] == "loop"
                           and e["state"] == "paused") == 2, what="the step's end")
    states = [e["state"] for e in rec.events[start:] if e["kind"] == "loop"]
    assert states == ["paused", "step", "paused"]


def test_a_step_with_nothing_to_do_waits_for_real(make_engine):
    """The step command's own wake-up byte must not be what the step's one wait returns:
    with no I/O pending, every step's wait blocks until its timeout, with nothing ready."""
    engine, rec = make_engine(backend="epoll", wait_timeout=0.05)
    engine.pause().result(5)
    for _ in range(60):
        start = len(rec.events)
        engine.step().result(5)
        wait_until(lambda start=start: [e for e in rec.events[start:] if e["kind"] == "loop"
                                        and e["state"] == "paused"], what="the step's end")
        waits = [e for e in rec.events[start:] if e["kind"] == "wait"]
        assert len(waits) == 1
        assert waits[0]["ready"] == 0, f"the step's wait returned {rec.events[start:]}"


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_a_running_loop_blocks_without_timeout_and_a_step_times_out(make_engine, backend):
    """By default a running loop's wait is given no timeout when nothing is scheduled (as
    asyncio's: a finite one arms a kernel timer on every wait that sleeps), so an idle loop
    makes no wait at all; a step's wait is given the step timeout (250 ms), so a step on an
    idle server returns, with nothing ready."""
    engine, rec = make_engine(backend=backend)
    sock = connect(engine.tcp_port)
    sock.sendall(b"ping")
    assert recv_exactly(sock, 4) == b"ping"
    running = rec.of("wait")
    assert running and {w["timeout_ms"] for w in running} == {None}, running
    # idle: the loop sits in one wait; a command (the control fd) is what wakes it
    waits = engine.stats.waits
    time.sleep(0.6)  # an absence needs a window: more than two of the old 250 ms timeouts
    assert engine.stats.waits == waits
    engine.pause().result(5)
    start = len(rec.events)
    began = time.monotonic()
    engine.step().result(5)
    wait_until(lambda: [e for e in rec.events[start:] if e["kind"] == "loop"
                        and e["state"] == "paused"], what="the step's end")
    stepped = [e for e in rec.events[start:] if e["kind"] == "wait"]
    assert [(w["timeout_ms"], w["ready"]) for w in stepped] == [(250, 0)]
    assert time.monotonic() - began >= 0.24
    engine.resume().result(5)
    sock.sendall(b"pong")
    assert recv_exactly(sock, 4) == b"pong"
    assert rec.of("wait")[-1]["timeout_ms"] is None


def test_a_resume_during_a_steps_wait_leaves_the_loop_running(make_engine):
    """pause, step, then resume while the step's wait blocks: the resume is handled inside
    that wait, says "running", and the step must not then say "paused" over it."""
    # the step's wait must still block when the resume comes: a test thread held up past its
    # timeout (2 s was tight on a loaded box) saw ["step", "paused", "running"]
    engine, rec = make_engine(backend="epoll", wait_timeout=30.0)
    engine.pause().result(5)
    seq_before = len(rec.events)
    engine.step().result(5)
    wait_until(lambda: any(e["kind"] == "loop" and e["state"] == "step"
                           for e in rec.events[seq_before:]), what="the step to start")
    engine.resume().result(5)
    with connect(engine.tcp_port) as sock:  # the loop runs on: a new client is echoed
        sock.sendall(b"alive")
        assert recv_exactly(sock, 5) == b"alive"
    states = [e["state"] for e in rec.events[seq_before:] if e["kind"] == "loop"]
    assert states == ["step", "running"], states
    assert engine.loop_state()["loop"] == "running"


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_nothing_the_loop_did_before_a_pause_follows_its_loop_paused_event(make_engine, backend):
    """A pause reaches the loop through the control fd, handled inside a wait: the rest of
    that wait's ready list is still handled, and its events came after `loop paused` (the
    page's log, recordings and time travel showed recvs in a paused loop). The pause's event
    comes after the iteration's last handler now."""
    engine, rec = make_engine(backend=backend)
    socks = [connect(engine.tcp_port) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
        fds = sorted(engine.connections)
        assert len(fds) == 3
        held, release = threading.Event(), threading.Event()

        def hold_once(_ready: object) -> None:  # after an iteration, on the loop thread
            if not held.is_set():
                held.set()
                release.wait(5)

        # added on the loop thread, inside an iteration (the control fd's handler), so that
        # the hook holds the end of that iteration, not of one already under way
        engine.call(engine.loop.after_iteration.append, hold_once).result(5)
        assert held.wait(5)
        paused = engine.pause()  # queued, its wake-up byte on the control fd
        for sock in socks:
            sock.sendall(b"hello")
        # the next wait returns the control fd and all three connections together
        wait_until(lambda: all(_fionread(engine, fd) == 5 for fd in fds),
                   what="the bytes in the server's kernel buffers")
        release.set()
        assert paused.result(5)["loop"] == "paused"
        engine.call(lambda: None).result(5)  # answered by the paused loop: the iteration ended
        events = list(rec.events)
        at = max(i for i, e in enumerate(events)
                 if e["kind"] == "loop" and e["state"] == "paused")
        recvs = [i for i, e in enumerate(events) if e["kind"] == "recv" and e["bytes"] == 5]
        assert len(recvs) == 3 and max(recvs) < at, (recvs, at)
        assert events[at + 1:] == [], [(e["kind"], e.get("fd")) for e in events[at + 1:]]
        engine.resume().result(5)
        for sock in socks:
            assert recv_exactly(sock, 5) == b"hello"
    finally:
        for sock in socks:
            sock.close()


def _fionread(engine, fd: int) -> int:
    """Bytes waiting in the kernel for the server's end `fd` (FIONREAD), from this thread."""
    import fcntl
    import struct
    import termios

    conn = engine.connections[fd]
    buf = fcntl.ioctl(conn.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def test_a_shorter_delay_applies_at_once(make_engine):
    """Lowering slow motion mid-delay ends the old delay: the next echo does not wait it out."""
    engine, rec = make_engine(wait_timeout=0.01)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        # The 5 s delay starts when the iteration that set it ends; the next command is
        # handled inside that delay (or before it starts: either way no 5 s may pass).
        engine.set_delay(5000).result(5)
        assert engine.set_delay(0).result(3) == {"loop": "running", "delay_ms": 0}
        started = time.monotonic()
        sock.sendall(b"b")
        assert recv_exactly(sock, 1) == b"b"
        assert time.monotonic() - started < 2.5, "the old 5 s delay was waited out"


def test_a_delay_change_is_an_event_that_every_watcher_sees(make_engine):
    """Slow motion set by one client must reach the others' pages: a changed delay emits a
    `loop` event carrying it (an unchanged one emits nothing), and every `loop` event says
    the delay in force."""
    engine, rec = make_engine(wait_timeout=0.01)
    start = len(rec.events)
    engine.set_delay(300).result(5)
    engine.set_delay(300).result(5)
    engine.pause().result(5)
    engine.set_delay(0).result(5)
    engine.resume().result(5)
    wait_until(lambda: len([e for e in rec.events[start:] if e["kind"] == "loop"]) >= 4,
               what="the loop events")
    loops = [(e["state"], e["delay_ms"]) for e in rec.events[start:] if e["kind"] == "loop"]
    assert loops == [("running", 300), ("paused", 300), ("paused", 0), ("running", 0)], loops


def test_each_loop_event_says_what_made_it(make_engine):
    """The code view showed every `loop` event as a step's: the event says its cause now
    (a client's pause or resume, a step, a breakpoint, a slow-motion or flaw change)."""
    engine, rec = make_engine(backend="epoll", wait_timeout=0.05)
    start = len(rec.events)
    engine.pause().result(5)
    engine.step().result(5)
    wait_until(lambda: [e["state"] for e in rec.events[start:] if e["kind"] == "loop"]
               == ["paused", "step", "paused"], what="the step's end")
    engine.set_delay(10).result(5)
    engine.set_flaw("eof_ignored", True).result(5)
    engine.set_flaw("eof_ignored", False).result(5)
    engine.resume().result(5)
    with connect(engine.tcp_port) as sock:
        bp = engine.add_breakpoint("readable").result(5)
        sock.sendall(b"x")
        rec.wait_for("loop", breakpoint=bp["id"])
    causes = [(e["state"], e["cause"]) for e in rec.events[start:] if e["kind"] == "loop"]
    assert causes == [("paused", "command"), ("step", "step"), ("paused", "step"),
                      ("paused", "delay"), ("paused", "flaw"), ("paused", "flaw"),
                      ("running", "command"), ("paused", "breakpoint")], causes


def test_reading_breakpoints_and_flaws_does_not_wake_the_loop(make_engine):
    """A page polls both every few seconds: each read went through the control door, so the
    control fd turned `ready` on every page, and a paused loop's Step was spent on it."""
    engine, rec = make_engine(backend="epoll", wait_timeout=None)

    def control_wakes() -> int:
        return len(rec.of("ready", fd=engine.control_fd))

    engine.call(lambda: None).result(5)
    wait_until(lambda: control_wakes() >= 1, what="the first wake-up seen")
    before = control_wakes()
    for _ in range(5):
        assert engine.list_breakpoints().result(5) == []
        assert len(engine.list_flaws().result(5)) == 7
    engine.call(lambda: None).result(5)  # one wake-up, as a measure
    wait_until(lambda: control_wakes() > before, what="the measured wake-up")
    assert control_wakes() == before + 1


def test_step_while_running_is_refused(make_engine):
    engine, _ = make_engine()
    with pytest.raises(RuntimeError, match="pause"):
        engine.step().result(5)


def test_slow_motion_spaces_iterations(make_engine):
    engine, _ = make_engine(wait_timeout=0.01)
    engine.set_delay(200).result(5)
    start_waits, t0 = engine.stats.waits, time.monotonic()
    time.sleep(1.0)  # a measurement window, not synchronisation
    rate = (engine.stats.waits - start_waits) / (time.monotonic() - t0)
    assert rate <= 6, f"{rate:.1f} waits/s with a 200 ms delay"
    with pytest.raises(ValueError, match="5000"):
        engine.set_delay(5001).result(5)
    # Commands still get through during the delay.
    assert engine.set_delay(0).result(1) == {"loop": "running", "delay_ms": 0}


def test_close_connection(make_engine):
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        assert engine.close_connection(fd).result(5) is True
        assert sock.recv(1) == b""
        assert rec.wait_for("close", fd=fd)["reason"] == "user"
        assert engine.close_connection(fd).result(5) is False
        assert engine.close_connection(engine.listener.fd).result(5) is False


def test_a_close_whose_flush_empties_the_queue_of_a_half_closed_peer_says_user(make_engine):
    """The close's last flush sent the rest of the queue of a peer that had sent its EOF, and
    the usual end of that ("eof") closed it first: the event said eof, not user."""
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]

        def half_closed_with_a_queue() -> None:  # as a slow reader's EOF would leave it
            conn = engine.connections[fd]
            conn.eof = True
            conn.reading = conn.inline = False
            conn.queue.append(b"last echo")
            conn.pending_bytes += 9

        engine.call(half_closed_with_a_queue).result(5)
        assert engine.close_connection(fd).result(5) is True
        assert recv_until_eof(sock) == b"last echo"
    assert rec.wait_for("close", fd=fd)["reason"] == "user"


def test_closing_a_connection_with_unread_input_ends_it_with_a_fin_not_a_reset(make_engine):
    """"Close fd N" closed at once: with bytes the loop had not read yet in the kernel's
    buffer that close is an RST, and the client saw ECONNRESET (losing any echo the kernel still
    had to send it). It is now the engine's orderly end: queue out, FIN, input read away."""
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        engine.pause().result(5)
        sock.sendall(b"sent while paused: never read")
        assert engine.close_connection(fd).result(5) is True
        assert recv_until_eof(sock) == b""  # no ConnectionResetError
    assert rec.wait_for("close", fd=fd)["reason"] == "user"
    assert fd not in engine.connections


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_closing_a_backpressured_connection_does_not_resume_its_reading_first(
        make_engine, trigger):
    """The close's last flush took the queue below low water, and released the backpressure:
    a "reading resumed" event (and a backpressure breakpoint hit) for a connection about to
    close, which never read again."""
    engine, rec = make_engine(backend="epoll", trigger=trigger, high_water=50, low_water=10)
    # Small buffers both ways, so a queue the client does not read stays queued and reading
    # stays paused. With the kernel's own sizes the pause's iteration often flushed the queue
    # and resumed reading, and catching the paused moment was a race (CI lost it 20 times).
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    client.settimeout(10)
    client.connect(("127.0.0.1", engine.tcp_port))
    with client as sock:
        fd = rec.wait_for("accept")["fd"]
        conn = engine.call(lambda: engine.connections[fd]).result(5)
        engine.call(lambda: conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                    ).result(5)
        sock.setblocking(False)
        chunk = b"b" * 65536

        def reading_paused_with_a_queue() -> bool:
            with contextlib.suppress(BlockingIOError):
                sock.send(chunk)
            return engine.call(lambda: conn.reading_paused and bool(conn.queue)).result(5)

        wait_until(reading_paused_with_a_queue, 10, "reading paused behind a queue")
        engine.pause().result(5)
        queued = engine.call(lambda: conn.pending_bytes).result(5)
        assert queued > 10  # above low water, and it stays so while paused
        # Room for the whole queue now, so the close's flush takes it below low water.
        engine.call(lambda: conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
                    ).result(5)

        def server_send_buffer_empty() -> bool:
            with contextlib.suppress(BlockingIOError):
                while sock.recv(1 << 20):
                    pass
            return socket_queues(fd)["send_queue"] == 0

        wait_until(server_send_buffer_empty, 10, "the client took the echoes sent so far")
        seen = len(rec.events)
        assert engine.close_connection(fd).result(5) is True
        sock.shutdown(socket.SHUT_WR)  # its unread input may make the close linger until this
        engine.resume().result(5)  # (a paused loop lingers, as it does everything, paused)
        sock.setblocking(True)
        assert len(recv_until_eof(sock)) == queued  # the close's flush sent the whole queue
        assert rec.wait_for("close", fd=fd)["reason"] == "user"
        assert engine.connections.get(fd) is None
        assert not [e for e in rec.events[seen:] if e["kind"] == "backpressure"]


def test_observer_that_raises_is_detached(make_engine):
    engine, rec = make_engine()

    def bad(event):
        raise RuntimeError("observer bug")

    engine.observers.add(bad)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    assert bad not in engine.observers._sinks
    assert rec.of("recv")


def test_seq_has_no_gaps_and_ts_increases(make_engine):
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        for _ in range(20):
            sock.sendall(b"ping")
            recv_exactly(sock, 4)
    seqs = [e["seq"] for e in rec.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    ts = [e["ts"] for e in rec.events]
    assert ts == sorted(ts)


def test_stop_closes_everything(make_engine):
    engine, rec = make_engine()
    sock = connect(engine.tcp_port)
    rec.wait_for("accept")
    engine.stop()
    engine.join(5)
    assert sock.recv(1) == b""
    assert rec.wait_for("close")["reason"] == "shutdown"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", engine.tcp_port), timeout=2)
    sock.close()


def test_commands_queued_while_paused_are_all_answered_after_resume(make_engine):
    """A regression: commands that arrived together with `resume` were left in the queue
    (their wake-up bytes drained) until some later command woke the loop."""
    import concurrent.futures

    engine, _ = make_engine(wait_timeout=None)  # a wait without timeout: nothing else wakes it
    for _ in range(50):
        engine.pause().result(5)
        futures = [engine.resume()] + [engine.state() for _ in range(4)]
        done, not_done = concurrent.futures.wait(futures, timeout=2)
        assert not not_done, "commands stranded in the control queue"


def test_last_wait_keeps_its_own_backends_words_after_a_switch(make_engine):
    """The ready list of the last wait is what *that* backend's kernel call returned: switching
    while paused (no wait since) must not re-spell poll's POLLIN as EPOLLIN."""
    engine, _ = make_engine(backend="poll")
    engine.pause().result(5)  # the wait that carried the pause saw the control fd readable
    engine.switch_backend("epoll").result(5)
    last = engine.state().result(5)["last_wait"]
    assert last["backend"] == "poll"
    flags = [entry["flags"] for entry in last["ready_list"]]
    assert ["POLLIN"] in flags, flags
    assert not any(name.startswith("EPOLL") for f in flags for name in f), flags


def test_last_wait_names_the_epoll_that_made_it_after_a_new_trigger(make_engine):
    """A new trigger is a new epoll: a page loaded while paused after the switch showed the
    last wait as made on the new epoll fd. The state says which backend made it."""
    engine, _ = make_engine(backend="epoll")
    engine.pause().result(5)
    old = engine.state().result(5)["backend"]
    assert "made_by" not in engine.state().result(5)["last_wait"]
    new = engine.switch_backend("epoll", trigger="edge").result(5)["backend"]
    assert new["fd"] != old["fd"]
    made_by = engine.state().result(5)["last_wait"]["made_by"]
    assert made_by == {k: old[k] for k in ("name", "trigger", "oneshot", "fd", "maxevents")}
    assert made_by["trigger"] == "level"
    engine.resume().result(5)
    wait_until(lambda: "made_by" not in engine.state().result(5)["last_wait"],
               what="a wait by the new epoll")


def test_a_backend_event_carries_the_new_epoll_fd_and_maxevents(make_engine):
    """A replayed page has no state to re-read after a switch: its syscall line showed
    `epoll_wait(?, [...], ?, 250)`. The event now says what the live page reads."""
    engine, rec = make_engine(backend="poll")
    state = engine.switch_backend("epoll").result(5)
    moved = rec.wait_for("backend", to="epoll")
    assert moved["epoll_fd"] == state["backend"]["fd"] is not None
    assert moved["maxevents"] == state["backend"]["maxevents"] is not None
    engine.switch_backend("select").result(5)
    back = rec.wait_for("backend", to="select")
    assert back["epoll_fd"] is None and back["maxevents"] is None
    # the registrations the switch moved say so (the code panel shows Registrations.switch for them)
    moved = [e for e in rec.events if e["kind"] == "interest" and e["seq"] < back["seq"]
             and e["seq"] > rec.wait_for("backend", to="epoll")["seq"]]
    assert moved and all(e["op"] == "register" and e.get("moved") is True for e in moved)
    with connect(engine.tcp_port):
        accepted = rec.wait_for("accept")
        fresh = rec.wait_for("interest", fd=accepted["fd"], op="register")
        assert "moved" not in fresh


def test_a_flaw_switch_is_a_loop_event_and_part_of_the_state(make_engine):
    """Time travel and a replay must know which handler ran in an iteration: switching a bug-zoo
    flaw emits a `loop` event naming the flaw now on (null when off; an unchanged switch emits
    nothing), every `loop` event says it, and the state carries it."""
    engine, rec = make_engine(wait_timeout=0.01)
    assert engine.state().result(5)["flaw"] is None
    start = len(rec.events)
    engine.set_flaw("eof_ignored", True).result(5)
    engine.set_flaw("eof_ignored", True).result(5)
    assert engine.state().result(5)["flaw"] == "eof_ignored"
    engine.pause().result(5)
    engine.set_flaw("eof_ignored", False).result(5)
    engine.set_flaw("eof_ignored", False).result(5)
    engine.resume().result(5)
    wait_until(lambda: len([e for e in rec.events[start:] if e["kind"] == "loop"]) >= 4,
               what="the loop events")
    loops = [(e["state"], e["flaw"]) for e in rec.events[start:] if e["kind"] == "loop"]
    assert loops == [("running", "eof_ignored"), ("paused", "eof_ignored"), ("paused", None),
                     ("running", None)], loops
    assert engine.state().result(5)["flaw"] is None


def test_the_engine_thread_is_named_in_the_os(make_engine):
    """strace -p TID, top -H: the engine's thread is found by its name, "mux-engine" (it was
    "python", like every other thread of the process)."""
    engine, _ = make_engine(backend="epoll")
    tid = engine.call(threading.get_native_id).result(5)
    with open(f"/proc/self/task/{tid}/comm") as f:
        assert f.read().strip() == "mux-engine"


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_a_close_after_the_queue_left_at_eof_went_out_says_flushed(make_engine, backend):
    """The write half closes a connection whose EOF came with data still queued (SPEC §2:
    flush, then close); its close event looked like _on_eof's own, and the code view showed
    that path."""
    engine, rec = make_engine(backend=backend, write="queued")
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        engine.pause().result(5)
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        wait_until(lambda: _server_recv_queue(engine, fd) == 10)
        for steps in range(1, 5):  # read and queue; EOF, the queue still to go out; send
            engine.step().result(5)
            wait_until(lambda n=steps: len(rec.of("loop", state="paused", cause="step")) == n)
            if any(e["kind"] == "close" for e in rec.events):
                break
        close = next(e for e in rec.events if e["kind"] == "close")
        assert close == {**close, "fd": fd, "reason": "eof", "flushed": True}
        assert recv_until_eof(sock) == b"last words"
        engine.resume().result(5)


def test_a_close_says_its_flush_is_the_closes(make_engine):
    """A user's close (between two iterations: paused, or in slow motion) and the engine's
    stop send what is queued through on_ready's write half: with no `closing` on those events
    the code view put them down to the readiness of the iteration before."""
    engine, rec = make_engine(backend="epoll", write="queued")
    socks = [connect(engine.tcp_port) for _ in range(2)]
    fds = [rec.wait_for("accept", peer="{}:{}".format(*s.getsockname()))["fd"] for s in socks]
    wait_until(lambda: all(fd in engine.connections for fd in fds))
    assert engine.pause().result(5)["loop"] == "paused"
    for sock in socks:
        sock.sendall(b"queued")
    # both in the server's kernel before the first step: one that lands after it is read a
    # step later, in whose wait the other's queue is writable and goes out before the close
    wait_until(lambda: all(_fionread(engine, fd) == 6 for fd in fds), what="both in the kernel")
    while not all(rec.of("queue", fd=fd) for fd in fds):  # received; the sends wait for a
        paused = len(rec.of("loop", state="paused"))       # writable report
        engine.step().result(5)
        wait_until(lambda: len(rec.of("loop", state="paused")) > paused, what="the step")  # noqa: B023
    assert engine.close_connection(fds[0]).result(5) is True
    engine.stop()
    rec.wait_for("close", fd=fds[1], reason="shutdown")
    for sock, fd, closing in zip(socks, fds, ("user", "shutdown"), strict=True):
        sends = rec.of("send", fd=fd)
        assert [s.get("closing") for s in sends] == [closing], sends
        assert [q.get("closing") for q in rec.of("queue", fd=fd)] == [None, closing]
        assert sock.recv(16) == b"queued"
        sock.close()


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_a_kernel_read_under_one_shot_finds_the_control_fd_armed(make_engine, trigger):
    """The read is a command, run in the control fd's own handler, for whose wake-up the
    kernel disarmed that fd: it showed the control fd disarmed. It re-arms it first now, and
    says so (`early`), as the loop's own re-arm comes after the handler."""
    import select as sel

    engine, rec = make_engine(backend="epoll", trigger=trigger, oneshot=True)
    control = engine.control_fd
    for _ in range(3):
        kernel = engine.kernel().result(5)
        mask = {i["fd"]: i["mask"] for i in kernel["epoll"]["interest"]}[control]
        assert mask & sel.EPOLLIN and mask & sel.EPOLLONESHOT, hex(mask)
    early = [e for e in rec.of("interest", fd=control) if e.get("early")]
    assert len(early) == 3 and all(e["cause"] == "rearm" for e in early)


def test_a_state_read_during_a_steps_wait_does_not_end_that_wait(make_engine):
    """A state or kernel read went through the control fd with a wake-up byte: one made during
    a step's wait woke it with only the control fd ready (a page's Kernel-truth panel, which
    reads every second, used up ~1 step in 3 so; `step` then `GET /api/state`, every one)."""
    engine, rec = make_engine(backend="epoll", wait_timeout=0.2)
    engine.pause().result(5)
    for _ in range(5):
        start = len(rec.events)
        engine.step().result(5)
        wait_until(lambda start=start: any(e["kind"] == "loop" and e["state"] == "step"
                                           for e in rec.events[start:]), what="the step")
        assert engine.state().result(5)["loop"] == "paused"  # answered once the wait ended
        engine.kernel().result(5)
        wait_until(lambda start=start: [e for e in rec.events[start:] if e["kind"] == "loop"
                                        and e["state"] == "paused"], what="the step's end")
        waits = [e for e in rec.events[start:] if e["kind"] == "wait"]
        assert len(waits) == 1 and waits[0]["ready"] == 0, rec.events[start:]
        assert waits[0]["duration_us"] >= 150_000  # it ran to its timeout


def test_a_read_racing_a_resume_is_answered(make_engine):
    """A read made while paused sends no wake-up byte; a resume that lands between its check
    of `paused` and its submit must not leave it stranded in the queue of a loop that now
    waits on the backend (here for 30 s)."""
    engine, _ = make_engine(backend="epoll", wait_timeout=30.0)
    engine.pause().result(5)
    door = engine._door
    real_submit = door.submit

    def submit(fn, *args, wake=True):
        if not wake:  # the read chose to be quiet: the resume runs fully first
            real_submit(engine._set_paused, False).result(5)
            wait_until(lambda: engine._iterating, 5, "the loop back in its wait")
        return real_submit(fn, *args, wake=wake)

    door.submit = submit
    try:
        read = engine.state()
    finally:
        door.submit = real_submit
    assert read.result(3)["loop"] == "running"

@pytest.mark.parametrize("dst", [("select", "level", False), ("poll", "level", False),
                                 ("epoll", "level", False), ("epoll", "edge", True)])
def test_a_switch_away_from_one_shot_mid_batch_re_arms_nothing_on_the_new_backend(dst):
    """The control fd's switch ran first in a batch; every fd after it was "re-armed" on the
    new backend: an `interest` event with cause "rearm" on select, which has no one-shot, and
    a needless modify call on poll and epoll. The new backend registered them all armed."""
    from mux import Engine, EngineConfig

    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", oneshot=True,
                                 write="eager", wait_timeout=0.5))
    loop = engine.loop
    events: list[dict] = []
    engine.observers.add(events.append)
    client = socket.create_connection(("127.0.0.1", engine.tcp_port))
    try:
        while not engine.connections:
            loop.run_once()
        (fd,) = engine.connections
        switched = engine.switch_backend(*dst)  # the control fd is ready first...
        client.sendall(b"x")  # ...then the connection, in the same wait
        start = len(events)
        loop.run_once()
        switched.result(1)
        batch = events[start:]
        ready = [e["fd"] for e in batch if e["kind"] == "ready"]
        assert ready == [engine.control_fd, fd], f"precondition: one batch, control first: {ready}"
        assert client.recv(1) == b"x"
        after = batch[next(i for i, e in enumerate(batch) if e["kind"] == "backend"):]
        rearmed = [e for e in after if e["kind"] == "interest" and e.get("cause") == "rearm"]
        assert rearmed == [], rearmed
    finally:
        client.close()
        engine.stop()
