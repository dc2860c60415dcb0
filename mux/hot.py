"""The dispatch of an unwatched iteration's ready list, with TCP's eager echo written inline.

Why: a Python call costs ~400 machine instructions (its frame pushed and cleared, callgrind),
and the eager echo of a 1 KiB message, from the wait to the send, ~10,000. One call of
`TcpConnection.on_ready` per ready fd was the largest single cost the engine had over a bare
loop; here one frame serves the whole batch (docs/BENCHMARKS.md, session 40).

Rules of this module:
- It emits no event. Whatever is not the common case (a read that fails or finds EOF, a send
  that fails, write readiness, a queue, a watched iteration, queued mode, any other handler)
  goes to the handler's own `on_ready`, so every event shown comes from the code the code view
  names. Kernel state makes that possible: a read after EOF finds EOF again, and an error the
  kernel reports only once (ECONNRESET) is handed over in `TcpConnection.failed`.
- It counts what it does not show (`obs.seq`) exactly as `on_ready` would, and bytes as
  `on_ready` would (`echoed`, or `_bytes_in`/`_bytes_out` and the queue for a partial send).
- A command run by an earlier handler of the batch (the control fd's) may switch the write
  strategy, the backend or a bug-zoo flaw: after each handler it calls, it reads them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends import READABLE, Backend
from .tcp import TcpConnection

if TYPE_CHECKING:
    from .engine import Engine


class EchoDispatch:
    """`Loop.dispatch_unwatched` for an engine: see the module's rules."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = engine.loop

    def run(self, ready: list[tuple[int, int]], backend: Backend) -> None:
        loop = self.loop
        engine = self.engine
        handlers = loop.handlers
        generic = backend._generic  # native -> READABLE/WRITABLE, filled by .generic
        obs = loop.obs
        buf = engine.recv_buffer
        views = engine.recv_views
        eager = engine.eager
        edge = loop.edge
        for fd, native in ready:
            try:
                handler = handlers[fd]
            except KeyError:  # closed by an earlier handler of this same batch
                continue
            try:
                mask = generic[native]
            except KeyError:
                mask = backend.generic(native)
            if (mask == READABLE and eager and type(handler) is TcpConnection
                    and handler.reading and not (obs.watched or handler.queue)):
                sock = handler.sock
                done = True  # False: on_ready takes over (see the module's rules)
                try:
                    while True:
                        try:
                            n = sock.recv_into(buf)
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            handler.failed = exc  # on_ready closes it, with the reason it says
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
                            if obs.active:  # the recv event, counted before the close
                                obs.seq += 1
                            handler.failed = exc
                            done = False
                            break
                        if obs.active:  # throttled: the recv and send events, counted, not shown
                            obs.seq += 2 if sent else 1
                        if sent == n:
                            handler.echoed += n
                            if edge:
                                continue  # edge-triggered: read on, until EAGAIN
                            break
                        handler._bytes_in += n  # the kernel took part: the rest is queued
                        handler._bytes_out += sent
                        handler._put(bytes(buf[sent:n]))
                        done = not (edge and handler.reading)  # on_ready reads on behind it
                        break
                except Exception as exc:  # a bug: this connection's end, not the loop's
                    loop._handler_failed(handler, exc)
                    continue
                if done:
                    continue
            try:
                handler.on_ready(mask)
            except Exception as exc:
                loop._handler_failed(handler, exc)
            if loop.dispatch_hook is not None:  # a flaw switched on by a command run just
                # now (the control fd's handler): its `loop` event has said so, and the rest
                # of the batch runs its handler, as the code view will show
                rest = ready[ready.index((fd, native)) + 1:]
                if rest:
                    loop._dispatch_instrumented(rest, False)
                return
            eager = engine.eager
            edge = loop.edge
