"""Backends: `available()` and `create()`."""

from __future__ import annotations

import select

from ._poll import PollBackend
from ._select import SelectBackend
from .base import FD_SETSIZE, READABLE, SIDES, WRITABLE, Backend, FdLimitError

__all__ = [
    "FD_SETSIZE", "READABLE", "SIDES", "WRITABLE", "Backend", "FdLimitError", "available", "create",
    "default_backend", "validate",
]

_CLASSES: dict[str, type[Backend]] = {"select": SelectBackend}
if hasattr(select, "poll"):
    _CLASSES["poll"] = PollBackend
if hasattr(select, "epoll"):
    from ._epoll import EpollBackend

    _CLASSES["epoll"] = EpollBackend


def available() -> list[str]:
    """The backends this platform offers, cheapest-to-scale last."""
    return list(_CLASSES)


def default_backend() -> str:
    return "epoll" if "epoll" in _CLASSES else "poll" if "poll" in _CLASSES else "select"


def validate(name: str, trigger: str = "level", oneshot: bool = False) -> None:
    """Raise ValueError with a one-line reason for an impossible combination."""
    if name not in _CLASSES:
        raise ValueError(f"backend {name!r} is not available here (available: {available()})")
    if trigger not in ("level", "edge"):
        raise ValueError(f"trigger must be 'level' or 'edge', not {trigger!r}")
    if name != "epoll" and (trigger == "edge" or oneshot):
        raise ValueError(f"{name} has no edge-triggered or one-shot mode (epoll only)")


def create(name: str, trigger: str = "level", oneshot: bool = False) -> Backend:
    validate(name, trigger, oneshot)
    return _CLASSES[name](trigger, oneshot)
