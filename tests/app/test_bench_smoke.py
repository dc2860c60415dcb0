"""Smoke test of ``muxscope bench --quick``: it runs to the end and prints its ratio table.

A benchmark, not a timed test: no speed is asserted, only that every part completes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_bench_quick_completes_and_prints_ratio_table(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from app.bench import main; sys.exit(main(sys.argv[1:]))",
         "--quick", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "ratio vs asyncio" in out
    assert "load client:" in out
    reference = next(line for line in out.splitlines() if line.startswith("asyncio Protocol"))
    assert "1.00x" in reference
    assert any(line.startswith("bare epoll loop") and "x" in line for line in out.splitlines())
    assert "Wait cost vs idle fds" in out
    assert "Event delivery" in out
    assert "Engine cost per 1 KiB message" in out
    assert out_json.exists() and '"echo"' in out_json.read_text()
