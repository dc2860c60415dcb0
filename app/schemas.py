"""Request bodies. Literal types and bounds give FastAPI's 422 for free; extra fields are
forbidden so a typo is an error, not a silent no-op."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mux import MAX_DELAY_MS

MAX_FD = 2**31 - 1  # an fd is a C int
MAX_DEPTH = 1_000_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        """An optional field is left out, never `null` (`"write": null` passed as "unchanged",
        while `"trigger": null` was a 422: one rule for every field)."""
        if value is None:
            field = cls.model_fields.get(info.field_name or "")
            if field is not None and field.is_required():
                raise ValueError("must not be null")
            raise ValueError("must not be null (an optional field is left out instead)")
        return value


class NoFields(Strict):
    """The body of a request that takes none (close a connection, stop the load, delete a
    breakpoint): nothing, or `{}`; a field in it is a 422 as anywhere else (SPEC §4)."""


class BackendRequest(Strict):
    name: Literal["select", "poll", "epoll"]
    trigger: Literal["level", "edge"] = "level"
    oneshot: bool = False
    write: Literal["queued", "eager"] | None = None

    @model_validator(mode="after")
    def _epoll_only_modes(self) -> BackendRequest:
        if self.name != "epoll" and (self.trigger == "edge" or self.oneshot):
            raise ValueError(f"{self.name} has no edge-triggered or one-shot mode (epoll only)")
        return self


class LoopRequest(Strict):
    action: Literal["pause", "resume", "step"] | None = None
    delay_ms: int | None = Field(default=None, ge=0, le=MAX_DELAY_MS)

    @model_validator(mode="after")
    def _exactly_one(self) -> LoopRequest:
        if (self.action is None) == (self.delay_ms is None):
            raise ValueError("give exactly one of 'action' or 'delay_ms'")
        return self


class LoadRequest(Strict):
    connections: int = Field(ge=1, le=100_000)
    message_size: int = Field(ge=1, le=1 << 20)
    #: SPEC §4's whole range: a tiny rate (1e-300, whose interval is inf) is a client whose
    #: next send is far away; the load thread caps each wait (mux/load.py, MAX_WAIT). NaN is
    #: refused as not finite (the bound's message, "less than or equal to 1000", misled)
    rate: float = Field(ge=0, le=1000, allow_inf_nan=False)


class BreakpointRequest(Strict):
    when: Literal["readable", "writable", "hup", "queue_over", "backpressure"]
    fd: int | None = Field(default=None, ge=0, le=MAX_FD)
    depth: int | None = Field(default=None, ge=0, le=MAX_DEPTH)

    @model_validator(mode="after")
    def _depth_for_queue(self) -> BreakpointRequest:
        if self.when == "queue_over" and self.depth is None:
            raise ValueError("'queue_over' needs 'depth' (the queue depth in chunks)")
        if self.when != "queue_over" and self.depth is not None:
            # accepted and then ignored, it would read as a condition the breakpoint checks
            raise ValueError(f"'depth' applies to 'queue_over' only, not to {self.when!r}")
        return self


class FlawRequest(Strict):
    on: bool
