"""Part 1: echo cost — server CPU µs per round trip against the stdlib asyncio reference."""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app.benchkit.loadgen import LoadClient, LoadResult
from app.benchkit.procs import LineProc, ServerProc, close_all
from app.benchkit.report import median, table

ENGINE_BACKENDS = (("select", "level"), ("poll", "level"), ("epoll", "level"), ("epoll", "edge"))
WRITES = ("queued", "eager")
WHAT_IF_BUDGET = 5_000
LOADS = (("50 conns x 1 KiB", 50, 1024), ("1 conn x 64 B", 1, 64))


@dataclass
class Variant:
    name: str
    spec: str
    target: float | None = None
    observed: bool = False
    server: ServerProc | None = None
    ws: LineProc | None = None
    error: str | None = None
    runs: dict[str, list[tuple[LoadResult, dict[str, Any] | None]]] = field(default_factory=dict)
    #: the bare loop that bounds this variant from below (spec), and for an observed variant
    #: the unobserved engine on the same backend: floor = bare + (observed - unobserved)
    floor: str | None = None
    unobserved: str | None = None


def variants(engine: bool, app: bool, quick: bool) -> list[Variant]:
    """asyncio (the reference) first, then the bare loops (the floor), the engine unobserved
    and the app observed, on every backend (with --quick: epoll, and the engine eager only)."""
    out = [Variant("asyncio Protocol (reference)", "asyncio"),
           Variant("bare epoll loop, eager (no engine)", "bare")]
    if not quick:
        out += [Variant("bare epoll loop, queued (no engine)", "bare:queued"),
                Variant("bare epoll-edge loop, eager (no engine)", "bare:edge"),
                Variant("bare poll loop, eager (no engine)", "bare:poll"),
                Variant("bare poll loop, queued (no engine)", "bare:poll:queued"),
                Variant("bare select loop, eager (no engine)", "bare:select"),
                Variant("bare select loop, queued (no engine)", "bare:select:queued"),
                *c_variants()]
    pairs = [("epoll", "level")] if quick else list(ENGINE_BACKENDS)
    for backend, trigger in pairs:
        for write in ("eager",) if quick else WRITES:
            label = f"engine {backend}" + (f"-{trigger}" if backend == "epoll" else "")
            out.append(Variant(f"{label} {write}, unobserved", f"engine:{backend}:{trigger}:"
                               f"{write}", 1.2 if write == "eager" else None,
                               floor=_bare_spec(backend, write, trigger)))
    observed = ["epoll"] if quick else ["select", "poll", "epoll"]
    for backend in observed:
        for write, target in (("eager", 1.0),) if quick else (("eager", 1.0), ("queued", 0.8)):
            label = backend + ("-level" if backend == "epoll" else "")
            v = Variant(f"app {label} {write}, observed", f"app:{write}:{backend}", target,
                        observed=True, floor=_bare_spec(backend, write, "level"),
                        unobserved=f"engine:{backend}:level:{write}")
            if not app:
                v.error = "n/a (app not built yet)"
            out.append(v)
    if not quick:  # what watching costs per event shown: the same app, a fifth of the budget
        out.append(Variant(f"app epoll-level eager, observed, budget {WHAT_IF_BUDGET:,} ev/s",
                           f"app:eager:epoll:{WHAT_IF_BUDGET}", None, observed=True))
    if not engine:
        for v in out:
            if v.spec.startswith("engine"):
                v.error = "n/a (engine not built yet)"
    return out


def c_variants() -> list[Variant]:
    """The bare epoll loops in C (cecho.c): what a round trip costs with no Python in it,
    almost all of it the kernel's. Without gcc their rows say so."""
    out = [Variant("C epoll loop, eager (no Python)", "c"),
           Variant("C epoll-edge loop, eager (no Python)", "c:edge")]
    if shutil.which("gcc") is None:
        for v in out:
            v.error = "n/a (gcc not found)"
    return out


def _bare_spec(backend: str, write: str, trigger: str) -> str | None:
    """The bare loop doing the same system calls as this row, on the same backend (select and
    poll change interest without a system call, epoll with one: each needs its own floor)."""
    if backend in ("poll", "select"):
        return f"bare:{backend}:queued" if write == "queued" else f"bare:{backend}"
    if backend != "epoll":
        return None
    return "bare:queued" if write == "queued" else "bare:edge" if trigger == "edge" else "bare"


