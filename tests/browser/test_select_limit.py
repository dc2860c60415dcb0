"""A switch to select refused because registered fds are 1024 or more (SPEC §4's 409): the
error says to close those connections, but the page's connection list is capped to the lowest
fds, so none of the ones in the way had a Close button. The error now offers to close them
all and switch again."""

from __future__ import annotations

import os

from playwright.sync_api import expect

from tests.browser.page_helpers import real_console_errors
from tests.conftest import wait_until

OFFER = "Close every connection of fd 1024 and up, then switch to select"


def test_a_refused_switch_to_select_offers_to_close_the_fds_in_the_way(dashboard):
    page, api = dashboard.page, dashboard.api
    # fds held here (the app runs in this process) so that 500 clients (1,000 fds: theirs and
    # the server's ends) surely reach past 1023
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(100)]
    try:
        added = api.post("/api/load", json={"connections": 500, "message_size": 8, "rate": 0})
        assert added.status_code == 202, added.text
        wait_until(lambda: len(api.get("/api/state").json()["connections"]) == 500,
                   timeout=15, what="the 500 clients held")
        high = [c["fd"] for c in api.get("/api/state").json()["connections"] if c["fd"] >= 1024]
        assert high, "no fd of 1024 or more: the test needs some"
        page.get_by_label("Backend").select_option("select")
        error = page.locator("#error-area p.error-message")
        expect(error).to_have_count(1, timeout=8000)
        expect(error).to_contain_text("(409)")
        expect(error).to_contain_text("exceeds FD_SETSIZE (1024)")
        # the page's connection list cannot reach them (it shows the lowest fds only)
        assert page.get_by_role("button", name=f"Close fd {max(high)}", exact=True).count() == 0
        assert api.get("/api/state").json()["backend"]["name"] != "select"
        error.get_by_role("button", name=OFFER).click()
        expect(page.locator("#error-area p.error-message")).to_have_count(0, timeout=15_000)
        state = api.get("/api/state").json()
        assert state["backend"]["name"] == "select"
        assert all(c["fd"] < 1024 for c in state["connections"]), state["connections"][-3:]
        assert len(state["connections"]) == 500 - len(high)
        expect(page.get_by_label("Backend")).to_have_value("select")
        # the load generator counts the clients the server closed, and the page says so
        load = api.get("/api/load").json()
        assert load["closed"] == len(high) and load["errors"] == 0, load
        expect(page.locator("#load-status")).to_contain_text(
            f"{500 - len(high)} generated clients", timeout=8000)
        expect(page.locator("#load-status")).to_contain_text(
            f"{len(high)} closed by the server")
        assert real_console_errors(dashboard) == []
    finally:
        api.delete("/api/load")
        for fd in filler:
            os.close(fd)
