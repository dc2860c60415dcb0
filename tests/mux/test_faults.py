"""Network faults and odd input on the engine (issue: hardening)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from mux import Engine, EngineConfig, EngineStopped, FdLimitError, LoadGenerator

from .conftest import MODE_IDS, MODES, connect, recv_exactly, recv_until_eof, wait_until
from .traffic import check, start_clients


def _rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_rst_while_server_has_queued_data(make_engine, backend):
    """The server's send then fails with EPIPE/ECONNRESET: only that connection closes."""
    engine, rec = make_engine(backend=backend, so_sndbuf=4096)
    with connect(engine.tcp_port) as healthy:
        doomed = socket.socket()
        doomed.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        doomed.connect(("127.0.0.1", engine.tcp_port))
        doomed.sendall(os.urandom(512 * 1024))  # the echo piles up: the client never reads
        fd = wait_until(lambda: next((e["fd"] for e in rec.of("queue")
                                      if e["pending_bytes"] > 64 * 1024), None))
        _rst(doomed)
        close = rec.wait_for("close", fd=fd)
        assert close["reason"] in ("reset", "error")
        # which call found it, and what it raised (the read may find the reset first)
        assert close["call"] in ("recv", "send")
        if close["reason"] == "reset":
            assert close["errno"] in ("EPIPE", "ECONNRESET"), close
        healthy.sendall(b"fine")
        assert recv_exactly(healthy, 4) == b"fine"


@pytest.mark.parametrize("backend,trigger", [("select", "level"), ("poll", "level"),
                                             ("epoll", "edge")])
def test_reset_read_on_the_unwatched_queued_path(make_engine, backend, trigger):
    """recv raising ECONNRESET while nothing is shown (a budget that shows nothing: `close`
    still comes, its reason says reset) closes that connection only. select reports the RST
    as plain readable: the batch dispatch's queued read meets it (`inline`). poll and epoll
    report it with a hang-up, which the batch hands to on_ready: its recv meets it."""
    engine, rec = make_engine(backend=backend, trigger=trigger, write="queued",
                              observe_budget=1)
    with connect(engine.tcp_port) as healthy:
        doomed = connect(engine.tcp_port)
        doomed.sendall(b"x")
        assert recv_exactly(doomed, 1) == b"x"
        engine.pause().result(5)  # the RST waits in the kernel until the loop runs again
        _rst(doomed)
        engine.resume().result(5)
        close = rec.wait_for("close")
        assert close["reason"] == "reset"
        assert (close["call"], close["errno"], close.get("inline")) == (
            "recv", "ECONNRESET", True if backend == "select" else None)
        assert not rec.of("recv") and not rec.of("queue")  # nothing was shown: unwatched
        healthy.sendall(b"fine")
        assert recv_exactly(healthy, 4) == b"fine"
        assert engine.counters()["connections"] == 1