def hand_over(vs: list[Variant], spec: str) -> tuple[ServerProc, LineProc | None] | None:
    """Detach the running server of `spec` (and its page) from `running`, which then does
    not close them: the caller owns them (--quick measures event delivery on that app)."""
    for v in vs:
        if v.spec == spec and v.server is not None:
            taken = (v.server, v.ws)
            v.server = v.ws = None
            return taken
    return None


def _start_all(vs: list[Variant], log: Any) -> None:
    """Launch every server at once (`measure` stops each between its windows), then wait
    for their ports."""
    t0 = time.monotonic()
    for v in vs:
        if v.error is None:
            v.server = ServerProc(v.spec)
    started = sum(v.server is not None for v in vs)
    pages = sum(v.observed for v in vs if v.server is not None)
    log(f"  echo: starting {started} servers ({pages} with a page reading)")
    for v in vs:
        if v.server is None:
            continue
        try:
            v.server.ready(timeout=60)
            if v.observed:
                v.ws = _start_ws(v.server)
        except (RuntimeError, TimeoutError) as exc:
            v.error = "failed: " + str(exc).splitlines()[-1][:90]
            v.server.close()
            v.server = None
    log(f"  echo: {sum(v.server is not None for v in vs)} servers up in "
        f"{time.monotonic() - t0:.1f} s")


def _start_ws(server: ServerProc) -> LineProc:
    """The page: a websocket client on the load client's CPU, reading every frame."""
    ws = LineProc([sys.executable, "-m", "app.benchkit.wsclient", str(server.http_port), "1"])
    ws.expect("READY", 20)
    return ws


def _ws_cmd(ws: LineProc | None, cmd: str) -> dict[str, Any] | None:
    if ws is None:
        return None
    ws.send(cmd)
    if cmd == "mark":
        ws.expect("MARK", 10)
        return None
    import json

    result: dict[str, Any] = json.loads(ws.expect("STATS", 10))
    return result


@contextlib.contextmanager
def running(vs: list[Variant], log: Any) -> Iterator[None]:
    try:
        _start_all(vs, log)
        yield
    finally:
        close_all([p for v in vs for p in (v.ws, v.server) if p is not None])


def measure(vs: list[Variant], client: LoadClient, seconds: float, reps: int, warmup: float,
            loads: tuple[tuple[str, int, int], ...], log: Any, prime: float = 0.3) -> None:
    """Interleaved repetitions: for each rep, every variant once (A B C ... A B C ...).

    Each server is first primed with one unmeasured window: a fresh asyncio server's first
    window costs about 4x its steady state (seen on the reference machine), which would flatter
    every ratio of the first rep.

    Outside its own windows every server is stopped (SIGSTOP): an idle app is not idle on the
    reference machine (its asyncio thread wakes ~40 times a second, ~28 ms/s of CPU), and
    with twenty servers pinned to the server CPU that is background load on the measured one.
    """
    live = [v for v in vs if v.server is not None]
    log(f"  echo: priming {len(live)} servers (an unmeasured {max(prime, warmup):g} s window "
        "each)")
    for v in live:
        assert v.server is not None
        label, conns, size = loads[0]
        try:
            _window(v.server, client, conns, size, 0.0, max(prime, warmup), log, v.name)
        except (RuntimeError, OSError) as exc:
            _failed(v, exc, log)
            continue
        v.server.pause()
    for label, conns, size in loads:
        for rep in range(reps):
            log(f"  echo {label}: rep {rep + 1}/{reps} ({len(live)} servers x "
                f"{warmup + seconds:g} s)")
            for v in live:
                if v.server is None:  # failed in an earlier window
                    continue
                v.server.resume()
                try:
                    _ws_cmd(v.ws, "mark")
                    res = _window(v.server, client, conns, size, warmup, seconds, log, v.name)
                    v.runs.setdefault(label, []).append((res, _ws_cmd(v.ws, "stats")))
                except (RuntimeError, OSError) as exc:
                    _failed(v, exc, log)
                    continue
                v.server.pause()
    for v in live:
        if v.server is not None:
            v.server.resume()


