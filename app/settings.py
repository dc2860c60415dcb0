"""Run-time settings: every CLI option of SPEC §1, frozen once parsed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.security import is_loopback_host
from mux import WRITE_MODES, available_backends, default_backend

#: every backend name SPEC §1 knows (the CLI's choices); `available_backends()`: this platform's
BACKENDS = ("select", "poll", "epoll")
TRIGGERS = ("level", "edge")
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}

__all__ = ["BACKENDS", "TRIGGERS", "WRITE_MODES", "Settings", "default_backend",
           "epoll_available", "format_hostport"]


def epoll_available() -> bool:
    return "epoll" in available_backends()


def format_hostport(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: fds the process keeps for itself besides the echo connections (listeners, the dashboard and
#: its pages): EngineConfig.fd_reserve
FD_RESERVE = 64
#: below this open-file limit the process runs out of fds while it starts (seen: 14 fails
#: importing uvicorn, 16 starts with a handful of fds for clients): refused with one line
MIN_NOFILE = 32


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8000
    echo_port: int = 9000
    udp_port: int | None = None  # None: the TCP echo port actually bound
    udp: bool = True
    backend: str = default_backend()
    trigger: str = "level"
    oneshot: bool = False
    write: str = "queued"
    token: str | None = None
    open_browser: bool = False
    record: Path | None = None
    record_max_mb: int = 100
    max_connections: int = 10_000
    max_clients: int = 16
    load_cap: int = 2_000
    replay_file: Path | None = None

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """A one-line description of what is wrong with these settings, or None."""
        if self.backend not in BACKENDS:
            return f"unknown backend {self.backend!r} (choose from {', '.join(BACKENDS)})"
        if self.backend == "epoll" and not epoll_available():
            return "--backend epoll is not available on this platform (use select or poll)"
        if self.trigger not in TRIGGERS:
            return f"unknown trigger {self.trigger!r} (choose from level, edge)"
        if self.write not in WRITE_MODES:
            return f"unknown write mode {self.write!r} (choose from queued, eager)"
        if self.backend != "epoll" and self.trigger == "edge":
            return f"--trigger edge needs --backend epoll (not {self.backend})"
        if self.backend != "epoll" and self.oneshot:
            return f"--oneshot needs --backend epoll (not {self.backend})"
        if self.replay_file is None and self.echo_port and self.echo_port == self.http_port:
            return (f"--http-port and --echo-port are both {self.echo_port}: the dashboard and "
                    "the TCP echo server need a port each")
        return None

    @property
    def loopback(self) -> bool:
        """True when the listeners are bound to a loopback address."""
        return is_loopback_host(self.host)

    @property
    def replay(self) -> bool:
        return self.replay_file is not None

    @property
    def connect_host(self) -> str:
        """The address a local client uses to reach the listeners (wildcards -> loopback)."""
        return WILDCARD_HOSTS.get(self.host, self.host)

    def dashboard_url(self, port: int | None = None) -> str:
        """The page's URL (with ``?token=`` when one is needed); ``port``: the real HTTP port."""
        real_port = self.http_port if port is None else port
        url = f"http://{format_hostport(self.connect_host, real_port)}/"
        if self.token:
            url += "?token=" + quote(self.token, safe="")
        return url

    def engine_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``mux.EngineConfig`` (see docs/ARCHITECTURE.md)."""
        return {
            "host": self.host,
            "tcp_port": self.echo_port,
            "udp_port": self.udp_port,
            "udp": self.udp,
            "backend": self.backend,
            "trigger": self.trigger,
            "oneshot": self.oneshot,
            "write": self.write,
            "max_connections": self.max_connections,
            "fd_reserve": FD_RESERVE,
        }
