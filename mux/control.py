"""The one door into the loop thread: a queue of commands plus a wake-up socketpair.

The read end of the socketpair is registered in the backend like any other fd, so a command
wakes a blocked wait call — and the page shows it as the control fd.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .backends import READABLE

Command = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any]"]


class EngineStopped(RuntimeError):
    """The loop thread has ended: the command was not (and will not be) run."""

    def __init__(self, owner: str = "the engine") -> None:
        super().__init__(f"{owner} has stopped")


class ControlDoor:
    role = "control"
    inline = False  # (Handler.inline)

    def __init__(self, owner: str = "the engine") -> None:
        #: whose thread runs the commands, for the error once it has stopped
        self.owner = owner
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        # Held while a command is queued and its wake-up byte sent, and while the bytes are
        # drained: a drain then never runs between the two, so it cannot miss the byte of a
        # command it is about to run (which would wake the next wait for nothing: a step
        # whose one wait only returned the control fd).
        self._lock = threading.Lock()
        self._closed = False  # after close(): commands fail at once instead of waiting forever
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self.fd = self._rsock.fileno()

    def submit(self, fn: Callable[..., Any], *args: Any, wake: bool = True) -> Future[Any]:
        """Queue `fn(*args)` for the loop thread; thread-safe. `wake=False`: send no wake-up
        byte (a read that may wait for the current wait call to end, bounded by its timeout)."""
        fut: Future[Any] = Future()
        with self._lock:
            if self._closed:
                fut.set_exception(EngineStopped(self.owner))
                return fut
            self._queue.put((fn, args, fut))
            if not wake:
                return fut
            try:
                self._wsock.send(b"\0")
            except (BlockingIOError, OSError):
                pass  # the pipe is full (a wake-up is pending already) or closed at shutdown
        return fut

    def wake(self) -> None:
        """Send a wake-up byte (for a command submitted with `wake=False` after all)."""
        with self._lock:
            if not self._closed:
                try:
                    self._wsock.send(b"\0")
                except (BlockingIOError, OSError):
                    pass

    def on_ready(self, mask: int) -> None:
        if mask & READABLE:
            self.drain_wakeups()
            self.run_pending()

    def drain_wakeups(self) -> None:
        with self._lock:
            try:
                while self._rsock.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def run_pending(self) -> None:
        while True:
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                return
            self._run(command)

    def run_one_blocking(self, timeout: float | None = None) -> bool:
        """Block until a command comes (or `timeout`), then run it and every other command
        already queued. False on timeout.

        Order matters: the wake-up bytes are drained *before* the queue is emptied, so a
        command submitted after the drain leaves a fresh byte behind and the next wait call
        wakes for it. (Draining after running would strand it in the queue.)"""
        try:
            command = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        self.drain_wakeups()
        self._run(command)
        self.run_pending()
        return True

    @staticmethod
    def _run(command: Command) -> None:
        fn, args, fut = command
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future
            fut.set_exception(exc)

    def close(self) -> None:
        """Close the socketpair; every command still queued, and any submitted later, fails
        with EngineStopped (a caller awaiting its Future must not wait forever)."""
        with self._lock:
            self._closed = True
            self._rsock.close()
            self._wsock.close()
        while True:
            try:
                _, _, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(EngineStopped(self.owner))
