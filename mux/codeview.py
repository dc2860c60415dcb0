"""The real source of the handler behind each event kind, read with `inspect`.

For every event kind the engine emits, `handler_sources()` returns the function that emits it
(as it is loaded in this process, so a live edit shows) and the line numbers of the branch
that builds that event, so the page can highlight the branch taken by the latest event. Where
one kind comes from different paths, `kind@variant` keys name them (`close@user`, `queue@send`
...); the page picks the variant from the event itself (static/js/panels/code.js `chainKey`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import engine, events, flaw_base, flaws, hot, linger, listener, loop, tcp, udp, zoo
from .registrations import Registrations

#: functions the loop calls through a hook attribute (loop.py), by that attribute's name
_CALLED_AS = {engine.Engine._handler_failed: "handler_error_hook"}
#: on_ready closes a connection in three places when a call fails (`close@reset-recv` ...): the
#: text on each one's line, so that the branch taken is the one highlighted
_CALL_SITES = {"recv": '("recv", exc)', "send": '("send", exc)', "inline": "inline=True"}
#: ...and the side of a flaw handler's call of on_ready that a failed recv or send came from
_CALL_SIDES = {"recv": "(READABLE)", "send": "(WRITABLE)"}


def _kinds() -> dict[str, list[Callable[..., Any]]]:
    """kind -> the call chain that leads to the event, outermost first."""
    conn, acceptor, eng = tcp.TcpConnection, listener.TcpListener, engine.Engine
    reg = Registrations  # the fd table and interest changes the loop inherits
    return {
        "wait": [loop.Loop.run_once, loop.Loop._emit_wait, events.wait_event],
        "ready": [loop.Loop.run_once, loop.Loop._dispatch_instrumented],
        # (`late`) a breakpoint's hit in an iteration not shown shows its wait at the pause
        "wait@late": [loop.Loop.show_unshown_wait, loop.Loop._emit_wait, events.wait_event],
        "ready@late": [loop.Loop.show_unshown_wait],
        "interest": [reg.set_interest],  # modify
        "interest@register": [eng.adopt, reg.register, reg._emit_interest],
        "interest@moved": [eng._switch, reg.switch, reg._emit_interest],
        "interest@unregister": [reg.unregister, reg._emit_interest],
        # changes no handler asked for (the event's `cause`): a one-shot fd armed again after
        # its report; a closed fd a flaw left registered, dropped; a flaw's hang-up bit added
        # to every registration (on, or after a switch) or taken off again
        "interest@rearm": [loop.Loop._dispatch_instrumented, reg._rearm_fd,
                           reg._emit_interest],
        # /api/kernel's read, run in the control fd's own handler, arms it first (`early`)
        "interest@rearm-early": [eng._read_kernel, reg.rearm_now, reg._rearm_fd,
                                 reg._emit_interest],
        "interest@stale": [flaws.CloseWithoutUnregister._clean, reg.discard_stale,
                           reg._emit_interest],
        "interest@crash": [eng._handler_failed, reg.discard_stale,
                           reg._emit_interest],  # its handler raised, then its close
        "interest@flaw": [flaw_base.Flaw.on_backend_change, flaw_base.Flaw._set_extra,
                          reg.reapply_interest, reg._emit_interest],
        "interest@flaw-off": [flaw_base.Flaw.deactivate, flaw_base.Flaw._set_extra,
                              reg.reapply_interest, reg._emit_interest],
        "accept": [acceptor.on_ready, eng.adopt],
        "recv": [conn.on_ready, conn._on_data],
        "recv@eof": [conn.on_ready, conn._on_eof, conn.emit_eof_read],  # recv() returned 0
        "queue": [conn._put],  # a chunk put in the queue
        "queue@send": [conn.on_ready],  # the depth after a send: the write half of on_ready
        "send": [conn.on_ready],
        "send@eager": [conn.on_ready, conn._on_data],  # eager: sent at once, inside recv's handler
        "backpressure": [conn._put, conn._set_backpressure],
        # queued and unwatched, the batch dispatch queues inline and pauses reading itself
        # (the event is shown all the same: no `queue` event of the fd before it)
        "backpressure@inline": [hot.EchoDispatch.run, conn._set_backpressure],
        "backpressure@release": [conn.on_ready, conn._after_write, conn._set_backpressure],
        # the UDP socket's reply queue (`udp: true`): full, then drained
        "backpressure@udp": [udp.UdpEcho._receive_one, udp.UdpEcho._queue_reply,
                             udp.UdpEcho._set_backpressure],
        "backpressure@udp-release": [udp.UdpEcho.on_ready, udp.UdpEcho._flush,
                                     udp.UdpEcho._set_backpressure],
        "close": [conn.on_ready, conn._on_eof, conn.close],  # eof
        # eof, with a queue left to send then: closed by the write half once it is empty
        "close@flushed": [conn.on_ready, conn._after_write, conn.close],
        # a reset or error found by on_ready's recv or send (the event's `call`), or by the
        # batch dispatch's, which left the close to on_ready (`inline`); `close@reset` and
        # `close@error` are for recordings made before close events said which
        "close@reset": [conn.on_ready, conn.close],
        "close@error": [conn.on_ready, conn.close],
        **{f"close@{reason}-{site}": [conn.on_ready, conn.close]
           for reason in ("reset", "error") for site in _CALL_SITES},
        # eager: the send inside recv's handler failed (the close follows its `recv` event)
        "close@eager-reset": [conn.on_ready, conn._on_data, conn.close],
        "close@eager-error": [conn.on_ready, conn._on_data, conn.close],
        "close@user": [eng._close_connection, conn.shut_down, conn.close],
        # a user's "Close fd N" first sends what the kernel takes of the queue: the write half
        # of on_ready, called by shut_down (its events carry `closing`). No backpressure
        # release on that path: _after_write keeps reading paused while shutting down
        "send@user": [eng._close_connection, conn.shut_down, conn.on_ready],
        "queue@user": [eng._close_connection, conn.shut_down, conn.on_ready],
        # what is left queued after such a flush keeps write interest; reading stays paused
        "interest@user": [eng._close_connection, conn.shut_down, conn.on_ready,
                          conn._after_write, reg.set_interest],
        "interest@shutdown": [eng._shutdown, conn.shut_down, conn.on_ready, conn._after_write,
                              reg.set_interest],
        # that flush emptied the queue (reading on): on_ready's own end drops write interest
        "interest@user-emptied": [eng._close_connection, conn.shut_down, conn.on_ready,
                                  reg.set_interest],
        "interest@shutdown-emptied": [eng._shutdown, conn.shut_down, conn.on_ready,
                                      reg.set_interest],
        # a user's close of a streaming peer lingers: shut_down itself sets read interest only
        # (the queue left is given up), right after that flush's `queue` event
        "interest@linger": [eng._close_connection, conn.shut_down, reg.set_interest],
        # the engine's stop flushes each queue the same way (`closing: "shutdown"`)
        "send@shutdown": [eng._shutdown, conn.shut_down, conn.on_ready],
        "queue@shutdown": [eng._shutdown, conn.shut_down, conn.on_ready],
        "close@shutdown": [eng._shutdown, conn.shut_down, conn.close],
        # a user's close that lingered (linger.py), ended by the peer's EOF or the deadline
        "close@linger-eof": [linger.Lingerer.on_ready, linger.Lingerer.close, conn.close],
        "close@linger-reset": [linger.Lingerer.on_ready, linger.Lingerer.close, conn.close],
        "close@linger-deadline": [linger.Lingerer.expire, conn.close],
        "datagram": [udp.UdpEcho._receive_one, udp.UdpEcho._emit],
        "datagram@out": [udp.UdpEcho._receive_one, udp.UdpEcho._try_send, udp.UdpEcho._emit],
        # a reply the kernel could not take at once, sent when the socket is writable
        "datagram@flush": [udp.UdpEcho.on_ready, udp.UdpEcho._flush, udp.UdpEcho._try_send,
                           udp.UdpEcho._emit],
        "error": [acceptor._out_of_fds, eng.error],
        # the event's `cause`: a connection handler that raised; a new connection closed at
        # once (connection limit, fd reserve); one accept's own failure; accepts back after a
        # shortage of fds; a UDP recv or send that failed (or a truncated datagram)
        "error@crash": [loop.Loop._handler_failed, eng._handler_failed, eng.error],
        "error@refused": [acceptor.on_ready, eng.adopt, eng._refuse, eng.error],
        "error@accept": [acceptor.on_ready, eng.error],
        "error@recovered": [acceptor.on_ready, acceptor._recovered, eng.error],
        "error@udp": [udp.UdpEcho._error, eng.error],
        # the close right after such an `error` event of its fd: the crashed handler's, closed
        # by the engine (its on_ready never returned); the refused connection's, by _refuse
        "close@crash": [eng._handler_failed, conn.close],
        "close@refused": [acceptor.on_ready, eng.adopt, eng._refuse],
        "flaw": [flaw_base.Flaw.flag],
        "backend": [eng._switch],
        # `cause` on the event says which: a client's pause or resume (the default), a step,
        # a breakpoint's pause, a slow-motion or flaw change (the state unchanged)
        "loop": [eng._set_paused, eng._emit_loop],
        "loop@step": [eng._step, eng._emit_loop],
        "loop@breakpoint": [eng._pause_at_breakpoint, eng._emit_loop],
        "loop@delay": [eng._set_delay, eng.emit_loop_state, eng._emit_loop],
        "loop@flaw": [zoo.FlawZoo.set, eng.emit_loop_state, eng._emit_loop],
    }


#: the kinds a flaw's own connection handler leads to, when the bug zoo has one on (not the
#: `-inline` closes: the batch dispatch runs only while no flaw is on)
_FLAWED_KINDS = ("recv", "recv@eof", "send", "send@eager", "queue@send", "backpressure@release",
                 "close", "close@flushed", "close@reset", "close@error", "close@eager-reset",
                 "close@eager-error", *(f"close@{reason}-{site}" for reason in ("reset", "error")
                                        for site in ("recv", "send")))


def _flawed(chains: dict[str, list[Callable[..., Any]]]) -> dict[str, list[Callable[..., Any]]]:
    """`kind@<flaw name>`: with that flaw on, its `connection_ready` runs instead of
    `TcpConnection.on_ready`, so it heads the chain, followed from the first step of the usual
    chain it calls itself (a flaw that reads the socket calls `_on_data`, one that sees EOF
    `_on_eof`); one that calls none hands the event on to `on_ready`.

    `close@early@<flaw name>`: a close the flaw's own code made (a hang-up handled first, a
    recv error in its own read); such `close` events carry `flaw`."""
    flawed: dict[str, list[Callable[..., Any]]] = {}
    for cls in flaw_base.Flaw.__subclasses__():
        handler = cls.__dict__.get("connection_ready")
        if handler is None:
            continue
        source = inspect.getsource(handler)
        close = tcp.TcpConnection.close
        for kind in _FLAWED_KINDS:
            chain = chains[kind]
            # a direct call of `close` is an early close (below), not the usual path to it
            called = [i for i, fn in enumerate(chain) if i and fn is not close
                      and f".{fn.__name__}(" in source]
            flawed[f"{kind}@{cls.name}"] = [handler, *chain[called[0]:]] if called else [
                handler, *chain]
        if f".{close.__name__}(" in source:
            flawed[f"close@early@{cls.name}"] = [handler, close]
        elif f"{flaw_base.recv_once.__name__}(" in source:
            flawed[f"close@early@{cls.name}"] = [handler, flaw_base.recv_once, close]
    return flawed


def _describe(fn: Callable[..., Any], kind: str,
              callee: Callable[..., Any] | None) -> dict[str, Any]:
    """`fn`'s source; highlighted: the call into `callee`, or the line building the event."""
    lines, first, file = _source(fn)
    name = _CALLED_AS.get(callee, callee.__name__) if callee else None
    marker = f".{name}(" if callee else f'"kind": "{kind.split("@")[0]}"'
    highlight = [first + i for i, line in enumerate(lines) if marker in line]
    if not highlight and callee:  # a module-level function, called without a dot
        highlight = [first + i for i, line in enumerate(lines)
                     if f"{name}(" in line and not line.lstrip().startswith("def ")]
    call = kind.split("@")[1].partition("-")[2] if "@" in kind else ""
    for marks in (_CALL_SITES, _CALL_SIDES):  # on_ready's close call of the failed call; the
        if call in marks and callee and len(highlight) > 1:  # flaw's on_ready call of its side
            highlight = [n for n in highlight if marks[call] in lines[n - first]] or highlight
    return {"qualname": fn.__qualname__, "module": fn.__module__,
            "file": file, "first_line": first,
            "lines": [line.rstrip("\n") for line in lines], "highlight": highlight}


@functools.cache
def _source(fn: Callable[..., Any]) -> tuple[list[str], int, str | None]:
    """`fn`'s source lines, first line and file, read once: a function is in ~7 chains, and
    `inspect.getsourcelines` tokenizes its module up to it each time (1.3 s of CPU uncached)."""
    lines, first = inspect.getsourcelines(fn)
    return lines, first, _relative(inspect.getsourcefile(fn))


def _relative(path: str | None) -> str | None:
    """`mux/tcp.py`, not where the package happens to be installed."""
    if path is None:
        return None
    p = Path(path)
    return str(p.relative_to(Path(__file__).resolve().parent.parent)) if p.is_absolute() else path


def handler_sources() -> dict[str, list[dict[str, Any]]]:
    chains = _kinds()
    chains.update(_flawed(chains))
    return {kind: [_describe(fn, kind, chain[i + 1] if i + 1 < len(chain) else None)
                   for i, fn in enumerate(chain)]
            for kind, chain in chains.items()}
