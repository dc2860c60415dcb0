"""Ctrl-C or SIGTERM at any moment of ``muxscope``'s start-up or shutdown ends it quietly (SPEC §1).

The steady case (a signal while it serves) is in test_cli.py. These send the signal while the
imports run (FastAPI, uvicorn and the engine take ~70 ms), and a second one while it shuts down.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.app.test_cli import ROOT, START_TIMEOUT, env, launch

#: Stimulus timing only: how long after the anchor the signal is sent (the anchor itself is
#: waited for on the process's own output, never slept for).
EARLY_DELAYS = (0.0, 0.01, 0.02, 0.05)
SHUTDOWN_DELAYS = (0.0, 0.03, 0.08, 0.2)
EXIT_TIMEOUT = 15.0


def _nested(line: str) -> bool:
    """An import-time line of an import made while another module was importing (indented)."""
    return line.split("|")[-1].startswith("   ")


def _signal_while_importing(sig: int, delay: float) -> tuple[int, list[str]]:
    """``python -X importtime -m app``, signalled `delay` s into the command's own imports.

    The anchor is the first nested import after the ``app`` package's: app/__main__.py is then
    importing the command's modules, tens of milliseconds of it. Anything earlier is the
    interpreter's start (site and its .pth files, runpy, some microseconds of app/__main__.py
    and app/entry.py themselves), which no code of the project can guard: a signal there ends
    the process as Python's defaults decide. Returns the exit status and stderr without the
    import-time lines."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "app", "--http-port", "0", "--echo-port", "0"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    other: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        package_in = False
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"app/__main__.py imported nothing in {START_TIMEOUT}s: "
                                     f"{other!r}") from None
            if line is None:
                raise AssertionError(f"exited before app/__main__.py imported: {other!r}")
            if not line.startswith("import time:"):
                other.append(line)
            elif package_in and _nested(line):
                break
            else:
                package_in = package_in or line.endswith("| app")
        if delay:
            time.sleep(delay)  # the stimulus: a signal this long after the imports began
        proc.send_signal(sig)
        code = proc.wait(timeout=EXIT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    reader.join(timeout=10)
    while (line := lines.get_nowait()) is not None:
        if not line.startswith("import time:"):
            other.append(line)
    return code, other


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_imports_run_ends_it_quietly(sig: int) -> None:
    """Exit status 0, as for a Ctrl-C or SIGTERM while it serves, and nothing on stderr."""
    results = {delay: _signal_while_importing(sig, delay) for delay in EARLY_DELAYS}
    bad = {delay: (code, err) for delay, (code, err) in results.items() if code != 0 or err}
    assert not bad, f"delay: (status, stderr): {bad}"


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT)],
    ids=["SIGTERM-then-SIGINT", "SIGINT-twice"],
)
def test_a_second_signal_while_it_shuts_down_ends_it_quietly(first: int, second: int) -> None:
    """A second signal (uvicorn takes a second Ctrl-C as "force quit") adds no traceback.

    Status 0, or death by the second signal when it arrives after muxscope's own code has
    returned (the interpreter's teardown: the signal's default action, the shell's 130)."""
    results = {}
    for delay in SHUTDOWN_DELAYS:
        with launch("--http-port", "0", "--echo-port", "0", "--no-udp") as run:
            run.read_until(r"^Dashboard: ")
            run.proc.send_signal(first)
            if delay:
                time.sleep(delay)  # the stimulus: the second signal this long after the first
            run.proc.send_signal(second)  # a no-op once it has been reaped
            code = run.proc.wait(timeout=EXIT_TIMEOUT)
            results[delay] = (code, run.stderr_text())
    bad = {d: r for d, r in results.items() if r[0] not in (0, -second) or r[1].strip()}
    assert not bad, f"delay: (status, stderr): {bad}"
