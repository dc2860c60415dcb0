"""Generated load: echo clients on their own selector thread, bounded in number.

Each client sends a message, waits for its echo, and sends the next one no sooner than
1/rate seconds after the previous (rate 0: connected and idle). They are real sockets, so
every one of them is a real connection the engine has to multiplex. Each checks its echo byte
for byte against what it sent: an echo that differs (a byte changed, repeated, reordered, or
missing before later ones) is counted in `wrong` and ends that client: the load is a witness
of the echo, not just weight. An echo that stops short leaves its client waiting (a paused
loop does that too), so it is not counted: it shows as a client that has stopped sending.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import os
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .control import ControlDoor
from .load_errors import LoadCapError, LoadFdError, LoadLimitError, LoadWatchLimitError
from .sockets import peer_name

DEFAULT_CAP = 2000
#: the longest single wait (s): a client's next send may be days away at a tiny rate, and
#: epoll/poll refuse a timeout past ~2**31 ms (OverflowError), which ended the thread
MAX_WAIT = 3600.0
#: the clients of one request send their first messages spread over one interval (at most
#: this many seconds), not all at once: clients that start together would otherwise stay in
#: step, and 300 at 1 msg/s made each second's events one burst of ~2,400 in a few ms, past
#: the page's budget for a 100 ms window (observe.py), though the rate was "interactive"
SPREAD_MAX = 1.0
_HEAD = b"muxscope load "
#: ports `_bind_first` tries for one client before it leaves the choice to the connect
BIND_TRIES = 64


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for ports a connect chooses (Linux), else IANA's dynamic range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(word) for word in f.read().split())
    except (OSError, ValueError):
        return 49152, 65535
    return low, high


_PORT_RANGE = _ephemeral_ports()


class _Client:
    __slots__ = ("sock", "fd", "local", "message", "out", "awaiting", "echoed", "interval",
                 "alive", "connected", "timed")

    def __init__(self, sock: socket.socket, message: bytes, rate: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        address = sock.getsockname()
        self.local = peer_name(address)  # the server's name for it: its peer
        self.message = message
        self.out = b""
        self.awaiting = 0
        self.echoed = 0  # bytes of the current message echoed back so far
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.alive = True
        self.connected = False  # its connect completed (it was writable once)
        self.timed = False  # a timer for its next message is in the heap


class LoadGenerator:
    """Thread-safe front; every socket operation runs on the generator's own thread."""

    def __init__(self, host: str, port: int, cap: int = DEFAULT_CAP,
                 max_connections: int | None = None,
                 peers: Callable[[], list[str]] | None = None,
                 fd_ceiling: int | None = None,
                 watch_limit: Callable[[], int | None] | None = None) -> None:
        """`max_connections` and `peers` (the server's connections, by peer address): a
        request whose clients would take the server past its limit is refused. `fd_ceiling`
        (the engine's): no client takes an fd from there up, and a request that needs more
        fds than are free below it is refused. `watch_limit` (the engine's backend's, read at
        each request: select's FD_SETSIZE): likewise, as the server would close the rest."""
        self.host, self.port, self.cap = host, port, cap
        self.max_connections, self._peers = max_connections, peers
        self.fd_ceiling = fd_ceiling
        self._watch_limit = watch_limit
        self._clients: dict[int, _Client] = {}
        #: the clients' own addresses, as the server names its peers: `owns`
        self._locals: set[str] = set()
        self._next_port = random.randint(*_PORT_RANGE)  # where `_bind_first` looks next
        self._sel = selectors.DefaultSelector()
        self._door = ControlDoor("the load generator")
        self._sel.register(self._door.fd, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, _Client]] = []
        self._ids = itertools.count()
        self._stopping = False
        self.count = 0
        self.errors = 0
        self.wrong = 0  # clients ended by an echo that differed from what they sent
        #: clients the echo server closed (an EOF, or a reset once connected): a "Close fd N",
        #: or a connection it would not keep (select's FD_SETSIZE, --max-connections) that the
        #: checks in `_add` could not foresee (others connecting at the same time)
        self.closed = 0
        self._thread = threading.Thread(target=self._run, name="mux-load", daemon=True)
        self._thread.start()

    # -- any thread -------------------------------------------------------------------------
    def owns(self, peer: str) -> bool:
        """Whether the echo server's peer `peer` is one of these clients (any thread: one set
        lookup). A client is known from its bind, before its connect (`_bind_first`); one that
        could not bind even to port 0, from just after its connect call, so the server may
        accept it a moment before: the engine asks again when it takes a state."""
        return peer in self._locals

    def add(self, connections: int, message_size: int, rate: float) -> Future[int]:
        return self._door.submit(self._add, connections, message_size, rate)

    def remove_all(self) -> Future[int]:
        return self._door.submit(self._remove_all)

    def close(self) -> None:
        if self._thread.is_alive():
            self._door.submit(self._stop)
            self._thread.join(5)

    # -- the generator's thread ---------------------------------------------------------------
    def _add(self, connections: int, message_size: int, rate: float) -> int:
        """Requests run one at a time on this thread, so two cannot both pass the checks."""
        if len(self._clients) + connections > self.cap:
            raise LoadCapError(self.cap, len(self._clients), connections)
        peers = set(self._peers()) if self._peers is not None else None
        mine = {client.local for client in self._clients.values()}
        if self.max_connections is not None and peers is not None:
            # ours whether the server has accepted them yet or not (a paused loop), plus its
            # others
            have = len(peers - mine) + len(self._clients)
            if have + connections > self.max_connections:
                raise LoadLimitError(self.max_connections, have, connections)
        # ours not accepted yet (a paused loop) have no server end yet: each will take one
        unaccepted = len(mine - peers) if peers is not None else 0
        free = _free_fds_below(self.fd_ceiling) if self.fd_ceiling is not None else None
        if free is not None:
            free -= unaccepted
            if 2 * connections > free:
                raise LoadFdError(self.fd_ceiling or 0, max(0, free), connections)
        limit = self._watch_limit() if self._watch_limit is not None else None
        # the kernel hands out the lowest free fd, to the clients' ends and the server's alike
        watchable = _free_fds_below(limit) if limit is not None else None
        if limit is not None and watchable is not None:
            watchable -= unaccepted
            if 2 * connections > watchable:
                raise LoadWatchLimitError(limit, watchable, connections)
        message = load_message(message_size)
        spread = min(1.0 / rate, SPREAD_MAX) if rate > 0 else 0.0
        for i in range(connections):
            if not self._connect(message, rate, spread * i / connections):
                break  # out of fds: the ones made stay, `errors` counts the refusal
        self.count = len(self._clients)
        return self.count

    def _connect(self, message: bytes, rate: float, delay: float = 0.0) -> bool:
        """One more client, whose first message goes `delay` s after now; False when no
        socket can be made now (EMFILE...)."""
        try:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        except OSError:
            self.errors += 1
            return False
        if self.fd_ceiling is not None and sock.fileno() >= self.fd_ceiling:
            sock.close()  # among the dashboard's slots (taken meanwhile by something else)
            self.errors += 1
            return False
        sock.setblocking(False)
        self._bind_first(sock)
        err = sock.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            with contextlib.suppress(OSError):
                self._locals.discard(peer_name(sock.getsockname()))
            sock.close()
            self.errors += 1
            return True
        client = _Client(sock, message, rate)
        self._locals.add(client.local)  # (bound first: known already, unless the bind failed)
        self._clients[client.fd] = client
        self._sel.register(client.fd, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        # the first message goes out as soon as the connect completes, or at its place in the
        # spread (a timer); rate 0 stays idle
        if rate > 0 and delay > 0:
            self._send_later(client, delay)
        elif rate > 0:
            client.out = message
        return True

    def _bind_first(self, sock: socket.socket) -> None:
        """Take the client's own address before its connect, and note it (`owns`): the server
        may accept the connection before connect_ex even returns (on loopback the handshake
        is done within the call), and its accept event says whether the peer is ours.

        The port is chosen here, the next free one of the ephemeral range in turn: a bind to
        port 0 searched the range for a port no TIME_WAIT holds, ~1 ms a client once ~15,000
        were (2,000 clients took 2.5 s to add, against 0.2 s). A port in use is EADDRINUSE
        at once.

        BIND_TRIES ports in use in a row are a run of an earlier load's clients in TIME_WAIT
        (each load takes its ports in turn; CI once met one): the next client looks from
        elsewhere in the range, and this one binds to port 0, the kernel's slower search.
        Only if that fails too does the connect choose, unnoted: a state read marks that
        client later (mux/state.py)."""
        low, high = _PORT_RANGE
        for _ in range(BIND_TRIES):
            port = self._next_port
            self._next_port = low if port >= high else port + 1
            with contextlib.suppress(OSError):
                sock.bind((self.host, port))
                break
        else:
            self._next_port = random.randint(low, high)
            try:
                sock.bind((self.host, 0))
            except OSError:
                return
        self._locals.add(peer_name(sock.getsockname()))

    def _remove_all(self) -> int:
        for client in list(self._clients.values()):
            self._drop(client)
        self._timers.clear()
        self.count = 0
        self.errors = 0  # failures of the clients just removed: a new load starts afresh
        self.wrong = 0
        self.closed = 0
        return 0

    def _stop(self) -> None:
        self._remove_all()
        self._stopping = True

    def _drop(self, client: _Client) -> None:
        if client.alive:
            client.alive = False
            self._sel.unregister(client.fd)
            client.sock.close()
            self._clients.pop(client.fd, None)
            self._locals.discard(client.local)
            self.count = len(self._clients)

    def _run(self) -> None:
        try:
            while not self._stopping:
                timeout = None
                if self._timers:
                    timeout = min(MAX_WAIT, max(0.0, self._timers[0][0] - time.monotonic()))
                for key, mask in self._sel.select(timeout):
                    if key.data is None:
                        self._door.on_ready(1)
                    else:
                        self._on_ready(key.data, mask)
                self._fire_timers()
        finally:
            self._sel.close()
            self._door.close()

    def _on_ready(self, client: _Client, mask: int) -> None:
        if not client.alive:
            return
        try:
            if mask & selectors.EVENT_READ:
                self._read(client)
            if client.alive and mask & selectors.EVENT_WRITE:
                self._write(client)
        except OSError as exc:
            # a reset of a connected client is the server's close too: one closed with bytes
            # of ours unread (a refusal after our first message went, a "Close fd N" mid-echo)
            if client.connected and exc.errno in (errno.ECONNRESET, errno.EPIPE):
                self.closed += 1
            else:
                self.errors += 1
            self._drop(client)

    def _read(self, client: _Client) -> None:
        data = client.sock.recv(65536)
        if not data:  # the echo server closed it
            self.closed += 1
            self._drop(client)
            return
        n = len(data)
        start = client.echoed
        # One message is out at a time (the next waits for this one's whole echo), so the echo
        # is the message itself, from where the last read ended.
        if data != client.message[start:start + n]:
            self.wrong += 1
            self._drop(client)
            return
        client.echoed = start + n
        client.awaiting -= n
        # The next message is due once this one is all sent *and* echoed: with a large message
        # the echo can catch up with a partial send, which is not the end of the message.
        if client.awaiting <= 0 and not client.out and client.interval:
            self._send_later(client, client.interval)

    def _write(self, client: _Client) -> None:
        client.connected = True
        if client.out:
            sent = client.sock.send(client.out)
            client.awaiting += sent
            client.out = client.out[sent:]
        if not client.out:
            self._sel.modify(client.fd, selectors.EVENT_READ, client)
            # the echo came back before the end (or a connect completed: its first message
            # has a timer already when it was spread)
            if client.awaiting <= 0 and client.interval:
                self._send_later(client, client.interval)

    def _send_later(self, client: _Client, delay: float) -> None:
        """The client's next message in `delay` s: one timer at a time (a connect that
        completed after its spread first message fell due made a second, and two messages
        out at once read as a wrong echo)."""
        if not client.timed:
            client.timed = True
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._ids), client))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, client = heapq.heappop(self._timers)
            client.timed = False
            if client.alive and not client.out:  # never cut a message still being sent
                client.out = client.message
                client.echoed = 0
                if not client.connected:  # a spread first message: sent once it connects
                    continue
                self._on_ready(client, selectors.EVENT_WRITE)
                if client.alive and client.out:
                    self._sel.modify(client.fd, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                     client)

    def describe(self) -> dict[str, Any]:
        return {"connections": self.count, "cap": self.cap, "errors": self.errors,
                "wrong": self.wrong, "closed": self.closed}


def load_message(size: int) -> bytes:
    """`muxscope load 00000014 00000023 ...`: text a learner can read in the previews, where
    each block names its own offset, so an echo with blocks swapped or repeated differs from
    the message (the 21-byte pattern repeated before hid that from the echo check)."""
    message = bytearray(_HEAD)
    while len(message) < size:
        message += b"%08d " % len(message)
    return bytes(message[:size])


def _free_fds_below(ceiling: int) -> int | None:
    """How many fd numbers below `ceiling` are free in this process (None: no /proc)."""
    try:
        names = os.listdir("/proc/self/fd")  # lists its own directory fd too: one too many
    except OSError:
        return None
    used = sum(1 for name in names if name.isdigit() and int(name) < ceiling)
    return max(0, ceiling - used + 1)
