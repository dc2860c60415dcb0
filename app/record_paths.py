"""Where `--record FILE` writes: one of this process's own fds (/dev/stdout...: written
through, never renamed) or a path with its symlinks resolved; and the files beside it that
rotation makes (FILE.1, FILE.2 ...; the staging `.FILE.XXXX.new`)."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("app.record")

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


def remove_stale_staging(path: Path) -> None:
    """An earlier run that died between making its next file and renaming it (the recorder's
    `_rotate`) left it behind, empty, at `.FILE.XXXX.new`: removed. Only empty regular files
    of ours: a link, a folder or anything holding bytes is not ours to delete."""
    for staged in path.parent.glob(f".{glob.escape(path.name)}.*.new"):
        with contextlib.suppress(OSError):
            info = staged.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size == 0 and info.st_uid == os.getuid():
                staged.unlink()
                log.info("--record: removed %s, left empty by an earlier run", staged)


def shift_old_files(path: Path, keep: int, dropped: Callable[[Path], None]) -> None:
    """FILE -> FILE.1 -> FILE.2 ...; the oldest beyond `keep` is overwritten (`dropped` is
    told, once the rename worked: one that fails has dropped nothing). Nothing moves when
    FILE is gone (deleted under us): no segment is pushed out for it."""
    if not path.exists():
        return
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            newer = path.with_name(f"{path.name}.{i + 1}")
            dropping = i == keep - 1 and newer.exists()
            older.replace(newer)
            if dropping:
                dropped(newer)
    path.replace(path.with_name(f"{path.name}.1"))
