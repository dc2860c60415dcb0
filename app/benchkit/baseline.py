"""The bare echo loops of the benchmark: minimal raw epoll, poll and select loops, no engine.

They do only the system calls SPEC §2 asks of each write strategy (eager: recv, send; queued:
recv, queue, write interest on, wait, send, write interest off), so each engine row can be read
against the floor a pure-Python loop reaches with the same calls.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Any

from app.benchkit.servers import HOST, Running

# --- bare loops: a minimal raw epoll (or poll) echo loop, no engine ------------------------


class _SelectPoller:
    """select(2) behind poll's interface, for the bare loops: two fd sets in, and out a list of
    (fd, POLLIN/POLLOUT bits) — the least a select loop does per call (the engine's select
    backend does the same, see mux/backends/_select.py)."""

    def __init__(self) -> None:
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def register(self, fd: int, mask: int) -> None:
        self.modify(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        if mask & select.POLLIN:
            self.readers.add(fd)
        else:
            self.readers.discard(fd)
        if mask & select.POLLOUT:
            self.writers.add(fd)
        else:
            self.writers.discard(fd)

    def unregister(self, fd: int) -> None:
        self.readers.discard(fd)
        self.writers.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        r, w, _ = select.select(self.readers, self.writers, (), timeout)
        if not w:
            return [(fd, select.POLLIN) for fd in r]
        ready = dict.fromkeys(r, select.POLLIN)
        for fd in w:
            ready[fd] = ready.get(fd, 0) | select.POLLOUT
        return list(ready.items())


def _new_poller(kind: str) -> tuple[Any, float | None]:
    """An epoll, poll or select poller and its wait timeout: None, blocking, as the engine's
    running waits (and asyncio's) are; a finite one would arm a kernel timer on every wait
    that sleeps. Their bits have the same values on Linux (EPOLLIN == POLLIN,
    EPOLLOUT == POLLOUT, EPOLLHUP == POLLHUP, EPOLLERR == POLLERR) and all have
    register/modify/unregister/poll, so the loops below serve all three, with nothing added on
    the hot path."""
    if kind == "poll":
        return select.poll(), None
    if kind == "select":
        return _SelectPoller(), None
    return select.epoll(), None


def _bare_loop(lsock: socket.socket, stop: threading.Event, edge: bool = False,
               kind: str = "epoll") -> None:
    """The eager floor: recv into one buffer and send a view of it back at once, inline (no
    call per ready fd). The cheapest pure-Python loop of those tried side by side in session
    15 (recv of a new bytes, readv/write on raw fds, maxevents=64, extra zero-timeout polls:
    docs/BENCHMARKS-history.md "Run AE"), and the way the engine's own eager path reads.
    Edge-triggered (as SPEC §2 states it), it reads until EAGAIN, which costs one recv more
    per message."""
    ep, timeout = _new_poller(kind)
    lfd = lsock.fileno()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    pending: dict[int, bytes] = {}
    mask = select.EPOLLIN | (select.EPOLLET if edge else 0)
    buf = bytearray(65536)
    views: dict[int, memoryview] = {}  # buf[:n] for each length n seen (a slice is an object)
    poll = ep.poll
    while not stop.is_set():
        for fd, ev in poll(timeout):
            if fd == lfd:
                _bare_accept(lsock, ep, conns, mask)
                continue
            if ev & select.EPOLLOUT:
                _bare_flush(fd, ep, conns, pending, mask)
                continue
            sock = conns[fd]
            while True:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError:
                    n = 0
                if not n:
                    _bare_close(fd, ep, conns)
                    pending.pop(fd, None)
                    break
                try:
                    view = views[n]
                except KeyError:
                    view = views[n] = memoryview(buf)[:n]
                try:
                    sent = sock.send(view)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    _bare_close(fd, ep, conns)
                    pending.pop(fd, None)
                    break
                if sent < n:
                    pending[fd] = bytes(buf[sent:n])
                    ep.modify(fd, select.EPOLLOUT)  # stop reading until the rest is sent
                    break
                if not edge:
                    break


def _bare_accept(lsock: socket.socket, ep: Any, conns: dict[int, socket.socket],
                 mask: int = select.EPOLLIN) -> None:
    try:
        sock, _ = lsock.accept()
    except OSError:  # EAGAIN, or a peer gone before its accept (ECONNABORTED): not the loop's end
        return
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        return
    conns[sock.fileno()] = sock
    ep.register(sock.fileno(), mask)


def _bare_close(fd: int, ep: Any, conns: dict[int, socket.socket]) -> None:
    ep.unregister(fd)
    conns.pop(fd).close()


def _bare_flush(fd: int, ep: Any, conns: dict[int, socket.socket],
                pending: dict[int, bytes], mask: int = select.EPOLLIN) -> None:
    data = pending.pop(fd)
    try:
        sent = conns[fd].send(data)
    except BlockingIOError:
        sent = 0
    except OSError:
        _bare_close(fd, ep, conns)
        return
    if sent < len(data):
        pending[fd] = data[sent:]
    else:
        ep.modify(fd, mask)  # on EPOLLET, MOD re-checks readiness: nothing is stranded


def _bare_queued_loop(lsock: socket.socket, stop: threading.Event, kind: str = "epoll") -> None:
    """The floor for `--write queued` on epoll: what SPEC §2 asks of queued echo, and nothing
    else. recv -> queue -> EPOLL_CTL_MOD(IN|OUT) -> wait -> send -> EPOLL_CTL_MOD(IN): two
    epoll_ctl calls and a second readiness per message, which no engine can avoid."""
    ep, timeout = _new_poller(kind)
    lfd = lsock.fileno()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    queues: dict[int, list[bytes]] = {}
    both = select.EPOLLIN | select.EPOLLOUT
    while not stop.is_set():
        for fd, ev in ep.poll(timeout):
            if fd == lfd:
                _bare_accept(lsock, ep, conns)
                continue
            sock = conns.get(fd)
            if sock is None:
                continue
            if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    _bare_close(fd, ep, conns)
                    queues.pop(fd, None)
                    continue
                if data:
                    q = queues.setdefault(fd, [])
                    q.append(data)
                    if len(q) == 1:
                        ep.modify(fd, both)
            if ev & select.EPOLLOUT and queues.get(fd):
                _bare_send_queue(fd, sock, ep, conns, queues)


def _bare_send_queue(fd: int, sock: socket.socket, ep: Any,
                     conns: dict[int, socket.socket], queues: dict[int, list[bytes]]) -> None:
    q = queues[fd]
    while q:
        try:
            sent = sock.send(q[0])
        except BlockingIOError:
            return
        except OSError:
            _bare_close(fd, ep, conns)
            queues.pop(fd, None)
            return
        if sent < len(q[0]):
            q[0] = q[0][sent:]
            return
        q.pop(0)
    ep.modify(fd, select.EPOLLIN)


def listening_socket() -> socket.socket:
    """A bare loop's listener: non-blocking, on HOST, a port the kernel picks."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    return lsock


def wake(port: int) -> None:
    """A bare loop's waits block (no timeout): a connection wakes it to see that it must stop."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        pass


def start_bare(queued: bool = False, edge: bool = False, kind: str = "epoll") -> Running:
    lsock = listening_socket()
    stop = threading.Event()
    if queued:
        thread = threading.Thread(target=_bare_queued_loop, args=(lsock, stop, kind))
    else:
        thread = threading.Thread(target=_bare_loop, args=(lsock, stop, edge, kind))
    thread.name, thread.daemon = "bare-echo", True
    thread.start()
    port = lsock.getsockname()[1]

    def stop_loop() -> None:
        stop.set()
        wake(port)

    return Running(port=port, stop=stop_loop)
