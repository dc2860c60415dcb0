"""Where `--record FILE` writes: one of this process's own fds (/dev/stdout...: written
through, never renamed) or a path with its symlinks resolved."""

from __future__ import annotations

import os
import re
from pathlib import Path

_NAMED_FDS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev|proc/self|proc/(\d+))/fd/(\d+)")


def own_fd(path: str | os.PathLike[str]) -> int | None:
    """N when `path` is this process's own fd N: /dev/stdout, /dev/stderr, /dev/fd/N,
    /proc/self/fd/N, or a symlink to one of them (followed one link at a time: resolving the
    whole path would go through to whatever file the shell redirected to)."""
    text = os.path.abspath(path)
    for _ in range(40):  # ELOOP's limit
        if text in _NAMED_FDS:
            return _NAMED_FDS[text]
        match = _FD_PATH.fullmatch(text)
        if match and (match[1] is None or int(match[1]) == os.getpid()):
            return int(match[2])
        if not os.path.islink(text):
            return None
        text = os.path.normpath(os.path.join(os.path.dirname(text), os.readlink(text)))
    return None


def real_path(path: str | os.PathLike[str]) -> Path:
    """`path` with its symlinks resolved, unless that goes nowhere: another process's
    /proc/PID/fd/N of a pipe resolves to "pipe:[inode]", which is no path."""
    real = os.path.realpath(path)
    return Path(path) if os.path.exists(path) and not os.path.exists(real) else Path(real)
