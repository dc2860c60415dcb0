"""`muxscope bench --only instructions`: the driver echoes in every variant, and callgrind's
counts come out per message, the engine above the bare loop it is read against."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.benchkit import instructions
from app.benchkit.procs import ROOT, child_env

# the heaviest on the CPU: on one worker (scripts/test: --dist loadgroup), never two at once
pytestmark = pytest.mark.xdist_group("heavy")


def test_every_variant_of_the_driver_runs():
    for _, spec in instructions.VARIANTS:
        proc = subprocess.run([sys.executable, "-m", "app.benchkit.instr_driver", spec, "3"],
                              cwd=ROOT, env=child_env(), capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, (spec, proc.stderr[-1000:])


@pytest.mark.timeout(180)  # ~7 s alone; callgrind slows 10x on a 2-core machine run busy
def test_callgrind_counts_per_message():
    assert instructions.available(), "valgrind is installed by scripts/test"
    # The two variants run side by side (callgrind counts instructions, not time: running
    # them at once changes no count), each through the bench's own run(); ~7 s, not ~12 s.
    variants = (("bare select loop, queued", "bare:queued"),
                ("engine select queued, observer active", "select:queued:active"))
    with ThreadPoolExecutor(len(variants)) as pool:
        parts = list(pool.map(lambda v: instructions.run(lambda _: None, rounds=(2, 6),
                                                         variants=(v,)), variants))
    data = {**parts[0], "rows": [row for part in parts for row in part["rows"]]}
    assert [row["spec"] for row in data["rows"]] == [spec for _, spec in variants]
    bare, engine = (row["per_message"] for row in data["rows"])
    # the bare loop's recv, send and select cost thousands of instructions a message; the
    # engine does the same calls and its own bookkeeping on top
    assert 2_000 < bare < engine < 10 * bare
    text = instructions.render(data)
    assert "engine select queued, observer active" in text and "over the bare loop" in text
