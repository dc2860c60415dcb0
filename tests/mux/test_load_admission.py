"""The load generator's admission checks at their exact boundaries (mux/load.py `_add`): the
server's --max-connections counts a client of ours once, accepted or not; each client costs
two fds below the ceiling, one of them not taken yet while the server has not accepted it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import mux.load
from mux import Engine, LoadFdError, LoadGenerator, LoadLimitError, LoadWatchLimitError

from .conftest import wait_until


@contextmanager
def _load(engine: Engine, **limits: Any) -> Iterator[LoadGenerator]:
    generator = LoadGenerator("127.0.0.1", engine.tcp_port, cap=100, peers=engine.peers,
                              **limits)
    try:
        yield generator
    finally:
        generator.close()


def _open_fds() -> set[int]:
    """This process's open fds, by a means of its own (the listing's own fd is left out: it
    is closed by the time each is checked)."""
    open_now = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        open_now.add(int(name))
    return open_now


def _ceiling_with_free(free: int) -> int:
    """The lowest unused fd number below which exactly `free` fd numbers are unused."""
    used = _open_fds()
    ceiling, holes = 0, 0
    while holes < free or ceiling in used:
        if ceiling not in used:
            holes += 1
        ceiling += 1
    return ceiling


def test_accepted_clients_of_ours_count_once_against_max_connections(make_engine: Any) -> None:
    """Once the server has accepted them, our clients are both among its peers and ours: they
    take one slot each, so 2 accepted + 3 more fit a limit of 5 exactly."""
    engine, _ = make_engine(max_connections=5)
    with _load(engine, max_connections=5) as generator:
        assert generator.add(2, 8, 0).result(5) == 2
        wait_until(lambda: len(engine.peers()) == 2, what="both clients accepted")
        assert generator.add(3, 8, 0).result(5) == 5
        wait_until(lambda: len(engine.peers()) == 5, what="all five accepted")
        with pytest.raises(LoadLimitError, match="5 are open or connecting, 1 more"):
            generator.add(1, 8, 0).result(5)


def test_each_client_costs_two_fds_below_the_ceiling_even_before_it_is_accepted(
        make_engine: Any) -> None:
    """Paused, the server accepts nothing: a client has its own fd now and takes the server's
    later. With exactly 10 fds free below the ceiling, 5 clients fit and 6 do not; once 5 are
    made, none more fits, accepted or not."""
    engine, _ = make_engine()
    with _load(engine) as generator:
        engine.pause().result(5)
        generator.fd_ceiling = _ceiling_with_free(10)
        with pytest.raises(LoadFdError, match="for 6 more clients.* 10 are free"):
            generator.add(6, 8, 0).result(5)
        assert generator.add(5, 8, 0).result(5) == 5  # 2 x 5 == 10: exactly room
        assert generator.describe()["errors"] == 0
        with pytest.raises(LoadFdError, match="ask for at most 0"):
            generator.add(1, 8, 0).result(5)  # their 5 server ends are still to come
        engine.resume().result(5)
        wait_until(lambda: len(engine.peers()) == 5, what="the five accepted")
        with pytest.raises(LoadFdError, match="ask for at most 0"):
            generator.add(1, 8, 0).result(5)


def test_a_connect_refused_at_once_costs_that_client_alone() -> None:
    """A connect that fails in the call itself (ENETUNREACH: TCP to the broadcast address,
    refused locally, nothing is sent) is that client's failure: the others are still tried
    and each failure counted; only running out of sockets ends an add."""
    generator = LoadGenerator("255.255.255.255", 9, cap=10)
    try:
        assert generator.add(3, 16, 1).result(5) == 0
        assert generator.describe() == {"connections": 0, "cap": 10, "errors": 3, "wrong": 0,
                                        "closed": 0}
    finally:
        generator.close()


def test_a_socket_that_lands_on_the_ceiling_is_given_up(make_engine: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fds free below the ceiling were counted, then something else took them before the
    client's socket was made (played here in the generator's own thread, just after its
    count): the socket got the ceiling's own number, the dashboard's first, and must give it
    back, counted as a failure."""
    engine, _ = make_engine()
    taken: list[int] = []
    real_message = mux.load.load_message

    def fds_taken_meanwhile(size: int) -> bytes:
        while not taken or taken[-1] < generator.fd_ceiling:  # up to the ceiling itself
            taken.append(os.open(os.devnull, os.O_RDONLY))
        os.close(taken.pop())  # the ceiling: the lowest free fd now
        return real_message(size)

    monkeypatch.setattr(mux.load, "load_message", fds_taken_meanwhile)
    with _load(engine) as generator:
        try:
            engine.pause().result(5)
            generator.fd_ceiling = _ceiling_with_free(4)
            assert generator.add(1, 8, 0).result(5) == 0
            assert generator.describe()["errors"] == 1
        finally:
            for fd in taken:
                os.close(fd)


