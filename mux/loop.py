"""The generic loop: one wait per iteration, then the handlers of what it returned.

Rules of this module:
- It knows nothing of echo; handlers (tcp.py, udp.py, control.py) do the protocol work. An
  unwatched iteration's ready list goes to `dispatch_unwatched`, which the engine replaces
  with its batch dispatch (hot.py: TCP's eager echo inline, every other case to the handler).
- The fd -> handler table and every interest change are registrations.py's (`Registrations`,
  which the loop extends); timers and `call_soon` are schedule.py's.
- Events are built only behind `if obs.watched:` (see observe.py); nothing here is O(fds) per
  iteration except what the backend itself does (select/poll pass the whole set each call).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter, thread_time_ns
from typing import Any

from .backends import READABLE, Backend
from .events import wait_event
from .observe import Observers
from .registrations import Handler, Registrations
from .schedule import Scheduler
from .tally import Stats

#: the system call each backend waits with, for messages that name it
WAIT_CALLS = {"select": "select()", "poll": "poll()", "epoll": "epoll_wait()"}
#: a shown wait's CPU time costs a syscall each side of the wait (~0.4 us each): under the
#: observation budget's ~10,000 shown waits/s, up to 1% of a core. So it is taken for at most
#: CPU_SAMPLES_PER_S waits a second, in bursts of up to CPU_SAMPLE_BURST (a token bucket): a
#: person typing gets every wait measured; a loaded loop a sample, which the chart (the median
#: of the latest calls per fd count) needs no more than
CPU_SAMPLES_PER_S = 1000.0
CPU_SAMPLE_BURST = 20.0


class Loop(Registrations, Scheduler):
    def __init__(self, backend: Backend, observers: Observers, wait_timeout: float | None) -> None:
        Registrations.__init__(self, backend, observers)
        Scheduler.__init__(self, wait_timeout)
        self.stats = Stats()
        self.last_ready: list[tuple[int, int]] = []
        #: the backend whose wait produced `last_ready` (its words, even after a switch)
        self.last_ready_backend = backend
        #: the backend whose wait returned the ready list being handled now: hooks decode its
        #: native masks with it, since a switch in the middle of the batch changes `backend`
        self.ready_backend = backend
        self.last_wait: dict[str, Any] | None = None
        self._cpu_tokens = CPU_SAMPLE_BURST  # shown waits whose CPU time may still be taken
        self._cpu_at = 0.0  # perf_counter time the tokens were counted at
        #: called after each iteration's handlers with the ready list (breakpoints, flaws)
        self.after_iteration: list[Callable[[list[tuple[int, int]]], None]] = []
        #: this iteration's wait when it was not shown and a hook (a breakpoint) may want it
        #: shown: (timeout, ready, duration_us, backend, fds passed); see show_unshown_wait
        self.unshown_wait: tuple[float | None, list[tuple[int, int]], float, Backend,
                                 int] | None = None
        #: runs an unwatched iteration's ready list (no one-shot, no flaw): the engine sets
        #: its batch dispatch (hot.py), with TCP's eager echo inline, which may wait again
        #: itself: it returns the ready list it handled last, the one the iteration's hooks see
        self.dispatch_unwatched: Callable[[list[tuple[int, int]], Backend],
                                          list[tuple[int, int]]] = self._dispatch_plain
        #: replaces `handler.on_ready(generic)` while a bug-zoo flaw is on
        self.dispatch_hook: Callable[[Handler, int], None] | None = None
        #: called with the OSError a wait call (or a one-shot re-arm) raised, a flaw's
        #: EBADF, and the call that raised it; None: raise it
        self.wait_error_hook: Callable[[OSError, str], None] | None = None
        #: called with a handler and what its on_ready raised; None: raise it (the loop ends)
        self.handler_error_hook: Callable[[Handler, Exception], None] | None = None

    # -- one iteration -------------------------------------------------------------------
    def run_once(self) -> None:
        """One wait call, then the handlers of what it returned (with nobody watching, the
        engine's batch dispatch may go on to make the next waits itself: see below).

        The observers' iteration start is called only to open a budget window (within one,
        watched is decided here): with one connection an iteration is one message, and each
        Python frame costs ~150 machine instructions to push and clear (callgrind,
        docs/BENCHMARKS-history.md "Runs BA, BB, BC and BD"). The hot path's dispatch (nobody
        watching this iteration, no one-shot, no bug-zoo hook) is `dispatch_unwatched`: one
        frame for the whole batch, in which the engine's runs the eager echo inline (hot.py),
        and makes the waits after it too (nobody listening, or over the budget within this
        window: unwatched iterations, counted as below) until a handler it calls may
        have changed what this method or `Engine.run` decides: the iteration's hooks are then
        given the ready list it handled last, which it returns.
        """
        backend = self.backend
        timeout = self._timeout() if (self._soon or self._timers) else self.wait_timeout
        t0 = perf_counter()
        obs = self.obs
        if obs.active:
            if t0 < obs.window_end:  # begin_iteration's common case, inline (a frame less)
                obs.watched = obs.seq < obs.seq_limit
            else:  # a new budget window (or no budget)
                obs.begin_iteration(t0)
        elif obs.watched:  # the last sink left during the previous iteration
            obs.watched = False
        # a shown wait's CPU time too (sampled, see CPU_SAMPLES_PER_S): what the call cost,
        # without the time it slept. (Its wall time is taken after the first clock call.)
        cpu0 = None
        if obs.watched:
            tokens = min(CPU_SAMPLE_BURST,
                         self._cpu_tokens + (t0 - self._cpu_at) * CPU_SAMPLES_PER_S)
            self._cpu_at = t0
            if tokens >= 1.0:
                tokens -= 1.0
                cpu0 = thread_time_ns()
                t0 = perf_counter()
            self._cpu_tokens = tokens
        try:
            ready = backend.wait(timeout)
        except OSError as exc:
            if self.wait_error_hook is None:
                raise
            self.wait_error_hook(exc, WAIT_CALLS.get(backend.name, f"{backend.name}()"))
            return
        duration_us = (perf_counter() - t0) * 1e6
        if cpu0 is not None:
            cpu0 = thread_time_ns() - cpu0
        self.ready_backend = backend
        if self.retired:  # (an earlier batch's: this ready list is newer)
            self.retired.clear()
        stats = self.stats
        stats.waits += 1
        stats.wait_us += duration_us
        watched = obs.watched
        if watched:
            self._emit_wait(timeout, ready, duration_us, cpu0)
        elif obs.active:  # throttled: count what is not shown
            obs.seq += 1 + len(ready)  # the wait and its ready events, unobserved
            if self.after_iteration:  # (breakpoints set) a hit shows it: show_unshown_wait
                self.unshown_wait = (timeout, ready, duration_us, backend,
                                     backend.fds_passed(len(self.handlers)))
        if watched or backend.oneshot or self.dispatch_hook is not None:
            self._dispatch_instrumented(ready, watched)
        else:  # the hot path: the engine's batch dispatch (hot.py), or _dispatch_plain
            ready = self.dispatch_unwatched(ready, backend)  # (hot.py may have waited again)
        if self._soon or self._timers:
            self._run_due()
        if self.after_iteration:
            if self.unshown_wait is not None and self.unshown_wait[1] is not ready:
                self.unshown_wait = None  # an earlier iteration's (this one was shown)
            for hook in self.after_iteration:
                hook(ready)

    def _dispatch_plain(self, ready: list[tuple[int, int]],
                        backend: Backend) -> list[tuple[int, int]]:
        """An unwatched iteration's dispatch, with no protocol inline: each fd's handler."""
        handlers = self.handlers
        retired = self.retired
        generic = backend._generic  # native -> READABLE/WRITABLE, filled by .generic
        for fd, native in ready:
            try:
                handler = handlers[fd]
            except KeyError:  # closed by an earlier handler of this same batch
                continue
            if retired and fd in retired:  # ...and the fd given to a new one since
                continue
            try:
                mask = generic[native]
            except KeyError:
                mask = backend.generic(native)
            try:
                handler.on_ready(mask)
            except Exception as exc:
                self._handler_failed(handler, exc)
            if self.dispatch_hook is not None:
                self.hook_the_rest(ready, (fd, native))
                return ready
        return ready

    def hook_the_rest(self, ready: list[tuple[int, int]], done: tuple[int, int]) -> None:
        """A bug-zoo flaw was switched on by a command a handler of this batch ran (the
        control fd's): its `loop` event has said so, and the rest of the batch, after `done`,
        runs the flaw's handler, as the code view will show."""
        rest = ready[ready.index(done) + 1:]
        if rest:
            self._dispatch_instrumented(rest, False)

    def _handler_failed(self, handler: Handler, exc: Exception) -> None:
        """One handler's bug must not end the loop (and with it every connection)."""
        if self.handler_error_hook is None:
            raise exc
        self.handler_error_hook(handler, exc)

    def _dispatch_instrumented(self, ready: list[tuple[int, int]], watched: bool) -> None:
        """The same, with `ready` events, one-shot re-arming and the bug zoo's hook."""
        handlers = self.handlers
        retired = self.retired
        backend = self.backend
        oneshot = backend.oneshot
        obs = self.obs
        names = backend._names  # native -> names, filled by backend.names
        generic = backend._generic  # native -> READABLE/WRITABLE, filled by backend.generic
        for fd, native in ready:
            # closed earlier in this batch: the report is the closed file's, and no handler
            # runs for it (the fd may be a new connection's by now)
            stale = fd in retired if retired else False
            if watched:
                try:
                    flags = names[native]
                except KeyError:
                    flags = backend.names(native)
                event = {"kind": "ready", "fd": fd, "flags": flags}
                if stale:
                    event["stale"] = True
                obs.emit(event)
            try:
                handler = handlers[fd]
            except KeyError:
                continue
            if stale:
                continue
            if oneshot and self.backend is not backend:
                # a command run earlier in this batch switched backend: the new one registered
                # every fd armed, and the one that disarmed them is closed. Nothing to re-arm
                oneshot = False
            if oneshot:
                self._rearm.add(fd)
            # read per fd: a flaw switched on or off by a command the control fd's handler ran
            # earlier in this batch applies to the fds after it, as its `loop` event says
            hook = self.dispatch_hook
            try:
                if hook is None:
                    try:
                        mask = generic[native]
                    except KeyError:
                        mask = backend.generic(native)
                    handler.on_ready(mask)
                else:
                    hook(handler, native)
            except Exception as exc:
                self._handler_failed(handler, exc)
            if oneshot and fd in self._rearm:
                try:
                    self._rearm_fd(fd)
                except OSError as exc:  # EBADF: a closed fd left registered (a bug-zoo flaw)
                    if self.wait_error_hook is not None:
                        self.wait_error_hook(exc, "epoll_ctl(EPOLL_CTL_MOD) re-arming it")
                    else:
                        self._handler_failed(handler, exc)

    def show_unshown_wait(self) -> None:
        """A breakpoint matched in an iteration nobody was shown (over the observation
        budget): show its wait and ready list now, before the pause, so that the page and
        the state's `last_wait` describe the wait that matched, not an older one. (Their
        seq numbers were counted as dropped then; these are new events. The events of that
        iteration that are always shown, a close or a backpressure, went out before them.)"""
        unshown, self.unshown_wait = self.unshown_wait, None
        if unshown is None or not self.obs.active:
            return
        timeout, ready, us, backend, registered = unshown
        self._emit_wait(timeout, ready, us, registered=registered, late=True, backend=backend)
        for fd, native in ready:
            event = {"kind": "ready", "fd": fd, "flags": backend.names(native), "late": True}
            if fd in self.retired:  # closed since that wait returned: the closed file's report
                event["stale"] = True
            self.obs.emit(event)

    def _emit_wait(self, timeout: float | None, ready: list[tuple[int, int]], us: float,
                   cpu_ns: int | None = None, registered: int | None = None,
                   late: bool = False, backend: Backend | None = None) -> None:
        """A shown wait: its event, and the ready list it returned, which `last_wait` and
        `last_ready` then always describe together. `backend`: the one that made the call,
        when a late wait is shown after a switch."""
        made_by = backend or self.backend
        self.last_ready = ready
        self.last_ready_backend = made_by
        if registered is None:
            registered = self.backend.fds_passed(len(self.handlers))
        event = wait_event(made_by.name, registered, timeout, len(ready), us, cpu_ns, late)
        self.last_wait = event
        self.obs.emit(event)

    def _isolated(self, handler: Handler, fn: Callable[[], None]) -> Callable[[], None]:
        """`fn`, a handler's own code run from a timer or `call_soon`, isolated as in the
        dispatch: one handler's bug is not the loop's end (it closes that connection alone)."""
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                self._handler_failed(handler, exc)
        return run

    def call_later_for(self, handler: Handler, delay: float, fn: Callable[[], None]) -> None:
        """`call_later` for a handler's own code: a lingering close's deadline read raised out
        of the timer and ended the loop (every connection closed, `shutdown`)."""
        self.call_later(delay, self._isolated(handler, fn))

    def readable_soon(self, handler: Handler) -> None:
        """Edge-triggered helper: try reading again without waiting for an edge. A bug-zoo
        flaw on handles that read too, as if the kernel had reported it (its own handler
        stood for every other read of the fd, and the code panel shows it for this one)."""
        def again() -> None:
            if self.handlers.get(handler.fd) is handler:
                hook = self.dispatch_hook
                if hook is None:
                    handler.on_ready(READABLE)
                else:
                    hook(handler, self.backend.readable_report())
        self.call_soon(self._isolated(handler, again))
