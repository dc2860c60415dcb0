"""The door into a loop thread (mux/control.py) and the reads made through it
(mux/commands.py): no command is left waiting forever, a cancelled one is not run, and a read
made during a step's wait is answered even when that wait has no timeout."""

from __future__ import annotations

from typing import Any

import pytest

from mux import EngineStopped
from mux.backends import READABLE
from mux.control import ControlDoor

from .conftest import connect, recv_exactly, wait_until


def test_commands_still_queued_when_the_door_closes_fail_instead_of_waiting_forever() -> None:
    door = ControlDoor("the test's thread")
    queued = door.submit(lambda: "never run")
    door.close()
    with pytest.raises(EngineStopped, match="the test's thread has stopped"):
        queued.result(2)
    with pytest.raises(EngineStopped):
        door.submit(lambda: "too late").result(2)


def test_a_command_cancelled_before_it_runs_is_skipped_and_the_rest_still_run() -> None:
    """A caller gave up on its Future (cancelled it) before the loop came to it: the command
    is not run (no side effect), and the commands after it are answered as usual."""
    door = ControlDoor()
    ran: list[str] = []
    try:
        cancelled = door.submit(ran.append, "cancelled")
        kept = door.submit(lambda: ran.append("kept") or len(ran))
        assert cancelled.cancel()
        door.on_ready(READABLE)  # what the loop thread does when the control fd is readable
        assert kept.result(2) == 1
        assert ran == ["kept"]
    finally:
        door.close()


def test_a_read_during_a_steps_wait_without_a_timeout_is_answered(make_engine: Any) -> None:
    """A read made while paused skips the wake-up byte only when the step's wait ends by itself
    (its timeout); with no timeout that wait ends only when an fd is ready, so the read must
    wake it (with nothing else going on, it waited forever)."""
    engine, rec = make_engine(backend="epoll", wait_timeout=None)
    engine.pause().result(5)
    start = len(rec.events)
    engine.step().result(5)
    wait_until(lambda: any(e["kind"] == "loop" and e["state"] == "step"
                           for e in rec.events[start:]), what="the step")
    assert engine.state().result(3)["loop"] == "paused"


def test_removing_another_breakpoint_leaves_the_one_holding_the_loop_named(
        make_engine: Any) -> None:
    """Only the breakpoint that holds the loop is marked deleted when it goes; removing any
    other one says nothing of the one still holding it."""
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        holding = engine.add_breakpoint("readable", fd=fd).result(5)
        other = engine.add_breakpoint("hup", fd=fd).result(5)
        sock.sendall(b"hold")
        hit = rec.wait_for("loop", state="paused", breakpoint=holding["id"])
        assert engine.remove_breakpoint(other["id"]).result(5) is True
        assert engine.state().result(5)["paused_at"] == {
            "breakpoint": holding["id"], "wait": hit["wait"], "fd": fd, "steps": 0}
        engine.resume().result(5)
        assert recv_exactly(sock, 4) == b"hold"


def test_an_open_connection_is_not_lingering(make_engine: Any) -> None:
    engine, rec = make_engine()
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        wait_until(lambda: fd in engine.connections)
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        assert engine.lingering(fd).result(5) is False
    assert engine.lingering(fd + 1000).result(5) is False  # no such connection
