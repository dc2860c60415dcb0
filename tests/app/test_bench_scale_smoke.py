"""Smoke test of ``muxscope bench --only scale`` on a small scale: it runs to the end, the page
in headless Chromium, and reports where the page's frames went.

A benchmark, not a timed test: no speed is asserted, only that every figure is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_a_short_scale_run_completes_and_reports_the_pages_stalls(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "bench", "--only", "scale", "--scale-seconds", "3",
         "--scale-conns", "300", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    out = proc.stdout
    assert "idle connections held (start / end)" in out and "300 / 300" in out
    assert "page rAF callbacks/s: min" in out
    scale = json.loads(out_json.read_text())["scale"]
    assert scale["held"] == 300 and scale["raf_seconds"] >= 1
    # one connection's ping-pong is over the page's budget: events are dropped, and the page
    # reads the state again (every second, with few connections); each resync is timed
    assert scale["dropped"] > 0
    assert scale["resyncs"], "no resync timed"
    assert all(r["fetch_ms"] >= 0 and r["apply_ms"] >= 0 for r in scale["resyncs"])
    assert "Page resyncs (GET /api/state after dropped events):" in out
    assert isinstance(scale["frame_gaps"], list)
    assert isinstance(scale["long_tasks"], list), "Chromium reported no long-task timing"
    # the page's main thread's own time against its time queued for a CPU: long tasks are
    # wall time, and most of theirs at 10,000 connections was the wait
    sched = scale["renderer_main_pct"]
    assert sched is not None and sched["ran"] > 0 and sched["waited"] >= 0, sched
    assert "Page main thread (its scheduler counters): ran" in out
