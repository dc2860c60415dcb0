"""Part 5: scale — many idle connections on epoll with the page open (``--only scale`` only).

The issue's target: 10,000 concurrent connections on epoll for 60 s with the dashboard open in
headless Chromium; beside them an active client's p99 echo latency < 5 ms, the server's RSS
< 300 MB, ``GET /api/state`` answers in < 1 s, and the page keeps >= 30 requestAnimationFrame
callbacks per second.

Processes (SPEC §7: scale clients run in a separate process from the server):

- the server: the app as ``muxscope`` runs it (``serve app:queued``: create_app + uvicorn, its
  engine on epoll level-triggered, queued write, ``max_connections`` 12,000), pinned to CPU 0;
- the holder (``pyclient idle``) opens the idle connections in batches of `BATCH` (below the
  listen backlog of 1,024) and keeps them open; after each batch the benchmark waits until
  ``GET /api/state`` counts them;
- headless Chromium (Playwright, Debian's /usr/bin/chromium) on the dashboard; an injected
  requestAnimationFrame loop counts callbacks per second of ``performance.now()``, with the
  page's own ``eventsApplied`` and ``paints`` counters alongside;
- the active client: the load client (C or Python, as for ``echo``), 1 connection x 64 B
  ping-pong, closed loop, latency of every message.

The server pins itself to CPU 0; the holder and the active client run on CPU 1 (the benchmark
process sets its own affinity once the server has started, so the holder inherits it; the
active client pins itself). Chromium may use either CPU (``page_cpus="all"``, the default since
session 26: a browser is neither the server nor its load, and on CPU 1 its main thread waited
for a CPU 37-51 % of the window behind the active client's 10,000 wake-ups a second), or only
CPU 1 as in every earlier run (``"1"``). Every `SAMPLE_EVERY` seconds the
benchmark times ``GET /api/state`` (wall ms from request to last byte, and its size), reads the
server's VmRSS from /proc and its CPU time, and collects the page's per-second frame samples.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from app.benchkit.loadgen import LoadClient
from app.benchkit.procs import LineProc, ServerProc
from app.benchkit.report import fmt
from app.benchkit.scale_report import SETTLE_LIMIT, TARGETS, render, verdicts
from app.benchkit.servers import HOST, http_json
from app.benchkit.sysprobe import (
    chromium_cpu_s,
    chromium_cpus,
    cpu_busy,
    cpu_steal,
    renderer_main_sched,
    rss_mb,
    steal_pct,
)

SECONDS = 60.0
CONNS = 10_000
#: `servers._settings` builds the app's Settings with max_connections=12,000; the holder's
#: connections, the active client and a little slack must fit under it.
MAX_CONNS = 12_000 - 10
BATCH = 500
SAMPLE_EVERY = 5.0
WARMUP = 1.0

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

#: Injected into the page: one sample per >= 1 s of rAF time (frames, events, paints in it).
PROBE_JS = """() => {
  const m = window.__muxscope;
  const p = {frames: 0, samples: [], gaps: [], longtasks: []};
  let last = performance.now(), f0 = 0, e0 = m.eventsApplied, p0 = m.paints, prev = last;
  try {  // the main thread's tasks over 50 ms, whatever ran them (script, parse, GC, layout)
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (p.longtasks.length < 500) p.longtasks.push({t: e.startTime, ms: e.duration});
      }
    }).observe({type: 'longtask'});
  } catch (err) { p.longtasks = null; }
  function tick(now) {
    p.frames++;
    if (now - prev > 100 && p.gaps.length < 500) p.gaps.push({t: prev, ms: now - prev});
    prev = now;
    if (now - last >= 1000) {
      p.samples.push({t: now, dt: now - last, frames: p.frames - f0,
                      events: m.eventsApplied - e0, paints: m.paints - p0});
      last = now; f0 = p.frames; e0 = m.eventsApplied; p0 = m.paints;
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);
  window.__scaleProbe = p;
}"""
TAKE_JS = "() => window.__scaleProbe.samples.splice(0)"
CLEAR_SLOW_JS = ("() => { window.__muxscope.slowFrames.length = 0; "
                 "window.__muxscope.slowMessages.length = 0; window.__muxscope.syncs.length = 0;"
                 " window.__scaleProbe.gaps.length = 0; "
                 "if (window.__scaleProbe.longtasks) window.__scaleProbe.longtasks.length = 0; }")
SLOW_JS = ("() => ({frames: window.__muxscope.slowFrames.slice(), "
           "messages: window.__muxscope.slowMessages.slice(), "
           "syncs: window.__muxscope.syncs.slice(), gaps: window.__scaleProbe.gaps.slice(), "
           "longtasks: window.__scaleProbe.longtasks && window.__scaleProbe.longtasks.slice()})")
COUNTERS_JS = """() => ({events: window.__muxscope.eventsApplied, paints: window.__muxscope.paints,
  dropped: window.__muxscope.dropped, paintMs: Object.assign({}, window.__muxscope.paintMs),
  now: performance.now()})"""


def time_state(port: int, timeout: float = 30) -> tuple[float, int]:
    """Wall ms of ``GET /api/state`` (request to last byte) and the body's size in bytes."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://{HOST}:{port}/api/state", timeout=timeout) as resp:
        size = len(resp.read())
    return (time.perf_counter() - t0) * 1e3, size