def _window(server: ServerProc, client: LoadClient, conns: int, size: int, warmup: float,
            seconds: float, log: Any, name: str) -> LoadResult:
    """One window of load on `server`. A window without a round trip measured nothing: it is
    logged with what the server was doing (its CPU time in the window, where its threads were)
    and run once more; a second such window fails the row, with the server's last words (a
    ratio of nothing would print as a bare "-"). Seen in CI, on a loaded machine: the bare
    epoll loop, fine in its priming window, echoed nothing in a 0.25 s window, its process alive
    and answering."""
    for attempt in (1, 2):
        res = client.run(server.port, conns, size, warmup, seconds, server.cpu)
        if res.rt:
            return res
        where = "; ".join(f"{k}: {v}" for k, v in server.stacks().items()) or "not known"
        log(f"  {name}: no round trips in a {seconds:g} s window (try {attempt} of 2; "
            f"{res.dead} connections dead; server CPU {res.server_cpu_s * 1e3:.1f} ms in it; "
            f"its threads: {where})")
    said = " / ".join(server.stderr_tail[-2:]) or "its stderr is empty"
    raise RuntimeError(f"no round trips in two {seconds:g} s windows ({res.dead} connections "
                       f"dead; server: {said})")


def _failed(v: Variant, exc: BaseException, log: Any) -> None:
    """A variant whose server, page or load died mid-run: its row says so (a miss is never
    hidden), the others go on. What it measured before is dropped: a row is whole or failed."""
    said = (str(exc).splitlines() or [type(exc).__name__])[-1]
    v.error = "failed mid-run: " + said[:80]
    v.runs.clear()
    log(f"  {v.name}: failed mid-run: {said}")  # the table cuts it, the log has it whole
    close_all([p for p in (v.ws, v.server) if p is not None])
    v.server = v.ws = None


def _rep_ratios(vs: list[Variant], label: str) -> dict[str, list[float]]:
    """Each variant's ratio against asyncio in each rep (the same rep's asyncio window)."""
    ref = vs[0].runs.get(label, [])
    out: dict[str, list[float]] = {}
    for v in vs:
        pairs = zip(ref, v.runs.get(label, []), strict=False)
        out[v.name] = [a.cpu_us_per_rt / b.cpu_us_per_rt for (a, _), (b, _) in pairs
                       if b.rt and a.rt]
    return out


def _ratios(vs: list[Variant], label: str) -> dict[str, float | None]:
    return {name: median(reps) for name, reps in _rep_ratios(vs, label).items()}


def _floors(vs: list[Variant], label: str) -> dict[str, float | None]:
    """The best ratio a variant could reach: its bare loop's, plus (when observed) what
    watching costs on the same backend (observed - unobserved CPU/rt), taken rep by rep like
    `_ratios` and then the median. (A ratio of medians put an unobserved row's floor 0.15
    above its own bare loop's row in one table when the machine's speed drifted between reps.)

    No engine can be cheaper than the minimal loop doing the same syscalls; a target above
    the floor is out of reach for this design in Python, not merely missed."""
    def reps(spec: str | None) -> list[float]:  # CPU us/rt per rep; nan: no round trips
        runs = next((v.runs.get(label, []) for v in vs if v.spec == spec), [])
        return [r.cpu_us_per_rt if r.rt else math.nan for r, _ in runs]

    ref = reps(vs[0].spec)
    out: dict[str, float | None] = {}
    for v in vs:
        floors = reps(v.floor) if v.floor else []
        if v.unobserved:  # observed: the bare loop plus what watching cost in the same rep
            watching = [max(a - b, 0.0) for a, b in zip(reps(v.spec), reps(v.unobserved),
                                                        strict=False)]
            floors = [f + w for f, w in zip(floors, watching, strict=False)]
        out[v.name] = median([a / f for a, f in zip(ref, floors, strict=False) if f > 0])
    return out


def _shown_ratio(ratio: float | None, target: float | None) -> str | None:
    """Two decimals; four where two would round across the target (1.199876 is not "1.20x"
    beside a MISSED)."""
    if not ratio:
        return None
    crosses = target is not None and (round(ratio, 2) >= target) != (ratio >= target)
    return f"{ratio:.4f}x" if crosses else f"{ratio:.2f}x"


def _verdict(v: Variant, ratio: float | None) -> str:
    if v.target is None:
        return ""
    if ratio is None:
        return f">={v.target:.1f}x ?"
    return f">={v.target:.1f}x " + ("ok" if ratio >= v.target else "MISSED")


