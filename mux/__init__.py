"""muxscope's engine: a real non-blocking echo server on select, poll or epoll, observable.

Standard library only; the web layer (`app`) uses nothing but the names below.
"""

from .backends import (
    FD_SETSIZE,
    READABLE,
    WRITABLE,
    FdLimitError,
    available,
    default_backend,
    validate,
)
from .codeview import handler_sources
from .config import MAX_DELAY_MS, WRITE_MODES, EngineConfig, fd_ceiling, raise_nofile_limit
from .control import EngineStopped
from .engine import Engine
from .events import preview
from .kernel import socket_queues
from .listener import open_tcp_listener
from .load import LoadGenerator
from .load_errors import LoadCapError, LoadFdError, LoadLimitError, LoadWatchLimitError
from .observe import Observers, Sink
from .tcp import TcpConnection
from .udp import open_udp_socket
from .zoo import flaw_catalog

available_backends = available

__all__ = [
    "FD_SETSIZE", "MAX_DELAY_MS", "READABLE", "WRITABLE", "WRITE_MODES", "Engine",
    "EngineConfig", "EngineStopped", "FdLimitError", "LoadCapError", "LoadFdError", "LoadGenerator",
    "LoadLimitError", "LoadWatchLimitError", "TcpConnection",
    "Observers", "Sink", "available", "available_backends", "default_backend", "flaw_catalog",
    "fd_ceiling", "handler_sources", "open_tcp_listener", "open_udp_socket", "preview",
    "raise_nofile_limit", "socket_queues", "validate",
]
