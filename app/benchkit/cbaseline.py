"""The C echo loop of the benchmark (cecho.c): the bare epoll loop with no Python in it.

The bare Python loops (baseline.py) show what an engine could reach in Python. This row shows
what a round trip costs when Python is gone: almost all of it the kernel's, a share every
server pays in some measure. Beside the table's `user us/rt` column it tells the kernel's
part of a miss from the interpreter's (docs/BENCHMARKS.md, "Why the misses").

cecho.c is compiled at run time (gcc -O2 -shared -fPIC) and run through ctypes in a thread of
the server process. ctypes lets go of the GIL for the whole call, so the loop runs as C; the
process's CPU time, pinning and commands are those of every other server (serve.py).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path

from app.benchkit.baseline import listening_socket, wake
from app.benchkit.loadgen import compile_c
from app.benchkit.servers import Running

C_ECHO_SOURCE = Path(__file__).with_name("cecho.c")


def load_c_echo(workdir: Path) -> ctypes.CDLL:
    """Build cecho.c in `workdir` and load it; SystemExit saying why when it cannot be built."""
    lib_path, why = compile_c(workdir, C_ECHO_SOURCE, shared=True)
    if lib_path is None:
        raise SystemExit(f"cannot build {C_ECHO_SOURCE.name}: {why}")
    lib = ctypes.CDLL(str(lib_path), use_errno=True)
    lib.cecho_run.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.cecho_run.restype = ctypes.c_int
    lib.cecho_stop.argtypes = []
    lib.cecho_stop.restype = None
    return lib


def start_c(edge: bool = False) -> Running:
    workdir = Path(tempfile.mkdtemp(prefix="muxscope-cecho-"))
    try:
        lib = load_c_echo(workdir)
    finally:  # the loaded object stays mapped: its file is no longer needed
        shutil.rmtree(workdir, ignore_errors=True)
    lsock = listening_socket()

    def run() -> None:
        if lib.cecho_run(lsock.fileno(), int(edge)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cecho_run: {os.strerror(err)}")

    thread = threading.Thread(target=run, name="c-echo", daemon=True)
    thread.start()
    port = lsock.getsockname()[1]

    def stop() -> None:
        lib.cecho_stop()
        wake(port)
        thread.join(timeout=2)

    return Running(port=port, stop=stop)