def open_idle(server: ServerProc, holder: LineProc, conns: int, log: Any) -> int:
    """Grow the holder to `conns` in batches; returns what GET /api/state counts."""
    assert server.http_port is not None
    counted = 0
    for target in range(min(BATCH, conns), conns + BATCH, BATCH):
        target = min(target, conns)
        holder.send(f"open {target}")
        held, failed = (int(x) for x in holder.expect("OPEN", 120).split())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            counted = int(http_json(server.http_port, "GET", "/api/state",
                                    timeout=30)["stats"]["connections"])
            if counted >= held:
                break
            time.sleep(0.25)
        log(f"  scale: {held:,} idle connections held, {counted:,} counted by /api/state"
            + (f" ({failed} connects failed)" if failed else ""))
        if held < target:
            break
        if target == conns:
            break
    return counted


def pinned_to(cpu: int) -> contextlib.AbstractContextManager[None]:
    """This process (and what it starts meanwhile) on `cpu`, when there are 2+ CPUs."""
    before = os.sched_getaffinity(0)
    return on_cpus({cpu} if len(before) > 1 and cpu in before else None)


@contextlib.contextmanager
def on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """This thread (and the processes it starts meanwhile) on `cpus`; None: as it is."""
    before = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def dashboard(http_port: int, log: Any, cpus: set[int] | None = None
              ) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The dashboard in headless Chromium, live (its snapshot applied); yields (page, info).

    `cpus`: the CPUs Chromium may run on (None: this process's own). Playwright's driver and
    Chromium inherit the affinity of the process that starts them, so it is widened for the
    launch only."""
    from playwright.sync_api import sync_playwright

    info: dict[str, Any] = {"console_errors": []}
    with contextlib.ExitStack() as stack:
        with on_cpus(cpus):
            pw = stack.enter_context(sync_playwright())
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         headless=True)
        stack.callback(browser.close)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.on("console", lambda msg: info["console_errors"].append(msg.text)
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: info["console_errors"].append(str(exc)))
        t0 = time.monotonic()
        page.goto(f"http://{HOST}:{http_port}/")
        page.wait_for_function(
            "() => window.__muxscope && window.__muxscope.frames.snapshot >= 1",
            timeout=120_000)
        info["snapshot_s"] = time.monotonic() - t0
        info["chromium_cpus"] = chromium_cpus()
        log(f"  scale: page live after {info['snapshot_s']:.1f} s (Chromium on CPUs "
            f"{info['chromium_cpus']})")
        page.evaluate(PROBE_JS)
        info["settled"] = _settle(page)
        info["settled_s"] = time.monotonic() - t0
        log(f"  scale: page {'settled' if info['settled'] else 'NOT settled'} after "
            f"{info['settled_s']:.1f} s")
        yield page, info


def _settle(page: Any, limit: float = SETTLE_LIMIT) -> bool:
    """Wait (at most `limit` s) for the idle page's first full second at the target frame
    rate: its start-up (the snapshot's 10,000 connections laid out and drawn, its code
    compiled) is not what "keeps >= 30 frames/s" measures, so the window starts after it.
    False if it never got there (the report says so)."""
    deadline = time.monotonic() + limit
    while True:
        taken = page.evaluate(TAKE_JS)
        if any(f["dt"] > 0 and f["frames"] * 1000 / f["dt"] >= TARGETS["raf_per_s"]
               for f in taken):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _percentile(values: list[float], p: float) -> float | None:
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(p * len(vals)))] if vals else None


def _sample(server: ServerProc, page: Any, t0: float, frames: list[dict[str, Any]]
            ) -> dict[str, Any]:
    assert server.http_port is not None
    state_ms, state_bytes = time_state(server.http_port)
    taken = page.evaluate(TAKE_JS)
    frames.extend(taken)
    rates = [f["frames"] * 1000 / f["dt"] for f in taken if f["dt"] > 0]
    return {"t_s": round(time.monotonic() - t0, 1), "state_ms": state_ms, "steal": cpu_steal(),
            "state_kb": state_bytes / 1024, "rss_mb": rss_mb(server.pid),
            "server_cpu_s": server.cpu(),
            "raf_min": min(rates) if rates else None,
            "raf_median": statistics.median(rates) if rates else None}


def _slow_frames(frames: list[dict[str, Any]], t0_ms: float) -> list[dict[str, Any]]:
    """The page's paints over 30 ms in the window (it keeps the first 50), with the three
    panels that took longest in each."""
    out = []
    for f in frames:
        top = sorted(f["panels"].items(), key=lambda kv: -kv[1])[:3]
        out.append({"t_s": round((f["at"] - t0_ms) / 1000, 2), "ms": round(f["ms"], 1),
                    "panels": {k: round(v, 1) for k, v in top}})
    return out


def _cdp_metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure(server: ServerProc, page: Any, client: LoadClient, seconds: float,
            log: Any) -> dict[str, Any]:
    """The active client's window, sampled every SAMPLE_EVERY seconds (the page's rAF probe
    is in place since `dashboard`)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    active = LineProc(client.argv(server.port, 1, 64, WARMUP, seconds, 1), stdin=False)
    samples: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    try:
        active.expect("START", WARMUP + 30)
        t0 = time.monotonic()
        page.evaluate(TAKE_JS)  # frames from before the window
        page.evaluate(CLEAR_SLOW_JS)
        c0 = page.evaluate(COUNTERS_JS)
        cpu0, m0, b0, k0 = server.cpu(), _cdp_metrics(cdp), cpu_busy(), chromium_cpu_s()
        r0 = renderer_main_sched()
        samples.append(_sample(server, page, t0, []))
        while time.monotonic() - t0 < seconds - 0.5:
            time.sleep(min(SAMPLE_EVERY, max(0.0, seconds - (time.monotonic() - t0))))
            samples.append(_sample(server, page, t0, frames))
            s = samples[-1]
            log(f"  scale: t={s['t_s']:.0f}s state {s['state_ms']:.0f} ms "
                f"({s['state_kb']:.0f} KiB), RSS {fmt(s['rss_mb'])} MB, "
                f"rAF/s min {fmt(s['raf_min'])}")
        active.expect("END", 60)
        c1 = page.evaluate(COUNTERS_JS)
        slow = page.evaluate(SLOW_JS)
        cpu1, m1, b1, k1 = server.cpu(), _cdp_metrics(cdp), cpu_busy(), chromium_cpu_s()
        r1 = renderer_main_sched()
        elapsed = time.monotonic() - t0
        fields = dict(kv.split("=") for kv in active.expect("RESULT", 30).split())
    finally:
        active.close(timeout=10)
    for prev, s in zip(samples, samples[1:], strict=False):
        s["steal_pct"] = steal_pct(prev["steal"], s["steal"])
    page_s = (c1["now"] - c0["now"]) / 1000
    paint = {k: (v - c0["paintMs"].get(k, 0.0)) / page_s for k, v in c1["paintMs"].items()}
    rates = [f["frames"] * 1000 / f["dt"] for f in frames if f["dt"] > 0]
    rt = int(fields["rt"])
    return {
        "active": {"rt": rt, "rt_per_s": rt / float(fields["seconds"]),
                   "p50_ms": int(fields["p50_us"]) / 1e3,
                   "p99_ms": int(fields["p99_us"]) / 1e3,
                   "max_ms": int(fields["max_us"]) / 1e3, "dead": int(fields["dead"])},
        "rss_max_mb": max((s["rss_mb"] for s in samples if s["rss_mb"] is not None),
                          default=None),
        "state_max_ms": max(s["state_ms"] for s in samples),
        "state_kb": max(s["state_kb"] for s in samples),
        "raf_min": min(rates) if rates else None,
        "raf_median": statistics.median(rates) if rates else None,
        "raf_p10": _percentile(rates, 0.1),
        "raf_seconds": len(rates),
        "events_per_s": (c1["events"] - c0["events"]) / page_s if page_s else None,
        "paints_per_s": (c1["paints"] - c0["paints"]) / page_s if page_s else None,
        "dropped": c1["dropped"] - c0["dropped"],
        "paint_ms_per_s": dict(sorted(paint.items(), key=lambda kv: -kv[1])),
        "slow_frames": _slow_frames(slow["frames"], c0["now"]),
        "slow_event_frames": [{"t_s": round((m["at"] - c0["now"]) / 1000, 2),
                               "ms": round(m["ms"], 1), "events": m["events"]}
                              for m in slow["messages"]],
        "resyncs": [{"t_s": round((r["at"] - c0["now"]) / 1000, 2),
                     "fetch_ms": round(r["fetchMs"], 1), "apply_ms": round(r["applyMs"], 1)}
                    for r in slow["syncs"]],
        "frame_gaps": [{"t_s": round((g["t"] - c0["now"]) / 1000, 2), "ms": round(g["ms"], 1)}
                       for g in slow["gaps"]],
        "long_tasks": None if slow["longtasks"] is None else [
            {"t_s": round((x["t"] - c0["now"]) / 1000, 2), "ms": round(x["ms"], 1)}
            for x in slow["longtasks"] if x["t"] >= c0["now"]],
        "server_cpu_pct": (cpu1 - cpu0) * 100 / elapsed if elapsed else None,
        # Chromium's own accounting of the page's main thread (CDP Performance.getMetrics):
        # ms per second of wall time spent in tasks, script, style, layout.
        "page_main_ms_per_s": {k: (m1[k] - m0[k]) * 1e3 / elapsed for k in
                               ("TaskDuration", "ScriptDuration", "RecalcStyleDuration",
                                "LayoutDuration") if k in m0 and k in m1},
        "chromium_cpu_pct": {k: (v - k0.get(k, 0.0)) * 100 / elapsed for k, v in k1.items()},
        # the page's main thread: % of the window it ran, and % it was runnable but queued
        "renderer_main_pct": None if r0 is None or r1 is None else {
            "ran": (r1[0] - r0[0]) / 1e7 / elapsed, "waited": (r1[1] - r0[1]) / 1e7 / elapsed},
        "steal_pct": steal_pct(samples[0]["steal"], samples[-1]["steal"]),
        "cpu_busy_pct": [(x1[0] - x0[0]) * 100 / max(1, x1[1] - x0[1])
                         for x0, x1 in zip(b0, b1, strict=False)],
        "seconds": elapsed, "samples": samples, "frames": frames,
    }


