"""The scale part's report: verdicts against the targets and the printed tables (see
scale.py for what is measured and how)."""

from __future__ import annotations

import statistics
from typing import Any

from app.benchkit.report import fmt, table

#: the issue's targets (docs/BENCHMARKS.md, Scale)
TARGETS = {"p99_ms": 5.0, "rss_mb": 300.0, "state_ms": 1000.0, "raf_per_s": 30.0}
SETTLE_LIMIT = 20.0  # seconds: the page's start-up, before the measured window


def verdicts(d: dict[str, Any]) -> dict[str, bool | None]:
    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value < limit

    raf = d["raf_min"]
    return {"conns": d["held"] >= d["conns"] and d["held_at_end"] >= d["conns"],
            "p99_ms": at_most(d["active"]["p99_ms"], TARGETS["p99_ms"]),
            "rss_mb": at_most(d["rss_max_mb"], TARGETS["rss_mb"]),
            "state_ms": at_most(d["state_max_ms"], TARGETS["state_ms"]),
            "raf_per_s": None if raf is None else raf >= TARGETS["raf_per_s"]}


def _ok(v: bool | None) -> str:
    return "-" if v is None else "ok" if v else "MISSED"


def _stalls(d: dict[str, Any]) -> str:
    """Where the frames went: the page's resyncs, its gaps between frames over 100 ms and the
    main thread's long tasks (over 50 ms, whatever ran them: script, JSON parse, GC)."""
    out = ""
    syncs = d.get("resyncs") or []
    if syncs:
        fetch = [r["fetch_ms"] for r in syncs]
        apply = [r["apply_ms"] for r in syncs]
        out += (f"Page resyncs (GET /api/state after dropped events): {len(syncs)}; fetch+parse"
                f" ms median {statistics.median(fetch):.0f} max {max(fetch):.0f}; apply ms "
                f"median {statistics.median(apply):.0f} max {max(apply):.0f}\n")
    gaps = d.get("frame_gaps") or []
    if gaps:
        worst = sorted(gaps, key=lambda g: -g["ms"])[:3]
        out += (f"Gaps between frames over 100 ms: {len(gaps)}; longest: "
                + "; ".join(f"{g['ms']:.0f} ms at {g['t_s']:.1f} s" for g in worst) + "\n")
    tasks = d.get("long_tasks")
    if tasks:
        worst = sorted(tasks, key=lambda x: -x["ms"])[:3]
        out += (f"Main-thread tasks over 50 ms: {len(tasks)} ({sum(x['ms'] for x in tasks):.0f}"
                " ms in all); longest: "
                + "; ".join(f"{x['ms']:.0f} ms at {x['t_s']:.1f} s" for x in worst) + "\n")
    return out


def _cpus(d: dict[str, Any]) -> str:
    """Where Chromium ran: the CPUs read from its processes, and what was asked."""
    asked = "either CPU" if d.get("page_cpus") == "all" else "CPU 1, with the clients"
    seen = d.get("chromium_cpus")
    return asked if seen is None else f"{asked} (its affinity: CPUs {seen})"


