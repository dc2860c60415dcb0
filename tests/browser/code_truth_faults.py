"""The rarer paths of the code view's ground-truth test (a handler that raises, a refused
connection, failing accepts and I/O, UDP backpressure, breakpoints, lingering closes, more
flaws), the list of scenarios, and `run_mode`, which runs them on one backend and mode."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import mux.tcp_close
import mux.udp
from mux import Engine
from mux.kernel import socket_queues
from tests.browser.code_truth_harness import (
    TIMEOUT,
    Failing,
    TruthSink,
    client,
    closed,
    last_seq,
    queued,
    read_all,
    rst,
    truth_engine,
    wait_until,
)
from tests.browser.code_truth_scenarios import (
    backpressure,
    controls,
    datagram,
    eof_with_queue,
    flaw_close_without_unregister,
    flaw_eof_ignored,
    flaw_hup_before_in,
    flaw_switched_mid_batch,
    flaw_udp_wrong_address,
    flaw_write_interest_stuck,
    last_words_with_flaw,
    partial_sends,
    reset,
    reset_idle,
    switch,
    typing,
    user_close,
    user_close_lingering,
)
from tests.mux.conftest import recv_exactly


# -- the paths the scenarios above do not reach ----------------------------------------------
def crash(engine: Engine, sink: TruthSink) -> None:
    """A handler that raises (closed by the engine: `error@crash`, `close@crash`), and one
    whose close raises too (dropped from the tables: `interest@crash`). The bug is in their
    reads, which eager's unwatched echo makes in the batch dispatch (mux/hot.py), not in
    `on_ready`: both must isolate it."""
    a, fd_a = client(engine, sink)
    b, fd_b = client(engine, sink)

    def broken(*_: object) -> None:
        raise RuntimeError("broken on purpose")

    def break_them() -> None:
        conn_a, conn_b = engine.connections[fd_a], engine.connections[fd_b]
        for conn in (conn_a, conn_b):
            bug = RuntimeError("broken on purpose")
            conn.sock = Failing(conn.sock, recv=bug, recv_into=bug)  # type: ignore[assignment]
        setattr(conn_b, "close", broken)  # noqa: B010 - (an instance's own, on purpose)
    engine.call(break_them).result(TIMEOUT)
    start = last_seq(sink)
    a.sendall(b"x")
    closed(sink, fd_a, start)
    b.sendall(b"y")
    sink.wait_for(lambda e: e["kind"] == "interest" and e.get("fd") == fd_b
                  and e.get("cause") == "crash" and e["seq"] > start, "the crashed fd dropped")
    a.close()
    b.close()


def refused(engine: Engine, sink: TruthSink) -> None:
    """The connection limit reached: accepted, then closed at once (`error@refused`)."""
    engine.call(lambda: setattr(engine, "max_connections", len(engine.connections))).result(
        TIMEOUT)
    try:
        start = last_seq(sink)
        with socket.create_connection(("127.0.0.1", engine.tcp_port), TIMEOUT) as sock:
            err = sink.wait_for(lambda e: e["kind"] == "error" and e.get("cause") == "refused"
                                and e["seq"] > start, "the refusal")
            closed(sink, err["fd"], start)
            assert read_all(sock) == b""
    finally:
        engine.call(setattr, engine, "max_connections", 10_000).result(TIMEOUT)


def accept_fails(engine: Engine, sink: TruthSink) -> None:
    """One accept's own failure (ECONNABORTED: `error@accept`), then the listener out of fds
    (EMFILE: `error`, accepts paused and retried on a timer) and back (`error@recovered`)."""
    listener = engine.listener
    real = listener.sock
    flaky = Failing(real, accept=[ConnectionAbortedError(errno.ECONNABORTED, "aborted")])

    engine.call(setattr, listener, "sock", flaky).result(TIMEOUT)
    try:
        start = last_seq(sink)
        # the first accept fails alone; this client is accepted by the next one of the batch
        sock, fd = client(engine, sink)
        sink.wait_for(lambda e: e["kind"] == "error" and e.get("cause") == "accept"
                      and e["seq"] > start, "the failed accept")
        # on the loop thread: a later iteration than the batch's own accept pass (call_soon)
        engine.call(setattr, flaky, "fail",
                    {"accept": OSError(errno.EMFILE, "Too many open files")}).result(TIMEOUT)
        start = last_seq(sink)
        waiting = socket.create_connection(("127.0.0.1", engine.tcp_port), TIMEOUT)
        sink.wait_for(lambda e: e["kind"] == "error" and "EMFILE" in e.get("message", "")
                      and e["seq"] > start, "out of fds")
        # a retry (the listener watched again, and failing again) before fds come back
        sink.wait_for(lambda e: e["kind"] == "interest" and e.get("fd") == listener.fd
                      and e.get("flags") and e["seq"] > start, "a retry")
        engine.call(setattr, flaky, "fail", {}).result(TIMEOUT)
        sink.wait_for(lambda e: e["kind"] == "error" and e.get("cause") == "recovered"
                      and e["seq"] > start, "accepting again")
        waiting.sendall(b"late")
        assert recv_exactly(waiting, 4) == b"late"
        start = last_seq(sink)
        waiting.close()
        sock.close()
        closed(sink, fd, start)
    finally:
        engine.call(setattr, listener, "sock", real).result(TIMEOUT)


def io_fails(engine: Engine, sink: TruthSink) -> None:
    """A send that fails with a reset, or another error (eager: inside recv's handler,
    `close@eager-reset` / `close@eager-error`; queued: the write half, `close@reset-send` /
    `close@error-send`), and a recv that fails (`close@error-recv`)."""
    for method, exc in (("send", ConnectionResetError(errno.ECONNRESET, "reset")),
                        ("send", OSError(errno.EIO, "I/O error")),
                        ("recv_into", OSError(errno.EIO, "I/O error"))):
        sock, fd = client(engine, sink)

        def install(fd: int = fd, method: str = method, exc: OSError = exc) -> None:
            conn = engine.connections[fd]
            fail = {method: exc, "recv": exc} if method == "recv_into" else {method: exc}
            conn.sock = Failing(conn.sock, **fail)  # type: ignore[assignment]
        engine.call(install).result(TIMEOUT)
        start = last_seq(sink)
        sock.sendall(b"doomed")
        closed(sink, fd, start)
        sock.close()


def udp_backpressure(engine: Engine, sink: TruthSink) -> None:
    """Replies the kernel refuses queue up; a full queue pauses reading (`backpressure@udp`);
    they go out once it takes them (`datagram@flush`), and reading resumes."""
    udp = engine.udp
    assert udp is not None
    b = engine.loop.backend
    if b.edge and not b.oneshot:  # the refusal played here raises no writable edge after it
        return
    real = udp.sock
    # (loopback never refuses a datagram: tests/mux/test_udp_backpressure.py plays it too)
    refusing = Failing(real, sendto=BlockingIOError(errno.EAGAIN, "EAGAIN"))
    bound, mux.udp.MAX_PENDING_REPLIES = mux.udp.MAX_PENDING_REPLIES, 4
    engine.call(setattr, udp, "sock", refusing).result(TIMEOUT)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(TIMEOUT)
            start = last_seq(sink)
            for i in range(6):
                c.sendto(b"%d" % i, ("127.0.0.1", engine.udp_port))
            sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("udp")
                          and e.get("paused") and e["seq"] > start, "the reply queue full")
            engine.call(setattr, refusing, "fail", {}).result(TIMEOUT)
            assert sorted(c.recvfrom(100)[0] for _ in range(6)) == [b"%d" % i for i in range(6)]
            sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("udp")
                          and e.get("paused") is False and e["seq"] > start, "reading resumed")
    finally:
        engine.call(setattr, udp, "sock", real).result(TIMEOUT)
        mux.udp.MAX_PENDING_REPLIES = bound


def breakpoint_hit(engine: Engine, sink: TruthSink) -> None:
    """A readiness breakpoint pauses the loop (`loop@breakpoint`; throttled, the wait that
    matched is shown late: `wait@late`, `ready@late`)."""
    sock, fd = client(engine, sink)
    bp = engine.add_breakpoint("readable", fd).result(TIMEOUT)
    start = last_seq(sink)
    sock.sendall(b"bp")
    sink.wait_for(lambda e: e["kind"] == "loop" and e.get("cause") == "breakpoint"
                  and e["seq"] > start, "the breakpoint's pause")
    engine.remove_breakpoint(bp["id"]).result(TIMEOUT)
    engine.resume().result(TIMEOUT)
    assert recv_exactly(sock, 2) == b"bp"
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def streaming_client(engine: Engine, sink: TruthSink) -> tuple[socket.socket, int,
                                                                threading.Event,
                                                                threading.Thread]:
    """A peer that writes and never reads, until told to stop (or its socket fails), its
    reading paused by backpressure: a user's close of it lingers."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    stop = threading.Event()
    chunk = os.urandom(65536)

    def write() -> None:
        try:
            while not stop.is_set():
                sock.send(chunk)
        except OSError:
            pass
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("fd") == fd
                  and e.get("paused") is True and e["seq"] > start, "backpressure on")
    # enough unread for a close to linger (same process: the server's fd is ours to ask);
    # the kernel holds ~64,000 bytes there, a little under LINGER_FROM: lingers() lowers it
    wait_until(lambda: socket_queues(fd)["recv_queue"] > LINGER_AT,
               "the server's receive buffer filled")
    return sock, fd, stop, writer


