"""SPEC §3's event table as data, and a checker.

Each kind lists its fields and their JSON types. `fd` is an integer where one applies and is
left out where none does (never null); `bool` is not accepted where an integer is asked for.
The tests check every event the engine and the app emit with it (strict). Replay checks each
recorded event with it (`lenient`: what a recording must hold for the page and the exports to
work) before serving a file, so a hand-edited or older recording is refused with the line at
fault instead of failing half-way through a download.
"""

from __future__ import annotations

from typing import Any

INT, FLOAT, STR, BOOL, NAMES = "int", "float", "str", "bool", "names"
COUNT = "int >= 0"  # bytes, depths, counts: a negative one made a negative Prometheus counter
OPTIONAL_INT = "int or null"
OPTIONAL_STR = "str or null"

#: kind -> {field: type or the tuple of allowed strings}; every field listed is required
FIELDS: dict[str, dict[str, Any]] = {
    "wait": {"backend": ("select", "poll", "epoll"), "registered": COUNT,
             "timeout_ms": OPTIONAL_INT, "ready": COUNT, "duration_us": INT},
    "ready": {"fd": INT, "flags": NAMES},
    "interest": {"fd": INT, "op": ("register", "modify", "unregister"), "flags": NAMES},
    "accept": {"fd": INT, "listener": INT, "peer": STR},
    "recv": {"fd": INT, "bytes": COUNT, "preview": STR},
    "send": {"fd": INT, "bytes": COUNT, "partial": BOOL},
    "queue": {"fd": INT, "depth": COUNT, "pending_bytes": COUNT},
    "datagram": {"fd": INT, "peer": STR, "dir": ("in", "out"), "bytes": COUNT, "preview": STR},
    "backpressure": {"fd": INT, "paused": BOOL},
    "close": {"fd": INT, "reason": ("eof", "reset", "error", "user", "shutdown")},
    "backend": {"from": ("select", "poll", "epoll"), "to": ("select", "poll", "epoll"),
                "trigger": ("level", "edge"), "oneshot": BOOL, "write": ("queued", "eager")},
    "loop": {"state": ("running", "paused", "step")},
    "error": {"message": STR},
    "flaw": {"name": STR, "fd": INT, "message": STR},
}
#: required fields an older recording may lack, or hold as null (replay: `lenient`): a flaw
#: named no fd when it had none to name before session 17
OLDER_OPTIONAL: dict[str, set[str]] = {"flaw": {"fd"}}
#: fields a kind may carry besides its required ones
OPTIONAL: dict[str, dict[str, Any]] = {
    "wait": {"cpu_us": INT, "late": BOOL, "timeout_us": INT},
    "ready": {"late": BOOL, "stale": BOOL},  # stale: its fd unregistered since the wait
    "accept": {"generated": BOOL},  # a client of the app's own load generator
    "recv": {"eof": BOOL},  # recv() returned 0 bytes: the peer's EOF
    "backpressure": {"inline": BOOL, "udp": BOOL, "pending": COUNT, "pending_bytes": COUNT},
    "datagram": {"misdirected": BOOL, "from_self": BOOL},
    "send": {"closing": ("user", "shutdown")},
    "queue": {"closing": ("user", "shutdown")},
    "loop": {"breakpoint": INT, "wait": INT, "delay_ms": INT, "fd": INT, "flaw": OPTIONAL_STR,
             "cause": ("command", "step", "breakpoint", "delay", "flaw")},
    "backend": {"epoll_fd": OPTIONAL_INT, "maxevents": OPTIONAL_INT},
    "interest": {"moved": BOOL, "cause": ("rearm", "stale", "flaw", "crash"), "early": BOOL},
    "error": {"fd": INT, "cause": ("crash", "refused", "accept", "recovered", "udp"),
              "udp_dropped": COUNT},
    "close": {"flaw": STR, "lingered": ("eof", "reset", "deadline", "user", "shutdown", "error"),
              "discarded": COUNT, "registered": BOOL, "flushed": BOOL,
              # a reset or error: the call that met it, its errno's name, and where that call
              # was (the batch dispatch's: `inline`; the send made at once on receipt: `eager`)
              "call": ("recv", "send"), "errno": STR, "inline": BOOL, "eager": BOOL},
}


def _is(value: Any, kind: Any) -> bool:
    if isinstance(kind, tuple):
        return value in kind
    if kind == INT:
        return type(value) is int
    if kind == COUNT:
        return type(value) is int and value >= 0
    if kind == OPTIONAL_INT:
        return value is None or type(value) is int
    if kind == OPTIONAL_STR:
        return value is None or type(value) is str
    if kind == FLOAT:
        return type(value) is float
    if kind == STR:
        return type(value) is str
    if kind == BOOL:
        return type(value) is bool
    if kind == NAMES:
        return type(value) is list and all(type(name) is str for name in value)
    raise ValueError(kind)


#: kind -> (required, optional, allowed) fields with their types, built once (replay checks
#: up to 2,000,000 events)
_TABLES = {
    kind: (required, OPTIONAL.get(kind, {}), {**required, **OPTIONAL.get(kind, {})})
    for kind, fields in FIELDS.items()
    for required in [{"seq": INT, "ts": FLOAT, "kind": STR, **fields}]
}


def problems(event: dict[str, Any], lenient: bool = False) -> list[str]:
    """What is wrong with `event` against SPEC §3 (empty when nothing).

    `lenient` (replay): a kind this table does not know, a field it does not list, a number
    where a float is asked for and a null optional field are accepted; what the known fields
    must hold is not."""
    kind = event.get("kind")
    if kind not in FIELDS:
        if lenient and type(kind) is str and type(event.get("seq")) is int:
            ts = event.get("ts")
            return [] if type(ts) in (int, float) else [f"{kind}: ts={ts!r} is not a number"]
        return [f"unknown kind {kind!r}"]
    required, optional, allowed = _TABLES[kind]
    older = OLDER_OPTIONAL.get(kind, set()) if lenient else set()
    found = [f"{kind}: no {name!r}" for name in required if name not in event
             and name not in older]
    for name, value in event.items():
        want = allowed.get(name)
        if want is None:
            if not lenient:
                found.append(f"{kind}: unexpected field {name!r}={value!r}")
        elif lenient and want == FLOAT and type(value) is int:
            continue
        elif lenient and (name in optional or name in older) and value is None:
            continue
        elif not _is(value, want):
            found.append(f"{kind}: {name}={value!r} is not {want}")
    return found
