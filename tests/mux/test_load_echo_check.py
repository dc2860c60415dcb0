"""The generated clients check their echo byte for byte (mux/load.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from mux import LoadGenerator

from .conftest import wait_until


@contextmanager
def _echo_server(mangle: Callable[[int, bytes], bytes]) -> Iterator[int]:
    """A one-connection echo server on loopback that answers read number i with
    `mangle(i, data)`: the wrong echoes a broken server would send."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(0.2)
            reads = 0
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except ConnectionResetError:  # a client removed with unread bytes resets
                    return
                if not data:
                    return
                conn.sendall(mangle(reads, data))
                reads += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x20])


@pytest.mark.parametrize("mangle", [
    lambda i, data: data if i < 3 else _flip_last_byte(data),   # a byte changed
    lambda i, data: data if i < 3 else data + data[:1],         # a byte repeated
    lambda i, data: data if i < 3 else data[1:2] + data[:1] + data[2:],  # two swapped
    # two blocks swapped: the fill repeated every 21 bytes, so a 21-byte swap passed
    lambda i, data: data if i < 3 else data[:14] + data[35:56] + data[14:35] + data[56:],
], ids=["changed", "repeated", "reordered", "blocks-swapped"])
def test_a_client_given_a_wrong_echo_counts_it_and_ends(mangle) -> None:
    with _echo_server(mangle) as port:
        load = LoadGenerator("127.0.0.1", port, cap=10)
        try:
            assert load.add(1, 64, 200.0).result(5) == 1
            wait_until(lambda: load.wrong == 1, what="the wrong echo counted")
            wait_until(lambda: load.count == 0, what="its client ended")
            assert load.describe() == {"connections": 0, "cap": 10, "errors": 0, "wrong": 1,
                                     "closed": 0}
            assert load.remove_all().result(5) == 0
            assert load.wrong == 0  # a new load starts afresh
        finally:
            load.close()


def test_a_right_echo_read_in_pieces_is_not_wrong() -> None:
    """A 200 kB message comes back over several reads (64 KiB at most each): each piece checks
    against where the last one ended, and the next message starts the check afresh."""
    echoed: list[int] = []

    def same(i: int, data: bytes) -> bytes:
        echoed.append(len(data))
        return data

    size = 200_000
    with _echo_server(same) as port:
        load = LoadGenerator("127.0.0.1", port, cap=10)
        try:
            assert load.add(1, size, 200.0).result(5) == 1
            wait_until(lambda: sum(echoed) >= 5 * size, what="five messages echoed")
            assert load.wrong == 0 and load.count == 1
        finally:
            load.close()
