"""Rotated segments joined oldest first (`cat r.jsonl.2 r.jsonl.1 r.jsonl`) replay as one run:
from the first segment's snapshot, with every event after it."""

from __future__ import annotations

import json
from pathlib import Path

from app.recording import load_recording

from .test_replay import START_STATE, wait_event


def test_joined_segments_replay_from_the_first_snapshot(tmp_path: Path) -> None:
    """Each segment begins with a snapshot at the seq of the event before it. Taking the later
    one showed the state at the end of the first segment, then replayed that segment's events
    on top of it: a connection accepted in it appeared open before its own accept."""
    later_state = {**START_STATE, "connections": [{"fd": 7}]}
    lines = [{"type": "snapshot", "state": START_STATE, "seq": 10, "started_at": 1.0},
             *(wait_event(seq) for seq in (11, 12, 13)),
             {"type": "snapshot", "state": later_state, "seq": 13, "started_at": 1.0},
             *(wait_event(seq) for seq in (14, 15))]
    path = tmp_path / "joined.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    snapshot, events = load_recording(path)
    assert (snapshot["seq"], snapshot["state"]["connections"]) == (10, [])
    assert [e["seq"] for e in events] == [11, 12, 13, 14, 15]
