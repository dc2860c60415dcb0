"""With nobody listening, the batch dispatch (mux/hot.py) waits again itself instead of going
back through `Loop.run_once` (three Python frames and their checks an iteration): the engine's
own iteration was the largest cost it had over a bare loop at one connection.

Anything that needs the loop for more than the echo comes through a handler the batch calls
(a command through the control fd, the listener, a timer set), and the batch then returns: so
commands are answered, a step is still one wait, and an observer that comes while the batch
waits sees the very next message.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mux import Engine
from mux.observe import BUDGET_WINDOW

from .conftest import Recorder, connect, recv_exactly, running_engine, wait_until

WAYS = [("select", "level", "eager"), ("poll", "level", "queued"), ("epoll", "level", "eager"),
        ("epoll", "level", "queued"), ("epoll", "edge", "eager"), ("epoll", "edge", "queued")]


def count_run_once(engine: Engine) -> list[int]:
    """How often `Loop.run_once` runs from now on (one item a call)."""
    calls: list[int] = []
    inner = engine.loop.run_once

    def counted() -> None:
        calls.append(1)
        inner()

    engine.loop.run_once = counted  # type: ignore[method-assign]
    return calls


def echo(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data


@contextmanager
def pinging(port: int) -> Iterator[threading.Event]:
    """A client that echoes 100-byte messages until told to stop; each one checked."""
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with connect(port) as sock:
                while not stop.is_set():
                    echo(sock, bytes(range(100)))
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
    assert not failed, failed


@pytest.mark.parametrize(("backend", "trigger", "write"), WAYS,
                         ids=[f"{b}-{t}-{w}" for b, t, w in WAYS])
def test_unobserved_echo_waits_again_in_the_batch(backend: str, trigger: str,
                                                  write: str) -> None:
    with running_engine(observe=False, backend=backend, trigger=trigger, write=write) as (
            engine, _):
        calls = count_run_once(engine)
        with connect(engine.tcp_port) as sock:
            echo(sock, b"first")
            waits, runs = engine.stats.waits, len(calls)
            for i in range(300):
                echo(sock, b"message %d " % i * (1 + i % 50))
            waits, runs = engine.stats.waits - waits, len(calls) - runs
        # most messages a wait: edge-triggered reads on to EAGAIN, and on a busy machine the
        # next message may be there by then (195 of 300 seen beside two busy processes)
        assert waits >= 100, waits
        assert runs <= 3, f"{runs} run_once calls for {waits} waits"  # (ours: none)
        # (the count of a send goes up just after it: read from this thread, it may lag)
        wait_until(lambda: engine.counters()["bytes_out"] == engine.counters()["bytes_in"],
                   what="every byte counted out as in")


def test_an_observer_over_its_budget_lets_the_batch_wait_again_and_counts_every_event() -> None:
    """The app always listens (its trace tap), but beyond the observation budget an iteration
    is unwatched: the batch waits again itself there too, until the budget's window ends (then
    run_once opens the next), and each message still takes exactly its four seq numbers (wait,
    ready, recv, send), none of them shown."""
    with running_engine(backend="epoll", write="eager", observe_budget=1) as (engine, rec):
        calls = count_run_once(engine)
        with connect(engine.tcp_port) as sock:
            echo(sock, b"first")
            engine.set_delay(0).result(5)  # the loop is back in its wait: seq holds still
            seq, waits, runs = engine.observers.seq, engine.stats.waits, len(calls)
            started = time.monotonic()
            for i in range(300):
                echo(sock, b"message %d " % i)
            elapsed = time.monotonic() - started
            wait_until(lambda: engine.observers.seq >= seq + 4 * 300, what="the last count")
            assert engine.observers.seq - seq == 4 * 300
            assert engine.stats.waits - waits == 300
            runs = len(calls) - runs
        windows = elapsed / BUDGET_WINDOW
        assert runs <= windows + 3, f"{runs} run_once calls in {windows:.1f} budget windows"
        assert not rec.of("recv") and not rec.of("wait")


def test_an_observer_that_comes_during_the_batchs_wait_sees_the_next_message() -> None:
    """`Observers.add` runs on another thread, while the batch blocks in its wait: the ready
    list that wait returns is shown as run_once would show it, seq numbers from 1 on."""
    with running_engine(observe=False, backend="epoll", write="eager") as (engine, _):
        calls = count_run_once(engine)
        with connect(engine.tcp_port) as sock:
            for _ in range(20):
                echo(sock, b"unwatched\n")
            runs = len(calls)
            recorder = Recorder()
            engine.observers.add(recorder)
            echo(sock, b"watched\n")
            recv = recorder.wait_for("recv", bytes=8)  # (a batch that went on unwatched: none)
            send = recorder.wait_for("send", fd=recv["fd"])
            assert recv["preview"] == "watched\\n" and send["bytes"] == 8
            kinds = [e["kind"] for e in recorder.events if e["seq"] <= send["seq"]]
            assert kinds[:4] == ["wait", "ready", "recv", "send"], kinds
            assert [e["seq"] for e in recorder.events] == list(
                range(1, len(recorder.events) + 1))
            echo(sock, b"again\n")  # the loop goes on, watched: back in run_once
            recorder.wait_for("recv", bytes=6)
        assert len(calls) > runs


def test_a_breakpoint_set_while_the_batch_waits_sees_only_later_readiness() -> None:
    """The iteration's hooks (breakpoints) are given the ready list handled last: they were
    given run_once's own, from waits before, and a "readable" breakpoint set on an idle
    connection paused the loop at once, on a readiness from before it was set (a review)."""
    with running_engine(observe=False, backend="epoll", write="eager") as (engine, _):
        with connect(engine.tcp_port) as sock:
            echo(sock, b"before\n")  # fd readable in run_once's wait, then idle
            fd = next(iter(engine.connections))
            bp = engine.add_breakpoint("readable", fd=fd).result(5)
            engine.set_delay(0).result(5)  # a command's round trip: the loop saw the hook
            assert not engine.paused, engine.paused_at
            sock.sendall(b"after\n")
            wait_until(lambda: engine.paused, what="the breakpoint's pause")
            assert engine.paused_at is not None
            assert (engine.paused_at["breakpoint"], engine.paused_at["fd"]) == (bp["id"], fd)
            engine.remove_breakpoint(bp["id"]).result(5)
            engine.resume().result(5)
            assert recv_exactly(sock, 6) == b"after\n"


def test_commands_reach_a_loop_that_waits_in_the_batch() -> None:
    """Pause, step (one wait), slow motion, a breakpoint, a flaw, backend switches and resume,
    while a client pings all the time and nobody listens: each is answered and takes effect,
    and no message is lost."""
    with running_engine(observe=False, backend="epoll", write="eager") as (engine, _):
        with pinging(engine.tcp_port):
            wait_until(lambda: engine.counters()["bytes_out"] >= 10_000, what="pings")
            engine.pause().result(5)
            waits = engine.stats.waits
            engine.step().result(5)
            wait_until(lambda: engine.stats.waits > waits, what="the step's wait")
            engine.set_delay(0).result(5)  # a command's round trip through the paused loop
            assert engine.paused and engine.stats.waits == waits + 1  # the pings wait
            engine.resume().result(5)
            delays: list[int] = []
            slow_motion = engine._slow_motion
            engine._slow_motion = lambda: (delays.append(1), slow_motion())  # type: ignore
            engine.set_delay(1).result(5)
            moved = engine.counters()["bytes_out"]
            wait_until(lambda: engine.counters()["bytes_out"] >= moved + 2_000, what="slow pings")
            assert len(delays) >= 10, "slow motion between every two iterations"
            engine.set_delay(0).result(5)
            bp = engine.add_breakpoint("readable").result(5)  # the next ping's readiness
            wait_until(lambda: engine.paused, what="the breakpoint's pause")
            assert engine.paused_at is not None and engine.paused_at["breakpoint"] == bp["id"]
            engine.remove_breakpoint(bp["id"]).result(5)
            engine.resume().result(5)
            engine.set_flaw("eof_ignored", True).result(5)
            moved = engine.counters()["bytes_out"]
            wait_until(lambda: engine.counters()["bytes_out"] >= moved + 10_000,
                       what="pings beside a flaw")
            engine.set_flaw("eof_ignored", False).result(5)
            engine.switch_backend("poll").result(5)
            moved = engine.counters()["bytes_out"]
            wait_until(lambda: engine.counters()["bytes_out"] >= moved + 10_000,
                       what="pings on poll")
            engine.switch_backend("epoll", "edge").result(5)
            moved = engine.counters()["bytes_out"]
            wait_until(lambda: engine.counters()["bytes_out"] >= moved + 10_000,
                       what="pings on epoll edge")
        wait_until(lambda: engine.counters()["bytes_out"] == engine.counters()["bytes_in"],
                   what="every byte counted out as in")
