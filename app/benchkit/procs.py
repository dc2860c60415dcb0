"""Parent-side handles on the benchmark's child processes (line protocol over pipes)."""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CpuSeconds(float):
    """A server's CPU seconds, user + system, that also carries the user part (`user`). It is a
    float, so whatever subtracts two samples keeps working; `LoadResult` reads `user` too."""

    user: float

    def __new__(cls, total: float | str, user: float) -> CpuSeconds:
        sample = super().__new__(cls, total)
        sample.user = user
        return sample


class LineProc:
    """A child process whose stdout lines are read by a thread and handed out with timeouts."""

    def __init__(self, argv: list[str], stdin: bool = True) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
            cwd=ROOT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip("\n")])[-20:]

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with `prefix` (other lines are skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"{self.argv[0]}: no {prefix!r} within {timeout}s") from None
            if line is None:
                err = "\n".join(self.stderr_tail[-8:])
                raise RuntimeError(f"{' '.join(self.argv[:4])} exited before {prefix!r}:\n{err}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def pause(self) -> None:
        """SIGSTOP: the process takes no CPU at all until `resume` (see `echo.measure`)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def ask_to_quit(self) -> None:
        """Send `quit` and end of input, without waiting (see `close_all`)."""
        self.resume()  # a stopped process would never read it
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.send("quit")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass

    def close(self, timeout: float = 8) -> None:
        """Ask politely (quit / end of input), then terminate, then kill — this PID only."""
        self.ask_to_quit()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def close_all(procs: list[LineProc]) -> None:
    """Close several children at once: all are asked to quit first, then each is awaited, so
    their shutdowns overlap instead of adding up. From a `finally` a Ctrl-C is passing
    through, they are terminated instead (`stop_all_now`)."""
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        stop_all_now(procs)
        return
    for proc in procs:
        proc.ask_to_quit()
    for proc in procs:
        proc.close()


def stop_all_now(procs: list[LineProc], grace: float = 1.0) -> None:
    """SIGTERM every child at once, SIGKILL any left after `grace` s. A polite quit is read
    only once a child has started up: 23 servers starting on one CPU took 20-28 s to answer
    a Ctrl-C sent to the bench alone (not to its process group)."""
    for proc in procs:
        proc.resume()
        if proc.proc.poll() is None:
            proc.proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.proc.kill()
            proc.proc.wait()


class ServerProc(LineProc):
    """One benchmarked server (see `app.benchkit.serve`)."""

    def __init__(self, spec: str, cpu: int = 0) -> None:
        super().__init__([sys.executable, "-m", "app.benchkit.serve", spec, str(cpu)])
        self.spec = spec
        self.port = 0
        self.http_port: int | None = None

    def ready(self, timeout: float = 30) -> ServerProc:
        """Wait for the server's PORT line (servers are launched first, then awaited)."""
        tcp, http = self.expect("PORT", timeout).split()
        self.port = int(tcp)
        self.http_port = int(http) or None
        return self

    def cpu(self) -> CpuSeconds:
        self.send("cpu")
        total, *user = self.expect("CPU", 10).split()
        return CpuSeconds(total, float(user[0]) if user else math.nan)

    def stacks(self) -> dict[str, str]:
        """Where each of its threads is (serve.py's `stacks`); {} if it cannot say."""
        try:
            self.send("stacks")
            result: dict[str, str] = json.loads(self.expect("STACKS", 5))
        except (OSError, RuntimeError, TimeoutError, ValueError):
            return {}
        return result

    def extra(self) -> dict[str, Any]:
        self.send("extra")
        result: dict[str, Any] = json.loads(self.expect("EXTRA", 10))
        return result