@pytest.mark.parametrize("backend,trigger,oneshot", MODES, ids=MODE_IDS)
def test_half_close_on_the_unwatched_queued_path(make_engine, backend, trigger, oneshot):
    """`nc -N` against the queued strategy's inline read and write (a budget that shows
    nothing): every byte comes back, then the close, with reason eof."""
    engine, rec = make_engine(backend=backend, trigger=trigger, oneshot=oneshot,
                              write="queued", observe_budget=1)
    payload = os.urandom(2 * 1024 * 1024 + 5)
    with connect(engine.tcp_port, timeout=20) as sock:
        sender = threading.Thread(target=lambda: (sock.sendall(payload),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        echoed = recv_until_eof(sock)
        sender.join(10)
    assert echoed == payload
    assert rec.wait_for("close")["reason"] == "eof"
    assert not rec.of("recv") and not rec.of("send")  # the inline paths ran, unwatched


def test_half_close_with_a_large_queue(make_engine):
    engine, rec = make_engine(backend="epoll")
    payload = os.urandom(8 * 1024 * 1024)
    with connect(engine.tcp_port, timeout=30) as sock:
        def send_then_shut() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send_then_shut)
        sender.start()
        rec.wait_for("backpressure", paused=True, timeout=10)  # a queue at the watermark
        echoed = recv_until_eof(sock)
        sender.join(10)
    assert echoed == payload
    assert rec.wait_for("close")["reason"] == "eof"


def test_client_vanishing_during_live_switches(make_engine):
    engine, rec = make_engine(backend="epoll")
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            s = socket.create_connection(("127.0.0.1", engine.tcp_port))
            s.sendall(b"x" * 1000)
            _rst(s) if time.monotonic_ns() % 2 else s.close()

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    results = start_clients(engine.tcp_port, 4, 300_000)
    modes = [(b, t, o) for b, t, o in MODES]
    switched = 0
    for i in range(30):
        try:
            engine.switch_backend(*modes[i % len(modes)]).result(10)
            switched += 1
        except FdLimitError:
            pass  # churned connections can hold fds above 1023: select refuses, correctly
    stop.set()
    churner.join(10)
    check(results, 300_000)
    assert switched >= 20
    assert engine.state().result(5)["loop"] == "running"


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_burst_of_connect_and_close(make_engine, mode):
    backend, trigger, oneshot = mode
    engine, _ = make_engine(backend=backend, trigger=trigger, oneshot=oneshot, observe=False)
    for _ in range(1000):
        socket.create_connection(("127.0.0.1", engine.tcp_port)).close()
    wait_until(lambda: engine.stats.accepted == 1000 and engine.stats.connections == 0,
               timeout=10, what="1000 accepted and closed")
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"alive")
        assert recv_exactly(sock, 5) == b"alive"


def test_trickling_client_beside_normal_clients(make_engine):
    engine, _ = make_engine(backend="epoll")
    results = start_clients(engine.tcp_port, 8, 500_000)
    with connect(engine.tcp_port) as slow:
        for i in range(10):
            slow.sendall(bytes([65 + i]))
            assert recv_exactly(slow, 1) == bytes([65 + i])
            time.sleep(0.1)  # the client's pace is the point of the test
    check(results, 500_000)


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_every_byte_value_echoed_and_previewed_safely(make_engine, backend):
    engine, rec = make_engine(backend=backend)
    nasty = [bytes(range(256)), b"\xff\xf4\xff\xfd\x06", b"\xc3\x28\xa0\xa1\xe2\x28\xa1",
             b"\x00" * 100, "é日本".encode("utf-16")]
    with connect(engine.tcp_port) as sock:
        for data in nasty:
            sock.sendall(data)
            assert recv_exactly(sock, len(data)) == data
    previews = [e["preview"] for e in rec.of("recv")]
    assert previews and all(p.isprintable() for p in previews)
    assert all(len(p) <= 64 * 4 for p in previews)


def test_64_mib_burst_from_one_client(make_engine):
    engine, _ = make_engine(backend="epoll", write="eager", observe=False)
    results = start_clients(engine.tcp_port, 1, 64 * 1024 * 1024)
    check(results, 64 * 1024 * 1024, timeout=60)


def test_no_fd_closed_while_registered(make_engine):
    """For every close event, the fd was unregistered first (all paths, all backends)."""
    engine, rec = make_engine(backend="select", max_connections=3)
    for backend in ("select", "poll", "epoll"):
        engine.switch_backend(backend).result(5)
        eof = connect(engine.tcp_port)
        reset = connect(engine.tcp_port)
        user = connect(engine.tcp_port)
        wait_until(lambda: engine.stats.connections == 3)
        refused = connect(engine.tcp_port)  # over max_connections: closed at once
        assert refused.recv(1) == b""
        eof.close()
        _rst(reset)
        fd = max(engine.connections)
        engine.close_connection(fd).result(5)
        wait_until(lambda: engine.stats.connections == 0, what="all closed")
        for s in (user, refused):
            s.close()
    last = connect(engine.tcp_port)
    wait_until(lambda: engine.stats.connections == 1)
    engine.stop()
    engine.join(5)
    last.close()
    registered: set[int] = set()
    reasons = set()
    for e in rec.events:
        if e["kind"] == "interest" and e["op"] == "register":
            registered.add(e["fd"])
        elif e["kind"] == "interest" and e["op"] == "unregister":
            registered.discard(e["fd"])
        elif e["kind"] == "backend":
            pass
        elif e["kind"] == "close":
            assert e["fd"] not in registered, f"fd {e['fd']} closed while registered"
            reasons.add(e["reason"])
    assert {"eof", "reset", "user", "shutdown", "error"} <= reasons


