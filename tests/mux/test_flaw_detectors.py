"""A bug-zoo detector speaks only when its bug did harm, not on every path the flaw takes.

The flaw tests check that each detector fires for its bug; these check the other half: with
the flaw on, a client whose bytes all arrive intact gets no `flaw` event (a false alarm on
the page teaches the wrong lesson: "the bytes were lost" when none were).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mux import Engine

from .conftest import Recorder, connect, recv_exactly, recv_until_eof, wait_until


def _with_flaw(make_engine: Any, name: str, backend: str) -> tuple[Engine, Recorder,
                                                                   socket.socket, int]:
    engine, rec = make_engine(backend=backend)
    engine.set_flaw(name, True).result(5)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    return engine, rec, sock, fd


def _flags_after_close(engine: Engine, rec: Recorder, fd: int) -> list[dict[str, Any]]:
    """The flaw events, once the close of `fd` and its iteration are over."""
    rec.wait_for("close", fd=fd)
    engine.call(lambda: None).result(5)  # runs after the iteration that closed it
    return rec.of("flaw")


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_hup_before_in_says_nothing_when_the_hang_up_left_no_bytes_unread(
        make_engine: Any, backend: str) -> None:
    """The usual close (echo read, then close) comes as IN|RDHUP with nothing unread: the
    flawed handler closes first and loses nothing, so there is nothing to report."""
    engine, rec, sock, fd = _with_flaw(make_engine, "hup_before_in", backend)
    with sock:
        sock.sendall(b"all read")
        assert recv_exactly(sock, 8) == b"all read"
    flags = _flags_after_close(engine, rec, fd)
    assert [c.get("flaw") for c in rec.of("close", fd=fd)] == ["hup_before_in"]
    assert flags == [], f"a flag for a hang-up that lost no bytes: {flags}"
    engine.set_flaw("hup_before_in", False).result(5)


def test_poll_equality_says_nothing_when_only_an_eof_waits_beside_the_write_bit(
        make_engine: Any) -> None:
    """select returns read|write for a connection with an echo queued and the peer's EOF
    waiting: the flawed handler skips the read, but no data is ignored (the EOF is read on a
    later wait, and every byte is echoed), so "readable data was ignored" would be false."""
    engine, rec, sock, fd = _with_flaw(make_engine, "poll_equality", "select")
    with sock:
        engine.pause().result(5)  # "x" and the EOF both wait when the loop runs again
        sock.sendall(b"x")
        sock.shutdown(socket.SHUT_WR)
        engine.resume().result(5)
        assert recv_until_eof(sock) == b"x"
    flags = _flags_after_close(engine, rec, fd)
    assert flags == [], f"a flag with no readable data ignored: {flags}"
    engine.set_flaw("poll_equality", False).result(5)
