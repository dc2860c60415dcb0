"""A user's close of a streaming peer lingers (mux/linger.py): discarding input until the
peer's EOF or LINGER_S, never an RST the peer could have been spared."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from .conftest import connect, recv_exactly, recv_until_eof, send_quietly, wait_until


def _lingering(engine, rec, sock: socket.socket) -> int:
    """A connection from `sock` that floods (64 MiB, reading nothing), closed by the user:
    its fd, lingering."""
    fd = rec.wait_for("accept")["fd"]
    threading.Thread(target=send_quietly, args=(sock, b"f" * (64 << 20)), daemon=True).start()
    rec.wait_for("backpressure", timeout=10, paused=True)
    assert engine.close_connection(fd).result(5) is True
    assert engine.call(lambda: engine.connections[fd].lingering).result(5)
    return fd


@pytest.mark.parametrize("mode", [("select", "level", False), ("epoll", "level", False),
                                  ("epoll", "edge", False), ("epoll", "level", True)])
def test_closing_a_client_that_floods_and_never_reads_lingers_until_its_eof(make_engine, mode):
    """A client writing megabytes and reading nothing refills the receive buffer as fast as
    a close reads it away: the close was an RST, and the client lost the echoes its kernel
    still held. Now the connection lingers, discarding input, until the client's EOF."""
    backend, trigger, oneshot = mode
    engine, rec = make_engine(backend=backend, trigger=trigger, oneshot=oneshot)
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = rec.wait_for("accept")["fd"]
        sender = threading.Thread(target=send_quietly, args=(sock, b"f" * (12 << 20)))
        sender.start()
        rec.wait_for("backpressure", timeout=10, paused=True)
        assert engine.close_connection(fd).result(5) is True
        sender.join(15)  # the rest of its 12 MiB was read away
        assert not sender.is_alive()
        echoed = len(recv_until_eof(sock))  # no ConnectionResetError: an orderly end
        assert echoed > 0
        assert fd in engine.connections, "it lingers until the client's own EOF"
        assert engine.state().result(5)["connections"][0]["lingering"] is True
        assert engine.counters()["lingering"] == [fd]  # for the pages' stats frames
        sock.shutdown(socket.SHUT_WR)
        close = rec.wait_for("close", fd=fd)
        assert (close["reason"], close["lingered"]) == ("user", "eof")
        # what was read away, not echoed, is said: the flood was megabytes
        assert close["discarded"] >= (12 << 20) - echoed - sum(
            e["bytes"] for e in rec.of("recv", fd=fd))
    wait_until(lambda: fd not in engine.connections, what="the lingering connection closed")
    assert engine.call(lambda: fd in engine.loop.handlers).result(5) is False
    assert engine.counters()["lingering"] == []


def test_a_lingering_close_ends_at_its_deadline_or_with_the_engine(make_engine, monkeypatch):
    """A client that never stops sending cannot keep a closed connection (and its fd) for
    good: LINGER_S after the close it goes, and an engine stopping meanwhile takes it too."""
    import mux.tcp_close

    monkeypatch.setattr(mux.tcp_close, "LINGER_S", 0.5)
    engine, rec = make_engine(backend="epoll")
    socks = [connect(engine.tcp_port, timeout=20) for _ in range(2)]
    try:
        wait_until(lambda: len(engine.connections) == 2, what="both accepted")
        fds = sorted(engine.connections)
        for sock in socks:
            threading.Thread(target=send_quietly, args=(sock, b"f" * (64 << 20)),
                             daemon=True).start()
        # each paused at least once (a count of exactly 2 passes by when one pauses again)
        wait_until(lambda: {e["fd"] for e in rec.of("backpressure", paused=True)} == set(fds),
                   10, "both paused")
        for fd in fds:
            assert engine.close_connection(fd).result(5) is True
        assert engine.call(lambda: [engine.connections[fd].lingering for fd in fds]).result(5)
        for fd in fds:  # the deadline
            close = rec.wait_for("close", fd=fd, timeout=5)
            assert (close["reason"], close["lingered"]) == ("user", "deadline")
        assert not engine.connections
    finally:
        for sock in socks:
            sock.close()


def test_an_engine_stopping_closes_a_lingering_connection(make_engine):
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        engine.stop()
        engine.join(5)
        close = rec.wait_for("close", fd=fd)
        assert (close["reason"], close["lingered"]) == ("shutdown", "shutdown")


def test_a_second_close_of_a_lingering_connection_closes_it_at_once(make_engine):
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        assert engine.close_connection(fd).result(5) is True
        close = rec.wait_for("close", fd=fd)
        assert (close["reason"], close["lingered"]) == ("user", "user")
        assert fd not in engine.connections


