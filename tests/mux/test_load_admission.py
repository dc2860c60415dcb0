"""The load generator's admission checks at their exact boundaries (mux/load.py `_add`): the
server's --max-connections counts a client of ours once, accepted or not; each client costs
two fds below the ceiling, one of them not taken yet while the server has not accepted it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import mux.load
from mux import Engine, LoadFdError, LoadGenerator, LoadLimitError

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
        assert generator.describe() == {"connections": 0, "cap": 10, "errors": 3, "wrong": 0}
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
