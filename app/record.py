"""`--record FILE`: the snapshot, then every event, as JSON lines, rotated by size."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

KEEP_ROTATED = 5


class JsonlRecorder:
    """A pump consumer. Rotation: FILE -> FILE.1 -> FILE.2 ... (at most KEEP_ROTATED kept);
    each new file starts with a fresh snapshot line when one is available."""

    def __init__(self, path: str | os.PathLike[str], max_mb: float = 100) -> None:
        self.path = Path(path)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._file = self.path.open("ab")
        self._size = self._file.tell()
        self._snapshot: bytes | None = None

    def write_snapshot(self, state: dict[str, Any], seq: int, started_at: float) -> None:
        line = orjson.dumps({"type": "snapshot", "state": state, "seq": seq,
                             "started_at": started_at}) + b"\n"
        self._snapshot = line
        self._write(line)

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(event) + b"\n" for event in batch)
        if self._size + len(data) > self.max_bytes and self._size:
            self._rotate()
        self._write(data)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        for i in range(KEEP_ROTATED - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("wb")
        self._size = 0

    def close(self) -> None:
        self._file.close()
