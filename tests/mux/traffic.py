"""Checksum-verified echo traffic from many client threads (test helper)."""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class ClientResult:
    sent_digest: str = ""
    received_digest: str = ""
    sent: int = 0
    received: int = 0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _run_client(port: int, total: int, seed: int, result: ClientResult) -> None:
    rng = random.Random(seed)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            reader = threading.Thread(target=_read_all, args=(sock, total, result))
            reader.start()
            digest = hashlib.sha256()
            while result.sent < total:
                size = min(rng.randint(1, 65536), total - result.sent)
                chunk = rng.randbytes(size)
                sock.sendall(chunk)
                digest.update(chunk)
                result.sent += size
            result.sent_digest = digest.hexdigest()
            reader.join(60)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        result.error = exc
    finally:
        result.done.set()


def _read_all(sock: socket.socket, total: int, result: ClientResult) -> None:
    digest = hashlib.sha256()
    try:
        while result.received < total:
            chunk = sock.recv(min(262144, total - result.received))
            if not chunk:
                break
            digest.update(chunk)
            result.received += len(chunk)
    except BaseException as exc:  # noqa: BLE001
        result.error = exc
    result.received_digest = digest.hexdigest()


def start_clients(port: int, clients: int, per_client: int) -> list[ClientResult]:
    results = [ClientResult() for _ in range(clients)]
    for i, result in enumerate(results):
        threading.Thread(target=_run_client, args=(port, per_client, i, result),
                         daemon=True).start()
    return results


def check(results: list[ClientResult], per_client: int, timeout: float = 60) -> None:
    for i, r in enumerate(results):
        assert r.done.wait(timeout), f"client {i} did not finish"
        assert r.error is None, f"client {i}: {r.error!r}"
        assert r.received == per_client == r.sent, f"client {i}: {r.received}/{r.sent}"
        assert r.received_digest == r.sent_digest, f"client {i}: bytes differ"
