"""What the kernel holds, read beside what the engine believes.

- epoll's interest list from /proc/self/fdinfo/<epfd>: one `tfd:` line per watched fd with
  its event mask (hex), exactly what epoll_ctl left there.
- per socket, the bytes waiting in the kernel's receive queue (SIOCINQ) and send queue
  (SIOCOUTQ, bytes not yet acknowledged by the peer).
"""

from __future__ import annotations

import fcntl
import re
import struct
import termios
from typing import Any

SIOCINQ = termios.FIONREAD
SIOCOUTQ = termios.TIOCOUTQ
_TFD = re.compile(r"^tfd:\s*(\d+)\s+events:\s*([0-9a-fA-F]+)", re.MULTILINE)


def epoll_interest(epfd: int) -> list[dict[str, int]]:
    """[{fd, mask}] from /proc/self/fdinfo/<epfd>, sorted by fd."""
    with open(f"/proc/self/fdinfo/{epfd}") as f:
        text = f.read()
    return sorted(({"fd": int(fd), "mask": int(mask, 16)} for fd, mask in _TFD.findall(text)),
                  key=lambda item: item["fd"])


def socket_queues(fd: int) -> dict[str, int]:
    return {"fd": fd, "recv_queue": _ioctl_int(fd, SIOCINQ),
            "send_queue": _ioctl_int(fd, SIOCOUTQ)}


def _ioctl_int(fd: int, request: int) -> int:
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0])
    except (OSError, ValueError):  # ValueError: a closed socket's fd, -1
        return -1


def kernel_view(epfd: int | None, connection_fds: list[int]) -> dict[str, Any]:
    epoll = None
    if epfd is not None:
        epoll = {"fd": epfd, "interest": epoll_interest(epfd)}
    return {"epoll": epoll, "connections": [socket_queues(fd) for fd in connection_fds]}
