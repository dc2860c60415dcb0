"""One flaw at a time: switching off a flaw that is not on changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import wait_until


def test_turning_off_a_flaw_that_is_not_on_leaves_the_one_that_is(make_engine: Any) -> None:
    """A page showing an old flaw list may send "off" for another flaw: that must neither turn
    the active flaw off (the state would say none is on while its handler still runs) nor
    free the slot for a second flaw."""
    engine, rec = make_engine()
    engine.set_flaw("eof_ignored", True).result(5)
    wait_until(lambda: rec.of("loop", cause="flaw"), what="the flaw's loop event")
    events = len(rec.events)
    listed = engine.set_flaw("poll_equality", False).result(5)
    assert [f["name"] for f in listed if f["on"]] == ["eof_ignored"]
    assert engine.state().result(5)["flaw"] == "eof_ignored"
    assert [e for e in rec.events[events:] if e["kind"] == "loop"] == []  # no change said
    with pytest.raises(RuntimeError, match="one flaw at a time"):
        engine.set_flaw("poll_equality", True).result(5)
    engine.set_flaw("eof_ignored", False).result(5)


# (poll's array and epoll's ready list put the control fd first here; select returns fds in
# the order of its set, where a connection's number can come before the control fd's)
@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_a_flaw_switched_on_mid_batch_runs_for_the_rest_of_that_batch(
        make_engine: Any, backend: str) -> None:
    """Nobody watching (the loop's fast dispatch): a command the control fd's handler runs
    switches eof_ignored on, and a client's EOF comes in the same wait, after the control fd.
    The rest of that batch went on with the handler read before it (the correct code closed
    the connection) while the flaw said it was on; now the flaw's handler takes the EOF."""
    import socket

    from .conftest import connect

    engine, _ = make_engine(backend=backend, observe=False)
    sock = connect(engine.tcp_port)
    wait_until(lambda: engine.connections, what="the connection")
    fd = next(iter(engine.connections))

    def switch_then_eof() -> None:  # on the loop thread, between two waits: one wait sees both
        engine.set_flaw("eof_ignored", True)  # its wake-up byte first
        sock.shutdown(socket.SHUT_WR)

    engine.call(engine.loop.call_soon, switch_then_eof).result(5)
    # the flaw's handler ignores the EOF (the bug it shows): the connection stays, re-read
    wait_until(lambda: engine.list_flaws().result(5)[0]["detections"] >= 1, what="a detection")
    assert fd in engine.connections
    engine.set_flaw("eof_ignored", False).result(5)
    wait_until(lambda: fd not in engine.connections, what="the close once the flaw is off")
    sock.close()
