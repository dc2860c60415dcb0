"""Where `--record FILE` writes: one of this process's own fds (/dev/stdout...: written
through, never renamed) or a path with its symlinks resolved; the files beside it that
rotation makes (FILE.1, FILE.2 ...; the staging `.FILE.XXXX.new`); and how a file is opened
and appended to, whole lines or nothing."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import io
import logging
import os
import re
import stat
import tempfile
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


class SegmentNotMade(OSError):
    """The next segment's staging file could not be made: nothing was moved."""


def next_segment(path: Path, full: io.FileIO | None, shift_old: Callable[[], None]) -> io.FileIO:
    """Open the file that takes over `path` at a rotation, the full one moved aside to
    FILE.1 (by `shift_old`), and return it; on failure nothing is lost and `path` is still
    the full file: SegmentNotMade, or the OSError of a refused rename.

    The new file is made first, under a staging name (mkstemp: O_EXCL, so never a file, link
    or folder someone put there): made after the moves, a failure (its folder gone, no fds)
    left FILE missing, the full one going on as FILE.1; made after closing the full one, the
    reopen once the folder came back truncated that segment."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    except OSError as exc:
        raise SegmentNotMade(exc.errno, exc.strerror, exc.filename) from exc
    staging = Path(name)
    new_file = io.FileIO(fd, "wb")
    if full is not None:  # mkstemp's 0600: the full file's mode instead
        with contextlib.suppress(OSError):
            os.fchmod(fd, stat.S_IMODE(os.fstat(full.fileno()).st_mode))
    try:
        shift_old()  # renaming the open full file is fine: it stays its writer's
        staging.replace(path)
    except OSError:
        new_file.close()
        with contextlib.suppress(OSError):
            staging.unlink()
        raise
    return new_file


def is_fifo(path: Path, fd: int | None) -> bool:
    """A FIFO at `path` (its open waits for a reader); never one of our own fds, open already."""
    if fd is not None:
        return False
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        return False


def regular_path(path: Path, fd: int | None) -> bool:
    """A regular file (or none yet), not one of this process's own fds: /dev/stdout sent to a
    file is a regular file too, and renaming it would rename /dev/stdout."""
    return fd is None and (not path.exists() or path.is_file())


def open_segment(path: Path, fd: int | None, rotates: bool) -> io.FileIO:
    """Unbuffered: each write reaches the file whole or fails, and can be cut back. One of our
    own fds (/dev/stdout) is written through a dup, sharing its offset with the other writers
    there (the banner, logs with 2>&1); opened anew, its own offset would write over them.
    Other streams (a FIFO, /dev/null) are appended to."""
    if fd is not None:
        return io.FileIO(os.dup(fd), "wb")
    return io.FileIO(path, "wb" if rotates else "ab")


def append_whole(file: io.FileIO, data: bytes) -> None:
    """Append `data` whole, or raise OSError with what was written of it cut back off the
    file (a full disk must not leave half a line, which would make the file unreplayable)."""
    start = _write_start(file)
    try:
        view = memoryview(data)
        while view:
            view = view[file.write(view):]
    except OSError:
        if start is not None:
            with contextlib.suppress(OSError):  # a device: nothing to cut back
                file.truncate(start)
                file.seek(start)
        raise


def _write_start(file: io.FileIO) -> int | None:
    """Where the next write lands, to cut a failed one back to: not a count of our own, since
    /dev/stdout shares its file with the banner, logs and an earlier `>>`. None for a pipe
    (nothing can be cut back)."""
    try:
        if fcntl.fcntl(file.fileno(), fcntl.F_GETFL) & os.O_APPEND:
            return os.fstat(file.fileno()).st_size  # appends land at the end
        return file.tell()
    except OSError:
        return None
