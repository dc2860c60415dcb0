"""The engine's configuration, and the process limit it raises on start."""

from __future__ import annotations

import resource
from collections.abc import Callable
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
    #: a running loop's wait with nothing scheduled: None blocks until something is ready, as
    #: asyncio's does. A finite timeout arms a kernel timer on every wait that sleeps: 8-11 %
    #: of a server's CPU a round trip at 1 conn x 64 B when it is alone on its CPU
    #: (docs/BENCHMARKS-history.md "Run BF"); the page shows what the call was passed either way
    wait_timeout: float | None = None
    #: a step's wait (the loop paused): finite, so a step on an idle server still returns
    #: and shows a wait that timed out
    step_timeout: float | None = 0.25
    #: SO_SNDBUF for accepted connections (None: the kernel's default); a tiny one makes
    #: partial sends visible
    so_sndbuf: int | None = None
    #: high-volume events per second shown to observers (None: all); see observe.py
    observe_budget: int | None = None
    #: open-file slots kept free for the rest of the process (a dashboard must still accept
    #: its page when echo clients flood in): a new connection whose fd falls among the last
    #: `fd_reserve` below the soft RLIMIT_NOFILE is closed with an `error` event, as one past
    #: `max_connections` is; at most a quarter of the limit. 0: none kept.
    fd_reserve: int = 0


def fd_ceiling(nofile: int, reserve: int) -> int | None:
    """The lowest fd a new connection may not have, with `reserve` slots kept free."""
    if reserve <= 0:
        return None
    return nofile - min(reserve, nofile // 4)


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


PR_SET_NAME = 15  # prctl(2): the calling thread's name


def os_thread_namer(name: str) -> Callable[[], None]:
    """A function that gives the thread calling it `name` in the OS too (15 bytes at most), so
    `top -H`, `ps -T` and /proc/PID/task/*/comm show which thread is the engine's, for
    `strace -p TID`: Python 3.11 names only its own Thread object. Made on the starting thread
    and called first thing in the new one, whose prctl(PR_SET_NAME) takes no fd (writing the
    thread's `comm` file did, for a moment, and raced with a client's first connect: the server
    got the lower fd). `CDLL(None)` is the process's own symbols, libc's among them: no search,
    no file. Best effort: a no-op where that fails."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return lambda: None
    raw = name.encode()[:15]

    def name_this_thread() -> None:
        prctl(PR_SET_NAME, raw, 0, 0, 0)

    return name_this_thread
