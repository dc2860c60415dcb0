"""``muxscope bench``'s command line: its help, its flags and their checks, and the plan (window
lengths, reps, which loads and levels) that they make. The run itself is `app.bench`."""

from __future__ import annotations

import argparse
import math
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.benchkit import echo, scale, waitcost
from app.cli import OneLineParser, int_in, unwritable


@dataclass(frozen=True)
class Plan:
    seconds: float
    reps: int
    warmup: float
    quick: bool
    loads: tuple[tuple[str, int, int], ...]
    idle_levels: tuple[int, ...]
    event_modes: tuple[str, ...]
    wait_backends: tuple[str, ...]
    #: seconds of the unmeasured first window per echo server, and of load before delivery
    prime: float
    settle: float


HELP = """\
Side-by-side benchmarks of the echo server, printed as tables of medians over interleaved
repetitions (A B C A B C ...). Each server runs in its own process pinned to CPU 0, the load
client on CPU 1 (the C client in app/benchkit/loadclient.c, compiled with gcc at run time, else
a multi-process Python client; the output says which ran).

parts (--only NAME runs one):
  echo          server CPU us per round trip, 50 x 1 KiB and 1 x 64 B ping-pong: asyncio
                (the reference), bare loops (the floor), the bare epoll loop in C (what is
                left without Python: the kernel's share; needs gcc), the engine on every
                backend and write mode unobserved, and the app observed by a page; ratios
                vs asyncio
  wait          the wait call's cost as idle fds grow (10 ... 10,000) per backend
  events        events per second that reach one connected page, and their latency
  micro         the per-event cost of observation, in-process
  scale         10,000 idle connections + the page in headless Chromium (~75 s; only by name)
  instructions  callgrind instructions per message (needs valgrind; ~95 s; only by name)

A full run (echo, wait, events, micro) takes about 9 minutes; --quick about 5 s (a few eager
epoll rows only: the CI smoke run). Each rep of echo is 50 load windows (25 variants x 2
loads), of wait 12 (3 backends x 4 levels), of events 4, each --seconds plus a 0.5 s warm-up:
so echo is most of a run, and time grows with --reps x --seconds. Figures and their reading:
docs/BENCHMARKS.md.
"""

EXAMPLES = """\
examples:
  muxscope bench                          the full run, 3 reps x 2 s per window (~9 min)
  muxscope bench --quick                  a 5-second smoke run
  muxscope bench --only echo --reps 5 --json echo.json
  muxscope bench --only scale --scale-seconds 10 --scale-conns 2000
"""


#: the longest window a flag takes: an hour (a typo of 1e9 s would never end)
MAX_SECONDS = 3600.0
#: the shortest windows asked for: shorter ones hold too few round trips (a few, or none) for a
#: ratio, and their verdicts read as if they meant something
MIN_SECONDS = 0.1
MIN_SCALE_SECONDS = 1.0
#: open files the scale part's server needs beyond its connections (listeners, the page's
#: websocket, the trace, the interpreter's own), checked against the hard limit before a run
SCALE_FD_RESERVE = 100
#: parts with no load client of their own (--client does not apply)
CLIENTLESS = ("events", "micro", "instructions")


def _positive_float(what: str, least: float) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number > 0, not {text}")
        if value < least:
            raise argparse.ArgumentTypeError(
                f"{what} must be at least {least:g}: a shorter window holds too few round "
                f"trips to measure, not {text}")
        if value > MAX_SECONDS:
            raise argparse.ArgumentTypeError(f"{what} must be at most {MAX_SECONDS:g} (an hour), "
                                             f"not {text}")
        return value
    return parse


class _Once(argparse.Action):
    """An option given twice is refused (`--only echo --only micro` ran micro alone)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        seen: set[str] = getattr(namespace, "_given", set())
        if self.dest in seen:
            parser.error(f"{option_string} given twice (the second: {values}); give it once")
        namespace._given = seen | {self.dest}
        setattr(namespace, self.dest, values)


def _fd_shortfall(conns: int) -> str | None:
    """Why the scale part's server cannot hold `conns` connections under this process's hard
    open-file limit (a soft one is raised to it), or None."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = conns + SCALE_FD_RESERVE
    if hard == resource.RLIM_INFINITY or need <= hard:
        return None
    return (f"--scale-conns {conns:,} needs about {need:,} open files in the server, and the "
            f"hard limit here is {hard:,} (ulimit -Hn): ask for at most "
            f"{max(0, hard - SCALE_FD_RESERVE):,}, or raise the limit")


