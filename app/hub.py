"""Fan-out of engine events to dashboard websockets: one encode per batch, bounded per client.

`Hub.publish_batches()` runs on the asyncio loop (called by the pump, `bridge.deliver`): it
takes a batch of events encoded once with orjson and appends the bytes to every subscriber's
queue. Each queue is bounded in bytes; when it overflows, its oldest batches are dropped — the
publisher never blocks and no queue grows. A subscriber never counts what it lost: `dropped` in
each frame is derived from seq gaps (`last seq of the frame - last seq sent before - events in
the frame`), so "the gaps add up to the sum of dropped" holds wherever an event was lost (at
the tap, in the pump or here).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MAX_CLIENTS = 16
DEFAULT_MAX_QUEUE_BYTES = 4 << 20
DEFAULT_SEND_TIMEOUT = 5.0
#: A client that acks but has taken nothing in for this long, its window full and events
#: waiting, is closed (app/routes/live.py): a page frozen for good, not one a busy machine slows
DEFAULT_ACK_TIMEOUT = 15.0
# Coalescing stops once a frame holds this much (a single larger batch still goes out whole).
MAX_FRAME_BYTES = 1 << 20
# publish() encodes in slices of this many events, so that a queue overflowing drops its oldest
# events in small steps instead of a whole pump tick (up to 20,000 events) at once.
BATCH_EVENTS = 1024
#: A client that acknowledges what it has taken in (the page sends `{"type": "ack", "seq": n}`)
#: is sent at most this many events past its last ack, and its queue keeps only its newest this
#: many. A page that falls behind then skips events (counted in `dropped`) instead of reading
#: ones seconds old out of the kernel's socket buffers, which no bound of ours reaches (166,155
#: events behind were seen). A client that never acknowledges is sent all its queue keeps.
ACK_WINDOW_EVENTS = 10_000


class HubFull(RuntimeError):
    """Raised by `Hub.subscribe()` when `max_clients` subscriptions are already open."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Encoded events: `data` is the JSON array `[...]` of `count` events, seqs ascending."""

    first_seq: int
    last_seq: int
    count: int
    data: bytes

    @classmethod
    def encode(cls, events: list[dict[str, Any]]) -> Batch:
        return cls(_own(events[0]["seq"]), _own(events[-1]["seq"]), len(events), _encode(events))

    def after(self, seq: int) -> Batch | None:
        """This batch without its events whose seq is <= `seq` (re-encoded), or None if empty."""
        if self.first_seq > seq:
            return self
        if self.last_seq <= seq:
            return None
        events = [event for event in orjson.loads(self.data) if event["seq"] > seq]
        return Batch.encode(events)


def _own(seq: int) -> int:
    """`seq` as an int object of the batch's own (`+ 0` makes a new one in CPython; the small
    ints are shared singletons anyway). A batch outlives the events it encodes (a trace
    ring, a replay), and one int of theirs that it kept pinned the allocator's arena those
    events were parsed into: a replay of 1,000,000 events held 656 MB once loaded, 151 MB
    with this (session 45)."""
    return seq + 0


def encode_batches(events: list[dict[str, Any]]) -> list[Batch]:
    """`events` as Batches of at most BATCH_EVENTS, each encoded once."""
    return [Batch.encode(events[start:start + BATCH_EVENTS])
            for start in range(0, len(events), BATCH_EVENTS)]


def _encode(events: list[dict[str, Any]]) -> bytes:
    try:
        return orjson.dumps(events)
    except orjson.JSONEncodeError:
        # e.g. a lone surrogate in a preview: replace it (slowly) rather than lose the batch.
        text = json.dumps(events, ensure_ascii=False, separators=(",", ":"), default=str)
        return text.encode("utf-8", "replace")


