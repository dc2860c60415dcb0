"""sha256-verified echo under concurrency, per mode and across live backend switches."""

from __future__ import annotations

import itertools

import pytest

from .conftest import MODE_IDS, MODES
from .traffic import check, start_clients

CLIENTS = 16
PER_CLIENT = 1_000_000


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("write", ["queued", "eager"])
def test_checksums_per_mode(make_engine, mode, write):
    backend, trigger, oneshot = mode
    engine, _ = make_engine(backend=backend, trigger=trigger, oneshot=oneshot, write=write,
                            observe=False)
    check(start_clients(engine.tcp_port, CLIENTS, PER_CLIENT), PER_CLIENT)


def test_checksums_across_live_switches(make_engine):
    engine, rec = make_engine(backend="epoll")
    results = start_clients(engine.tcp_port, CLIENTS, PER_CLIENT)
    cycle = itertools.cycle([(*m, w) for m in MODES for w in ("queued", "eager")])
    switches = 0
    while switches < 10 or not all(r.done.is_set() for r in results):
        name, trigger, oneshot, write = next(cycle)
        engine.switch_backend(name, trigger, oneshot, write).result(10)
        switches += 1
        if switches > 2000:
            break
    check(results, PER_CLIENT)
    assert switches >= 10
    assert len(rec.of("backend")) == switches


BIG_CLIENTS = 32
BIG_PER_CLIENT = 4 * 1024 * 1024


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_32_clients_4mb_each(make_engine, backend):
    engine, _ = make_engine(backend=backend, observe=False)
    check(start_clients(engine.tcp_port, BIG_CLIENTS, BIG_PER_CLIENT), BIG_PER_CLIENT,
          timeout=120)


def test_32_clients_4mb_each_switching_every_50ms(make_engine):
    engine, _ = make_engine(backend="epoll", observe=False)
    results = start_clients(engine.tcp_port, BIG_CLIENTS, BIG_PER_CLIENT)
    cycle = itertools.cycle([(*m, w) for m in MODES for w in ("queued", "eager")])
    switches = 0
    while not all(r.done.is_set() for r in results):
        engine.switch_backend(*next(cycle)).result(10)
        switches += 1
        results[0].done.wait(0.05)  # the switch period; a finished client ends it early
    check(results, BIG_PER_CLIENT, timeout=120)
    assert switches >= 5
