"""The dispatch of an unwatched iteration's ready list, with TCP's echo written inline.

Why: a Python call costs ~400 machine instructions (its frame pushed and cleared, callgrind),
and the eager echo of a 1 KiB message, from the wait to the send, ~10,000. One call of
`TcpConnection.on_ready` per ready fd (two a message, queued) was the largest single cost the
engine had over a bare loop; here one frame serves the whole batch (docs/BENCHMARKS-history.md,
"Runs BM and BN"). Inline: eager's read and echo; queued's read into the queue (`recv`, one
allocation the queue keeps) and its write half (send from the queue's head), each switching
write interest with the backend's `write_toggle` (registrations.py's rules).

Rules of this module:
- It emits no event but the pause of a queued read that went over the high-water mark
  (`backpressure`, `inline`). Whatever else is not the common case (a read that fails or
  finds EOF, a send that fails, reading paused or ended, a readiness for both sides, a queue
  behind an eager read, the bug zoo's stuck write interest, a watched iteration, any other
  handler) goes to the handler's own `on_ready`, so every event shown comes from the code the
  code view names. Kernel state makes that possible: a read after EOF finds EOF again, and an
  error the kernel reports only once (ECONNRESET) is handed over in `TcpConnection.failed`.
- It counts what it does not show exactly as `on_ready` would, and bytes as `on_ready` would
  (`echoed`, or `_bytes_in`/`_bytes_out` and the queue). The count is kept in a local and
  added to `obs.seq` once a batch (each addition to `obs.seq` is a new int object), and
  before anything this frame calls that may emit: an event shown has the seq it would have
  had, watched (tests/mux/test_observe.py).
- A command run by an earlier handler of the batch (the control fd's) may switch the write
  strategy, the backend or a bug-zoo flaw: after each handler it calls, it reads them again.
- While `engine.runs_free()` and the loop has no timer, `call_soon` or after-iteration hook,
  it makes the next wait itself (as `Loop.run_once` would, counters included) and handles
  that ready list too: one frame for many iterations, where each went through three
  (`Engine.run`'s iteration, `run_once`, this). Anything that may change those conditions
  comes through a handler it calls (a command, the listener, a close): after one, or when a
  timer is set, it returns. Somebody listening, it waits again only where run_once would
  leave the iteration unwatched (a budget window whose budget is spent), and counts that
  wait and its ready entries; a new window or budget left is run_once's. A sink added or
  removed meanwhile by another thread is seen when the wait returns, and that iteration is
  shown or counted as `run_once` would.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

from .backends import READABLE, WRITABLE, Backend
from .tcp import READ_WRITE, RECV_SIZE

if TYPE_CHECKING:
    from .engine import Engine
    from .tcp import TcpConnection


class EchoDispatch:
    """`Loop.dispatch_unwatched` for an engine: see the module's rules."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = engine.loop

    def run(self, ready: list[tuple[int, int]], backend: Backend) -> list[tuple[int, int]]:
        loop = self.loop
        engine = self.engine
        # Typed as what `handler.inline` says it is: the attributes read past that test are a
        # TcpConnection's (an annotation, not typing.cast: that is a call, a frame a batch)
        handlers: dict[int, TcpConnection] = loop.handlers  # type: ignore[assignment]
        interest = loop.interest
        retired = loop.retired
        generic = backend._generic  # native -> READABLE/WRITABLE, filled by .generic
        obs = loop.obs
        buf = engine.recv_buffer
        views = engine.recv_views
        high_water = engine.high_water
        eager = engine.eager
        sticky = engine.sticky_write
        edge = loop.edge
        toggle = loop.write_toggle
        if toggle is not None:  # (read again with it after each handler called)
            write_on, on_native, write_off, off_native = toggle
        #: events counted, not shown, since seq was last brought up to date: one addition to
        #: `obs.seq` per batch (an int object each) instead of one per event. Brought up to
        #: date before anything this frame calls that may emit, and at the batch's end.
        unshown = 0
        active = obs.active  # somebody listens: count (read again after each handler called)
        # Nothing but the echo needs the loop: wait again here, not in run_once (see the
        # module's rules). Whatever else may change comes through a handler this frame
        # calls (a command, the listener, a timer set): it returns then.
        again = (not loop._soon and not loop._timers and not loop.after_iteration
                 and loop.wait_error_hook is None and engine.runs_free())
        wait = backend.wait
        timeout = loop.wait_timeout
        stats = loop.stats
        handed_over = False  # a handler's on_ready was called: back to run_once
        while True:
            for fd, native in ready:
                try:
                    handler = handlers[fd]
                except KeyError:  # closed by an earlier handler of this same batch
                    continue
                if retired and fd in retired:  # ...and its fd reused since (Registrations.retired)
                    continue
                try:
                    mask = generic[native]
                except KeyError:
                    mask = backend.generic(native)
                # A TcpConnection that is reading (Handler.inline). The iteration is unwatched:
                # the loop calls this only then, and decides it once an iteration (observe.py).
                if handler.inline:
                    sock = handler.sock
                    done = True  # False: on_ready takes over (see the module's rules)
                    try:
                        if mask == READABLE:
                            if eager:
                                if handler.queue:  # behind what is queued: on_ready's _on_data
                                    done = False
                                while done:
                                    try:
                                        n = sock.recv_into(buf)
                                    except BlockingIOError:
                                        break
                                    except OSError as exc:
                                        handler.failed = ("recv", exc)  # on_ready closes it
                                        done = False
                                        break
                                    if not n:  # EOF: on_ready's read finds it again
                                        done = False
                                        break
                                    try:
                                        view = views[n]
                                    except KeyError:
                                        view = handler._view(n)
                                    try:
                                        sent = sock.send(view)
                                    except BlockingIOError:
                                        sent = 0
                                    except OSError as exc:
                                        handler._bytes_in += n
                                        if active:  # the recv event, counted before the close
                                            unshown += 1
                                        handler.failed = ("send", exc)
                                        done = False
                                        break
                                    if active:  # the recv and send events
                                        unshown += 2 if sent else 1
                                    if sent == n:
                                        handler.echoed += n
                                        if edge:
                                            continue  # edge-triggered: read on, until EAGAIN
                                        break
                                    handler._bytes_in += n  # the kernel took part: the rest queued
                                    handler._bytes_out += sent
                                    if unshown:  # _put may emit (backpressure)
                                        obs.seq += unshown
                                        unshown = 0
                                    handler._put(bytes(buf[sent:n]))
                                    done = not (edge and handler.reading)  # on_ready reads on
                                    break
                            else:  # queued: `recv`, one allocation the queue keeps
                                queue = handler.queue
                                while True:
                                    try:
                                        data = sock.recv(RECV_SIZE)
                                    except BlockingIOError:
                                        break
                                    except OSError as exc:
                                        handler.failed = ("recv", exc)
                                        done = False
                                        break
                                    if not data:  # EOF
                                        done = False
                                        break
                                    n = len(data)
                                    handler._bytes_in += n
                                    queue.append(data)
                                    pending = handler.pending_bytes = handler.pending_bytes + n
                                    # The recv and queue events (and the interest one) are counted,
                                    # not shown.
                                    if pending > high_water:  # (reading: not paused yet)
                                        if active:  # before the backpressure event it emits
                                            obs.seq += unshown + 2
                                            unshown = 0
                                        handler._set_backpressure(True, inline=True)
                                        break
                                    if len(queue) == 1 and interest[fd] != READ_WRITE:
                                        if toggle is not None:  # set_interest's work, inline
                                            write_on(fd, on_native)
                                            interest[fd] = READ_WRITE
                                            if active:
                                                unshown += 3
                                        else:  # set_interest counts (or shows) its own event
                                            if active:
                                                obs.seq += unshown + 2
                                                unshown = 0
                                            loop.set_interest(fd, READ_WRITE)
                                    elif active:
                                        unshown += 2
                                    if not edge:
                                        break
                        elif mask == WRITABLE and handler.queue and not sticky:
                            # The write half: send from the queue's head until it is empty or the
                            # kernel is full; a partial send keeps the rest at the head. Then
                            # write interest follows the queue (off once it is empty).
                            queue = handler.queue
                            while queue:
                                chunk = queue[0]
                                try:
                                    sent = sock.send(chunk)
                                except BlockingIOError:
                                    break
                                except OSError as exc:
                                    handler.failed = ("send", exc)
                                    done = False
                                    break
                                handler._bytes_out += sent
                                handler.pending_bytes -= sent
                                if active:  # the send and queue events
                                    unshown += 2
                                if sent < len(chunk):
                                    queue[0] = chunk[sent:]
                                    break
                                queue.popleft()
                            if not done:  # the send failed: on_ready closes it
                                pass
                            elif queue or toggle is None:  # the kernel is full, or one-shot
                                if unshown:
                                    obs.seq += unshown
                                    unshown = 0
                                if queue:  # interest as desired_interest says
                                    handler._after_write()
                                elif interest[fd] != READABLE:  # (one-shot never comes here)
                                    loop.set_interest(fd, READABLE)
                            elif interest[fd] != READABLE:  # the queue is empty: WRITE leaves
                                write_off(fd, off_native)
                                interest[fd] = READABLE
                                if active:  # the interest event
                                    unshown += 1
                        else:
                            done = False
                    except Exception as exc:  # a bug: this connection's end, not the loop's
                        if unshown:
                            obs.seq += unshown
                            unshown = 0
                        handed_over = True
                        loop._handler_failed(handler, exc)
                        continue
                    if done:
                        continue
                if unshown:  # on_ready may emit: seq first
                    obs.seq += unshown
                    unshown = 0
                handed_over = True
                try:
                    handler.on_ready(mask)
                except Exception as exc:
                    loop._handler_failed(handler, exc)
                if loop.dispatch_hook is not None:  # a flaw, switched on just now
                    loop.hook_the_rest(ready, (fd, native))
                    return ready
                eager = engine.eager  # a command may have switched them (see the rules)
                sticky = engine.sticky_write
                edge = loop.edge
                toggle = loop.write_toggle
                if toggle is not None:
                    write_on, on_native, write_off, off_native = toggle
                active = obs.active
            if unshown:
                obs.seq += unshown
                unshown = 0
            if not again or handed_over or loop._soon or loop._timers:
                return ready
            t0 = perf_counter()
            # Somebody listens: wait here only where run_once would leave the iteration
            # unwatched (inside a budget window whose budget is spent); a new window, a
            # watched iteration or a sink just added is run_once's to decide and show.
            if obs.active and (obs.watched or t0 >= obs.window_end or obs.seq < obs.seq_limit):
                return ready
            ready = wait(timeout)  # (an OSError goes up as run_once's does: no flaw, no hook)
            duration_us = (perf_counter() - t0) * 1e6
            if retired:
                retired.clear()
            stats.waits += 1
            stats.wait_us += duration_us
            active = obs.active
            if active:  # (a sink added or removed during the wait: as run_once has it)
                if obs.watched:
                    loop._emit_wait(timeout, ready, duration_us)
                    loop._dispatch_instrumented(ready, True)
                    return ready
                obs.seq += 1 + len(ready)  # the wait and its ready events, counted
