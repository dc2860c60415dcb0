"""The engine's configuration, and the process limit it raises on start."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from . import backends

WRITE_MODES = ("queued", "eager")
MAX_DELAY_MS = 5000


@dataclass(frozen=True)
class EngineConfig:
    host: str = "127.0.0.1"
    tcp_port: int = 9000
    udp_port: int | None = None  # None: the TCP port actually bound
    udp: bool = True
    backend: str = backends.default_backend()
    trigger: str = "level"
    oneshot: bool = False
    write: str = "queued"
    max_connections: int = 10_000
    high_water: int = 1 << 20
    low_water: int = 256 << 10
    wait_timeout: float | None = 0.25
    #: SO_SNDBUF for accepted connections (None: the kernel's default); a tiny one makes
    #: partial sends visible
    so_sndbuf: int | None = None
    #: high-volume events per second shown to observers (None: all); see observe.py
    observe_budget: int | None = None


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def name_os_thread(name: str, native_id: int | None) -> None:
    """Give thread `native_id` of this process `name` in the OS as well (15 bytes at most), so
    `top -H`, `ps -T` and /proc/PID/task/*/comm show which thread is the engine's, for
    `strace -p TID`: Python 3.11 names only its own Thread object. Linux renames a thread of
    the same process through its `comm` file (no ctypes: `ctypes.util.find_library` runs
    subprocesses). Best effort."""
    if native_id is None:
        return
    try:
        with open(f"/proc/self/task/{native_id}/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass
