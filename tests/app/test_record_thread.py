"""`--record` to a FIFO nobody reads, or whose reader stopped: the recorder's own thread waits,
nothing else does (the open and every write froze the asyncio loop, so every page and API
answer, and SIGTERM waited for the reader)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from app.record import JsonlRecorder
from app.record_thread import RecorderThread
from tests.app.test_cli import launch
from tests.conftest import wait_until

WAIT = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": 250, "ready": 0,
        "duration_us": 250}


def batch(first: int, n: int = 100) -> list[dict[str, object]]:
    return [{"seq": s, "ts": s / 1000, **WAIT} for s in range(first, first + n)]


def drain(fifo: Path) -> bytes:
    """Open the FIFO for reading (which frees a writer waiting in its open) and read it all."""
    with open(fifo, "rb") as f:
        return f.read()


def test_a_fifo_without_a_reader_stalls_only_the_recorders_thread(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    made: list[RecorderThread] = []
    maker = threading.Thread(target=lambda: made.append(RecorderThread(JsonlRecorder(fifo))),
                             daemon=True)
    maker.start()
    maker.join(5)
    assert made, "making the recorder waited for a reader"
    rec = made[0]
    rec.write_snapshot({}, 0, 1.0)
    rec(batch(1))
    with caplog.at_level(logging.WARNING, logger="app.record_thread"):
        rec.close(timeout=0.5)  # gives up on the writer stuck in its open
    assert "not taking writes" in caplog.text
    reader = threading.Thread(target=drain, args=(fifo,), daemon=True)
    reader.start()  # frees the writer's open: the thread ends
    reader.join(5)


def test_a_reader_that_stops_costs_events_not_a_stalled_caller(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The pump's calls return at once while the writer is stuck; what does not fit in the
    queue is left out (said once), and the stream stays whole lines with a seq gap."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads
    stop = threading.Event()
    try:
        rec = RecorderThread(JsonlRecorder(fifo), max_queued=4)
        rec.write_snapshot({}, 0, 1.0)
        with caplog.at_level(logging.ERROR, logger="app.record_thread"):
            for first in range(1, 100_000, 1000):  # ~15 MB: far more than a pipe holds
                returned = threading.Event()
                call = threading.Thread(
                    target=lambda f=first, r=returned: (rec(batch(f, 1000)), r.set()), daemon=True)
                call.start()
                assert returned.wait(5), f"the call with seq {first} blocked"
        # said once, not once a batch (twice when the writer thread starts late, under load:
        # it takes two batches off the full queue before its write blocks)
        assert 1 <= caplog.text.count("not keeping up") <= 2, caplog.text
        got = bytearray()

        def read_on() -> None:
            while not stop.is_set():
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    stop.wait(0.01)
                    continue
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=read_on, daemon=True)
        reader.start()  # the reader reads again: the writer catches up, and recording goes on
        wait_until(lambda: rec.backlog == 0, 10, "the writer to catch up")
        with caplog.at_level(logging.WARNING, logger="app.record_thread"):
            rec(batch(200_000, 10))
        assert "keeping up again" in caplog.text, caplog.text
        rec.close(timeout=10)
        wait_until(lambda: not reader.is_alive(), 10, "the end of the stream")
    finally:
        stop.set()
        os.close(fd)
    lines = [json.loads(line) for line in bytes(got).splitlines()]  # whole lines only
    seqs = [line["seq"] for line in lines]
    assert lines[0]["type"] == "snapshot" and seqs == sorted(seqs), seqs[:20]
    assert 1 < len(seqs) < 100_000, f"nothing was left out, or nothing written: {len(seqs)}"
    assert seqs[-10:] == list(range(200_000, 200_010)), f"recording did not go on: {seqs[-12:]}"


def test_the_dashboard_starts_and_stops_with_a_fifo_nobody_reads(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", "--record",
                str(fifo)) as run:
        dash = run.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")
        assert httpx.get(dash[1] + "healthz", timeout=5).json() == {"ok": True}
        code, stderr = run.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert "not taking writes" in stderr