def rows(vs: list[Variant], label: str) -> list[dict[str, Any]]:
    per_rep = _rep_ratios(vs, label)
    ratios = {name: median(reps) for name, reps in per_rep.items()}
    floors = _floors(vs, label)
    out = []
    for v in vs:
        runs = v.runs.get(label, [])
        ev = [w["events"] / w["seconds"] for _, w in runs if w and w["seconds"]]
        out.append({
            "variant": v.name, "error": v.error, "reps": len(runs),
            "rt_per_s": median([r.rt_per_s for r, _ in runs]),
            "cpu_us_per_rt": median([r.cpu_us_per_rt for r, _ in runs]),
            "user_us_per_rt": median([r.user_us_per_rt for r, _ in runs]),
            "ratio_vs_asyncio": ratios.get(v.name), "target": v.target,
            "rep_ratios": per_rep.get(v.name, []),
            "verdict": _verdict(v, ratios.get(v.name)),
            "floor_ratio": floors.get(v.name),
            "p50_us": median([r.p50_us for r, _ in runs]),
            "p99_us": median([r.p99_us for r, _ in runs]),
            "dead": sum(r.dead for r, _ in runs),
            "page_events_per_s": median(ev) if v.observed else None,
            "raw": [{"rt_per_s": r.rt_per_s, "cpu_us_per_rt": r.cpu_us_per_rt,
                     "user_us_per_rt": None if math.isnan(r.user_us_per_rt) else r.user_us_per_rt,
                     "p99_us": r.p99_us, "page": w} for r, w in runs],
        })
        out[-1]["note"] = _note(out[-1])  # (--json has the table's note column too)
    return out


def render(label: str, data: list[dict[str, Any]], client_name: str) -> str:
    headers = ["server variant", "rt/s", "server CPU us/rt", "user us/rt", "ratio vs asyncio",
               "reps", "target", "floor", "p99 us", "page ev/s", "note"]
    body = []
    for r in data:
        if r["error"]:
            body.append([r["variant"], None, None, None, None, None, None, None, None, None,
                         r["error"]])
            continue
        ratio = _shown_ratio(r["ratio_vs_asyncio"], r.get("target"))
        floor = r.get("floor_ratio")
        user = r.get("user_us_per_rt")
        body.append([r["variant"], round(r["rt_per_s"]), r["cpu_us_per_rt"],
                     f"{user:.2f}" if user is not None else None, ratio,
                     _spread(r.get("rep_ratios") or []), r["verdict"],
                     _shown_ratio(floor, r.get("target")) if floor else None, _latency(r["p99_us"]),
                     r["page_events_per_s"],
                     _note(r)])
    title = (f"Echo, {label} ping-pong (ratio = asyncio CPU/rt / variant CPU/rt, >1 is better;"
             f" medians; load client: {client_name})\n"
             "floor = the ratio of the bare loop doing the same syscalls (observed rows: plus the"
             " measured cost of watching); reps = the lowest and highest of the per-rep ratios;"
             "\nuser = the user part of server CPU us/rt (the interpreter's share; the rest is the"
             " kernel's; split by clock ticks, so a sampled figure)")
    return table(title, headers, body)


def _spread(reps: list[float]) -> str | None:
    """The per-rep ratios' range: how far one rep's window moves on this machine (a median
    of three is good to about half of it)."""
    if len(reps) < 2:
        return None
    return f"{min(reps):.2f}-{max(reps):.2f}"


#: the C load client's last histogram bucket (loadclient.c HIST_US): slower round trips land in it
LATENCY_CAP_US = 200_000


def _latency(us: float | None) -> str | float | None:
    """A p99 at the histogram's cap is a floor, not a measurement: printed as ">=200,000"."""
    if us is not None and us >= LATENCY_CAP_US:
        return f">={LATENCY_CAP_US:,}"
    return us


def _note(r: dict[str, Any]) -> str:
    notes = [f"{r['dead']} conns dropped"] if r["dead"] else []
    floor, target = r.get("floor_ratio"), r.get("target")
    if target and floor and r["verdict"].endswith("MISSED"):
        notes.append("floor below target" if floor < target else "floor above target")
    return "; ".join(notes)
