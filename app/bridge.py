"""The one door for events from the engine thread to the asyncio loop.

The engine calls `EventTap.sink` for every event on its own thread. The sink is the bound
`append` of a `deque(maxlen=N)`: implemented in C, atomic under the GIL, O(1), never blocks and
never grows past N (the oldest events fall off). Nothing here counts losses: the seq gaps they
leave are turned into exact `dropped` counts per client by the hub.

`pump()` runs on the loop and drains the deque on a timer (~30 ms), so the engine never pays a
`call_soon_threadsafe` (a syscall) per event, and hands each batch to the hub and to any other
per-batch consumers (trace ring, recorder, metrics).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from app.hub import Batch, Hub, encode_batches

log = logging.getLogger(__name__)

Event = dict[str, Any]
Consumer = Callable[[list[Event]], None]
EncodedConsumer = Callable[[list[Batch]], None]

DEFAULT_TAP_SIZE = 100_000
DEFAULT_MAX_BATCH = 20_000
DEFAULT_INTERVAL = 0.03


class EventTap:
    """An engine observer that parks events in a bounded deque for the pump."""

    def __init__(self, maxlen: int = DEFAULT_TAP_SIZE) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)
        # One bound method object, kept, so `observers.remove(tap.sink)` finds it again.
        self.sink: Callable[[Event], None] = self._events.append

    def __len__(self) -> int:
        return len(self._events)

    @property
    def maxlen(self) -> int:
        return self._events.maxlen or 0

    def drain(self, limit: int = DEFAULT_MAX_BATCH) -> list[Event]:
        """Take up to `limit` of the events present now, oldest first; the rest stay for the
        next drain (the tap's own bound is what drops events, the oldest, and only when the
        engine outruns the pump for a while: a recording loses nothing to a burst).

        At most `limit` are taken, so a producer that keeps appending cannot keep this loop
        (and the asyncio loop) busy forever.
        """
        popleft = self._events.popleft
        return [popleft() for _ in range(min(len(self._events), limit))]


async def pump(
    tap: EventTap,
    hub: Hub,
    interval: float = DEFAULT_INTERVAL,
    consumers: Sequence[Consumer] = (),
    max_batch: int = DEFAULT_MAX_BATCH,
    encoded_consumers: Sequence[EncodedConsumer] = (),
) -> None:
    """Every `interval` s, move what the tap holds to the hub and the consumers. Runs forever.

    Cancel the task to stop it. A failing consumer (or an event that cannot be encoded) is
    logged and the pump goes on: the lost batch shows up as a seq gap, i.e. as `dropped`.
    """
    while True:
        await asyncio.sleep(interval)
        batch = tap.drain(max_batch)
        if batch:
            deliver(batch, hub, consumers, encoded_consumers)


def flush(tap: EventTap, hub: Hub, consumers: Sequence[Consumer] = (),
          encoded_consumers: Sequence[EncodedConsumer] = ()) -> None:
    """Deliver what the tap holds now (at shutdown, once the engine has stopped), in at
    most as many batches as a full tap takes, so a producer still running cannot keep it
    going."""
    for _ in range(-(-tap.maxlen // DEFAULT_MAX_BATCH)):
        batch = tap.drain()
        if not batch:
            return
        deliver(batch, hub, consumers, encoded_consumers)


def deliver(batch: list[Event], hub: Hub, consumers: Sequence[Consumer] = (),
            encoded_consumers: Sequence[EncodedConsumer] = ()) -> None:
    """Encode the batch once, hand it to the hub and to each consumer, isolating failures."""
    try:
        encoded = encode_batches(batch)
    except Exception:
        log.exception("a batch of %d events could not be encoded", len(batch))
        encoded = []
    for take_encoded in (hub.publish_batches, *encoded_consumers):
        _call(take_encoded, encoded, len(batch))
    for consume in consumers:
        _call(consume, batch, len(batch))


def _call(consume: Callable[[Any], None], arg: Any, size: int) -> None:
    try:
        consume(arg)
    except Exception:
        log.exception("event consumer %r failed on a batch of %d events", consume, size)
