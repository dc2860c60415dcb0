"""What the bug zoo's detectors say: counted per connection and per session, and only for
what happened (an audit of each flaw against the seed's bug, mux/flaws.py)."""

from __future__ import annotations

import socket
import time

from mux.flaw_base import FLAG_INTERVAL

from .conftest import connect, recv_exactly, wait_until


def _flags(rec, name: str) -> list[dict]:
    return rec.of("flaw", name=name)


def _serving(engine, rec, sock: socket.socket) -> int:
    """The server's fd for `sock` (just connected), once the engine holds the connection."""
    host, port = sock.getsockname()
    local = f"{host}:{port}"
    accept = wait_until(lambda: next((a for a in rec.of("accept") if a["peer"] == local), None),
                        what="the accept")
    fd = accept["fd"]
    wait_until(lambda: fd in engine.connections, what="the connection")
    return fd


def test_write_interest_stuck_counts_from_when_it_is_switched_on(make_engine):
    """The first report after switching it on again gave the last session's count, over a
    window spanning the time it was off ("251425 wake-ups in 3.7 s" after 6 waits)."""
    engine, rec = make_engine(backend="epoll", wait_timeout=1.0)
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        engine.set_flaw("write_interest_stuck", True).result(5)
        wait_until(lambda: _flags(rec, "write_interest_stuck"), what="the first session's report")
        engine.set_flaw("write_interest_stuck", False).result(5)
        seen = len(_flags(rec, "write_interest_stuck"))
        engine.switch_backend("epoll", "edge", False, "queued").result(5)  # where it is inert
        time.sleep(FLAG_INTERVAL + 0.2)  # a window: a report is due at once when it is back on
        engine.set_flaw("write_interest_stuck", True).result(5)
        waits = engine.stats.waits
        sock.sendall(b"again")  # the connection is ready: the detector looks at its counts
        assert recv_exactly(sock, 5) == b"again"
        # a report, if one comes at the next check, counts only this session's wake-ups
        reports = _flags(rec, "write_interest_stuck")[seen:]
        for report in reports:
            count = int(report["message"].split(": ")[1].split()[0])
            assert count <= engine.stats.waits - waits + 1, report["message"]
        engine.set_flaw("write_interest_stuck", False).result(5)


def test_write_interest_stuck_with_eager_writes_leaves_an_echoed_connection_alone(make_engine):
    """The page says eager writes turn write interest on only after a partial send: switching
    the flaw on still stuck it on every connection that had echoed, and the loop spun."""
    engine, rec = make_engine(backend="poll", write="eager")
    with connect(engine.tcp_port) as sock:
        fd = _serving(engine, rec, sock)
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        engine.set_flaw("write_interest_stuck", True).result(5)
        state = engine.state().result(5)
        assert next(c for c in state["connections"] if c["fd"] == fd)["interest"] == ["POLLIN"]
        engine.set_flaw("write_interest_stuck", False).result(5)


def test_eof_ignored_counts_a_new_connection_on_a_reused_fd_from_its_own_eof(make_engine):
    """The zero reads were counted per fd number: a new connection given a spun-down one's fd
    was reported at its first EOF with the old one's count, and a hup breakpoint missed it."""
    engine, rec = make_engine(backend="epoll")
    engine.set_flaw("eof_ignored", True).result(5)
    first = connect(engine.tcp_port)
    fd = _serving(engine, rec, first)
    first.shutdown(socket.SHUT_WR)
    wait_until(lambda: any("times" in f["message"] for f in _flags(rec, "eof_ignored")),
               what="the spin reported")
    assert engine.close_connection(fd).result(5)
    wait_until(lambda: fd not in engine.connections, what="the close")
    first.close()
    bp = engine.add_breakpoint("hup").result(5)
    with connect(engine.tcp_port) as second:
        assert _serving(engine, rec, second) == fd  # the lowest free fd: the same number
        second.shutdown(socket.SHUT_WR)
        rec.wait_for("loop", state="paused", breakpoint=bp["id"])
    engine.remove_breakpoint(bp["id"]).result(5)
    engine.resume().result(5)
    engine.set_flaw("eof_ignored", False).result(5)


def test_poll_equality_flags_no_ignored_data_for_an_eof_with_nothing_unread(make_engine):
    """A client that read its echo, then shut down its side: POLLIN|POLLRDHUP with 0 bytes
    unread was reported as "readable data was ignored"."""
    engine, rec = make_engine(backend="poll")
    engine.set_flaw("poll_equality", True).result(5)
    with connect(engine.tcp_port) as sock:
        fd = _serving(engine, rec, sock)
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        sock.shutdown(socket.SHUT_WR)
        rec.wait_for("close", fd=fd)
    assert not [f for f in _flags(rec, "poll_equality") if "ignored" in f["message"]]
    engine.set_flaw("poll_equality", False).result(5)


