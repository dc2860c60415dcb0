"""Python load clients, run as ``python -m app.benchkit.pyclient MODE ...``.

``load HOST PORT CONNS SIZE WARMUP SECONDS DEPTH CPU [PROCS]`` — the fallback when gcc is
missing: the same protocol and output as loadclient.c (START, END, RESULT ...), with the
connections spread over PROCS worker processes (all pinned to CPU).

``idle HOST PORT`` — holds idle connections for the wait-cost benchmark, in its own process so
that the server's fds and the clients' fds count against two different limits. Commands on
stdin: ``open N`` (grow to N connections, answers ``OPEN <held> <failed>``), ``quit``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import selectors
import socket
import sys
import time
from multiprocessing.connection import Connection

from app.benchkit.orphan import die_with_parent


def _pin(cpu: int) -> None:
    if cpu >= 0 and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


class _Conn:
    __slots__ = ("sock", "got", "sent_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.got = 0
        self.sent_at: list[float] = []


def _on_read(c: _Conn, size: int, payload: bytes, window: tuple[float, float],
             lat: list[int]) -> int:
    """Read what is there; returns completed round trips inside the window (-1: closed)."""
    try:
        data = c.sock.recv(65536)
    except BlockingIOError:
        return 0
    except OSError:
        data = b""
    if not data:
        return -1
    now = time.monotonic()
    done = 0
    c.got += len(data)
    while c.got >= size:
        c.got -= size
        t0 = c.sent_at.pop(0)
        if window[0] <= now < window[1]:
            done += 1
            lat.append(int((now - t0) * 1e6))
        c.sent_at.append(now)
        c.sock.sendall(payload)
    return done


def _worker(args: tuple[str, int, int, int, float, float, int, int], out: Connection) -> None:
    die_with_parent()  # a worker of a client the bench terminated must not live on
    host, port, conns, size, t_start, t_end, depth, cpu = args
    _pin(cpu)
    sel = selectors.DefaultSelector()
    payload = b"x" * size
    now = time.monotonic()
    for _ in range(conns):
        c = _Conn(_connect(host, port))
        sel.register(c.sock, selectors.EVENT_READ, c)
        for _ in range(depth):
            c.sent_at.append(now)
            c.sock.sendall(payload)
    rt, dead = 0, 0
    lat: list[int] = []
    while time.monotonic() < t_end:
        for key, _ in sel.select(0.02):
            n = _on_read(key.data, size, payload, (t_start, t_end), lat)
            if n < 0:
                sel.unregister(key.fileobj)
                dead += 1
            else:
                rt += n
    out.send((rt, dead, lat))


def _percentile(sorted_lat: list[int], p: float) -> int:
    if not sorted_lat:
        return 0
    return sorted_lat[min(len(sorted_lat) - 1, int(p * len(sorted_lat)))]


def run_load(argv: list[str]) -> int:
    host, port, conns, size = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    warmup, seconds, depth, cpu = float(argv[4]), float(argv[5]), int(argv[6]), int(argv[7])
    procs = min(int(argv[8]) if len(argv) > 8 else 2, conns)
    _pin(cpu)
    t_start = time.monotonic() + 0.5 + warmup  # time for the workers to start and connect
    t_end = t_start + seconds
    ctx = mp.get_context("fork")
    pipes, workers = [], []
    for i in range(procs):
        share = conns // procs + (1 if i < conns % procs else 0)
        rx, tx = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker,
                        args=((host, port, share, size, t_start, t_end, depth, cpu), tx))
        p.start()
        pipes.append(rx)
        workers.append(p)
    time.sleep(max(0.0, t_start - time.monotonic()))
    print("START", flush=True)
    time.sleep(max(0.0, t_end - time.monotonic()))
    print("END", flush=True)
    results = [rx.recv() for rx in pipes]
    for p in workers:
        p.join()
    lat = sorted(x for r in results for x in r[2])
    rt, dead = sum(r[0] for r in results), sum(r[1] for r in results)
    print(f"RESULT rt={rt} seconds={seconds:.6f} p50_us={_percentile(lat, .5)} "
          f"p90_us={_percentile(lat, .9)} p99_us={_percentile(lat, .99)} "
          f"max_us={lat[-1] if lat else 0} dead={dead} conns={conns}", flush=True)
    return 0


def run_idle(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: list[socket.socket] = []
    failed = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "open":
            while len(held) < int(cmd[1]):
                try:
                    held.append(socket.create_connection((host, port), timeout=5))
                except OSError:
                    failed += 1
                    if failed > 50:
                        break
            print(f"OPEN {len(held)} {failed}", flush=True)
    for s in held:
        s.close()
    return 0


def main(argv: list[str]) -> int:
    die_with_parent()
    if argv and argv[0] == "load":
        return run_load(argv[1:])
    if argv and argv[0] == "idle":
        return run_idle(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
