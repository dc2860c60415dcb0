"""The load client: loadclient.c (next to this file, so a wheel carries it) compiled at run
time, or the Python fallback."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.benchkit.procs import LineProc

C_SOURCE = Path(__file__).with_name("loadclient.c")
HOST = "127.0.0.1"


@dataclass
class LoadResult:
    rt: int
    seconds: float
    p50_us: int
    p99_us: int
    dead: int
    probes: tuple[Any, Any]  # what the probe returned at START and at END

    @property
    def server_cpu_s(self) -> float:
        return float(self.probes[1] - self.probes[0])

    @property
    def server_user_s(self) -> float:
        """The user part of `server_cpu_s` (nan when the probe gave none): the interpreter's
        share of a round trip, where the rest is the kernel's (docs/BENCHMARKS.md)."""
        return float(getattr(self.probes[1], "user", math.nan)
                     - getattr(self.probes[0], "user", math.nan))

    @property
    def user_us_per_rt(self) -> float:
        return self.server_user_s * 1e6 / self.rt if self.rt else math.nan

    @property
    def rt_per_s(self) -> float:
        return self.rt / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_rt(self) -> float:
        return self.server_cpu_s * 1e6 / self.rt if self.rt else float("inf")


def compile_c(workdir: Path, source: Path = C_SOURCE,
              shared: bool = False) -> tuple[Path | None, str]:
    """Compile `source` (the C client by default) with gcc -O2 into `workdir`, as a shared
    object with `shared`: (the file, "") or (None, why not)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found"
    if not source.exists():
        return None, f"{source.name} missing"
    out = workdir / (source.stem + (".so" if shared else ""))
    flags = ["-shared", "-fPIC"] if shared else []
    proc = subprocess.run([gcc, "-O2", *flags, "-o", str(out), str(source)],
                          capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return out, ""
    first = next((line for line in proc.stderr.splitlines() if "error" in line), "")
    return None, f"gcc failed: {first[:120]}" if first else "gcc failed"


class LoadClient:
    """Runs one load window against a port and samples the server's CPU at START and END."""

    def __init__(self, prefer: str = "auto", cpu: int = 1) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="muxscope-bench-")
        self.exe, why = (compile_c(Path(self._tmp.name)) if prefer != "python"
                         else (None, "--client python"))
        self.cpu = cpu
        if self.exe is not None:
            self.name = "C (loadclient.c, gcc -O2)"
        elif prefer == "python":
            self.name = "Python (2 processes; --client python)"
        else:
            self.name = f"Python fallback (2 processes; {why})"

    def argv(self, port: int, conns: int, size: int, warmup: float, seconds: float,
             depth: int) -> list[str]:
        args = [HOST, str(port), str(conns), str(size), f"{warmup}", f"{seconds}", str(depth),
                str(self.cpu)]
        if self.exe is not None:
            return [str(self.exe), *args]
        return [sys.executable, "-m", "app.benchkit.pyclient", "load", *args]

    def run(self, port: int, conns: int, size: int, warmup: float, seconds: float,
            probe: Callable[[], Any], depth: int = 1) -> LoadResult:
        proc = LineProc(self.argv(port, conns, size, warmup, seconds, depth), stdin=False)
        try:
            proc.expect("START", warmup + 30)
            p0 = probe()
            proc.expect("END", seconds + 30)
            p1 = probe()
            fields = dict(kv.split("=") for kv in proc.expect("RESULT", 30).split())
        except BaseException:  # Ctrl-C, a dead server: the window is over, no 10 s grace
            proc.close(timeout=0.2)
            raise
        proc.close(timeout=10)
        return LoadResult(rt=int(fields["rt"]), seconds=float(fields["seconds"]),
                          p50_us=int(fields["p50_us"]), p99_us=int(fields["p99_us"]),
                          dead=int(fields["dead"]), probes=(p0, p1))

    def cleanup(self) -> None:
        self._tmp.cleanup()