def test_reused_fd_number_gets_fresh_state(make_engine):
    engine, rec = make_engine()
    with connect(engine.tcp_port) as first:
        first.sendall(b"abc")
        recv_exactly(first, 3)
        fd = rec.wait_for("accept")["fd"]
    rec.wait_for("close", fd=fd)
    with connect(engine.tcp_port) as second:
        wait_until(lambda: len(rec.of("accept")) == 2)
        assert rec.of("accept")[1]["fd"] == fd  # the kernel hands out the lowest free fd
        wait_until(lambda: fd in engine.connections)
        conn = next(c for c in engine.state().result(5)["connections"] if c["fd"] == fd)
        assert (conn["bytes_in"], conn["bytes_out"], conn["queue_depth"]) == (0, 0, 0)
        assert conn["peer"].endswith(str(second.getsockname()[1]))
        second.sendall(b"z")
        assert recv_exactly(second, 1) == b"z"


@pytest.mark.parametrize("target", [("epoll", "edge", False), ("epoll", "edge", True)])
@pytest.mark.parametrize("source", ["select", "poll", "epoll"])
def test_pending_data_not_stranded_by_switch_to_edge(make_engine, source, target):
    engine, rec = make_engine(backend=source)
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        engine.pause().result(5)
        sock.sendall(b"waiting in the kernel")
        engine.switch_backend(*target).result(5)
        engine.resume().result(5)
        assert recv_exactly(sock, 21) == b"waiting in the kernel"


# -- a bug in one handler, a stopped engine, a port that cannot be bound -------------------------


@contextlib.contextmanager
def _bad_and_good(engine, rec) -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """Two echoing clients, and the server-side fd of the first (whose handler will break)."""
    with connect(engine.tcp_port) as bad, connect(engine.tcp_port) as good:
        for sock in (bad, good):
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
        host, port = bad.getsockname()[:2]
        yield bad, good, rec.wait_for("accept", peer=f"{host}:{port}")["fd"]


def _boom(mask: int) -> None:
    raise RuntimeError("a bug in the handler")


def _assert_only_it_was_closed(engine, rec, bad_fd: int, good: socket.socket) -> None:
    error = rec.wait_for("error", fd=bad_fd)
    assert "RuntimeError: a bug in the handler" in error["message"]
    assert error["cause"] == "crash"  # the code view's path: the engine closed it, not recv
    assert rec.wait_for("close", fd=bad_fd)["reason"] == "error"
    good.sendall(b"still served")
    assert recv_exactly(good, 12) == b"still served"
    assert engine.loop_state()["loop"] == "running" and bad_fd not in engine.connections


def test_a_handler_that_raises_closes_its_connection_and_the_loop_goes_on(make_engine):
    """One connection's handler raising must not end the loop (and every other connection)."""
    engine, rec = make_engine(backend="epoll")
    with _bad_and_good(engine, rec) as (bad, good, bad_fd):
        engine.call(lambda: setattr(engine.connections[bad_fd], "on_ready", _boom)).result(5)
        bad.sendall(b"y")
        with pytest.raises(ConnectionResetError):  # closed with the unread "y" in its buffer
            recv_until_eof(bad)
        _assert_only_it_was_closed(engine, rec, bad_fd, good)


