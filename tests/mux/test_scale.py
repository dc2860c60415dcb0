"""10,000 concurrent connections on epoll, driven from a separate process (fd limits)."""

from __future__ import annotations

import subprocess
import sys
import time

from .conftest import connect, recv_exactly, wait_until

CLIENTS = 10_000
HOLDER = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
print("ready", flush=True)
sys.stdin.read()  # hold them until the test closes our stdin
"""


def test_ten_thousand_connections_on_epoll(make_engine):
    engine, _ = make_engine(backend="epoll", observe=False, udp=False, max_connections=CLIENTS + 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(engine.tcp_port),
                               str(CLIENTS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        wait_until(lambda: engine.stats.connections == CLIENTS, timeout=20,
                   what=f"{CLIENTS} connections")
        t0 = time.monotonic()
        state = engine.state().result(10)
        assert len(state["connections"]) == CLIENTS
        assert time.monotonic() - t0 < 2.0
        with connect(engine.tcp_port) as sock:
            for _ in range(100):
                sock.sendall(b"ping")
                assert recv_exactly(sock, 4) == b"ping"
    finally:
        holder.stdin.close()
        holder.wait(20)
    wait_until(lambda: engine.stats.connections == 0, timeout=20)
