"""What the kernel holds, read beside what the engine believes.

- epoll's interest list from /proc/self/fdinfo/<epfd>: one `tfd:` line per watched fd with
  its event mask (hex), exactly what epoll_ctl left there.
- per socket, the bytes waiting in the kernel's receive queue (SIOCINQ) and send queue
  (SIOCOUTQ, bytes not yet acknowledged by the peer).
- the UDP socket's receive queue: SIOCINQ is only the next datagram's size there, so the
  memory the queued datagrams take (SO_MEMINFO's rmem_alloc, their overhead included) against
  the buffer (its rcvbuf), and the kernel's drop count: where a paused loop's burst waits.
"""

from __future__ import annotations

import fcntl
import re
import socket
import struct
import termios
from typing import Any

SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_MEMINFO = ("rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc", "wmem_queued",
            "optmem", "backlog", "drops")  # SK_MEMINFO_*, in the kernel's order
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


def udp_queues(sock: socket.socket) -> dict[str, int] | None:
    """{fd, next_datagram, recv_queue (bytes of memory, overhead included), rcvbuf, send_queue,
    drops}; None when the kernel gives no SO_MEMINFO."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * len(_MEMINFO))
    except (OSError, ValueError):
        return None
    if len(raw) < 4 * len(_MEMINFO):
        return None
    info = dict(zip(_MEMINFO, struct.unpack(f"={len(_MEMINFO)}I", raw), strict=True))
    fd = sock.fileno()
    return {"fd": fd, "next_datagram": _ioctl_int(fd, SIOCINQ), "recv_queue": info["rmem_alloc"],
            "rcvbuf": info["rcvbuf"], "send_queue": _ioctl_int(fd, SIOCOUTQ),
            "drops": info["drops"]}


def kernel_view(epfd: int | None, connection_fds: list[int],
                udp_sock: socket.socket | None = None) -> dict[str, Any]:
    epoll = None
    if epfd is not None:
        epoll = {"fd": epfd, "interest": epoll_interest(epfd)}
    return {"epoll": epoll, "connections": [socket_queues(fd) for fd in connection_fds],
            "udp": None if udp_sock is None else udp_queues(udp_sock)}
