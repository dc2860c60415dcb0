"""The TCP listener (mux/listener.py): a backlog longer than one accept batch is all accepted
under one edge; running out of fds closes exactly one waiting client to say so; and the
engine leaves no fd of its own open (the listener's spare fd) once stopped."""

from __future__ import annotations

import errno
import json
import os
import queue
import socket
import subprocess
import sys
import threading
from typing import Any

from mux import Engine, EngineConfig
from mux.listener import ACCEPT_BATCH

from .conftest import closed_by_server, connect, wait_until

MORE_THAN_A_BATCH = ACCEPT_BATCH + 22


def test_a_backlog_longer_than_one_batch_is_all_accepted_under_one_edge(
        make_engine: Any) -> None:
    """Clients that wait in the backlog while the loop is paused are announced by one edge;
    the listener accepts a batch, then must come back for the rest on its own."""
    engine, _ = make_engine(backend="epoll", trigger="edge", udp=False)
    engine.pause().result(5)
    clients: list[socket.socket] = []
    try:
        clients = [connect(engine.tcp_port) for _ in range(MORE_THAN_A_BATCH)]
        engine.resume().result(5)
        wait_until(lambda: len(engine.connections) == MORE_THAN_A_BATCH, timeout=5,
                   what=f"all {MORE_THAN_A_BATCH} waiting clients accepted")
    finally:
        for sock in clients:
            sock.close()


def _open_fds() -> set[int]:
    open_now = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue  # the listing's own fd, closed by now
        open_now.add(int(name))
    return open_now


def test_a_stopped_engine_leaves_no_fd_of_its_own_open() -> None:
    before = _open_fds()
    engine = Engine(EngineConfig(tcp_port=0, backend="epoll"))
    engine.start()
    engine.stop()
    engine.join(5)
    assert engine._thread is not None and not engine._thread.is_alive()
    leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in _open_fds() - before}
    assert not leaked, leaked


_EMFILE_SCRIPT = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
from mux import Engine, EngineConfig
engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll"))
listener = engine.listener.fd
engine.observers.add(lambda e: (e["kind"] == "error" or e["kind"] == "interest"
                                and e["fd"] == listener) and print(json.dumps(e), flush=True))
print(json.dumps({"port": engine.tcp_port}), flush=True)
sys.stdin.readline()  # the clients wait in the backlog first
engine.run()
"""


class _OutOfFds:
    """An engine limited to 48 fds in a subprocess, started once 60 clients wait in its
    backlog; its events (errors, the listener's interest) read with a deadline each."""

    def __init__(self) -> None:
        self.clients: list[socket.socket] = []
        self.proc = subprocess.Popen([sys.executable, "-c", _EMFILE_SCRIPT],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            port = self.next_event()["port"]
            for _ in range(60):  # more than 48 fds' worth
                self.clients.append(connect(port))
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        try:
            event: dict[str, Any] = json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no event from the engine within {timeout} s") from None
        return event

    def next_error(self) -> dict[str, Any]:
        while (event := self.next_event())["kind"] != "error":
            pass
        return event

    def close(self) -> None:
        for sock in self.clients:
            sock.close()
        self.proc.kill()
        self.proc.wait(5)


def test_the_retries_while_out_of_fds_say_nothing_until_fds_free_up() -> None:
    """One exhaustion, one `error` event, then silent retries every 100 ms: the fd its spare
    freed for the shed client is the spare's again, so no retry accepts with it (and says
    "accepting again", to run out again at once) while nothing else freed one."""
    engine = _OutOfFds()
    try:
        errors = [engine.next_error()]
        assert "closed one waiting client" in errors[0]["message"]
        retries = 0
        while retries < 3:  # each retry: interest on, accept, interest off
            event = engine.next_event()
            if event["kind"] == "error":
                errors.append(event)
            elif event["flags"] == []:
                retries += 1
        for sock in engine.clients[:30]:
            sock.close()
        errors.append(engine.next_error())
        assert [e["message"].split(":")[0] for e in errors] == ["accept failed",
                                                               "accepting again"], errors
    finally:
        engine.close()


def test_running_out_of_fds_closes_exactly_the_one_client_it_says_it_closed() -> None:
    """The first EMFILE frees the spare fd to accept one waiting client and close it, and the
    `error` event says "closed one waiting client": that client sees its connection end.
    (The clients are all in the backlog before the loop starts: accept(2) fails with EMFILE
    before it looks at the backlog, so one made as the last client is taken finds none.)"""
    engine = _OutOfFds()
    try:
        error = engine.next_error()
        assert "EMFILE" in error["message"]
        assert "closed one waiting client" in error["message"]
        shed = wait_until(lambda: [s for s in engine.clients if closed_by_server(s)], timeout=5,
                          what="the client said to be closed sees its end")
        assert len(shed) == 1
    finally:
        engine.close()


def test_two_exhaustions_in_one_iteration_set_one_retry_timer() -> None:
    """In level mode accept can fail twice in one iteration: from the wait's readiness and
    from a full batch's follow-up (call_soon). Each set a 100 ms retry timer, so the retries
    ran twice as often, two timers alternating, for as long as fds stayed short."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll"))
    try:
        listener = engine.listener
        for _ in range(2):
            listener._out_of_fds(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
        retries = [t for t in engine.loop._timers if t[2] == listener._retry]
        assert len(retries) == 1, engine.loop._timers
        engine.loop._timers.clear()
        listener._retry()   # the timer fires: the next exhaustion sets one again
        listener._out_of_fds(OSError(errno.EMFILE, os.strerror(errno.EMFILE)))
        assert [t for t in engine.loop._timers if t[2] == listener._retry]
    finally:
        engine.stop()
