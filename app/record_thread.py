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
from collections.abc import Callable
from typing import Any

from app.record import JsonlRecorder

log = logging.getLogger(__name__)
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
        self._thread = threading.Thread(target=self._run, name="muxscope-recorder", daemon=True)

    def write_snapshot(self, state: dict[str, Any], seq: int, started_at: float) -> None:
        self._put(lambda: self.recorder.write_snapshot(state, seq, started_at), 0)

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self._put(lambda: self.recorder(batch), len(batch))

    def close(self, timeout: float = SHUTDOWN_GRACE) -> None:
        """Write what is queued, close the file; give up after `timeout` s of a stuck write."""
        if not self._thread.is_alive():  # never started (or gone): nothing is queued
            self.recorder.close()
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("--record: %s is not taking writes (a FIFO nobody reads?); the end of "
                        "the recording is lost", self.recorder.path)

    @property
    def lost(self) -> int:
        """Events the recording lacks for good: left out while the writer was behind, or
        lost to writes that failed (each a seq gap in the file: said on stderr too)."""
        return self._left_out_total + self.recorder.lost_total

    @property
    def backlog(self) -> int:
        """Batches waiting for the writer."""
        return self._queue.qsize()

    def _put(self, work: Callable[[], None], events: int) -> None:
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
