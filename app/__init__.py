"""muxscope: a live, in-browser view of I/O multiplexing (select, poll, epoll)."""

__version__ = "0.1.0"
