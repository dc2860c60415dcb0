"""The everyday paths of the code view's ground-truth test: typing, partial sends,
backpressure, EOF with a queue left, resets, a user's close, a backend switch, the loop's
controls, a datagram, and bug-zoo flaws (code_truth_harness.py records the stacks)."""

from __future__ import annotations

import os
import socket
import threading

from mux import Engine
from tests.browser.code_truth_harness import (
    TIMEOUT,
    TruthSink,
    client,
    closed,
    last_seq,
    queued,
    read_all,
    rst,
)
from tests.mux.conftest import recv_exactly


# -- scenarios -------------------------------------------------------------------------------
def typing(engine: Engine, sink: TruthSink) -> None:
    sock, fd = client(engine, sink)
    for chunk in (b"h", b"el", b"lo", b" wor", b"ld\n"):
        sock.sendall(chunk)
        assert recv_exactly(sock, len(chunk)) == chunk
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def partial_sends(engine: Engine, sink: TruthSink) -> None:
    """Below high water: sends go partial, no backpressure."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    data = os.urandom(60_000)
    sock.sendall(data)
    queued(engine, sink, fd, start)
    assert recv_exactly(sock, len(data)) == data
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def backpressure(engine: Engine, sink: TruthSink) -> None:
    """Over high water (the engine's is 64 KiB here): paused, then released as we read."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    data = os.urandom(400_000)
    writer = threading.Thread(target=lambda: sock.sendall(data), daemon=True)
    writer.start()
    sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("fd") == fd
                  and e.get("paused") is True and e["seq"] > start, "backpressure on")
    assert recv_exactly(sock, len(data)) == data
    writer.join(TIMEOUT)
    sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("fd") == fd
                  and e.get("paused") is False and e["seq"] > start, "backpressure off")
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def eof_with_queue(engine: Engine, sink: TruthSink) -> None:
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    data = os.urandom(60_000)
    sock.sendall(data)
    queued(engine, sink, fd, start)
    sock.shutdown(socket.SHUT_WR)
    if not sink.throttled:
        sink.wait_for(lambda e: e["kind"] == "recv" and e.get("fd") == fd and e.get("eof")
                      and e["seq"] > start, "the EOF's recv")
    assert read_all(sock) == data
    closed(sink, fd, start)
    sock.close()


def reset(engine: Engine, sink: TruthSink) -> None:
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    sock.sendall(os.urandom(60_000))
    queued(engine, sink, fd, start)
    rst(sock)
    closed(sink, fd, start)


def reset_idle(engine: Engine, sink: TruthSink) -> None:
    """A reset of a connection with nothing queued: seen by the read."""
    sock, fd = client(engine, sink)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    start = last_seq(sink)
    rst(sock)
    closed(sink, fd, start)


def user_close(engine: Engine, sink: TruthSink) -> None:
    """A user's close of a connection with a queue, and of an idle one."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    idle, idle_fd = client(engine, sink)
    start = last_seq(sink)
    sock.sendall(os.urandom(60_000))
    queued(engine, sink, fd, start)
    assert engine.close_connection(fd).result(TIMEOUT)
    closed(sink, fd, start)
    read_all(sock)
    sock.close()
    assert engine.close_connection(idle_fd).result(TIMEOUT)
    closed(sink, idle_fd, start)
    idle.close()


def user_close_lingering(engine: Engine, sink: TruthSink) -> None:
    """A user's close of a peer still streaming (reading paused by backpressure): it lingers,
    reading away, until the peer's EOF (mux/linger.py)."""
    sock, fd = client(engine, sink, rcvbuf=4096)
    start = last_seq(sink)
    data = os.urandom(1_000_000)

    def write() -> None:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    sink.wait_for(lambda e: e["kind"] == "backpressure" and e.get("fd") == fd
                  and e.get("paused") is True and e["seq"] > start, "backpressure on")
    assert engine.close_connection(fd).result(TIMEOUT)
    closed(sink, fd, start)
    writer.join(TIMEOUT)
    sock.close()


def switch(engine: Engine, sink: TruthSink) -> None:
    """A backend switch and back with connections open (one with a queue)."""
    b = engine.loop.backend
    here = (b.name, b.trigger, b.oneshot)
    there = ("poll", "level", False) if b.name == "epoll" else ("epoll", "edge", False)
    busy, busy_fd = client(engine, sink, rcvbuf=4096)
    idle, idle_fd = client(engine, sink)
    start = last_seq(sink)
    data = os.urandom(60_000)
    busy.sendall(data)
    sink.wait_for(lambda e: e["kind"] == "queue" and e.get("fd") == busy_fd
                  and e["seq"] > start, "a queue event")
    engine.switch_backend(*there).result(TIMEOUT)
    idle.sendall(b"abc")
    assert recv_exactly(idle, 3) == b"abc"
    engine.switch_backend(*here).result(TIMEOUT)
    assert recv_exactly(busy, len(data)) == data
    idle.sendall(b"de")
    assert recv_exactly(idle, 2) == b"de"
    start = last_seq(sink)
    busy.close()
    idle.close()
    closed(sink, busy_fd, start)
    closed(sink, idle_fd, start)


