"""Why the load generator refuses a request: each error says the bound it would pass and
how many clients fit (the API answers 409 with it)."""

from __future__ import annotations


class LoadCapError(ValueError):
    def __init__(self, cap: int, have: int, asked: int) -> None:
        super().__init__(
            "the load generator is off (capped at 0 clients: --load-cap 0)" if cap == 0 else
            f"the load generator is capped at {cap} clients in all "
            f"({have} running, {asked} more asked for)"
        )
        self.cap = cap


class LoadLimitError(ValueError):
    """More clients than the echo server would keep (--max-connections): it would accept and
    close the rest at once, and they would count as running."""

    def __init__(self, limit: int, have: int, asked: int) -> None:
        super().__init__(
            f"the echo server holds at most {limit} connections (--max-connections): "
            f"{have} are open or connecting, {asked} more asked for"
        )
        self.limit = limit


class LoadFdError(ValueError):
    """More clients than the open-file limit leaves room for: each costs two fds in this
    process (its own end and the server's), below the slots kept free for the dashboard."""

    def __init__(self, ceiling: int, free: int, asked: int) -> None:
        super().__init__(
            f"not enough open files for {asked} more clients: each takes two fds here (its "
            f"end and the echo server's), and {free} are free below fd {ceiling} (the rest of "
            "the open-file limit is kept for the dashboard); ask for at most "
            f"{max(0, free // 2)}, or raise the limit (ulimit -n)"
        )


class LoadWatchLimitError(ValueError):
    """More clients than select can watch: the echo server closes each connection whose fd
    is FD_SETSIZE or more (SPEC §2), so they would vanish as soon as they were made."""

    def __init__(self, limit: int, free: int, asked: int) -> None:
        super().__init__(
            f"select watches only fds below {limit} (FD_SETSIZE), and the echo server closes "
            f"a connection whose fd is {limit} or more: {asked} more clients need {2 * asked} "
            f"fds here (each its end and the echo server's), and {max(0, free)} are free below "
            f"{limit}; ask for at most {max(0, free // 2)}, or switch to poll or epoll first"
        )
        self.limit = limit