def test_close_without_unregister_counts_pollnval_per_fd_and_session(make_engine):
    """"closed fd 4 (230512 times so far)" at a fresh fd's first POLLNVAL: one count for
    every fd and every session, wake-ups without POLLNVAL included."""
    engine, rec = make_engine(backend="poll")
    for session in (1, 2):
        engine.set_flaw("close_without_unregister", True).result(5)
        with connect(engine.tcp_port) as sock:
            fd = _serving(engine, rec, sock)
            since = rec.of("accept")[-1]["seq"]

        def storm(fd: int = fd, since: int = since) -> dict | None:
            return next((f for f in _flags(rec, "close_without_unregister")
                         if f["seq"] > since and f"closed fd {fd} (" in f["message"]), None)

        first = wait_until(storm, what=f"session {session}'s POLLNVAL")
        assert "(1 time so far)" in first["message"], first["message"]
        engine.set_flaw("close_without_unregister", False).result(5)


def test_write_interest_stuck_follows_a_switch_from_queued_to_eager(make_engine):
    """Stuck under queued, a connection kept its write interest after a switch to eager (the
    loop spun), though the flaw says eager writes cannot show it; and back to queued, it is
    stuck again."""
    engine, rec = make_engine(backend="poll", write="queued", wait_timeout=1.0)
    engine.set_flaw("write_interest_stuck", True).result(5)

    def interest() -> list[str]:
        return engine.state().result(5)["connections"][0]["interest"]

    with connect(engine.tcp_port) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
        wait_until(lambda: interest() == ["POLLIN", "POLLOUT"], what="stuck under queued")
        engine.switch_backend("poll", "level", False, "eager").result(5)
        assert interest() == ["POLLIN"]
        engine.switch_backend("poll", "level", False, "queued").result(5)
        assert interest() == ["POLLIN", "POLLOUT"]
    engine.set_flaw("write_interest_stuck", False).result(5)


def _last_words(engine, rec, name: str, words: bytes) -> list[dict]:
    """With `name` on and the loop paused, a client sends `words` and closes its side: the data
    and the hang-up come in one report. The flaw's events about that connection."""
    engine.set_flaw(name, True).result(5)
    with connect(engine.tcp_port) as sock:
        fd = _serving(engine, rec, sock)
        since = rec.of("accept")[-1]["seq"]
        engine.pause().result(5)
        sock.sendall(words)
        sock.shutdown(socket.SHUT_WR)
        engine.resume().result(5)
        wait_until(lambda: [c for c in rec.of("close", fd=fd) if c["seq"] > since],
                   what="this connection's close")  # (an earlier one may have had its fd)
    engine.set_flaw(name, False).result(5)
    return [f for f in _flags(rec, name) if f["seq"] > since and f["fd"] == fd]


def test_poll_equality_reports_one_loss_once(make_engine):
    """Bytes lost to a hang-up were reported twice: "readable data was ignored", then "lost"."""
    engine, rec = make_engine(backend="poll")
    flags = _last_words(engine, rec, "poll_equality", b"my last words")
    assert [f["message"] for f in flags] == [flags[0]["message"]]
    assert "13 bytes unread: lost" in flags[0]["message"]


def test_hup_before_in_counts_its_losses_from_when_it_is_switched_on(make_engine):
    """"(N bytes in all)" added up every session's losses."""
    engine, rec = make_engine(backend="poll")
    first = _last_words(engine, rec, "hup_before_in", b"my last words")
    assert "(13 in all)" in first[0]["message"]
    second = _last_words(engine, rec, "hup_before_in", b"words")
    assert "(5 in all)" in second[0]["message"]


def test_close_without_unregister_says_when_the_stale_fd_number_names_another_file(make_engine):
    """The real danger of the flaw: the closed fd's number goes to the next file this process
    opens, and poll watches that file for the gone connection (POLLIN, not POLLNVAL). The
    detector went silent there, and the log filled with ready events for an fd in no row."""
    engine, rec = make_engine(backend="poll")
    engine.set_flaw("close_without_unregister", True).result(5)
    pairs: list[tuple[socket.socket, socket.socket]] = []
    try:
        with connect(engine.tcp_port) as sock:
            fd = _serving(engine, rec, sock)
        wait_until(lambda: any(f"closed fd {fd} (" in f["message"]
                               for f in _flags(rec, "close_without_unregister")),
                   what="the POLLNVAL storm")
        while True:  # the lowest free number is the one closed, unless another took it
            a, b = socket.socketpair()
            pairs.append((a, b))
            if fd in (a.fileno(), b.fileno()):
                break
            assert len(pairs) < 32, f"fd {fd} was not given out again"
        reader, writer = (a, b) if a.fileno() == fd else (b, a)
        writer.send(b"?")  # the new file is readable, for no connection of the engine's
        flag = wait_until(lambda: next((f for f in _flags(rec, "close_without_unregister")
                                        if "another file" in f["message"]), None),
                          what="the reuse named")
        assert flag["fd"] == fd
        assert flag["message"].startswith(f"poll reported POLLIN for fd {fd} (1 time so far)")
        assert "closed while registered" in flag["message"]
        assert reader.recv(1) == b"?"  # the engine read nothing of a file not its own
    finally:
        engine.set_flaw("close_without_unregister", False).result(5)
        for pair in pairs:
            for s in pair:
                s.close()
