"""The bug zoo's catalogue and switch: which flaws there are (flaws.py), and the one on.

One flaw at a time: switching one on while another is on is refused, and every switch is a
`loop` event carrying the flaw now on, so every page (and a recording) follows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .flaw_base import Flaw
from .flaws import (
    CloseWithoutUnregister,
    EofIgnored,
    EtNoDrain,
    HupBeforeIn,
    PollEquality,
    UdpWrongAddress,
    WriteInterestStuck,
)

if TYPE_CHECKING:
    from .engine import Engine


FLAWS: tuple[type[Flaw], ...] = (EofIgnored, PollEquality, HupBeforeIn, EtNoDrain,
                                 WriteInterestStuck, CloseWithoutUnregister, UdpWrongAddress)


def flaw_catalog() -> list[dict[str, Any]]:
    """Every flaw's name, title and caption (no engine needed: the replay page uses it)."""
    return [{"name": cls.name, "title": cls.title, "caption": cls.caption, "on": False,
             "detections": 0, "inert": None} for cls in FLAWS]


class FlawZoo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.flaws = {cls.name: cls(engine) for cls in FLAWS}
        self.active: Flaw | None = None

    def describe(self) -> list[dict[str, Any]]:
        return [f.describe(f is self.active) for f in self.flaws.values()]

    def set(self, name: str, on: bool) -> list[dict[str, Any]]:
        flaw = self.flaws.get(name)
        if flaw is None:
            raise KeyError(f"no flaw named {name!r} (known: {', '.join(self.flaws)})")
        if on and self.active not in (None, flaw):
            assert self.active is not None
            raise RuntimeError(f"flaw {self.active.name!r} is on: one flaw at a time, "
                               "turn it off first")
        if on and self.active is None:
            flaw.activate()
            self.active = flaw
        elif not on and self.active is flaw:
            flaw.deactivate()
            self.active = None
        else:
            return self.describe()  # no change: no event
        self.engine.emit_loop_state("flaw")  # a `loop` event with the new `flaw`
        return self.describe()

    def get(self, name: str) -> Flaw | None:
        return self.flaws.get(name)
