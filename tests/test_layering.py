"""mux/ imports only the standard library and itself; app/ uses mux only via its __all__."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", [a.name for a in node.names], node.level))
    return found


def test_mux_imports_only_stdlib_and_itself():
    bad = []
    for path in (ROOT / "mux").rglob("*.py"):
        for module, _, level in _imports(path):
            top = module.split(".")[0]
            if level or top == "mux" or top in sys.stdlib_module_names or top == "__future__":
                continue
            bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, bad


def test_app_uses_only_mux_public_names():
    import mux

    bad = []
    for path in (ROOT / "app").rglob("*.py"):
        for module, names, _ in _imports(path):
            if module.startswith("mux."):
                bad.append(f"{path.relative_to(ROOT)} imports {module} (use `from mux import`)")
            elif module == "mux":
                bad += [f"{path.relative_to(ROOT)} imports mux.{n}" for n in names
                        if n not in mux.__all__]
    assert not bad, bad
