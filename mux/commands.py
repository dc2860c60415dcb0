"""The engine's thread-safe command API: what other threads call to steer the loop.

Each method queues a command through the `ControlDoor` and returns its Future; the work runs
on the loop thread. The bodies stay next to the loop they touch: on `Engine` (engine.py) for a
switch or a close, on its base `LoopControl` (loop_control.py) for pause, step and slow
motion; the code view (codeview.py) shows them as `Engine._switch`, `LoopControl._step`...
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .kernel import kernel_view
from .state import StateCapture
from .state import capture as capture_state

if TYPE_CHECKING:
    from .breakpoints import Breakpoints
    from .control import ControlDoor
    from .loop import Loop
    from .observe import Observers
    from .tcp import TcpConnection
    from .udp import UdpEcho
    from .zoo import FlawZoo


class EngineCommands:
    """Mixin of `Engine`: the command half, callable from any thread.

    On the caller's thread these only pick a body and its arguments; the state is read when
    the body runs, on the loop thread (a lambda, not a value: a command queued earlier, say a
    backend switch, is then seen)."""

    # Provided by `Engine`: declared for the type checker, which checks Engine's against them.
    _door: ControlDoor
    loop: Loop
    wait_timeout: float | None
    step_timeout: float | None
    observers: Observers
    breakpoints: Breakpoints
    flaws: FlawZoo
    connections: dict[int, TcpConnection]
    udp: UdpEcho | None
    paused: bool
    paused_at: dict[str, Any] | None

    if TYPE_CHECKING:
        def describe(self) -> dict[str, Any]: ...
        def _switch(self, name: str, trigger: str, oneshot: bool,
                    write: str | None) -> dict[str, Any]: ...
        def _set_paused(self, paused: bool) -> dict[str, Any]: ...
        def _request_step(self) -> dict[str, Any]: ...
        def _set_delay(self, delay_ms: int) -> dict[str, Any]: ...
        def _close_connection(self, fd: int) -> bool: ...

    def call(self, fn: Any, *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the loop thread."""
        return self._door.submit(fn, *args)

    def read(self, fn: Any, *args: Any) -> Future[Any]:
        """Run the read `fn(*args)` on the loop thread. While the loop is paused it sends no
        wake-up byte: a paused loop takes it at once (it waits on the queue, not on the
        backend), and during a step's wait it is answered when that wait returns (within the
        step timeout), instead of waking the step's one wait with the control fd (a page's
        Kernel-truth poll spent ~1 step in 3 so; `POST step` then `GET /api/state`, every one)."""
        quiet = self.paused and self.step_timeout is not None
        future = self._door.submit(fn, *args, wake=not quiet)
        # Resumed meanwhile? Then wake it after all. (A resume runs in `run_pending`, which
        # goes on to run what was queued before it set `paused` False: seen True here, the
        # command was queued before that, and is run there.)
        if quiet and not self.paused:
            self._door.wake()
        return future

    def snapshot(self) -> Future[tuple[dict[str, Any], int]]:
        return self.read(lambda: (self.describe(), self.observers.seq))

    def state(self) -> Future[dict[str, Any]]:
        return self.read(self.describe)

    def capture(self) -> Future[StateCapture]:
        """The state, copied on the loop thread; `.to_dict()` it in yours (`.seq` is the last
        seq at that moment, for a snapshot consistent with the event stream)."""
        return self.read(capture_state, self)

    def switch_backend(self, name: str, trigger: str = "level", oneshot: bool = False,
                       write: str | None = None) -> Future[dict[str, Any]]:
        return self.call(self._switch, name, trigger, oneshot, write)

    def set_write_mode(self, write: str) -> Future[dict[str, Any]]:
        """Keep the backend, change the write strategy (the backend read on the loop thread,
        so a switch queued before this one is kept)."""
        return self.call(lambda: self._switch(self.loop.backend.name, self.loop.backend.trigger,
                                              self.loop.backend.oneshot, write))

    def set_wait_timeout(self, timeout: float | None) -> Future[None]:
        """The running loop's wait timeout with nothing scheduled, from the next wait on (the
        app gives a finite one while a page watches, so an idle loop's waits show)."""
        return self._door.submit(self._set_wait_timeout, timeout)

    def _set_wait_timeout(self, timeout: float | None) -> None:
        self.wait_timeout = self.loop.wait_timeout = timeout

    def pause(self) -> Future[dict[str, Any]]:
        return self.call(self._set_paused, True)

    def resume(self) -> Future[dict[str, Any]]:
        return self.call(self._set_paused, False)

    def step(self) -> Future[dict[str, Any]]:
        return self.call(self._request_step)

    def set_delay(self, delay_ms: int) -> Future[dict[str, Any]]:
        return self.call(self._set_delay, delay_ms)

    def close_connection(self, fd: int) -> Future[bool]:
        return self.call(self._close_connection, fd)

    def lingering(self, fd: int) -> Future[bool]:
        """Whether connection `fd` is in a lingering close (a user's close of a peer that is
        still sending: mux/linger.py)."""
        return self.call(lambda: (conn := self.connections.get(fd)) is not None
                         and conn.lingering)

    def add_breakpoint(self, when: str, fd: int | None = None,
                       depth: int | None = None) -> Future[dict[str, Any]]:
        return self.call(lambda: self.breakpoints.add(when, fd, depth).describe())

    def remove_breakpoint(self, bp_id: int) -> Future[bool]:
        return self.call(self._remove_breakpoint, bp_id)

    def _remove_breakpoint(self, bp_id: int) -> bool:
        removed = self.breakpoints.remove(bp_id)
        at = self.paused_at
        if removed and at is not None and at["breakpoint"] == bp_id:
            # the state still named it as what holds the loop, with nothing saying it was gone
            self.paused_at = {**at, "deleted": True}  # replaced whole: read from any thread
        return removed

    # Two reads answered on the caller's thread, not through the door: a page polls them every
    # few seconds, and each command's wake-up byte made the control fd `ready` on every page
    # and spent a paused loop's Step on it (4 pages: 10 steps in 30 did nothing else). What
    # they read is a dict copied in one C call, and ints and names set by the loop thread.
    def list_breakpoints(self) -> Future[list[dict[str, Any]]]:
        return _answered([bp.describe() for bp in list(self.breakpoints.items.values())])

    def list_flaws(self) -> Future[list[dict[str, Any]]]:
        return _answered(self.flaws.describe())

    def set_flaw(self, name: str, on: bool) -> Future[list[dict[str, Any]]]:
        """KeyError for an unknown name; RuntimeError when another flaw is on."""
        return self.call(self.flaws.set, name, on)

    def kernel(self) -> Future[dict[str, Any]]:
        """What the kernel holds (epoll interest list, socket queues), read on the loop.

        The read runs in the control fd's handler: one-shot, the kernel had disarmed that fd
        for this very wake-up, and the loop re-arms it only after the handler, so it is
        re-armed first. The answer then shows the interest list as it stands between waits."""
        return self.read(self._read_kernel)

    def _read_kernel(self) -> dict[str, Any]:
        self.loop.rearm_now(self._door.fd)
        return kernel_view(
            self.loop.backend.fileno if self.loop.backend.name == "epoll" else None,
            list(self.connections), None if self.udp is None else self.udp.sock)


def _answered(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future
