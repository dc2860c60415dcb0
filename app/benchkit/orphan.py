"""A bench child dies with its parent, even a parent killed with SIGKILL.

The echo part stops its idle servers (SIGSTOP) between windows; a stopped process never reads
the end of its input, so a bench killed outright left them stopped forever. The kernel's
parent-death signal (SIGKILL, which also ends a stopped process) covers every way out. Linux
only; elsewhere nothing is done. Call it first thing in the child, from its main thread."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)