def _json_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("needs a file name")
    return Path(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = OneLineParser(prog="muxscope bench", description=HELP, epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="about 5 s in all with the C load client, ~11 s with the Python one "
                   "(the CI smoke run): short windows, one rep")
    p.add_argument("--seconds", metavar="S", type=_positive_float("seconds", MIN_SECONDS),
                   default=None, action=_Once,
                   help="seconds per measurement window, at least 0.1 (default: 2; 0.25 with "
                   "--quick)")
    p.add_argument("--reps", metavar="N", type=int_in(1, None, "the number of reps"), default=None,
                   action=_Once,
                   help="interleaved repetitions per comparison (default: 3; 1 with --quick)")
    p.add_argument("--only", choices=("echo", "wait", "events", "micro", "scale",
                                      "instructions"),
                   default=None, action=_Once,
                   help="run one part only (default: echo, wait, events and micro; scale and "
                        "instructions run only when asked for by name)")
    p.add_argument("--scale-seconds", metavar="S",
                   type=_positive_float("scale seconds", MIN_SCALE_SECONDS),
                   default=None, action=_Once,
                   help=f"--only scale: seconds of the measured window, at least 1 (default: "
                        f"{scale.SECONDS:g})")
    p.add_argument("--scale-conns", metavar="N",
                   type=int_in(1, scale.MAX_CONNS, "the number of connections"),
                   default=None, action=_Once,
                   help=f"--only scale: idle connections (default: {scale.CONNS:,}, at most "
                        f"{scale.MAX_CONNS:,}, and what the open-file limit holds)")
    p.add_argument("--scale-page-cpus", choices=("1", "all"), default=None,
                   help="--only scale: the CPUs Chromium may use: 1 = CPU 1, shared with the "
                        "active client and the holder; all = either CPU, as the scheduler "
                        "picks (the server and the clients stay pinned) (default: all)")
    p.add_argument("--scale-budget", metavar="N", type=int_in(100, 1_000_000, "the budget"),
                   default=None,
                   help="--only scale: the app's observation budget, events a second the page "
                        "is shown (default: the app's own, 21,000): how the page's frame rate "
                        "depends on what it is shown")
    p.add_argument("--json", metavar="FILE", type=_json_path, default=None, action=_Once,
                   help="also write every figure to FILE as JSON (the echo rows with each "
                   "repetition's raw figures)")
    p.add_argument("--client", choices=("auto", "python"), default="auto", action=_Once,
                   help="load client: auto = the C client when gcc exists, else Python "
                        "(default: %(default)s)")
    args = p.parse_args(argv)
    vars(args).pop("_given", None)  # (_Once's record)
    scale_flags = [f for f, v in (("--scale-seconds", args.scale_seconds),
                                  ("--scale-conns", args.scale_conns),
                                  ("--scale-page-cpus", args.scale_page_cpus),
                                  ("--scale-budget", args.scale_budget)) if v is not None]
    if scale_flags and args.only != "scale":
        p.error(f"{scale_flags[0]} applies to --only scale only")
    args.scale_seconds = args.scale_seconds or scale.SECONDS
    args.scale_conns = args.scale_conns or scale.CONNS
    if args.only == "scale" and (short := _fd_shortfall(args.scale_conns)):
        p.error(short)
    args.scale_page_cpus = args.scale_page_cpus or "all"
    timing = [f for f, v in (("--seconds", args.seconds), ("--reps", args.reps)) if v is not None]
    if timing and args.only in ("micro", "scale", "instructions"):
        p.error(f"{timing[0]} does not apply to --only {args.only}")
    if args.quick and args.only in ("scale", "instructions"):
        p.error(f"--quick does not apply to --only {args.only}"
                + (" (a short one: --scale-seconds 10 --scale-conns 2000)"
                   if args.only == "scale" else ""))
    if args.client != "auto" and args.only in CLIENTLESS:
        p.error(f"--client does not apply to --only {args.only} (it runs no load client)")
    if args.json is not None and (problem := unwritable(args.json) or _cannot_open(args.json)):
        p.error(f"cannot write --json {args.json}: {problem}")  # now, not after the run
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    return Plan(
        seconds=args.seconds or (0.25 if quick else 2.0),
        reps=args.reps or (1 if quick else 3),
        warmup=0.1 if quick else 0.5,
        quick=quick,
        loads=echo.LOADS[:1] if quick else echo.LOADS,
        idle_levels=(10, 100) if quick else waitcost.IDLE_LEVELS,
        event_modes=("eager",) if quick else ("queued", "eager"),
        wait_backends=("epoll",) if quick else waitcost.BACKENDS,
        prime=0.1 if quick else 0.3,
        settle=0.2 if quick else 0.5,
    )


def _cannot_open(path: Path) -> str | None:
    """Open `path` for appending (root passes every `os.access` check), and leave no file
    behind that was not there; why not, or None."""
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    if not existed:
        path.unlink(missing_ok=True)
    return None
