"""A browser-like websocket reader of the app's /ws: ``python -m app.benchkit.wsclient PORT CPU``.

It sends the Origin a page on the dashboard would send, reads every frame, counts what it
received, and acknowledges what it took in as the page does (`static/js/socket.js`: an ack per
1,000 events, or at the next frame 100 ms after the last ack; `--no-ack` among the arguments:
never, as clients other than the page). Prints ``READY <started_at>`` after the snapshot;
then answers stdin commands:

- ``mark``  -> ``MARK``: start a new measurement window (zero the window's counters)
- ``stats`` -> ``STATS <json>``: events, dropped, frames and seconds in the window, the latency
  (arrival wall time - (started_at + ts)) p50/p99 in ms of the events that happened in the
  window, and whether the seq gaps add up exactly to the dropped counts since the snapshot
  (SPEC §4). Events older than the window are counted but give no latency: the echo part stops
  its servers (SIGSTOP) between windows, and a frame cut in two by a stop would otherwise
  report the minute the server was stopped as latency.
- ``quit`` or end of input: close and exit.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import threading
import time
from typing import Any

from app.benchkit.orphan import die_with_parent

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency of the project
    _loads = json.loads


class Window:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        self.last_seq = 0
        self.gap_total = 0
        self.dropped_total = 0

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.events = 0
        self.dropped = 0
        self.frames = 0
        self.lat_ms: list[float] = []

    def add(self, frame: dict[str, Any], started_at: float, now: float) -> None:
        events = frame.get("events", [])
        with self.lock:
            self.frames += 1
            self.events += len(events)
            self.dropped += int(frame.get("dropped", 0))
            self.dropped_total += int(frame.get("dropped", 0))
            born_after = self.wall0 - started_at  # the window's start on the ts clock
            for ev in events:
                if ev["ts"] >= born_after:
                    self.lat_ms.append((now - started_at - ev["ts"]) * 1e3)
                self.gap_total += ev["seq"] - self.last_seq - 1
                self.last_seq = ev["seq"]

    def report(self) -> dict[str, Any]:
        with self.lock:
            lat = sorted(self.lat_ms)
            pick = (lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 3)) if lat else (
                lambda p: None)
            return {"events": self.events, "dropped": self.dropped, "frames": self.frames,
                    "seconds": time.monotonic() - self.t0, "p50_ms": pick(0.5),
                    "p99_ms": pick(0.99), "dropped_total": self.dropped_total,
                    "gaps_match_dropped": self.gap_total == self.dropped_total}


ACK_EVERY_EVENTS = 1000
ACK_AFTER_S = 0.1


def _reader(ws: Any, win: Window, started_at: float, ack: bool) -> None:
    unacked, acked_at = 0, time.monotonic()
    try:
        for msg in ws:
            frame = _loads(msg)
            if frame.get("type") != "events" or not frame["events"]:
                continue
            win.add(frame, started_at, time.time())
            unacked += len(frame["events"])
            if ack and (unacked >= ACK_EVERY_EVENTS or time.monotonic() - acked_at >= ACK_AFTER_S):
                ws.send('{"type":"ack","seq":' + str(frame["events"][-1]["seq"]) + "}")
                unacked, acked_at = 0, time.monotonic()
    except Exception:  # noqa: BLE001 - the connection closing ends the reader
        return


def main(argv: list[str]) -> int:
    die_with_parent()
    from websockets.sync.client import connect
    from websockets.typing import Origin

    ack = "--no-ack" not in argv
    argv = [arg for arg in argv if arg != "--no-ack"]
    port, cpu = int(argv[0]), int(argv[1]) if len(argv) > 1 else -1
    if cpu >= 0 and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})
    origin = f"http://127.0.0.1:{port}"
    options: dict[str, Any] = {"origin": Origin(origin), "max_size": None}
    if "ping_interval" in inspect.signature(connect).parameters:
        # no keepalive: the bench stops its server (SIGSTOP) between windows, for a minute
        options["ping_interval"] = None
    # a context manager (websockets >= 14 warns when the connection is not one)
    with connect(f"ws://127.0.0.1:{port}/ws", **options) as ws:
        snap = _loads(ws.recv())
        win = Window()
        win.last_seq = int(snap.get("seq", 0))
        started_at = float(snap["started_at"])
        threading.Thread(target=_reader, args=(ws, win, started_at, ack), daemon=True).start()
        print(f"READY {started_at}", flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "mark":
                with win.lock:
                    win.reset()
                print("MARK", flush=True)
            elif cmd == "stats":
                print("STATS " + json.dumps(win.report()), flush=True)
            elif cmd == "quit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