def test_a_handler_that_raises_as_reading_resumes_closes_only_its_connection(make_engine):
    """Edge mode resumes reading without a wait (Loop.readable_soon: after backpressure, after
    a flaw): a handler's error there is isolated as in the dispatch, not the loop's end."""
    engine, rec = make_engine(backend="epoll", trigger="edge")
    with _bad_and_good(engine, rec) as (_, good, bad_fd):

        def resume_reading_into_the_bug() -> None:
            conn = engine.connections[bad_fd]
            conn.on_ready = _boom  # type: ignore[method-assign]
            engine.loop.readable_soon(conn)

        engine.call(resume_reading_into_the_bug).result(5)
        _assert_only_it_was_closed(engine, rec, bad_fd, good)


def test_commands_to_a_stopped_engine_fail_at_once(make_engine):
    """A caller awaiting a command's Future must not wait forever once the loop has ended."""
    engine, _ = make_engine()
    engine.stop()
    engine.join(5)
    with pytest.raises(EngineStopped):
        engine.pause().result(2)
    with pytest.raises(EngineStopped):
        engine.capture().result(2)


def test_a_port_that_cannot_be_bound_leaves_no_fd_open():
    """Engine() raising (EADDRINUSE) closes what it had opened: backend, control door."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        before = len(os.listdir("/proc/self/fd"))
        for backend in ("epoll", "poll", "select"):
            with pytest.raises(OSError):
                Engine(EngineConfig(tcp_port=port, udp=False, backend=backend))
        assert len(os.listdir("/proc/self/fd")) == before


def test_byte_totals_read_from_another_thread_never_go_back(make_engine):
    """Connections closing while another thread reads the totals: every read is at least the
    one before (a counter), and at the end they are exact."""
    engine, _ = make_engine(backend="epoll")
    reads: list[tuple[int, int]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            reads.append(engine.byte_tally.totals())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(80):
            with connect(engine.tcp_port) as sock:
                payload = b"x" * (1 + i % 50)
                sock.sendall(payload)
                assert recv_exactly(sock, len(payload)) == payload
        expected = sum(1 + i % 50 for i in range(80))
        wait_until(lambda: not engine.connections, what="every connection closed")
    finally:
        done.set()
        thread.join(5)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(reads, reads[1:], strict=False))
    assert engine.byte_tally.totals() == (expected, expected)


def test_load_clients_send_whole_messages_even_when_the_echo_overtakes_a_send(make_engine):
    """A 1 MiB message goes out in several sends, and its echo can catch up with a partial
    send: the next message must still wait for this one's end (and not cut it short)."""
    engine, _ = make_engine(backend="epoll", so_sndbuf=16384)
    size = 1 << 20
    load = LoadGenerator("127.0.0.1", engine.tcp_port, cap=10)
    try:
        assert load.add(2, size, 20.0).result(5) == 2

        def quiet_after_6_mib() -> tuple[int, int] | None:
            """Totals at a moment when all is echoed (between two messages), past 6 MiB."""
            totals = engine.byte_tally.totals()
            return totals if totals[0] == totals[1] >= 6 * size else None

        bytes_in, _ = wait_until(quiet_after_6_mib, timeout=20, what="6 MiB echoed, at rest")
        assert load.wrong == 0  # each client checked its echo, a partial send's too
    finally:
        load.close()
    assert bytes_in % size == 0, f"a message was cut short: {bytes_in / size:.3f} MiB"


