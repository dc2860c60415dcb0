"""Plain-text tables and small statistics for the benchmark's output."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Cell = str | int | float | None


def median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and v == v and v != float("inf")]
    return statistics.median(vals) if vals else None


def fmt(value: Cell, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """A fixed-width table: first column left-aligned, the others right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        first = items[0].ljust(widths[0])
        rest = [s.rjust(w) for s, w in zip(items[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(list(headers)), sep, *(line(r) for r in cells), ""])
