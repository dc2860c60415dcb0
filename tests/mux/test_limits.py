"""FD_SETSIZE under select, and EMFILE on accept without spinning."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mux import Engine, EngineConfig, FdLimitError

from .conftest import SocketStandIn, closed_by_server, connect, recv_exactly, wait_until


@contextmanager
def fds_above_setsize() -> Iterator[None]:
    """Occupy fds up to 1100 so the next sockets of this process get numbers above 1023."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)


def test_switch_to_select_refused_above_fd_setsize(make_engine):
    engine, rec = make_engine(backend="epoll")
    with fds_above_setsize(), connect(engine.tcp_port) as sock:
        accepted = rec.wait_for("accept")["fd"]
        assert accepted >= 1024
        with pytest.raises(FdLimitError, match=rf"fd {accepted}.*FD_SETSIZE \(1024\)"):
            engine.switch_backend("select").result(5)
        assert engine.state().result(5)["backend"]["name"] == "epoll"
        sock.sendall(b"still echoing")
        assert recv_exactly(sock, 13) == b"still echoing"


def test_a_refused_switch_to_select_counts_the_fds_in_the_way_and_says_what_to_do(make_engine):
    engine, rec = make_engine(backend="epoll")
    with fds_above_setsize(), connect(engine.tcp_port), connect(engine.tcp_port):
        wait_until(lambda: len(rec.of("accept")) == 2)
        fds = sorted(e["fd"] for e in rec.of("accept"))
        with pytest.raises(FdLimitError) as refused:
            engine.switch_backend("select").result(5)
        message = str(refused.value)
        assert message.startswith(f"fd {fds[1]} is not below FD_SETSIZE (1024): select can "
                                  "watch fds 0–1023 only")
        assert "(1 more registered fd of 1024 and up too)" in message
        assert message.endswith("until every fd is below 1024, or stay on poll or epoll")


def test_select_closes_new_connection_above_fd_setsize(make_engine):
    engine, rec = make_engine(backend="select")
    with fds_above_setsize(), connect(engine.tcp_port) as sock:
        error = rec.wait_for("error")
        assert "FD_SETSIZE (1024)" in error["message"] and error["fd"] >= 1024
        assert error["cause"] == "refused"  # closed by adopt's refusal (the code view's path)
        assert sock.recv(10) == b""  # closed by the server
        rec.wait_for("close", reason="error")
    # ... and the loop lives on: a low-numbered client still echoes.
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


EMFILE_SCRIPT = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
from mux import Engine, EngineConfig
engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", trigger=sys.argv[1]))
engine.observers.add(lambda e: e["kind"] == "error" and print(json.dumps(e), flush=True))
print(json.dumps({"port": engine.tcp_port}), flush=True)
engine.run()
"""


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _announced_sheds(messages: list[dict]) -> int:
    return sum("closed one waiting client" in m.get("message", "") for m in messages)


@pytest.mark.parametrize("trigger", ["level", "edge"])
def test_emfile_does_not_spin_and_recovers(trigger):
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SCRIPT, trigger],
                            stdout=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    messages: list[dict] = []  # every line the engine printed: its port, then error events

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            messages.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        port = wait_until(lambda: messages and messages[0])["port"]
        clients = [connect(port) for _ in range(80)]  # more than 48 fds' worth
        error = wait_until(lambda: len(messages) > 1 and messages[1])
        assert "EMFILE" in error["message"]
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(1.0)  # measuring CPU over a fixed window, not synchronising
        share = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        assert share < 0.30, f"the loop spins at {share:.0%} of a core while out of fds"
        # The one client shed to say so is all: each retry shed one more, silently (~10 a
        # second), where the backlog should keep them until fds free up. (The shed may come
        # at a retry, said then: the first EMFILE can come with nobody waiting, accept(2)
        # failing before it looks at the backlog.)
        shed = [sock for sock in clients if closed_by_server(sock)]
        assert len(shed) <= 1, f"{len(shed)} waiting clients closed while out of fds"
        wait_until(lambda: _announced_sheds(messages) == len(shed),
                   what=f"the shed said: {messages}")
        for sock in clients[:60]:
            sock.close()
        wait_until(lambda: any("accepting again" in m.get("message", "") for m in messages),
                   what="accepting again")
        # they waited in the backlog: served now. The backlog can fill the fd table again:
        # a second spell, whose one shed is said too (often one of the 20 closed clients at
        # the backlog's head: said, and no live client lost)
        for sock in clients[60:]:
            if sock not in shed:
                try:
                    sock.sendall(b"late")
                    got = recv_exactly(sock, 4)
                except ConnectionError:  # shed with our bytes unread: a reset
                    got = b""
                if got != b"late":
                    assert got == b"", got
                    shed.append(sock)
        wait_until(lambda: _announced_sheds(messages) >= len(shed),
                   what=f"{len(shed)} sheds said: {messages}")
        assert _announced_sheds(messages) <= 2, messages
        with connect(port) as fresh:
            fresh.sendall(b"alive")
            assert wait_until(lambda: recv_exactly(fresh, 5)) == b"alive"
    finally:
        for sock in clients:
            sock.close()
        proc.kill()
        proc.wait(5)


class _FailingOnce(SocketStandIn):
    """The real listening socket, whose first `accept` fails the way accept(2) may fail for a
    connection that died in the backlog (the kernel cannot be made to do it on demand)."""

    def __init__(self, sock: socket.socket, err: int) -> None:
        super().__init__(sock)
        self._err, self.failed = err, False

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed = True
            raise OSError(self._err, os.strerror(self._err))
        return self.real.accept()


@pytest.mark.parametrize("err", [errno.ECONNABORTED, errno.EPROTO])
@pytest.mark.parametrize("oneshot", [False, True], ids=["edge", "edge-oneshot"])
def test_one_failed_accept_does_not_strand_the_backlog_in_edge_mode(err: int,
                                                                     oneshot: bool) -> None:
    """accept(2): ECONNABORTED, EPROTO... belong to one connection; the clients queued behind
    it must still be accepted, though an edge-triggered listener gets no new edge for them."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", trigger="edge",
                                 oneshot=oneshot, wait_timeout=0.05))
    engine.listener.sock = _FailingOnce(engine.listener.sock, err)  # type: ignore[assignment]
    clients = [socket.create_connection(("127.0.0.1", engine.tcp_port)) for _ in range(3)]
    try:
        deadline = time.monotonic() + 5
        while len(engine.connections) < 3 and time.monotonic() < deadline:
            engine.loop.run_once()
        assert len(engine.connections) == 3, (
            f"{len(engine.connections)} of 3 clients accepted after one {errno.errorcode[err]}")
    finally:
        for c in clients:
            c.close()
        engine.stop()


def test_echo_port_0_picks_another_pair_when_the_udp_twin_is_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """UDP echoes on the TCP port the kernel picked; that port can be taken for UDP alone
    (it was start-up's end, named as port 0). A real UDP socket takes the first one here."""
    import mux.binding as binding_module

    real_open = binding_module.open_udp_socket
    blockers: list[socket.socket] = []

    def taken_the_first_time(host: str, port: int) -> socket.socket:
        if not blockers:
            blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blocker.bind((host, port))
            blockers.append(blocker)
        return real_open(host, port)

    monkeypatch.setattr(binding_module, "open_udp_socket", taken_the_first_time)
    engine = Engine(EngineConfig(tcp_port=0, udp=True))
    try:
        assert engine.udp_port == engine.tcp_port != blockers[0].getsockname()[1]
    finally:
        engine.stop()
        blockers[0].close()