def test_a_load_rate_of_days_between_messages_leaves_the_generator_working(make_engine):
    """rate 1e-300: the next send is ~1e300 s away. The wait is capped (epoll refuses a timeout
    past ~2**31 ms with OverflowError, which ended the generator's thread), so later commands
    still run; and once a generator's thread has ended, its commands say whose thread it was."""
    engine, _ = make_engine(backend="epoll")
    load = LoadGenerator("127.0.0.1", engine.tcp_port, cap=10)
    try:
        assert load.add(1, 16, 1e-300).result(5) == 1
        wait_until(lambda: engine.byte_tally.totals() == (16, 16), what="the first message echoed")
        assert load.add(1, 16, 0.0).result(5) == 2  # the thread still answers
        assert load.remove_all().result(5) == 0
    finally:
        load.close()
    with pytest.raises(EngineStopped, match="the load generator has stopped"):
        load.add(1, 16, 1.0).result(2)


_ADD_PAST_THE_FD_LIMIT = """
import json, socket
from mux import LoadGenerator
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1024)
load = LoadGenerator("127.0.0.1", server.getsockname()[1], cap=1000)
made = load.add(200, 16, 0.0).result(10)
print(json.dumps({"made": made, **load.describe()}))
load.close()
"""


def test_adding_load_past_the_fd_limit_keeps_what_was_made_and_says_so() -> None:
    """EMFILE half-way through an add: the clients made stay and are counted, the refusal is
    in `errors`; it used to raise out of the add with the count left stale. The first
    refusal ends the add, counted once (not one more failed socket() per client still asked
    for, each read as a failed client)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run(["sh", "-c", 'ulimit -n 64 && exec "$0" -c "$1"', sys.executable,
                          _ADD_PAST_THE_FD_LIMIT], capture_output=True, text=True, timeout=30,
                         cwd=root)
    assert run.returncode == 0, run.stderr[-500:]
    result = json.loads(run.stdout)
    assert 0 < result["made"] < 200, result
    assert result["connections"] == result["made"] and result["errors"] == 1, result


def test_stopping_ends_each_connection_with_a_fin_not_a_reset(make_engine):
    """Shutdown used to close a connection with input still unread in its kernel buffer (here:
    bytes sent while the loop is paused), which makes the kernel send an RST: the client saw
    ECONNRESET, and lost whatever the kernel still had to send it. Now: what the queue holds
    goes out as far as the kernel takes it, then a FIN."""
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        engine.pause().result(5)
        sock.sendall(b"sent while paused: never read, never echoed")
        engine.stop()
        engine.join(5)
        assert recv_until_eof(sock) == b""  # an orderly end: no ConnectionResetError
    assert rec.wait_for("close")["reason"] == "shutdown"


def test_a_connection_whose_handler_and_close_both_raise_is_dropped_and_said(make_engine):
    """The last resort of Engine._handler_failed: the fd leaves the tables with an
    `interest unregister` that says why (it was put down to the bug zoo's stale-fd cleanup)."""
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)

        def broken(*_: object) -> None:
            raise RuntimeError("broken on purpose")

        def break_it() -> None:
            conn = engine.connections[fd]
            conn.on_ready = broken
            conn.close = broken

        engine.call(break_it).result(5)
        sock.sendall(b"x")
        gone = rec.wait_for("interest", fd=fd, op="unregister")
        assert gone["cause"] == "crash"
        assert "broken on purpose" in rec.wait_for("error", fd=fd)["message"]
        wait_until(lambda: fd not in engine.connections)
    with connect(engine.tcp_port) as other:  # the loop goes on
        other.sendall(b"still")
        assert recv_exactly(other, 5) == b"still"


def test_removing_the_load_clients_forgets_their_failures():
    """The failures stayed counted after every client was removed: the page's load line read
    "0 generated clients; 1 failed" for the rest of the run."""
    with socket.socket() as closed:  # a port nobody listens on: the connect is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        load = LoadGenerator("127.0.0.1", port, cap=10)
        try:
            load.add(1, 16, 1.0).result(5)
            wait_until(lambda: load.errors == 1, what="the refused connect counted")
            assert load.remove_all().result(5) == 0
            assert load.describe() == {"connections": 0, "cap": 10, "errors": 0, "wrong": 0,
                                         "closed": 0}
        finally:
            load.close()
