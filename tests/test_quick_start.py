"""SPEC §1 and the brief: the README's quick start is exactly two commands (install+run,
install+test), and CI runs the same test command."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```sh\n(.*?)```", readme, re.S)
    assert block, "no quick start block"
    commands = [line for line in block[1].splitlines() if line.strip()]
    assert commands == ["./scripts/run", "./scripts/test"]
    for script in ("scripts/run", "scripts/test", ".ci/run"):
        assert os.access(ROOT / script, os.X_OK), f"{script} is not executable"
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == "exec ./scripts/test"
    test = (ROOT / "scripts/test").read_text()
    assert "pip install" in test and "apt_install" in test and "pytest" in test
    assert "pip install" in (ROOT / "scripts/run").read_text()
