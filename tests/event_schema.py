"""SPEC §3's event table as data, and a checker the engine and app tests run on every event.

Each kind lists its fields and their JSON types. `fd` is an integer where one applies and is
left out where none does (never null); `bool` is not accepted where an integer is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

INT, FLOAT, STR, BOOL, NAMES = "int", "float", "str", "bool", "names"
OPTIONAL_INT = "int or null"

#: kind -> {field: type or the tuple of allowed strings}; every field listed is required
FIELDS: dict[str, dict[str, Any]] = {
    "wait": {"backend": ("select", "poll", "epoll"), "registered": INT,
             "timeout_ms": OPTIONAL_INT, "ready": INT, "duration_us": INT},
    "ready": {"fd": INT, "flags": NAMES},
    "interest": {"fd": INT, "op": ("register", "modify", "unregister"), "flags": NAMES},
    "accept": {"fd": INT, "listener": INT, "peer": STR},
    "recv": {"fd": INT, "bytes": INT, "preview": STR},
    "send": {"fd": INT, "bytes": INT, "partial": BOOL},
    "queue": {"fd": INT, "depth": INT, "pending_bytes": INT},
    "datagram": {"fd": INT, "peer": STR, "dir": ("in", "out"), "bytes": INT, "preview": STR},
    "backpressure": {"fd": INT, "paused": BOOL},
    "close": {"fd": INT, "reason": ("eof", "reset", "error", "user", "shutdown")},
    "backend": {"from": ("select", "poll", "epoll"), "to": ("select", "poll", "epoll"),
                "trigger": ("level", "edge"), "oneshot": BOOL, "write": ("queued", "eager")},
    "loop": {"state": ("running", "paused", "step")},
    "error": {"message": STR},
    "flaw": {"name": STR, "message": STR},
}
#: fields a kind may carry besides its required ones
OPTIONAL: dict[str, dict[str, Any]] = {
    "loop": {"breakpoint": INT, "wait": INT},
    "error": {"fd": INT},
    "flaw": {"fd": INT},
}


def _is(value: Any, kind: Any) -> bool:
    if isinstance(kind, tuple):
        return value in kind
    if kind == INT:
        return type(value) is int
    if kind == OPTIONAL_INT:
        return value is None or type(value) is int
    if kind == FLOAT:
        return type(value) is float
    if kind == STR:
        return type(value) is str
    if kind == BOOL:
        return type(value) is bool
    if kind == NAMES:
        return type(value) is list and all(type(name) is str for name in value)
    raise ValueError(kind)


def problems(event: dict[str, Any]) -> list[str]:
    """What is wrong with `event` against SPEC §3 (empty when nothing)."""
    kind = event.get("kind")
    if kind not in FIELDS:
        return [f"unknown kind {kind!r}"]
    required = {"seq": INT, "ts": FLOAT, "kind": STR, **FIELDS[kind]}
    allowed = {**required, **OPTIONAL.get(kind, {})}
    found = [f"{kind}: no {name!r}" for name in required if name not in event]
    for name, value in event.items():
        want = allowed.get(name)
        if want is None:
            found.append(f"{kind}: unexpected field {name!r}={value!r}")
        elif not _is(value, want):
            found.append(f"{kind}: {name}={value!r} is not {want}")
    return found


def assert_events_follow_spec(events: Iterable[dict[str, Any]]) -> None:
    """Fail with the first few offending events, each with what is wrong with it."""
    bad = [(event, found) for event in events if (found := problems(event))]
    assert not bad, f"{len(bad)} event(s) off SPEC §3, e.g.: " + "; ".join(
        f"{event} -> {found}" for event, found in bad[:3])
