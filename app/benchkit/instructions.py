"""``muxscope bench --only instructions``: machine instructions per echoed message, counted by
valgrind's callgrind, for the engine's hot paths against a bare select loop.

Timings on this 2-core VM move by ±5-10 % between runs; instruction counts repeat to a few
parts in 100,000 (hash seed fixed), so a change of ~1 % in the interpreter work per message is
visible at once, as long as nothing in the process allocates through glibc's malloc per
message (its cost follows the heap's layout, which any code change moves: the driver's peers
read into one buffer for that reason). Each variant runs twice (50 and 250 rounds of
50 x 1 KiB over socketpairs, `instr_driver`); the difference over 10,000 messages removes
start-up. The count is user-space only (the kernel's side of recv/send is not in it) and
includes the driver's own peers, which are the same for every variant. Under load ~1,000
instructions a message came to ~0.1 µs a round trip (docs/BENCHMARKS-history.md, session 6).
Not in the default run: about two minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from app.benchkit.procs import ROOT, child_env
from app.benchkit.report import table

ROUNDS = (50, 250)
VARIANTS = (
    ("bare select loop, queued", "bare:queued"),
    ("engine select queued, nobody watching", "select:queued:off"),
    ("engine select queued, observer active", "select:queued:active"),
    ("engine select queued, every iteration watched", "select:queued:watched"),
    ("engine poll queued, observer active", "poll:queued:active"),
    ("engine epoll queued, observer active", "epoll:queued:active"),
    ("bare select loop, eager", "bare:eager"),
    ("engine select eager, observer active", "select:eager:active"),
    ("engine epoll eager, observer active", "epoll:eager:active"),
)
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> bool:
    return shutil.which("valgrind") is not None


def count(spec: str, rounds: int) -> int:
    """Instructions callgrind counted for one driver run (the whole process)."""
    env = child_env()
    env["PYTHONHASHSEED"] = "0"  # dict and set layouts, hence the counts, repeat exactly
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             sys.executable, "-m", "app.benchkit.instr_driver", spec, str(rounds)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {spec} failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def per_message(spec: str, rounds: tuple[int, int] = ROUNDS) -> float:
    low, high = (count(spec, n) for n in rounds)
    return (high - low) / ((rounds[1] - rounds[0]) * 50)


def run(log: Callable[[str], None], rounds: tuple[int, int] = ROUNDS,
        variants: tuple[tuple[str, str], ...] = VARIANTS) -> dict[str, Any]:
    if not available():
        return {"error": "valgrind not found (Debian: apt-get install valgrind)", "rows": []}
    rows = []
    for label, spec in variants:
        log(f"  instructions: {label}")
        rows.append({"variant": label, "spec": spec, "per_message": per_message(spec, rounds)})
    return {"rounds": list(rounds), "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "rows": rows}


def render(data: dict[str, Any]) -> str:
    title = ("Interpreter work per message (callgrind instructions, user space; 50 conns x 1 KiB "
             "over socketpairs, in-process; the bare loop is the floor)")
    if data.get("error"):
        return f"{title}: n/a ({data['error']})\n"
    bare = {r["spec"].split(":")[1]: r["per_message"] for r in data["rows"]
            if r["spec"].startswith("bare:")}
    rows = []
    for r in data["rows"]:
        write = r["spec"].split(":")[1]
        floor = bare.get(write)
        over = None if r["spec"].startswith("bare:") or floor is None else (
            r["per_message"] - floor)
        rows.append([r["variant"], round(r["per_message"]), None if over is None else round(over)])
    return table(title, ["variant", "instructions/message", "over the bare loop"], rows)
