"""How the loop thread goes: pause (no waits at all: clients' bytes wait in the kernel's
buffers), step (exactly one wait and its handling, then paused again), slow motion (a delay
between iterations, still answering commands), a breakpoint's pause, and the `loop` events
that say each. `Engine`'s base class: `Engine.run` calls these; the bodies of the pause, step
and delay commands (queued by commands.py) are here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import MAX_DELAY_MS

if TYPE_CHECKING:
    from .breakpoints import Breakpoint, Breakpoints
    from .control import ControlDoor
    from .loop import Loop
    from .observe import Observers
    from .tally import Stats
    from .zoo import FlawZoo


class LoopControl:
    # Provided by `Engine` (set in its __init__, where each is explained): declared for the
    # type checker.
    loop: Loop
    observers: Observers
    breakpoints: Breakpoints
    flaws: FlawZoo
    stats: Stats
    _door: ControlDoor
    paused: bool
    paused_at: dict[str, Any] | None
    delay_ms: int
    _steps_requested: int
    wait_timeout: float | None
    step_timeout: float | None
    _stopping: bool
    _iterating: bool
    _held_loop_events: list[dict[str, Any]] | None

    def runs_free(self) -> bool:
        """True while `Engine.run` has nothing to do between two iterations: inside one of
        its iterations (not a dispatch called by hand, as the bench's micro part does),
        running, not stopping, no slow motion, no breakpoint's hit or held `loop` event, no
        bug-zoo flaw. The batch dispatch (hot.py) then waits again itself, until a handler
        it calls (the control fd's, for any command) may have changed one of them."""
        return self._iterating and not (
            self.paused or self._stopping or self.delay_ms or self.flaws.active
            or self.breakpoints.hit is not None or self._held_loop_events is not None)

    def emit_loop_state(self, cause: str = "delay") -> None:
        """A `loop` event for a change of slow motion or flaw: the loop's state unchanged."""
        self._emit_loop("paused" if self.paused else "running", cause=cause)

    def _emit_loop(self, state: str, hit: Breakpoint | None = None,
                   cause: str = "command") -> None:
        """A `loop` event; it carries `delay_ms` and the bug-zoo flaw on (`flaw`, or null) too,
        so every page (and a recording) learns a slow-motion or flaw change made by another
        client, and time travel knows which handler ran; after a breakpoint's hit also its
        id, the engine's wait count and the fd that matched."""
        if self.observers.active:
            active = self.flaws.active
            event: dict[str, Any] = {"kind": "loop", "state": state, "delay_ms": self.delay_ms,
                                     "flaw": None if active is None else active.name,
                                     "cause": cause}
            if hit is not None:
                event["breakpoint"] = hit.id
                event["wait"] = self.stats.waits  # the engine's wait count at the hit
                if hit.last_fd is not None:
                    event["fd"] = hit.last_fd
            if self._held_loop_events is not None:
                self._held_loop_events.append(event)
            else:
                self.observers.emit(event)

    def _step(self) -> None:
        self._steps_requested -= 1
        # Stale wake-ups would make the step's wait return at once with only the control fd:
        # drain them, then answer what they announced, so nothing waits behind the step.
        self._door.drain_wakeups()
        self._door.run_pending()
        self._emit_loop("step", cause="step")
        if self.paused_at is not None:  # counted with its `loop step` event: a state read
            # during the step's wait (a page opening) holds that event already
            self.paused_at = {**self.paused_at, "steps": self.paused_at["steps"] + 1}
        loop = self.loop
        loop.wait_timeout = self.step_timeout
        try:
            self._run_iteration()
        finally:  # the running one's, as it is now (a command in the step may have set it)
            loop.wait_timeout = self.wait_timeout
        hit = self.breakpoints.take_hit()
        if self.paused:  # a resume handled during the step's wait has said "running" already
            if hit is not None:
                self.loop.show_unshown_wait()
                self._note_paused_at(hit)
            self._emit_loop("paused", hit, cause="step")

    def _run_iteration(self) -> None:
        """One iteration, marked as running (a pause taken inside it holds its `loop` event
        until the iteration's own events are out). Not inlined in `Engine.run`: that saved
        0.2 % of a round trip's instructions (docs/BENCHMARKS-history.md "Run BJ", session 38)."""
        # no try/finally: an exception out of run_once ends the thread (run's finally)
        self._iterating = True
        self.loop.run_once()
        self._iterating = False
        if self._held_loop_events is not None:
            self._release_held_loop_events()

    def _release_held_loop_events(self) -> None:
        held, self._held_loop_events = self._held_loop_events or [], None
        if self.observers.active:
            for event in held:  # seq and ts are given now, after the iteration's events
                self.observers.emit(event)

    def _pause_at_breakpoint(self) -> None:
        hit = self.breakpoints.take_hit()
        self.paused = True
        if hit is not None:
            self.loop.show_unshown_wait()
            self._note_paused_at(hit)
        self._emit_loop("paused", hit, cause="breakpoint")

    def _note_paused_at(self, hit: Breakpoint) -> None:
        # replaced whole, never changed in place: another thread may read it at any time
        self.paused_at = {"breakpoint": hit.id, "wait": self.stats.waits, "fd": hit.last_fd,
                          "steps": 0}

    def _slow_motion(self) -> None:
        """Wait `delay_ms` between iterations, still answering commands meanwhile; a new
        delay applies at once (the deadline is taken from the current one each time)."""
        started = self.observers.now()
        while not (self._stopping or self.paused):
            left = started + self.delay_ms / 1000 - self.observers.now()
            if left <= 0 or not self._door.run_one_blocking(timeout=left):
                return

    def _set_paused(self, paused: bool) -> dict[str, Any]:
        if not paused:  # running makes steps still waiting moot; a later pause must not run them
            self._steps_requested = 0
        if paused != self.paused:
            self.paused = paused
            self.paused_at = None  # resumed, or paused by a client: no breakpoint holds it
            if paused and self._iterating and self._held_loop_events is None:
                self._held_loop_events = []  # the control fd's handler, mid-iteration
            self._emit_loop("paused" if paused else "running")
        return self.loop_state()

    def _request_step(self) -> dict[str, Any]:
        if not self.paused:
            raise RuntimeError("the loop is running: pause it before stepping")
        self._steps_requested += 1
        return self.loop_state()

    def _set_delay(self, delay_ms: int) -> dict[str, Any]:
        if not 0 <= delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"delay_ms must be between 0 and {MAX_DELAY_MS}, not {delay_ms}")
        if delay_ms != self.delay_ms:
            self.delay_ms = delay_ms
            self.emit_loop_state()
        return self.loop_state()

    def loop_state(self) -> dict[str, Any]:
        return {"loop": "paused" if self.paused else "running", "delay_ms": self.delay_ms}
