"""What the scale run reads from /proc: a process's RSS, the Chromium processes' CPU time by
type and their CPUs, each CPU's busy time, and the time the hypervisor took from them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    """VmRSS of `pid` in MB (MiB), from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _descendants(root: int) -> list[int]:
    """Every live process under `root` (from /proc/*/stat's ppid)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _chromium_processes() -> Iterator[tuple[int, str]]:
    """(pid, --type: "browser" for the main one) of the Chromium processes under this one."""
    for pid in _descendants(os.getpid()):
        try:
            # Chromium rewrites its title: one string with spaces, or NUL-separated.
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if argv and b"chrom" in argv[0]:
            yield pid, next((a.split(b"=", 1)[1].decode() for a in argv
                             if a.startswith(b"--type=")), "browser")


def chromium_cpu_s() -> dict[str, float]:
    """CPU seconds (user+system) of the Chromium processes under this one, by --type."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid, kind in _chromium_processes():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def chromium_cpus() -> list[int]:
    """The CPUs any Chromium process under this one may run on (the union of their
    affinities): what the scale run's report says the page ran on, read, not assumed."""
    cpus: set[int] = set()
    for pid, _kind in _chromium_processes():
        try:
            cpus |= os.sched_getaffinity(pid)
        except OSError:
            continue
    return sorted(cpus)


def renderer_main_sched() -> tuple[int, int] | None:
    """(ns run, ns waited for a CPU) of the busiest Chromium renderer's main thread (its tid is
    its pid), from /proc/PID/task/PID/schedstat; None without one. A long task is wall time:
    this tells the page's own work from its time queued behind the other processes of its CPU."""
    best: tuple[int, int] | None = None
    for pid in (pid for pid, kind in _chromium_processes() if kind == "renderer"):
        try:
            run, wait = (int(x) for x in
                         Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[:2])
        except (OSError, ValueError):
            continue
        if best is None or run > best[0]:
            best = (run, wait)
    return best


def cpu_busy() -> list[tuple[int, int]]:
    """Per CPU (busy, total) jiffies from /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            out.append((sum(v) - idle, sum(v)))
    return out


def cpu_steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs, from /proc/stat: time a VM was ready to run but the
    host ran something else (a stall on both the server and the page at once can be this)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            return (v[7] if len(v) > 7 else 0), sum(v)
    return 0, 0


def steal_pct(a: tuple[int, int], b: tuple[int, int]) -> float:
    """% of the CPUs' time between two `cpu_steal` readings that the host took."""
    return (b[0] - a[0]) * 100 / max(1, b[1] - a[1])
