"""Helpers the browser tests share: the app's state and APIs read while the page runs, load
clients, the page's rows and its log's scrolling, console errors that are not bugs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from playwright.sync_api import Page

from tests.conftest import wait_until

LOAD_RESOURCE = "Failed to load resource"


# -- helpers ---------------------------------------------------------------------------------

def real_console_errors(dashboard) -> list[str]:
    """Console errors, minus Chromium's own line for every non-2xx fetch (an answer, not a bug)."""
    return [e for e in dashboard.console_errors if LOAD_RESOURCE not in e]


def state(dashboard) -> dict[str, Any]:
    return dashboard.api.get("/api/state").json()


def wait_api(dashboard, pred, what: str, timeout: float = 5.0) -> dict[str, Any]:
    last: list[dict[str, Any]] = [{}]

    def matching_state() -> dict[str, Any] | None:
        last[0] = state(dashboard)
        return last[0] if pred(last[0]) else None

    found: dict[str, Any] = wait_until(
        matching_state, timeout, lambda: f"{what}: API state never matched; last: {last[0]}",
        interval=0.02)
    return found


@contextlib.contextmanager
def load_clients(dashboard, connections: int, size: int, rate: int) -> Iterator[None]:
    """The page's own load generator (POST /api/load) for the block, stopped after it."""
    res = dashboard.api.post("/api/load", json={"connections": connections,
                                                "message_size": size, "rate": rate})
    assert res.status_code == 202, res.text
    try:
        yield
    finally:  # an error in the block stays the one reported
        stopped = dashboard.api.delete("/api/load")
    assert stopped.status_code == 200, stopped.text


def row(page: Page, fd: int):
    return page.locator(f'#connection-list tr[data-fd="{fd}"]')


def loop_posts(page: Page) -> list[str]:
    """Record every POST /api/loop the page sends (body text), from now on."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "")
            if r.method == "POST" and r.url.split("?")[0].endswith("/api/loop") else None)
    return posts


def wait_for_a_scrollable_log(page: Page) -> None:
    """Until the event log holds more than two screens of rows (so it can be scrolled up)."""
    page.wait_for_function("""() => { const el = document.querySelector('#event-log');
                                      return el.scrollHeight > 2 * el.clientHeight; }""",
                           timeout=10_000)


def settled_scroll_top(page: Page, selector: str, timeout: float = 2.0) -> int:
    """`selector`'s scrollTop once two reads 100 ms apart agree (a wheel scroll has landed)."""
    element = page.locator(selector)
    last = element.evaluate("el => el.scrollTop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the spacing of the two reads
        now = element.evaluate("el => el.scrollTop")
        if now == last:
            return int(now)
        last = now
    raise AssertionError(f"{selector} kept scrolling for {timeout} s")


def settle(page: Page) -> None:
    """One round trip through the page's event loop: handlers of earlier input have run."""
    page.evaluate("() => new Promise(r => setTimeout(r, 0))")


# -- 2. live backend switch from the page ------------------------------------------------------

SYSCALL = {"select": r"^select\(", "poll": r"^poll\(", "epoll": r"^epoll_wait\("}


def run_in_page(dashboard, prelude: str, body: str) -> Any:
    """Run `prelude` + `body` as one async function in the page (checks that import the page's
    own modules); no console error may come of it."""
    result = dashboard.page.evaluate("async () => {" + prelude + body + "}")
    assert dashboard.console_errors == []
    return result
