"""``muxscope bench``: side-by-side benchmarks of the echo engine (SPEC §7).

Three parts, each printed as a table of medians over interleaved repetitions (A B C A B C ...):

1. ``echo``   — server CPU µs per round trip (the figure of merit) and round trips/s for the
   stdlib asyncio Protocol server (the reference), bare epoll loops (eager and queued: the
   floor no engine can beat), the engine on every backend and write strategy unobserved, and
   the app as it runs (observed by a page) on every backend.
2. ``wait``   — the wait call's cost and the engine's per-iteration work as idle fds grow.
3. ``events`` — how many events per second reach one connected page under the app's load.
4. ``micro``  — the per-event cost of observation, in-process (nobody watching vs one sink),
   and the engine's own cost per message through a connection's handler (socketpair).
5. ``scale``  — 10,000 idle connections on epoll with the page open in headless Chromium: an
   active client's latency, RSS, /api/state time, the page's frame rate. Over a minute, so it
   runs only with ``--only scale`` (not in the default run nor in ``--quick``).
6. ``instructions`` — machine instructions per echoed message (valgrind's callgrind) for the
   engine's hot paths against a bare select loop: exact where timings are noisy. About two
   minutes; only with ``--only instructions``.

Every server runs in its own process pinned to CPU 0; load clients are pinned to CPU 1.
The command line is `app.bench_args`; the parts live in `app.benchkit`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bench_args import Plan, make_plan, parse_args
from app.benchkit import delivery, echo, instructions, micro, scale, waitcost
from app.benchkit.loadgen import LoadClient
from app.benchkit.procs import ROOT, LineProc, ServerProc, close_all
from app.run import Stop

PROG = "muxscope bench"


#: --quick measures event delivery on the echo part's observed app, with its page
QUICK_DELIVERY_APP = "app:eager:epoll"


@dataclass
class Launched:
    """--quick's shortcuts to "about 5 s in all": the wait-cost lanes start before the echo
    part, so their start-up overlaps it, and the echo part's observed app (with its page)
    stays up for the delivery part instead of a second app being started."""

    lanes: list[tuple[str, ServerProc]] | None = None
    delivery: tuple[ServerProc, LineProc | None] | None = None

    def close(self) -> None:
        close_all([*(server for _, server in self.lanes or ()),
                   *(p for p in self.delivery or () if p is not None)])


def launch_early(plan: Plan, only: str | None) -> Launched:
    early = Launched()
    if plan.quick and only in (None, "wait") and engine_built():
        early.lanes = waitcost.launch(plan.wait_backends)
    return early


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release(), "pinning": len(os.sched_getaffinity(0)) > 1}


def engine_built() -> bool:
    return (ROOT / "mux" / "engine.py").exists()


def app_built() -> bool:
    return (ROOT / "app" / "main.py").exists()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


DEFAULT_PARTS = ("echo", "wait", "events", "micro")


def part_micro(plan: Plan, out: dict[str, Any]) -> None:
    out["micro"] = micro.run(*((10_000, 3) if plan.quick else ()))
    show(micro.render(out["micro"]))
    out["micro_messages"] = micro.per_message(2_000 if plan.quick else 20_000)
    show(micro.render_messages(out["micro_messages"]))


def part_instructions(out: dict[str, Any]) -> None:
    out["instructions"] = instructions.run(log)
    show(instructions.render(out["instructions"]))
    if out["instructions"].get("error"):  # the one part asked for did not run: say so in $?
        raise RuntimeError(out["instructions"]["error"])


def part_echo(plan: Plan, client: LoadClient, out: dict[str, Any], early: Launched,
              keep_app: bool) -> None:
    vs = echo.variants(engine_built(), app_built() and engine_built(), plan.quick)
    with echo.running(vs, log):
        try:
            echo.measure(vs, client, plan.seconds, plan.reps, plan.warmup, plan.loads, log,
                         plan.prime)
        except KeyboardInterrupt:
            # the windows measured so far are figures too (a full echo part is ~8 minutes)
            report_echo(plan, vs, out, client, interrupted=True)
            raise
        if keep_app:
            early.delivery = echo.hand_over(vs, QUICK_DELIVERY_APP)
    report_echo(plan, vs, out, client)


def report_echo(plan: Plan, vs: list[echo.Variant], out: dict[str, Any], client: LoadClient,
                interrupted: bool = False) -> None:
    """The echo tables; interrupted, those of the loads with a measured asyncio window (the
    reference every ratio needs), each rep's ratio paired with its own rep's asyncio window."""
    out["echo"] = {}
    for label, _, _ in plan.loads:
        if interrupted and not vs[0].runs.get(label):
            continue
        data = echo.rows(vs, label)
        out["echo"][label] = data
        if interrupted:
            show(f"(interrupted: {label} from the windows measured before it, "
                 f"{len(vs[0].runs[label])} of {plan.reps} reps of asyncio)")
        show(echo.render(label, data, client.name))
    if interrupted:
        out["echo_interrupted"] = True


def part_wait(plan: Plan, client: LoadClient, out: dict[str, Any], early: Launched) -> None:
    if not engine_built():
        show("Wait cost vs idle fds: n/a (engine not built yet)\n")
        return
    launched, early.lanes = early.lanes or waitcost.launch(plan.wait_backends), None
    lanes = waitcost.run(client, plan.idle_levels, plan.seconds, plan.reps, plan.warmup, log,
                         launched)
    out["wait"] = waitcost.results(lanes, plan.idle_levels)
    show(waitcost.render(out["wait"]))


def part_events(plan: Plan, out: dict[str, Any], early: Launched) -> None:
    if not (app_built() and engine_built()):
        show(delivery.render([], placeholder="n/a (app not built yet)"))
        return
    loads = (delivery.LOAD,) if plan.quick else (delivery.LOAD, delivery.LIGHT_LOAD)
    data = []
    for mode in plan.event_modes:
        for load in loads:
            server, ws = early.delivery or (None, None)
            early.delivery = None  # a handed-over app serves once (run closes it)
            data.append(delivery.run(mode, max(plan.seconds, 0.5), plan.reps, plan.warmup,
                                     log, load, server, ws, plan.settle))
    out["events"] = data
    show(delivery.render(data))


def part_scale(args: argparse.Namespace, client: LoadClient, out: dict[str, Any]) -> None:
    if not (app_built() and engine_built()):
        show("Scale: n/a (app not built yet)\n")
        return
    out["scale"] = scale.run(client, args.scale_conns, args.scale_seconds, log,
                             args.scale_page_cpus, args.scale_budget)
    show(scale.render(out["scale"]))


#: parts measured in-process or over one long window: no load client's reps and windows
WINDOWLESS = {"micro": "in-process timings (timeit), no servers and no load client",
              "instructions": "callgrind instruction counts of an in-process harness, no load "
                              "client",
              "scale": "one window of --scale-seconds (no reps)"}


#: seconds of the parts with no windows of their own (a run's start-up, micro), estimated
START_S, MICRO_S = 6.0, 15.0


def estimate_s(plan: Plan, only: str | None) -> float | None:
    """About how long a windowed run takes (the help's arithmetic: windows x reps x (seconds +
    warm-up)), said at its start; None for the parts whose length is their own."""
    if plan.quick or only in ("micro", "scale", "instructions"):
        return None
    window = plan.seconds + plan.warmup
    total = START_S
    if only in (None, "echo"):
        servers = len(echo.variants(engine_built(), app_built() and engine_built(), plan.quick))
        total += servers * len(plan.loads) * (plan.reps * window + plan.prime)
    if only in (None, "wait"):
        total += len(plan.wait_backends) * len(plan.idle_levels) * plan.reps * window
    if only in (None, "events"):
        total += len(plan.event_modes) * 2 * plan.reps * (window + plan.settle)  # two loads
    if only is None:
        total += MICRO_S
    return total


def header(plan: Plan, client: LoadClient, info: dict[str, Any], only: str | None) -> str:
    pin = ("servers pinned to CPU 0, clients to CPU 1" if info["pinning"]
           else "no pinning (one CPU)")
    if only in ("micro", "instructions"):
        how = WINDOWLESS[only]
    elif only == "scale":
        how = f"load client: {client.name}; {pin}; {WINDOWLESS['scale']}"
    else:
        how = (f"load client: {client.name}; {pin}; {plan.reps} rep(s) x {plan.seconds:g} s "
               f"(+{plan.warmup:g} s warm-up) per window")
        if (est := estimate_s(plan, only)) is not None:
            how += f"; about {est / 60:.0f} min in all" if est >= 90 else (
                f"; about {est:.0f} s in all")
    return (f"muxscope bench — {info['nproc']} CPUs ({info['cpu_model']}), Python "
            f"{info['python']}, Linux {info['kernel']}\n{how}\n"
            + ("--quick: a smoke run of a few eager epoll rows, too short for ratios to mean much"
               " (and the wait part's servers start up while they run, on the same machine);"
               " run without --quick for every backend and write mode\n"
               if plan.quick and only in (None, "echo", "wait", "events") else ""))


_stdout_gone = False


def show(text: str) -> None:
    """Print a table; a reader that went away (`| head`) does not end the run: the rest of
    the output is dropped, and --json is still written."""
    global _stdout_gone
    if _stdout_gone:
        return
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
        os.close(devnull)


def _finite(value: Any) -> Any:
    """JSON has no Infinity or NaN (a window without round trips has an infinite CPU/rt)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, out: dict[str, Any]) -> bool:
    try:
        path.write_text(json.dumps(_finite(out), indent=1, default=str, allow_nan=False) + "\n")
    except OSError as exc:
        print(f"{PROG}: cannot write --json {path}: {exc.strerror or exc}; the tables above "
              "are the results", file=sys.stderr)
        return False
    return True


