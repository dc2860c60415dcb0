"""The load generator's contract (SPEC §4, POST /api/load): the cap, rate 0 = idle, the
message size, and DELETE starting afresh."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mux import Engine, LoadCapError, LoadGenerator

from .conftest import wait_until


@contextmanager
def _load(port: int, cap: int = 2000) -> Iterator[LoadGenerator]:
    generator = LoadGenerator("127.0.0.1", port, cap=cap)
    try:
        yield generator
    finally:
        generator.close()


def _settled(engine: Engine, generator: LoadGenerator) -> None:
    """Let both threads handle what was ready before this call: each no-op request is answered
    after the wait that returned it (and what that wait returned with it) was handled."""
    for _ in range(2):
        generator.add(0, 1, 0).result(5)
        engine.call(lambda: None).result(5)


def test_the_cap_admits_exactly_the_cap_then_refuses_one_more(make_engine: Any) -> None:
    """SPEC: beyond the cap -> refused naming the cap; up to it, every client is made."""
    engine, _ = make_engine()
    with _load(engine.tcp_port, cap=3) as generator:
        assert generator.add(2, 16, 0).result(5) == 2
        assert generator.add(1, 16, 0).result(5) == 3  # 2 + 1 == the cap: allowed
        with pytest.raises(LoadCapError, match="capped at 3 clients"):
            generator.add(1, 16, 0).result(5)
        assert generator.describe()["connections"] == 3


def test_rate_zero_clients_connect_and_stay_idle(make_engine: Any) -> None:
    """rate 0 = idle (SPEC §4): connections to multiplex that send nothing at all."""
    engine, rec = make_engine()
    with _load(engine.tcp_port) as generator:
        generator.add(3, 64, 0).result(5)
        wait_until(lambda: len(engine.connections) == 3, what="3 idle clients accepted")
        _settled(engine, generator)
        assert rec.of("recv") == [], "a rate-0 client sent something"
        assert engine.counters()["bytes_in"] == 0


@pytest.mark.parametrize("size", [1, 15, 100, 4097])
def test_each_message_is_exactly_message_size_bytes(make_engine: Any, size: int) -> None:
    """The engine receives `message_size` bytes per message: not the pattern rounded up to
    its next block (100 became 104 bytes on the wire)."""
    engine, rec = make_engine()
    with _load(engine.tcp_port) as generator:
        generator.add(1, size, 0.01).result(5)  # one message now, the next in 100 s
        wait_until(lambda: engine.counters()["bytes_in"] >= size, what=f"{size} bytes in")
        _settled(engine, generator)
        assert engine.counters()["bytes_in"] == size
        assert generator.describe()["wrong"] == 0


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, never listening)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        return int(holder.getsockname()[1])


def test_removing_the_load_clears_its_error_count() -> None:
    """DELETE /api/load closes every client and starts afresh: the errors of the clients it
    removed are not charged to the next load."""
    with _load(_refused_port()) as generator:
        generator.add(3, 16, 1).result(5)
        wait_until(lambda: generator.describe()["errors"] == 3, what="3 refused connects")
        assert generator.remove_all().result(5) == 0
        assert generator.describe() == {"connections": 0, "cap": 2000, "errors": 0,
                                        "wrong": 0}
