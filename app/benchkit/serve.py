"""Subprocess entry for one benchmarked server: ``python -m app.benchkit.serve SPEC [CPU]``.

SPEC is ``asyncio``, ``bare[:poll|:select][:queued|:edge]`` (the bare loops, on epoll by default),
``c[:edge]`` (the bare epoll loop in C, cecho.c),
``engine:<backend>:<trigger>:<write>[:waits]`` or ``app:<write>[:<backend>[:<budget>]]``
(budget: the observation budget, events/s). The process pins itself to CPU (default 0; -1 = no
pinning), raises its soft open-file limit to the hard one, starts the server and prints
``PORT <tcp> <http or 0>``. Then it answers one-line commands on stdin:

- ``cpu``   -> ``CPU <seconds> <user seconds>``: this process's user+system CPU, then its user
  part (getrusage: the sum is the kernel's exact run time; Linux splits it between user and
  system in proportion to the clock ticks that found the process in each)
- ``extra`` -> ``EXTRA <json>``: variant-specific figures (the engine's wait counters)
- ``stacks`` -> ``STACKS <json>``: where each thread is, {name: innermost frames} (what the
  bench logs when a window had no round trips)
- ``quit`` or end of input: stop the server and exit.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import traceback

from app.benchkit.baseline import start_bare
from app.benchkit.cbaseline import start_c
from app.benchkit.orphan import die_with_parent
from app.benchkit.servers import Running, start_app, start_asyncio, start_engine


def process_cpu_s() -> tuple[float, float]:
    """(user + system, user) CPU seconds of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_utime


def start(spec: str) -> Running:
    parts = spec.split(":")
    if parts[0] == "asyncio":
        return start_asyncio()
    if parts[0] == "bare":
        rest = parts[1:]  # bare[:poll|:select][:queued|:edge]
        kind = "poll" if "poll" in rest else "select" if "select" in rest else "epoll"
        return start_bare(queued="queued" in rest, edge="edge" in rest, kind=kind)
    if parts[0] == "c":
        return start_c(edge="edge" in parts[1:])
    if parts[0] == "engine":
        _, backend, trigger, write, *rest = parts
        return start_engine(backend, trigger, write, count_waits="waits" in rest)
    if parts[0] == "app":
        budget = int(parts[3]) if len(parts) > 3 else None
        return start_app(parts[1], parts[2] if len(parts) > 2 else "epoll", budget)
    raise SystemExit(f"unknown server spec {spec!r}")


def thread_stacks(depth: int = 3) -> dict[str, str]:
    """Each thread's innermost `depth` frames, innermost last: "file:line function" each."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = {}
    for ident, frame in sys._current_frames().items():
        where = [f"{os.path.basename(fs.filename)}:{fs.lineno} {fs.name}"
                 for fs in traceback.extract_stack(frame)[-depth:]]
        out[names.get(ident, str(ident))] = " < ".join(reversed(where))
    return out


def prepare(cpu: int) -> None:
    if cpu >= 0 and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def command_loop(running: Running) -> None:
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "cpu":
            total, user = process_cpu_s()
            print(f"CPU {total:.6f} {user:.6f}", flush=True)
        elif cmd == "extra":
            print("EXTRA " + json.dumps(running.extra()), flush=True)
        elif cmd == "stacks":
            print("STACKS " + json.dumps(thread_stacks()), flush=True)
        elif cmd == "quit":
            break


def die_with_the_thread(args: threading.ExceptHookArgs) -> None:
    """A server thread that dies ends the process, its traceback on stderr: a server left
    up without its loop would accept connections and echo nothing, and its row would read as
    a window with no round trips instead of saying why."""
    traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback)
    print(f"server thread {args.thread.name if args.thread else '?'} died", file=sys.stderr,
          flush=True)
    os._exit(70)


def main(argv: list[str]) -> int:
    die_with_parent()
    threading.excepthook = die_with_the_thread
    prepare(int(argv[1]) if len(argv) > 1 else 0)
    running = start(argv[0])
    print(f"PORT {running.port} {running.http_port or 0}", flush=True)
    try:
        command_loop(running)
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