def run(client: LoadClient, conns: int, seconds: float, log: Any,
        page_cpus: str = "all", budget: int | None = None) -> dict[str, Any]:
    """Server, holder, page, active client; returns every figure (see `render`).

    `page_cpus`: "1", Chromium shares CPU 1 with the active client and the holder (the set-up
    of every run up to session 25); "all", the scheduler may run it on either CPU, as a
    browser on a user's machine runs (the server and the clients stay pinned). `budget`: the
    app's observation budget (events/s a page is shown); None, the app's own."""
    holder: LineProc | None = None
    every_cpu = os.sched_getaffinity(0)
    # The server first: it pins itself to CPU 0 only if it inherits both CPUs.
    spec = "app:queued" if budget is None else f"app:queued:epoll:{budget}"
    server = ServerProc(spec, cpu=0).ready(timeout=60)
    assert server.http_port is not None
    log(f"  scale: server pid {server.pid}, echo port {server.port}, "
        f"http port {server.http_port}")
    with pinned_to(1):
        try:
            holder = LineProc([sys.executable, "-m", "app.benchkit.pyclient", "idle", HOST,
                               str(server.port)])
            t0 = time.monotonic()
            held = open_idle(server, holder, conns, log)
            connect_s = time.monotonic() - t0
            rss_idle = rss_mb(server.pid)
            chromium_cpus = every_cpu if page_cpus == "all" else None
            with dashboard(server.http_port, log, chromium_cpus) as (page, info):
                data = measure(server, page, client, seconds, log)
                data.update(info)
            held_end = int(http_json(server.http_port, "GET", "/api/state",
                                     timeout=30)["stats"]["connections"])
        finally:
            if holder is not None:
                holder.close(timeout=30)
            server.close(timeout=30)
    data.update({"conns": conns, "held": held, "held_at_end": held_end,
                 "connect_s": connect_s, "rss_idle_mb": rss_idle, "client": client.name,
                 "page_cpus": page_cpus, "budget": budget,
                 "targets": TARGETS})
    data["verdicts"] = verdicts(data)
    return data


__all__ = ["render", "run"]
