"""Warnings that a storm repeats (a recorder rotating a small file many times a second), said
at once and then at most once a minute, each with a count of the ones not said."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("app.record")

NOTICE_INTERVAL = 60.0  # seconds between two log lines of one kind that a storm repeats


class Notices:
    """A warning that may come with every rotation (a storm rotates a small file many times a
    second): said at once, then at most once a NOTICE_INTERVAL, with how many were not said."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (said at, not said since)
        self._latest: dict[str, tuple[str, tuple[object, ...]]] = {}  # kind -> what was said

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        said, quiet = self._last.get(kind, (-NOTICE_INTERVAL, 0))
        if now - said < NOTICE_INTERVAL:
            self._last[kind] = (said, quiet + 1)
            return
        self._last[kind] = (now, 0)
        self._latest[kind] = (message, args)  # without the count: flush() adds its own
        if quiet:
            message += f" (and {quiet} more like it in the last minute)"
        log.warning(message, *args)

    def flush(self) -> None:
        """At the end: say how many of each were not said (a storm may end before the next)."""
        for kind, (_, quiet) in self._last.items():
            if quiet:
                message, args = self._latest[kind]
                log.warning(message + f" (and {quiet} more like it since)", *args)
        self._last.clear()