def plan_record(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    """What --json says was run: the windows and reps where the part has them."""
    if args.only == "scale":
        return {"only": "scale", "seconds": args.scale_seconds, "conns": args.scale_conns,
                "page_cpus": args.scale_page_cpus, "budget": args.scale_budget}
    if args.only in WINDOWLESS:
        return {"only": args.only, "quick": plan.quick}
    return {"only": args.only, **plan.__dict__}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = make_plan(args)
    client = LoadClient(prefer=args.client)
    info = machine()
    out: dict[str, Any] = {"machine": info, "client": client.name,
                           "plan": plan_record(args, plan)}
    t0 = time.monotonic()
    early = Launched()  # until launch_early: a Ctrl-C before it has nothing to close
    keep_app = plan.quick and args.only is None
    parts: list[tuple[str, Callable[[], None]]] = [
        ("echo", lambda: part_echo(plan, client, out, early, keep_app=keep_app)),
        ("wait", lambda: part_wait(plan, client, out, early)),
        ("events", lambda: part_events(plan, out, early)),
        ("micro", lambda: part_micro(plan, out)),
        ("scale", lambda: part_scale(args, client, out)),
        ("instructions", lambda: part_instructions(out))]
    chosen = [(name, run) for name, run in parts
              if args.only == name or (args.only is None and name in DEFAULT_PARTS)]
    done: list[str] = []
    failed: dict[str, str] = {}
    status = 0
    try:
        show(header(plan, client, info, args.only))
        early = launch_early(plan, args.only)
        for name, run in chosen:
            try:
                run()
                done.append(name)
            except Exception as exc:  # noqa: BLE001 - one part's failure is reported, not fatal
                failed[name] = f"{type(exc).__name__}: {exc}"
                print(f"{PROG}: the {name} part failed ({failed[name]}); going on",
                      file=sys.stderr, flush=True)
                status = 1
    except KeyboardInterrupt as exc:
        out["interrupted"] = True
        # SIGTERM (app.run's handler raises Stop) ends with its own status and word, 128 + 15
        terminated = isinstance(exc, Stop)
        status = 143 if terminated else 130
        kept = done + (["echo (the windows measured)"] if out.get("echo") and "echo" not in done
                       else [])
        print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}; "
              f"finished: {', '.join(kept) or 'nothing'}"
              + (f"; partial results in {args.json}" if args.json and kept
                 else f"; {args.json} holds the machine and the plan, no figures"
                 if args.json else ""),
              file=sys.stderr, flush=True)
    finally:
        early.close()  # what a failed or interrupted part did not use
        client.cleanup()
    out["parts_done"], out["parts_failed"] = done, failed
    out["elapsed_s"] = round(time.monotonic() - t0, 1)
    if not out.get("interrupted"):
        show(f"done in {out['elapsed_s']} s"
             + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json and not write_json(args.json, out):
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