LINGER_AT = 32 << 10


@contextmanager
def lingers(**at: float) -> Iterator[None]:
    """A user's close lingers from LINGER_AT bytes unread (`LINGER_S`: its deadline)."""
    saved = {name: getattr(mux.tcp_close, name) for name in ("LINGER_FROM", *at)}
    mux.tcp_close.LINGER_FROM = LINGER_AT
    for name, value in at.items():
        setattr(mux.tcp_close, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(mux.tcp_close, name, value)


def linger_reset(engine: Engine, sink: TruthSink) -> None:
    """A lingering close ended by the peer's reset (`close@linger-reset`)."""
    sock, fd, stop, writer = streaming_client(engine, sink)
    start = last_seq(sink)
    with lingers():
        assert engine.close_connection(fd).result(TIMEOUT)
    assert engine.lingering(fd).result(TIMEOUT)
    stop.set()
    writer.join(TIMEOUT)
    rst(sock)
    closed(sink, fd, start)


def linger_deadline(engine: Engine, sink: TruthSink) -> None:
    """A lingering close ended by its deadline (`close@linger-deadline`), shortened here."""
    sock, fd, stop, writer = streaming_client(engine, sink)
    start = last_seq(sink)
    with lingers(LINGER_S=0.2):
        assert engine.close_connection(fd).result(TIMEOUT)
    closed(sink, fd, start)
    stop.set()
    writer.join(TIMEOUT)
    sock.close()


def flaw_poll_equality(engine: Engine, sink: TruthSink) -> None:
    last_words_with_flaw(engine, sink, "poll_equality", first=b"eq")


def flaw_et_no_drain(engine: Engine, sink: TruthSink) -> None:
    """16 bytes a read: stalls with edge-triggered epoll, eager, no one-shot (until the flaw is
    off); elsewhere each readiness reads on."""
    engine.set_flaw("et_no_drain", True).result(TIMEOUT)
    sock, fd = client(engine, sink)
    start = last_seq(sink)
    data = b"0123456789" * 5
    sock.sendall(data)
    sink.wait_for(lambda e: e["kind"] == "recv" and e.get("fd") == fd and e["seq"] > start,
                  "a short read")
    engine.set_flaw("et_no_drain", False).result(TIMEOUT)
    assert recv_exactly(sock, len(data)) == data
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def queued_at_stop(engine: Engine, sink: TruthSink) -> socket.socket:
    """Left with a queue when the engine stops (its stop flushes it: `closing: shutdown`)."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    sock.sendall(os.urandom(60_000))
    queued(engine, sink, fd, start)
    return sock


SCENARIOS: list[Callable[[Engine, TruthSink], Any]] = [
    typing, partial_sends, backpressure, eof_with_queue, reset, reset_idle, user_close,
    user_close_lingering, switch,
    controls, datagram, flaw_eof_ignored, flaw_write_interest_stuck, flaw_hup_before_in,
    flaw_udp_wrong_address, flaw_close_without_unregister, flaw_switched_mid_batch,
    crash, refused, accept_fails, io_fails, udp_backpressure, breakpoint_hit, linger_reset,
    linger_deadline, flaw_poll_equality, flaw_et_no_drain]

#: the throttled run's (every iteration unwatched: only the events always shown come, alone)
THROTTLED: list[Callable[[Engine, TruthSink], Any]] = [
    typing, backpressure, eof_with_queue, reset, user_close, user_close_lingering, crash,
    refused, io_fails, udp_backpressure, breakpoint_hit, linger_reset]

MODES = [("select", "level", False), ("poll", "level", False), ("epoll", "level", False),
         ("epoll", "edge", False), ("epoll", "level", True), ("epoll", "edge", True)]


def run_mode(backend: str, trigger: str, oneshot: bool, write: str,
             scenarios: list[Callable[[Engine, TruthSink], Any]] = SCENARIOS,
             throttled: bool = False) -> TruthSink:
    keep: list[socket.socket] = []
    # throttled: a budget of 1 event a second is 0 a 0.1 s window: no iteration is watched
    with truth_engine(backend=backend, trigger=trigger, oneshot=oneshot, write=write,
                      so_sndbuf=4096, high_water=64 << 10, low_water=16 << 10,
                      wait_timeout=0.05, observe_budget=1 if throttled else None) as (
                          engine, sink):
        sink.throttled = throttled
        for scenario in scenarios:
            if scenario.__name__ == "flaw_hup_before_in" and backend == "select":
                continue  # inert there (no hang-up bit)
            sink.label = scenario.__name__
            scenario(engine, sink)
        sink.label = "queued_at_stop"
        keep.append(queued_at_stop(engine, sink))
    for sock in keep:
        sock.close()
    return sink
