"""Part 3: event delivery — what one connected page receives while the app's load runs."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from app.benchkit.procs import LineProc, ServerProc, close_all
from app.benchkit.report import median, table
from app.benchkit.servers import http_json

LOAD = {"connections": 200, "message_size": 64, "rate": 50}
#: "interactive rate": 20 clients x 20 msg/s, about 2,000 events/s
LIGHT_LOAD = {"connections": 20, "message_size": 64, "rate": 20}


def _window(server: ServerProc, ws: LineProc, seconds: float) -> dict[str, Any]:
    ws.send("mark")
    ws.expect("MARK", 10)
    c0 = server.cpu()
    time.sleep(seconds)
    c1 = server.cpu()
    ws.send("stats")
    stats: dict[str, Any] = json.loads(ws.expect("STATS", 10))
    stats["server_cpu_pct"] = (c1 - c0) * 100 / stats["seconds"] if stats["seconds"] else None
    return stats


def launch(write: str) -> ServerProc:
    """Start the app process for `run`, without waiting for it."""
    return ServerProc(f"app:{write}")


def run(write: str, seconds: float, reps: int, warmup: float, log: Any,
        load: dict[str, int] | None = None, server: ServerProc | None = None,
        ws: LineProc | None = None, settle: float = 0.5) -> dict[str, Any]:
    """`server`: an app started with `launch(write)`, and `ws` its page if one is connected
    already (by default both are started now); both are closed on return. `settle`: seconds
    after the load starts, on top of `warmup`, before the first window."""
    load = load or LOAD
    server = server or launch(write)
    try:
        if not server.port:  # not awaited yet
            server.ready(timeout=60)
        assert server.http_port is not None
        if ws is None:
            ws = LineProc([sys.executable, "-m", "app.benchkit.wsclient",
                           str(server.http_port), "1"])
            ws.expect("READY", 20)
        answer = http_json(server.http_port, "POST", "/api/load", load)
        time.sleep(warmup + settle)
        windows = []
        for rep in range(reps):
            log(f"  event delivery ({write}, {load['connections']} clients): "
                f"rep {rep + 1}/{reps}")
            windows.append(_window(server, ws, seconds))
        http_json(server.http_port, "DELETE", "/api/load")
    finally:
        close_all([p for p in (ws, server) if p is not None])
    return summarize(write, answer, windows, load)


def summarize(write: str, answer: Any, windows: list[dict[str, Any]],
              load: dict[str, int] | None = None) -> dict[str, Any]:
    load = load or LOAD
    def per_s(key: str) -> float | None:
        return median([w[key] / w["seconds"] for w in windows if w["seconds"]])

    return {
        "write": write, "load": load, "load_answer": answer, "reps": len(windows),
        "events_per_s": per_s("events"), "dropped_per_s": per_s("dropped"),
        "frames_per_s": per_s("frames"),
        "p50_ms": median([w["p50_ms"] for w in windows if w["p50_ms"] is not None]),
        "p99_ms": median([w["p99_ms"] for w in windows if w["p99_ms"] is not None]),
        "server_cpu_pct": median([w["server_cpu_pct"] for w in windows
                                  if w["server_cpu_pct"] is not None]),
        "gaps_match_dropped": all(w["gaps_match_dropped"] for w in windows),
        "windows": windows,
    }


def render(data: list[dict[str, Any]], placeholder: str | None = None) -> str:
    headers = ["app write mode", "load", "events/s received", "dropped/s", "frames/s",
               "latency p50 ms", "latency p99 ms", "server CPU %", "seq gaps = dropped"]
    title = ("Event delivery to one page: POST /api/load N conns x 64 B at R msg/s each"
             " (latency = arrival - (started_at + ts); medians)")
    if placeholder:
        return table(title, headers, [[placeholder] + [None] * 8])
    body = [[d["write"], f"{d['load']['connections']} x {d['load']['rate']}/s",
             d["events_per_s"], d["dropped_per_s"], d["frames_per_s"], d["p50_ms"],
             d["p99_ms"], d["server_cpu_pct"], "yes" if d["gaps_match_dropped"] else "NO"]
            for d in data]
    return table(title, headers, body) + verdict(data)


#: SPEC §7's targets: events/s one page receives with 200 load clients, with exact `dropped`;
#: the p99 latency at a load of at most LIGHT_EVENTS_PER_S events/s
DELIVERY_TARGET, LIGHT_EVENTS_PER_S, P99_TARGET_MS = 20_000, 2_000, 100


def verdict(data: list[dict[str, Any]]) -> str:
    """The targets' lines under the table, each from the rows it is about."""
    heavy = [d for d in data if d["load"]["connections"] == LOAD["connections"]]
    light = [d for d in data if d["events_per_s"] <= LIGHT_EVENTS_PER_S]
    lines = []
    if heavy:
        ok = all(d["events_per_s"] >= DELIVERY_TARGET and d["gaps_match_dropped"] for d in heavy)
        got = " / ".join(f"{d['events_per_s']:,.0f} ({d['write']})" for d in heavy)
        lines.append(f"events/s to one page with {LOAD['connections']} clients: {got} (target >= "
                     f"{DELIVERY_TARGET:,} with seq gaps = dropped: {'ok' if ok else 'MISSED'})")
    else:
        lines.append(f"events/s with {LOAD['connections']} clients: not measured in this run")
    if light:
        ok = all(d["p99_ms"] is not None and d["p99_ms"] < P99_TARGET_MS for d in light)
        got = " / ".join(f"{d['p99_ms']:.1f} ms at {d['events_per_s']:,.0f} events/s"
                         if d["p99_ms"] is not None else "no latency measured" for d in light)
        lines.append(f"latency p99 at <= {LIGHT_EVENTS_PER_S:,} events/s: {got} (target < "
                     f"{P99_TARGET_MS} ms: {'ok' if ok else 'MISSED'})")
    else:
        lines.append(f"latency p99 at <= {LIGHT_EVENTS_PER_S:,} events/s: no load that light "
                     "in this run")
    return "\n" + "\n".join(lines) + "\n"