def render(d: dict[str, Any]) -> str:
    a, v = d["active"], d["verdicts"]
    rows: list[list[Any]] = [
        ["idle connections held (start / end)", f"{d['held']:,} / {d['held_at_end']:,}",
         f"{d['conns']:,}", _ok(v["conns"])],
        ["seconds (active client window)", d["seconds"], "", ""],
        ["active 1 x 64 B: p50 ms", a["p50_ms"], "", ""],
        ["active 1 x 64 B: p99 ms", a["p99_ms"], f"< {TARGETS['p99_ms']:g}", _ok(v["p99_ms"])],
        ["active 1 x 64 B: max ms", a["max_ms"], "", ""],
        ["active 1 x 64 B: round trips/s", a["rt_per_s"], "", ""],
        ["server RSS max MB", d["rss_max_mb"], f"< {TARGETS['rss_mb']:g}", _ok(v["rss_mb"])],
        ["GET /api/state max ms", d["state_max_ms"], f"< {TARGETS['state_ms']:g}",
         _ok(v["state_ms"])],
        ["GET /api/state size KiB", d["state_kb"], "", ""],
        ["page rAF callbacks/s: min", d["raf_min"], f">= {TARGETS['raf_per_s']:g}",
         _ok(v["raf_per_s"])],
        ["page rAF callbacks/s: median", d["raf_median"], "", ""],
        ["page events/s received", d["events_per_s"], "", ""],
        ["server CPU %", d["server_cpu_pct"], "", ""],
    ]
    if a["p99_ms"] is not None:
        for r in rows[2:5]:
            r[1] = f"{r[1]:,.3f}"
    budget = "" if d.get("budget") is None else f", observation budget {d['budget']:,} events/s"
    title = (f"Scale: {d['conns']:,} idle connections on epoll (app, queued write{budget}) "
             f"with the page open in headless Chromium; active client 1 conn x 64 B ping-pong "
             f"({d['client']}); Chromium on {_cpus(d)}; connected in {d['connect_s']:.1f} s, "
             f"page live in "
             f"{d.get('snapshot_s', 0):.1f} s, "
             + ("settled (a second at >= 30 rAF/s) in " if d.get("settled", True)
                else f"NOT settled (no second at >= 30 rAF/s within {SETTLE_LIMIT:g} s) after ")
             + f"{d.get('settled_s', 0):.1f} s")
    out = table(title, ["measure", "value", "target", "result"], rows)
    sample_rows = [[f"{s['t_s']:.0f}", s["state_ms"], s["state_kb"], s["rss_mb"],
                    s["raf_min"], s["raf_median"], s.get("steal_pct")] for s in d["samples"]]
    out += "\n" + table("Scale samples (every ~5 s; rAF/s over the 1 s windows since the last "
                        "sample; steal: % of the CPUs' time the VM's host took)",
                        ["t s", "/api/state ms", "state KiB", "RSS MB", "rAF/s min",
                         "rAF/s median", "steal %"], sample_rows)
    top = list(d["paint_ms_per_s"].items())[:6]
    if top:
        out += ("\nPage paint time, ms per second of page time (window.__muxscope.paintMs): "
                + ", ".join(f"{k} {val:.1f}" for k, val in top) + "\n")
    slow = d.get("slow_frames") or []
    if slow:
        worst = sorted(slow, key=lambda f: -f["ms"])[:3]
        out += (f"Page paints over 30 ms in the window: {len(slow)}"
                + (" (the page keeps 50)" if len(slow) >= 50 else "") + "; longest: "
                + "; ".join(f"{f['ms']:.0f} ms at {f['t_s']:.1f} s ("
                            + ", ".join(f"{k} {v:.0f}" for k, v in f["panels"].items()) + ")"
                            for f in worst) + "\n")
    out += _stalls(d)
    main = d.get("page_main_ms_per_s") or {}
    if main:
        out += ("Page main thread, ms per second (CDP Performance.getMetrics): "
                + ", ".join(f"{k.removesuffix('Duration').lower()} {v:.0f}"
                            for k, v in main.items()) + "\n")
    sched = d.get("renderer_main_pct")
    if sched:
        # a long task is wall time: much of one can be the thread queued behind the active
        # client and Chromium's other processes on its CPU, not the page's own work
        out += (f"Page main thread (its scheduler counters): ran {sched['ran']:.0f} % of the "
                f"window, waited for a CPU {sched['waited']:.0f} %\n")
    chrome = d.get("chromium_cpu_pct") or {}
    out += ("CPU %: server " + fmt(d["server_cpu_pct"]) + "; Chromium "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(chrome.items(), key=lambda kv: -kv[1]))
            + "; machine per CPU " + " / ".join(f"{v:.0f}" for v in d.get("cpu_busy_pct", []))
            + ("" if d.get("steal_pct") is None
               else f"; taken by the VM's host {d['steal_pct']:.1f}")
            + "\n")
    if d.get("console_errors"):
        out += f"page console errors: {len(d['console_errors'])}: {d['console_errors'][0]}\n"
    return out