def test_a_load_select_could_not_watch_is_refused_before_a_client_is_made(
        make_engine: Any) -> None:
    """select watches only fds below FD_SETSIZE, and the server closes a connection whose fd
    is 1024 or more (SPEC §2): such clients vanished uncounted while the answer said they ran
    (600 asked for on select, 484 held). The generator asks the engine's backend for its limit
    at each request; with exactly 10 fd numbers free below it, 5 clients fit and 6 do not."""
    engine, _ = make_engine(backend="select")
    assert engine.watch_limit() == 1024
    limit: list[int] = []  # taken once the generator's own fds are open
    with _load(engine, watch_limit=lambda: limit[0]) as generator:
        limit.append(_ceiling_with_free(10))
        with pytest.raises(LoadWatchLimitError, match=(
                r"select watches only fds below \d+ \(FD_SETSIZE\).*: 6 more clients need 12 "
                r"fds .* 10 are free below \d+; ask for at most 5, or switch to poll or epoll")):
            generator.add(6, 8, 0).result(5)
        assert generator.add(5, 8, 0).result(5) == 5
        wait_until(lambda: len(engine.peers()) == 5, what="the five accepted")
        assert generator.describe()["closed"] == 0
    engine.switch_backend("poll", "level", False).result(5)
    assert engine.watch_limit() is None  # poll and epoll have no such limit


def test_clients_the_server_closes_are_counted_not_lost(make_engine: Any) -> None:
    """A client the server closes (here select refusing fds of 1024 and up, as when the check
    above raced with something else taking fds) ended silently: the count dropped and nothing
    said why. Paused, the server accepts nothing, so the 5 clients' own ends take 5 of the 6 fd
    numbers free below 1024 first; resumed, it keeps what it can below 1024 (one, unless fds
    freed meanwhile by others' garbage made room) and refuses the rest: every client is either
    held or counted as closed."""
    engine, _ = make_engine(backend="select")
    filler: list[int] = []
    try:
        with _load(engine) as generator:  # no watch_limit: the race, played
            engine.pause().result(5)
            gc.collect()  # sockets of earlier tests closed now, not while the clients connect
            free = 1024 - sum(1 for fd in _open_fds() if fd < 1024)
            for _ in range(free - 6):
                filler.append(os.open(os.devnull, os.O_RDONLY))
            assert 1024 - sum(1 for fd in _open_fds() if fd < 1024) == 6
            # each sends its first message at once: a refused one that had gets a reset, not
            # an EOF (its bytes unread), and was counted among `errors` (failed)
            assert generator.add(5, 8, 1000).result(5) == 5
            wait_until(lambda: all(c.awaiting for c in generator._clients.values()),
                       what="every client's first message sent")
            engine.resume().result(5)

            def settled() -> bool:
                found = generator.describe()
                return (found["connections"] + found["closed"] == 5
                        and found["connections"] == len(engine.peers()))

            wait_until(settled, what="every client held by the server or counted as closed")
            found = generator.describe()
            assert found["closed"] >= 1 and found["errors"] == 0 and found["wrong"] == 0, found
            assert all(fd < 1024 for fd in engine.connections), sorted(engine.connections)
    finally:
        for fd in filler:
            os.close(fd)
