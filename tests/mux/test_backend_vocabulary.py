"""Each backend speaks its kernel's words: what the page shows is what the kernel returned.

SPEC §2-§3: a `ready` event's `flags` are the backend-native names of what the wait call
returned (select's lists, poll's revents, epoll's ready list), and a `wait` event's
`timeout_ms` is the timeout the kernel was given. Until these tests, nothing looked at a
select wakeup that came from one list alone, at a bit only a misbehaving fd gets back
(POLLNVAL), or at whether a poll wait lasted as long as its event said it was allowed to.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import pytest

from mux.backends import READABLE, WRITABLE, create
from mux.backends._poll import PollBackend
from mux.loop import Loop
from mux.observe import Observers

from .conftest import connect, recv_exactly

#: every bit each mask backend's kernel can hand back or be given, by its header name
NATIVE_NAMES = {
    "poll": ["POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDHUP"],
    "epoll": ["EPOLLIN", "EPOLLPRI", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLRDHUP",
              "EPOLLET", "EPOLLONESHOT"],
}


def test_a_select_wakeup_from_one_list_is_named_by_that_list_alone(make_engine: Any) -> None:
    """select returns three lists; an fd found in its read list only is `read` (not `except`:
    the except list is always passed empty), and the queued echo's writable half, found in
    the write list only, is `write` (not `read`, which select did not return)."""
    engine, rec = make_engine(backend="select", write="queued", udp=False)
    with connect(engine.tcp_port) as sock:
        fd = rec.wait_for("accept")["fd"]
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        rec.wait_for("send", fd=fd)
        flags = [e["flags"] for e in rec.of("ready", fd=fd)]
        # one message, its echo read before anything else is sent: the read wakeup and the
        # write wakeup come from two different waits, each from one list
        assert ["read"] in flags, flags
        assert ["write"] in flags, flags
        assert all(f in (["read"], ["write"]) for f in flags), flags


def test_select_is_given_the_read_list_as_it_is_after_every_change() -> None:
    """select is passed a tuple of the read list, kept between waits and rebuilt after a
    change: reading switched off (backpressure), on again, an fd unregistered, a new one."""
    from mux.backends._select import IN_READ, IN_WRITE, SelectBackend

    backend = SelectBackend()
    a, peer_a = socket.socketpair()
    b, peer_b = socket.socketpair()
    try:
        peer_a.send(b"x")
        peer_b.send(b"y")
        backend.register(a.fileno(), READABLE)
        assert backend.wait(0) == [(a.fileno(), IN_READ)]
        backend.modify(a.fileno(), 0)  # reading paused: in neither list
        assert backend.wait(0) == []
        backend.register(b.fileno(), READABLE)
        assert backend.wait(0) == [(b.fileno(), IN_READ)]
        backend.modify(a.fileno(), READABLE)
        assert sorted(backend.wait(0)) == sorted([(a.fileno(), IN_READ), (b.fileno(), IN_READ)])
        backend.unregister(b.fileno())
        assert backend.wait(0) == [(a.fileno(), IN_READ)]
        backend.modify(a.fileno(), READABLE | WRITABLE)  # the write list alone changes
        assert backend.wait(0) == [(a.fileno(), IN_READ | IN_WRITE)]
    finally:
        backend.close()
        for sock in (a, peer_a, b, peer_b):
            sock.close()


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_every_native_bit_has_its_kernel_headers_name(backend: str) -> None:
    """A bit the kernel returned but the backend cannot name shows as an empty flag list: the
    page would say the fd was ready for nothing."""
    names = create(backend).names
    for name in NATIVE_NAMES[backend]:
        bit = getattr(select, name, None)
        if bit is None:  # an older Python without the constant: the backend's own fallback
            continue
        assert names(bit) == [name], (name, names(bit))


def test_poll_names_the_pollnval_the_kernel_returns_for_a_closed_fd() -> None:
    """A closed-but-registered fd is a POLLNVAL storm for poll (SPEC §2): the ready list that
    shows it must name POLLNVAL, the bit poll(2) really set."""
    backend = PollBackend()
    server = socket.create_server(("127.0.0.1", 0))
    try:
        client = socket.create_connection(server.getsockname())
        fd = client.fileno()
        backend.register(fd, READABLE)
        client.close()  # still registered: the kernel answers POLLNVAL for it
        ready = backend.wait(0)
        assert [(got, backend.names(native)) for got, native in ready] == [(fd, ["POLLNVAL"])]
        assert backend.generic(ready[0][1]) & READABLE  # the handler finds out
    finally:
        backend.close()
        server.close()


@pytest.mark.parametrize("name", ["select", "poll", "epoll"])
def test_a_wait_with_nothing_ready_lasts_at_least_the_timeout_it_shows(name: str) -> None:
    """`timeout_ms` is the timeout the kernel got: a wait that returned with nothing ready
    slept all of it (no kernel call returns early). A backend that passed poll a shorter
    timeout than the event shows (rounded down: 33 ms for a 33.4 ms timer, shown as 34)
    returns before its own event's timeout. (select's timeval is given to the microsecond.)"""
    events: list[dict[str, Any]] = []
    obs = Observers()
    obs.add(events.append)
    server = socket.create_server(("127.0.0.1", 0))  # a real fd in the wait, never ready
    loop = Loop(create(name), obs, wait_timeout=0.0334)
    try:
        loop.backend.register(server.fileno(), READABLE)
        for _ in range(3):
            loop.run_once()
    finally:
        loop.backend.close()
        server.close()
    waits = [e for e in events if e["kind"] == "wait"]
    assert len(waits) == 3
    for wait in waits:
        assert wait["ready"] == 0 and wait["timeout_ms"] == 34, wait
        # select's timeval is exact to the microsecond, and its event says so (`timeout_us`)
        shown_us = wait.get("timeout_us", wait["timeout_ms"] * 1000)
        assert wait["duration_us"] >= shown_us, wait