def test_a_lingering_close_whose_handler_raises_is_a_valid_event(make_engine):
    """A crash while lingering closes with `lingered: "error"`, which the event schema did not
    allow: a replay refused the whole recording that held it."""
    from app.event_schema import problems

    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)

        def break_read_away() -> None:
            def broken(*_: object) -> None:
                raise RuntimeError("a bug while lingering")
            engine.connections[fd].read_away = broken

        engine.call(break_read_away).result(5)
        close = rec.wait_for("close", fd=fd, timeout=10)
        assert (close["reason"], close["lingered"]) == ("error", "error")
        assert problems(close) == problems(close, lenient=True) == []


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_close_without_unregister_on_a_lingering_close_is_repaired(make_engine, backend):
    """With the flaw on, a lingering connection's close left its Lingerer in the loop's table,
    where the flaw's repair (which looks for the connection) never found it: select failed
    with EBADF at every wait and the engine stopped answering, poll spun on POLLNVAL, even
    after the flaw was turned off."""
    engine, rec = make_engine(backend=backend)
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        engine.set_flaw("close_without_unregister", True).result(5)
        sock.shutdown(socket.SHUT_WR)
        assert rec.wait_for("close", fd=fd)["reason"] == "user"
        engine.set_flaw("close_without_unregister", False).result(5)
        assert engine.call(lambda: fd in engine.loop.handlers).result(5) is False
        waits = engine.stats.waits
    with connect(engine.tcp_port) as other:  # the loop serves, and idles
        other.sendall(b"hi")
        assert recv_until_eof_or(other, 2) == b"hi"
    assert engine.stats.waits - waits < 1000, "the loop spins"


def recv_until_eof_or(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_write_interest_stuck_leaves_a_lingering_connection_reading(make_engine):
    """Turning the flaw on or off re-derives every connection's interest: a lingering one,
    still paused by backpressure, got none, read nothing more, and its peer was reset at
    the deadline."""
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        engine.set_flaw("write_interest_stuck", True).result(5)
        engine.set_flaw("write_interest_stuck", False).result(5)
        assert engine.state().result(5)["registrations"] and engine.call(
            lambda: engine.loop.interest[fd]).result(5) == 1  # READABLE
        sock.shutdown(socket.SHUT_WR)
        assert rec.wait_for("close", fd=fd, timeout=3)["reason"] == "user"


def test_a_hup_breakpoint_fires_when_the_peers_eof_ends_a_linger_on_select(make_engine):
    """select shows no hang-up bit: only the EOF that ends the linger can say it."""
    engine, rec = make_engine(backend="select")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        engine.add_breakpoint("hup", fd).result(5)
        sock.shutdown(socket.SHUT_WR)
        assert rec.wait_for("close", fd=fd)["reason"] == "user"
        wait_until(lambda: engine.paused, what="the loop paused at the hup breakpoint")


def test_a_close_that_did_not_linger_says_nothing_of_lingering(make_engine):
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        sock.sendall(b"hi")
        assert recv_until_eof_or(sock, 2) == b"hi"
        assert engine.state().result(5)["connections"][0]["lingering"] is False
        assert engine.close_connection(fd).result(5) is True
        assert engine.lingering(fd).result(5) is False
        close = rec.wait_for("close", fd=fd)
        assert "lingered" not in close and "discarded" not in close


def test_a_linger_ended_by_the_peers_reset_says_reset_not_eof(make_engine):
    """The peer closed with our echoes unread: its kernel sent an RST and our read got
    ECONNRESET, which the close event called a clean end (`lingered: eof`), and the code
    panel showed the EOF path."""
    engine, rec = make_engine(backend="epoll")
    sock = connect(engine.tcp_port, timeout=20)
    try:
        fd = _lingering(engine, rec, sock)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # an RST, whatever is unread
    close = rec.wait_for("close", fd=fd)
    assert (close["reason"], close["lingered"]) == ("user", "reset")
    assert close["discarded"] > 0


def test_a_lingering_close_whose_deadline_read_raises_closes_that_one_alone(make_engine,
                                                                          monkeypatch):
    """The deadline's last read ran in a timer, outside the dispatch's isolation: a raise there
    ended the loop thread, and every connection closed (`shutdown`). Seen as a flaky test: the
    64 MiB flood was read away before the break, and only the deadline read again."""
    import mux.tcp_close

    monkeypatch.setattr(mux.tcp_close, "LINGER_S", 1.0)
    engine, rec = make_engine(backend="epoll")
    with connect(engine.tcp_port, timeout=20) as sock:
        fd = _lingering(engine, rec, sock)
        other = connect(engine.tcp_port, timeout=20)

        def break_read_away() -> None:
            def broken(*_: object) -> None:
                raise RuntimeError("a bug while lingering")
            engine.connections[fd].read_away = broken
            engine.loop.handlers[fd].on_ready = lambda mask: None  # only the deadline reads

        engine.call(break_read_away).result(5)
        close = rec.wait_for("close", fd=fd, timeout=10)
        assert close["reason"] == "error", close
        with other:  # the loop goes on, the other connection with it
            other.sendall(b"still here")
            assert recv_exactly(other, 10) == b"still here"
