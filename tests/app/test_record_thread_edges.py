"""The recorder's thread when the writer falls behind: which events it says it left out (for
a rotation's count of its lag), and when it says it keeps up again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import record_thread
from app.record import JsonlRecorder
from app.record_thread import RecorderThread
from tests.conftest import wait_until

WAIT = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": 250, "ready": 0,
        "duration_us": 250}


def batch(first: int, n: int) -> list[dict[str, object]]:
    return [{"seq": s, "ts": s / 1000, **WAIT} for s in range(first, first + n)]


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[RecorderThread, list[threading.Event]]]:
    """A RecorderThread (queue of 4) whose writer is stuck in a first work item; the queue
    then holds four more stuck items (full). Each event set frees one item."""
    thread = RecorderThread(JsonlRecorder(tmp_path / "r.jsonl"), max_queued=4)
    thread.write_snapshot({}, 0, 1.0)
    gates = [threading.Event() for _ in range(5)]
    thread._put(gates[0].wait, 0)
    wait_until(lambda: thread.backlog == 0, 5, "the writer to take the first item")
    for gate in gates[1:]:
        thread._put(gate.wait, 0)
    assert thread.backlog == 4
    try:
        yield thread, gates
    finally:
        for gate in gates:
            gate.set()
        thread.close(timeout=5)


def test_the_events_left_out_are_counted_by_seq_range(
        stalled: tuple[RecorderThread, list[threading.Event]]) -> None:
    thread, _ = stalled
    thread(batch(5, 3))  # 5, 6, 7: left out
    thread(batch(20, 10))  # 20 ... 29: left out
    between = thread.recorder.dropped_between
    assert between(0, 100) == 13 == thread.lost
    assert between(4, 5) == 1  # a range starting at the bound's seq: its first event
    assert between(6, 100) == 11 and between(7, 100) == 10
    assert between(0, 4) == 0 and between(29, 100) == 0
    assert between(5, 25) == 2 + 6


def test_the_events_left_out_stay_counted_when_their_ranges_are_merged(
        stalled: tuple[RecorderThread, list[threading.Event]]) -> None:
    thread, _ = stalled
    n = record_thread.MAX_DROPPED_RANGES + 50
    for i in range(n):
        thread(batch(10 * i + 1, 2))  # every other range merged with the next: none lost
    assert thread.lost == 2 * n
    assert thread.recorder.dropped_between(0, 10 * n) == 2 * n


def test_once_behind_it_catches_up_only_when_half_the_queue_is_free(
        stalled: tuple[RecorderThread, list[threading.Event]],
        caplog: pytest.LogCaptureFixture) -> None:
    """One "not keeping up" and one "keeping up again" for a writer that frees a slot now
    and then: not a pair of messages for each batch it manages to take."""
    thread, gates = stalled
    with caplog.at_level(logging.WARNING, logger="app.record_thread"):
        thread(batch(1, 10))  # left out: the queue is full
        gates[0].set()  # the writer takes the next stuck item: one slot free
        wait_until(lambda: thread.backlog == 3, 5, "the writer to take one item")
        thread(batch(11, 10))  # still left out: the queue is more than half full
        thread(batch(21, 10))
        assert thread.lost == 30
        gates[1].set()
        wait_until(lambda: thread.backlog == 2, 5, "the writer to take one more")
        thread(batch(31, 10))  # half free: queued again
        thread(batch(41, 10))  # and so is the next (three queued of four)
    assert thread.lost == 30
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not keeping up" in m for m in messages) == 1, messages
    again = [m for m in messages if "keeping up again" in m]
    assert len(again) == 1 and "30 events were left out" in again[0], messages


def test_a_recorder_never_written_to_closes_its_file(tmp_path: Path) -> None:
    """An app built but never run: no thread started, and close() still closes the file."""
    import os

    path = tmp_path / "r.jsonl"
    thread = RecorderThread(JsonlRecorder(path))

    def ours() -> list[str]:
        fds = Path("/proc/self/fd")
        return [fd.name for fd in fds.iterdir()
                if os.path.realpath(fd) == str(path.resolve())]

    assert ours(), "the file is not open"
    thread.close()
    assert not ours()


def test_a_stuck_writer_and_a_full_queue_are_given_up_on_within_one_grace(
        stalled: tuple[RecorderThread, list[threading.Event]]) -> None:
    """The put of the stop waited its timeout, then the join another: a SIGTERM took twice
    the shutdown grace (4 s) with a FIFO nobody reads."""
    thread, _ = stalled
    start = time.monotonic()
    thread.close(timeout=1.0)
    took = time.monotonic() - start
    assert 0.9 <= took < 1.5, f"close(timeout=1.0) took {took:.2f} s"
