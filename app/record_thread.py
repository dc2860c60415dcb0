"""`--record` off the asyncio loop: the recorder writes on its own thread.

A write can block for as long as the other end likes: a FIFO whose reader stopped reading (or
never came), a slow or hung disk. Done on the asyncio loop, that froze every page and every
API answer, and SIGTERM waited for the reader. Here the pump only hands each batch to a
bounded queue (`put_nowait`: never blocks). When the writer is that far behind, the batch is
left out: a seq gap in the file, which replay counts as `dropped`, and said once in the log.
At shutdown the writer gets SHUTDOWN_GRACE seconds to finish; a writer still stuck then is
left behind (a daemon thread) with a warning.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from app.record import JsonlRecorder

log = logging.getLogger(__name__)
MAX_DROPPED_RANGES = 1024
MAX_QUEUED_BATCHES = 256  # ~8 s of pump batches (one per 30 ms)
SHUTDOWN_GRACE = 2.0

_STOP = object()


class RecorderThread:
    """A pump consumer with `JsonlRecorder`'s interface, writing on a thread of its own."""

    def __init__(self, recorder: JsonlRecorder, max_queued: int = MAX_QUEUED_BATCHES) -> None:
        self.recorder = recorder
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._left_out = 0  # events not queued since the writer fell behind
        self._left_out_total = 0
        # (first seq, last seq, events) of the batches left out, for the recorder's count of a
        # lag it leaves out at a rotation (they are in it: not counted twice); bounded
        self._dropped: list[tuple[int, int, int]] = []
        self._dropped_lock = threading.Lock()
        recorder.dropped_between = self._dropped_between
        self._thread = threading.Thread(target=self._run, name="muxscope-recorder", daemon=True)

    def write_snapshot(self, state: dict[str, Any], seq: int, started_at: float) -> None:
        self._put(lambda: self.recorder.write_snapshot(state, seq, started_at), 0)

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        seqs = (batch[0]["seq"], batch[-1]["seq"]) if batch else None
        self._put(lambda: self.recorder(batch), len(batch), seqs)

    def _dropped_between(self, lo: int, hi: int) -> int:
        """Events of the batches left out with lo < seq <= hi (a batch across a bound: its
        events, at most as many as its seqs inside)."""
        with self._dropped_lock:
            return sum(min(n, min(last, hi) - max(first - 1, lo))
                       for first, last, n in self._dropped if last > lo and first <= hi)

    def close(self, timeout: float = SHUTDOWN_GRACE) -> None:
        """Write what is queued, close the file; give up after `timeout` s of a stuck write."""
        if not self._thread.is_alive():  # never started (or gone): nothing is queued
            self.recorder.close()
            return
        deadline = time.monotonic() + timeout  # one grace for both: the put and the join
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("--record: %s is not taking writes (a FIFO nobody reads?); the end of "
                        "the recording is lost", self.recorder.path)

    @property
    def lost(self) -> int:
        """Events the recording lacks for good: left out while the writer was behind, lost
        to writes that failed (each a seq gap in the file), or left out at a rotation far
        behind the engine (a gap between two files); each said on stderr too."""
        recorder = self.recorder
        return self._left_out_total + recorder.lost_total + recorder.left_out_total

    @property
    def backlog(self) -> int:
        """Batches waiting for the writer."""
        return self._queue.qsize()

    def _put(self, work: Callable[[], None], events: int,
             seqs: tuple[int, int] | None = None) -> None:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()  # at the first write: an app built but never run starts none
        try:
            # once behind, caught up only when half the queue is free again (not on every
            # batch the stuck writer manages to take: one message, not one per batch)
            if self._left_out and self._queue.qsize() > self._queue.maxsize // 2:
                raise queue.Full
            self._queue.put_nowait(work)
        except queue.Full:
            if not self._left_out:
                log.error("--record: %s is not keeping up (a FIFO whose reader stopped? a "
                          "stalled disk?); events are left out until it does (a seq gap in "
                          "the file)", self.recorder.path)
            self._left_out += events
            self._left_out_total += events
            if seqs is not None:
                with self._dropped_lock:
                    self._dropped.append((*seqs, events))
                    if len(self._dropped) > MAX_DROPPED_RANGES:  # the oldest two as one
                        (a, _, n), (_, b, m) = self._dropped[:2]
                        self._dropped[:2] = [(a, b, n + m)]
            return
        if self._left_out:
            log.warning("--record: %s is keeping up again; %d events were left out",
                        self.recorder.path, self._left_out)
            self._left_out = 0

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is _STOP:
                self.recorder.close()
                return
            try:
                work()
            except Exception:  # noqa: BLE001 - the recording must not end on one bad batch
                log.exception("--record: a batch could not be written")