def controls(engine: Engine, sink: TruthSink) -> None:
    """Pause, two steps, resume, slow motion on and off, and a kernel read (one-shot: the
    control fd armed again inside its own handler)."""
    sock, fd = client(engine, sink)
    engine.pause().result(TIMEOUT)
    sock.sendall(b"step")
    for _ in range(2):
        start = last_seq(sink)
        engine.step().result(TIMEOUT)
        sink.wait_for(lambda e, start=start: e["kind"] == "loop" and e.get("state") == "paused"
                      and e["seq"] > start, "the step's end")
    engine.resume().result(TIMEOUT)
    assert recv_exactly(sock, 4) == b"step"
    engine.set_delay(1).result(TIMEOUT)
    engine.set_delay(0).result(TIMEOUT)
    engine.kernel().result(TIMEOUT)
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def datagram(engine: Engine, sink: TruthSink) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(TIMEOUT)
        for payload in (b"ping", b"pong!"):
            udp.sendto(payload, ("127.0.0.1", engine.udp_port))
            assert udp.recvfrom(65536)[0] == payload


def flaw_eof_ignored(engine: Engine, sink: TruthSink) -> None:
    engine.set_flaw("eof_ignored", True).result(TIMEOUT)
    sock, fd = client(engine, sink)
    sock.sendall(b"bye")
    assert recv_exactly(sock, 3) == b"bye"
    start = last_seq(sink)
    sock.shutdown(socket.SHUT_WR)
    sink.wait_for(lambda e: e["kind"] == "recv" and e.get("fd") == fd and e.get("eof")
                  and e["seq"] > start, "a zero read")
    engine.set_flaw("eof_ignored", False).result(TIMEOUT)  # the EOF is handled now
    closed(sink, fd, start)
    sock.close()


def flaw_write_interest_stuck(engine: Engine, sink: TruthSink) -> None:
    engine.set_flaw("write_interest_stuck", True).result(TIMEOUT)
    sock, fd = client(engine, sink)
    for chunk in (b"ab", b"cd"):
        sock.sendall(chunk)
        assert recv_exactly(sock, 2) == chunk
    start = last_seq(sink)
    b = engine.loop.backend
    if engine.write_mode == "queued" and not (b.edge and not b.oneshot):  # not inert: it shows
        sink.wait_for(lambda e: e["kind"] == "ready" and e.get("fd") == fd and e["seq"] > start,
                      "a writable wake-up with nothing to write", count=3)
    engine.set_flaw("write_interest_stuck", False).result(TIMEOUT)
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)


def last_words_with_flaw(engine: Engine, sink: TruthSink, name: str,
                         first: bytes = b"") -> None:
    """Flaw `name` on, a client that echoes `first`, then sends its last words and closes."""
    engine.set_flaw(name, True).result(TIMEOUT)
    sock, fd = client(engine, sink)
    if first:
        sock.sendall(first)
        assert recv_exactly(sock, len(first)) == first
    start = last_seq(sink)
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)
    closed(sink, fd, start)
    sock.close()
    engine.set_flaw(name, False).result(TIMEOUT)


def flaw_hup_before_in(engine: Engine, sink: TruthSink) -> None:
    last_words_with_flaw(engine, sink, "hup_before_in")


def flaw_udp_wrong_address(engine: Engine, sink: TruthSink) -> None:
    engine.set_flaw("udp_wrong_address", True).result(TIMEOUT)
    start = last_seq(sink)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"where", ("127.0.0.1", engine.udp_port))
        sink.wait_for(lambda e: e["kind"] == "datagram" and e.get("from_self")
                      and e["seq"] > start, "the misdirected reply read back")
    engine.set_flaw("udp_wrong_address", False).result(TIMEOUT)


def flaw_close_without_unregister(engine: Engine, sink: TruthSink) -> None:
    engine.set_flaw("close_without_unregister", True).result(TIMEOUT)
    sock, fd = client(engine, sink)
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)
    engine.set_flaw("close_without_unregister", False).result(TIMEOUT)  # drops the stale fd


def flaw_switched_mid_batch(engine: Engine, sink: TruthSink) -> None:
    """A flaw switched on, then off, by a command the control fd's handler runs in the same
    batch as a connection's readiness: that connection's handler must be the one the `loop`
    event says. (Queued from the loop thread after a dispatch: the command's wake-up byte,
    then the client's bytes, so one wait reports both, the control fd first: select and poll
    list fds in order, epoll by time.)"""
    sock, fd = client(engine, sink)
    for on, chunk in ((True, b"on"), (False, b"off")):
        def then_send(on: bool = on, chunk: bytes = chunk) -> None:  # on the loop thread
            engine.call(engine.flaws.set, "eof_ignored", on)
            sock.sendall(chunk)
        start = last_seq(sink)
        engine.call(engine.loop.call_soon, then_send).result(TIMEOUT)
        assert recv_exactly(sock, len(chunk)) == chunk
        sink.wait_for(lambda e, start=start: e["kind"] == "loop" and e.get("cause") == "flaw"
                      and e["seq"] > start, "the flaw's switch")
    start = last_seq(sink)
    sock.close()
    closed(sink, fd, start)
