"""app.entry.main, the console script's function, called in-process."""

from __future__ import annotations

import threading

from app import __version__
from app.entry import main


def test_main_off_the_main_thread_runs_the_command(capsys) -> None:
    """Signal handlers can only be set on the main thread; off it, main() must still run the
    command (as app.cli.main did before entry.py), not fail with ValueError."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(main(["--version"]))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert outcome == [0]
    assert capsys.readouterr().out.strip() == f"muxscope {__version__}"