class Subscription:
    """One client's bounded queue of batches and its exact `dropped` accounting."""

    def __init__(self, max_queue_bytes: int) -> None:
        self.max_queue_bytes = max_queue_bytes
        self.queued_bytes = 0
        self.peak_queued_bytes = 0
        self.dropped_total = 0
        self.events_sent = 0
        self.queued_events = 0
        self._batches: deque[Batch] = deque()
        self._wake = asyncio.Event()
        self._last_seq: int | None = None
        self._start_seq: int | None = None
        # pacing (`ack`): None until the client first acknowledges; then the frames sent since
        # its last ack, as (last seq, events), and how many events they hold
        self._acked_seq: int | None = None
        self._unacked: deque[tuple[int, int]] = deque()
        self.unacked_events = 0
        self._blocked_since: float | None = None  # events waiting, the window full, since

    def push(self, batch: Batch) -> None:
        """Queue a batch; drop the oldest batches while over the byte bound. Never blocks."""
        if self._start_seq is not None and batch.first_seq <= self._start_seq:
            # Still in flight (tap, pump) when the snapshot was taken: the snapshot covers it.
            trimmed = batch.after(self._start_seq)
            if trimmed is None:
                return
            batch = trimmed
        self._batches.append(batch)
        self.queued_bytes += len(batch.data)
        self.queued_events += batch.count
        while self._batches and self._over_bound():
            self._drop_oldest()
        self.peak_queued_bytes = max(self.peak_queued_bytes, self.queued_bytes)
        if self._batches and not self._no_room_for(self._batches[0]):
            self._wake.set()

    def _over_bound(self) -> bool:
        """Over the byte bound, or (paced) still a window's events without the oldest batch."""
        if self.queued_bytes > self.max_queue_bytes:
            return True
        return self.paced and self.queued_events - self._batches[0].count >= ACK_WINDOW_EVENTS

    def _drop_oldest(self) -> None:
        oldest = self._batches.popleft()
        self.queued_bytes -= len(oldest.data)
        self.queued_events -= oldest.count

    @property
    def paced(self) -> bool:
        """True once the client has acknowledged events (see ACK_WINDOW_EVENTS)."""
        return self._acked_seq is not None

    def ack(self, seq: int) -> None:
        """The client has taken in the events up to `seq`: the window moves on."""
        if self._acked_seq is not None and seq <= self._acked_seq:
            return
        if self._acked_seq is None and self._last_seq is not None and self._last_seq > seq:
            # what went out before the first ack (up to a whole queue) is in flight as well
            self._unacked.append((self._last_seq, self._last_seq - seq))
            self.unacked_events = self._last_seq - seq
        self._acked_seq = seq
        self._blocked_since = None
        while self._unacked and self._unacked[0][0] <= seq:
            self.unacked_events -= self._unacked.popleft()[1]
        self._wake.set()

    def _room(self) -> int | None:
        """Events that may be sent now (None: no limit, the client does not acknowledge)."""
        return ACK_WINDOW_EVENTS - self.unacked_events if self.paced else None

    def blocked_for(self) -> float:
        """Seconds the window has been full with events waiting and no ack moving it (0 if
        not): a paced client that stopped taking frames in, whose socket no timeout reaches
        (the window fits in the buffers on the way, and stats frames are small)."""
        return 0.0 if self._blocked_since is None else time.monotonic() - self._blocked_since

    def _no_room_for(self, batch: Batch) -> bool:
        """A batch goes out whole (no re-encoding), once the window has room for all of it."""
        room = self._room()
        return room is not None and room < batch.count

    def start_after(self, seq: int) -> None:
        """Start the stream after the snapshot's `seq`: discard everything at or before it,
        whether queued already or published later (events still in the tap or the pump)."""
        self._last_seq = self._start_seq = seq
        kept: deque[Batch] = deque()
        for batch in self._batches:
            trimmed = batch.after(seq)
            if trimmed is not None:
                kept.append(trimmed)
        self._batches = kept
        self.queued_bytes = sum(len(batch.data) for batch in kept)
        self.queued_events = sum(batch.count for batch in kept)

    async def next_frame(self, timeout: float | None = None) -> bytes | None:
        """The next `events` frame (several batches coalesced), or None after `timeout` s."""
        if self._last_seq is None:
            raise RuntimeError("start_after(seq) must be called before next_frame()")
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see routes/live.py
                while not self._batches or self._no_room_for(self._batches[0]):
                    if self._batches and self._blocked_since is None:
                        self._blocked_since = time.monotonic()
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            return None
        return self._take_frame()

    def _take_frame(self) -> bytes:
        """Pop queued batches (up to MAX_FRAME_BYTES, and the ack window's room) and splice
        them into one frame."""
        assert self._last_seq is not None
        room = self._room()
        taken = [self._batches.popleft()]
        size, count = len(taken[0].data), taken[0].count
        while self._batches and size + len(self._batches[0].data) <= MAX_FRAME_BYTES and (
                room is None or count + self._batches[0].count <= room):
            taken.append(self._batches.popleft())
            size += len(taken[-1].data)
            count += taken[-1].count
        self.queued_bytes -= size
        self.queued_events -= count
        last_seq = taken[-1].last_seq
        dropped = last_seq - self._last_seq - count
        self._last_seq = last_seq
        self.dropped_total += dropped
        self.events_sent += count
        if room is not None:
            self._unacked.append((last_seq, count))
            self.unacked_events += count
        return events_frame(dropped, taken)


def events_frame(dropped: int, batches: list[Batch]) -> bytes:
    """`{"type":"events","dropped":n,"events":[...]}` from pre-encoded arrays, no re-encoding."""
    head = b'{"type":"events","dropped":%d,"events":' % dropped
    if len(batches) == 1:
        return b"".join((head, batches[0].data, b"}"))
    inner = b",".join(memoryview(batch.data)[1:-1] for batch in batches)
    return b"".join((head, b"[", inner, b"]}"))


class Hub:
    """Bounded fan-out: at most `max_clients` subscriptions of `max_queue_bytes` each."""

    def __init__(
        self,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
    ) -> None:
        self.max_clients = max_clients
        self.max_queue_bytes = max_queue_bytes
        self.send_timeout = send_timeout
        self.ack_timeout = ack_timeout
        self.events_published = 0
        self.peak_queued_bytes = 0  # the largest any subscription's queue has ever held
        self._subscriptions: set[Subscription] = set()
        #: told True when the first client subscribes and False when the last one leaves
        #: (the app gives the engine's idle waits a timeout only while a page watches)
        self.on_watched: Callable[[bool], None] | None = None

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def publish(self, events: list[dict[str, Any]]) -> None:
        """Encode `events` once and queue them for every subscriber (call on the loop)."""
        if not self._subscriptions:  # nobody listens: nothing to encode
            self.events_published += len(events)
            return
        self.publish_batches(encode_batches(events))

    def publish_batches(self, batches: list[Batch]) -> None:
        """Queue already-encoded batches for every subscriber (the pump encodes once for all)."""
        for batch in batches:
            self.events_published += batch.count
            for subscription in self._subscriptions:
                subscription.push(batch)
                self.peak_queued_bytes = max(self.peak_queued_bytes, subscription.queued_bytes)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription for the duration of the block; `HubFull` if there is no room."""
        if len(self._subscriptions) >= self.max_clients:
            raise HubFull(f"too many dashboard clients (max {self.max_clients}): close another "
                          "muxscope tab, or start it with a larger --max-clients")
        subscription = Subscription(self.max_queue_bytes)
        self._subscriptions.add(subscription)
        if len(self._subscriptions) == 1 and self.on_watched is not None:
            self.on_watched(True)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            if not self._subscriptions and self.on_watched is not None:
                self.on_watched(False)
