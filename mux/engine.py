"""The engine: the echo server on a `Loop`, run in a thread, controlled through one door.

Rules of this module:
- Everything that touches sockets, the backend or the tables runs on the loop thread.
  Other threads go through `ControlDoor.submit` and get a Future back: the public commands
  that do so are in commands.py (`EngineCommands`); their bodies are here.
- Pause means no wait calls at all: clients' bytes wait in the kernel's buffers. Step means
  exactly one wait call and its handling, then paused again (loop_control.py, the base
  class `LoopControl`, holds both, slow motion and a breakpoint's pause).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from . import backends
from .backends import FD_SETSIZE, READABLE, FdLimitError
from .binding import open_echo_sockets
from .breakpoints import Breakpoints
from .commands import EngineCommands
from .config import (
    WRITE_MODES,
    EngineConfig,
    fd_ceiling,
    os_thread_namer,
    raise_nofile_limit,
)
from .control import ControlDoor
from .hot import EchoDispatch
from .listener import TcpListener
from .loop import Loop
from .loop_control import LoopControl
from .observe import Observers
from .state import capture as capture_state
from .tally import ByteTally, WaitTally
from .tcp import RECV_SIZE, TcpConnection
from .udp import UdpEcho
from .zoo import FlawZoo

log = logging.getLogger("mux")


class Engine(EngineCommands, LoopControl):
    """A non-blocking TCP+UDP echo server on the chosen backend, observable and steerable."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        cfg = config or EngineConfig()
        backends.validate(cfg.backend, cfg.trigger, cfg.oneshot)
        if cfg.write not in WRITE_MODES:
            raise ValueError(f"write must be one of {WRITE_MODES}, not {cfg.write!r}")
        self.config = cfg
        self._name_thread: Callable[[], None] = lambda: None  # start() names the loop's thread
        self.write_mode = cfg.write
        self.eager = cfg.write == "eager"  # read on every recv: a bool, not a string compare
        #: one receive buffer for every TCP connection: only the loop thread reads into it
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        #: views of `recv_buffer[:n]` by length n, made once (at most 4,096 of them): a dict
        #: lookup per message is cheaper than slicing a memoryview per message
        self.recv_views: dict[int, memoryview] = {}
        self.high_water = cfg.high_water
        self.low_water = cfg.low_water
        self.max_connections = cfg.max_connections
        #: fds from here up are kept free for the process (EngineConfig.fd_reserve); set at
        #: start, once the open-file limit is raised
        self.fd_ceiling: int | None = None
        self.observers = Observers(cfg.observe_budget)
        self.loop = Loop(backends.create(cfg.backend, cfg.trigger, cfg.oneshot),
                         self.observers, cfg.wait_timeout)
        self.stats = self.loop.stats
        self.loop.dispatch_unwatched = EchoDispatch(self).run
        #: a running loop's wait timeout (the loop's own, but for a step's wait: step_timeout)
        self.wait_timeout = cfg.wait_timeout
        self.step_timeout = cfg.step_timeout
        self.connections: dict[int, TcpConnection] = {}
        #: whether a peer is a client of the app's own load generator (LoadGenerator.owns;
        #: any thread may set it): marked on its accept event and in the state
        self.is_generated: Callable[[str], bool] | None = None
        #: the fds in a lingering close (linger.py), replaced whole on the loop thread so any
        #: thread may read it: the stats frames tell every page, which no event does
        self.lingering_fds: tuple[int, ...] = ()
        self.paused = False
        #: the breakpoint hit the loop is paused at ({"breakpoint", "wait", "fd", "steps":
        #: steps run since}), None when it runs or was paused by a client: a page opened
        #: meanwhile saw no `loop` event, and GET /api/state tells it this way
        self.paused_at: dict[str, Any] | None = None
        #: True while the thread is inside an iteration (its wait and the handlers of what it
        #: returned). A pause the control fd's handler takes there stops the loop only once
        #: the rest of that ready list is handled: its `loop` event, and any `loop` event
        #: after it in that iteration, are held until then (`_held_loop_events`), so that no
        #: event the loop made before it stopped follows "paused".
        self._iterating = False
        self._held_loop_events: list[dict[str, Any]] | None = None
        self.delay_ms = 0
        #: steps asked for and not yet run: each request is one wait, even when several
        #: arrive together (the door runs every queued command before the loop looks)
        self._steps_requested = 0
        self._stopping = False
        self.breakpoints = Breakpoints(self.loop, self._queue_depths, lambda: self.stats.waits,
                                       lambda: self._door.fd, lambda: self._iterating)
        self.sticky_write = False  # the bug zoo's write_interest_stuck
        self.flaws = FlawZoo(self)
        self.byte_tally = ByteTally(self.stats, self.connections)
        self.wait_tally = WaitTally(self.stats, cfg.backend)
        self._thread: threading.Thread | None = None
        self._door = ControlDoor()
        self.loop.handler_error_hook = self._handler_failed
        self._bind(cfg)

    def _bind(self, cfg: EngineConfig) -> None:
        """Open the listeners; if they cannot be bound, close the control door and the
        backend's own fd too, and raise."""
        try:
            tcp_sock, udp_sock = open_echo_sockets(cfg)
        except BaseException:
            self._door.close()
            self.loop.backend.close()
            raise
        self.loop.register(self._door, READABLE)
        self.listener = TcpListener(self, tcp_sock)
        self.loop.register(self.listener, READABLE)
        self.udp = UdpEcho(self, udp_sock) if udp_sock else None
        if self.udp:
            self.loop.register(self.udp, READABLE)

    @property
    def tcp_port(self) -> int:
        return int(self.listener.port)

    @property
    def udp_port(self) -> int | None:
        return self.udp.port if self.udp else None

    @property
    def control_fd(self) -> int:
        return self._door.fd

    # -- called by the protocols (loop thread) ---------------------------------------------
    def adopt(self, sock: socket.socket, peer: str, listener_fd: int) -> None:
        """Take a freshly accepted socket into the loop, or refuse it with an `error`."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.so_sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.so_sndbuf)
        fd = sock.fileno()
        self.stats.accepted += 1
        generated = self.is_generated is not None and self.is_generated(peer)
        obs = self.observers
        if obs.active:
            event: dict[str, Any] = {"kind": "accept", "fd": fd, "listener": listener_fd,
                                     "peer": peer}
            if generated:  # the page tells these from a person's nc
                event["generated"] = True
            obs.emit(event)
        if len(self.connections) >= self.max_connections:
            self._refuse(sock, f"connection limit ({self.max_connections}) reached; "
                               f"closed the new connection fd {fd} from {peer}")
            return
        if self.fd_ceiling is not None and fd >= self.fd_ceiling:
            self._refuse(sock, f"fd {fd} is among the open-file slots kept free for the "
                               f"dashboard (fd {self.fd_ceiling} and up, below the limit); "
                               f"closed the new connection from {peer}")
            return
        conn = TcpConnection(self, sock, peer)
        if generated:
            conn.generated = True
        try:
            self.loop.register(conn, READABLE)
        except FdLimitError as exc:
            self._refuse(sock, f"{exc}; closed the new connection from {peer}")
            return
        self.connections[fd] = conn
        self.stats.connections = len(self.connections)

    def _handler_failed(self, handler: Any, exc: Exception) -> None:
        """A connection whose handler raised is closed (reason `error`) and the loop goes on;
        anything else (a listener, the control door) ends the loop as before."""
        if getattr(handler, "role", None) != "connection":
            raise exc
        fd = handler.fd
        log.error("the handler of fd %d raised; closing it", fd, exc_info=exc)
        self.error(f"the handler of fd {fd} raised {type(exc).__name__}: {exc}; "
                   "closed the connection", fd=fd, cause="crash")
        try:
            handler.close("error")
        except Exception:  # noqa: BLE001 - it is broken already: drop it from the tables
            self.loop.discard_stale(fd, cause="crash")
            with contextlib.suppress(OSError):
                handler.sock.close()
            self.forget(handler)

    def _refuse(self, sock: socket.socket, message: str) -> None:
        fd = sock.fileno()
        self.error(message, fd=fd, cause="refused")
        sock.close()
        if self.observers.active:
            self.observers.emit({"kind": "close", "fd": fd, "reason": "error"})

    def peers(self) -> list[str]:
        """The peer addresses of the open connections; safe from any thread (the copy of
        the dict's values is one step for the interpreter)."""
        return [conn.peer for conn in list(self.connections.values())]

    def watch_limit(self) -> int | None:
        """The backend watches only fds below this (select: FD_SETSIZE), or None; safe from
        any thread (one read: a switch may change it the moment after)."""
        return self.loop.backend.fd_limit

    def forget(self, conn: TcpConnection) -> None:
        self.byte_tally.retire(conn)
        if conn.lingering:
            self.lingering_fds = tuple(fd for fd in self.lingering_fds if fd != conn.fd)
        self.breakpoints.fd_closed(conn.fd)
        self.stats.connections = len(self.connections)

    def error(self, message: str, fd: int | None = None, cause: str | None = None,
              **extra: Any) -> None:
        """`cause` names the path that found it (the page's code view picks its chain by it:
        `error@<cause>` in codeview.py); None: the listener out of fds (`_out_of_fds`).
        `extra`: fields of the event besides the message (udp.py's `udp_dropped`)."""
        if self.observers.active:
            event: dict[str, Any] = {"kind": "error", "message": message}
            if fd is not None:
                event["fd"] = fd
            if cause is not None:
                event["cause"] = cause
            event.update(extra)
            self.observers.emit(event)

    # -- the thread --------------------------------------------------------------------------
    def start(self) -> None:
        self.fd_ceiling = fd_ceiling(raise_nofile_limit(), self.config.fd_reserve)
        self._name_thread = os_thread_namer("mux-engine")
        self._thread = threading.Thread(target=self.run, name="mux-engine", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """The loop thread's body; returns after `stop()`, with everything closed."""
        self._name_thread()
        door = self._door
        try:
            while not self._stopping:
                if self.paused:
                    if not self._steps_requested:  # a step asked for meanwhile runs now
                        door.run_one_blocking()
                    if self._steps_requested and not self._stopping:
                        self._step()
                    continue
                self._run_iteration()
                if self.breakpoints.hit is not None:
                    self._pause_at_breakpoint()
                    continue
                if self.delay_ms and not self._stopping:
                    self._slow_motion()
        finally:
            self._shutdown()

    def _queue_depths(self) -> dict[int, int]:
        return {fd: len(c.queue) for fd, c in self.connections.items() if c.queue}

    def _shutdown(self) -> None:
        self.listener.close()  # no new connections while the others are shut down
        for conn in list(self.connections.values()):
            conn.shut_down()
        if self.udp:
            self.udp.close()
        self.loop.unregister(self._door.fd)
        self.loop.backend.close()
        self._door.close()

    def stop(self) -> None:
        """Ask the loop to finish; safe from any thread, and before `start()`."""
        if self._thread is None or not self._thread.is_alive():
            if not self._stopping:
                self._stopping = True
                if self._thread is None:
                    self._shutdown()
            return
        self._door.submit(self._request_stop)

    def _request_stop(self) -> None:
        self._stopping = True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the commands' bodies (loop thread; queued by commands.py) --------------------------
    def _switch(self, name: str, trigger: str, oneshot: bool,
                write: str | None) -> dict[str, Any]:
        backends.validate(name, trigger, oneshot)
        if write is not None and write not in WRITE_MODES:
            raise ValueError(f"write must be one of {WRITE_MODES}, not {write!r}")
        if name == "select":
            too_big = [fd for fd in self.loop.handlers if fd >= FD_SETSIZE]
            if too_big:
                raise FdLimitError.for_switch(too_big)
        old = self.loop.backend
        if (name, trigger, oneshot) != (old.name, old.trigger, old.oneshot):
            if self.flaws.active is not None:
                self.flaws.active.before_backend_change()
            self.loop.switch(backends.create(name, trigger, oneshot))
            if self.flaws.active is not None:
                self.flaws.active.on_backend_change()
            self.wait_tally.switched(name)
        eager = self.eager
        self.write_mode = write or self.write_mode
        self.eager = self.write_mode == "eager"
        if self.sticky_write and self.eager != eager:  # the bug zoo's stuck write interest
            for conn in list(self.connections.values()):  # depends on the strategy
                conn._update_interest()
        if self.observers.active:  # with the new epoll fd and maxevents: a replay has no
            backend = self.loop.backend  # state to re-read for its syscall line
            self.observers.emit({"kind": "backend", "from": old.name, "to": name,
                                 "trigger": trigger, "oneshot": oneshot,
                                 "write": self.write_mode, "epoll_fd": backend.fileno,
                                 "maxevents": backend.maxevents})
        return self.describe()

    def _close_connection(self, fd: int) -> bool:
        conn = self.connections.get(fd)
        if conn is None:
            return False
        conn.shut_down("user")
        return True

    # -- description ------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """The engine's counters; safe to call from any thread (plain int reads)."""
        stats = self.stats
        waits, by_backend = self.wait_tally.read()
        bytes_in, bytes_out = self.byte_tally.totals()
        udp = self.udp
        return {"events_total": self.observers.seq, "bytes_in": bytes_in,
                "bytes_out": bytes_out, "waits": waits,
                "connections": stats.connections, "accepted": stats.accepted,
                "waits_by_backend": by_backend,
                "lingering": list(self.lingering_fds),
                "udp": None if udp is None else {
                    "received": udp.received, "from_self": udp.from_self,
                    "echoed": udp.echoed, "dropped": udp.dropped,
                    "pending": len(udp.pending), "reading_paused": udp.reading_paused}}

    def describe(self) -> dict[str, Any]:
        """The GET /api/state body (SPEC §4 plus docs/ARCHITECTURE.md's extras); loop thread.
        From another thread, prefer `capture()` and format the result there."""
        return capture_state(self).to_dict()
