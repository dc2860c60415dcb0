"""The event log: it follows new events until scrolled up, filters by kind and fd, and can hide
idle waits (SPEC §5)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import echo, server_fd
from tests.browser.page_helpers import (
    load_clients,
    real_console_errors,
    settled_scroll_top,
    wait_for_a_scrollable_log,
)

WHEEL_IN_THE_PIN_FRAME = """() => new Promise((resolve) => {
  // The frame right after new rows came in (the pin to the end still pending): a wheel up, and
  // the scroll the browser performs for it. The log must stay where the user put it.
  const el = document.querySelector('#event-log');
  const probe = () => {
    if (!window.__muxscope.logPinPending) { requestAnimationFrame(probe); return; }
    el.dispatchEvent(new WheelEvent('wheel', { deltaY: -100, bubbles: true }));
    el.scrollTop -= 100;
    const after = () => resolve(el.scrollTop + el.clientHeight >= el.scrollHeight - 4);
    requestAnimationFrame(() => requestAnimationFrame(after));
  };
  requestAnimationFrame(probe);
})"""


def test_scrolling_the_log_up_stops_auto_scroll(dashboard):
    """SPEC §5: auto-scroll that stops when the user scrolls up, also in the frame where rows
    have just been appended (the page's own scrolling must not be taken for the user's)."""
    page = dashboard.page
    log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
    with load_clients(dashboard, 4, 16, 20):
        wait_for_a_scrollable_log(page)
        for _ in range(3):  # real input: one wheel notch up, while events keep coming
            log.hover()  # the mouse is over the log (the jump button's click moved it)
            page.mouse.wheel(0, -300)
            expect(jump).to_be_visible(timeout=2000)
            # the page holds the log on the wheel event; the scroll itself lands a moment later
            top = settled_scroll_top(page, "#event-log")
            page.wait_for_timeout(300)  # a settle window: the log must not move meanwhile
            assert log.evaluate("el => el.scrollTop") == top
            jump.click()
            expect(jump).to_be_hidden(timeout=2000)
        for _ in range(3):
            assert page.evaluate(WHEEL_IN_THE_PIN_FRAME) is False, "snapped back to the bottom"
            expect(jump).to_be_visible(timeout=2000)
            jump.click()
            expect(jump).to_be_hidden(timeout=2000)


# -- 8. event log filters --------------------------------------------------------------------------

def test_event_log_filters_by_kind_and_fd(dashboard):
    page = dashboard.page
    log = page.locator("#event-log li")
    with dashboard.connect() as a, dashboard.connect() as b:
        fd_a, fd_b = server_fd(dashboard, a), server_fd(dashboard, b)
        for i in range(3):
            assert echo(a, f"a{i}\n".encode()) == f"a{i}\n".encode()
            assert echo(b, f"b{i}\n".encode()) == f"b{i}\n".encode()
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd_b}"]')).to_have_count(
            3, timeout=3000)
        assert page.locator('#event-log li[data-kind="wait"]').count() > 0

        page.locator("#log-filter-kind").select_option("recv")
        expect(page.locator('#event-log li[data-kind="wait"]')).to_have_count(0, timeout=3000)
        expect(page.locator('#event-log li[data-kind="recv"]')).to_have_count(6, timeout=3000)
        kinds = log.evaluate_all("els => els.map(e => e.dataset.kind || e.className)")
        assert kinds and set(kinds) == {"recv"}, kinds
        # new events obey the filter too
        assert echo(a, b"a3\n") == b"a3\n"
        expect(page.locator('#event-log li[data-kind="recv"]')).to_have_count(7, timeout=3000)
        kinds = log.evaluate_all("els => els.map(e => e.dataset.kind || e.className)")
        assert set(kinds) == {"recv"}, kinds

        page.locator("#log-filter-kind").select_option("")
        page.locator("#log-filter-fd").fill(str(fd_a))
        expect(page.locator(f'#event-log li[data-fd="{fd_b}"]')).to_have_count(0, timeout=3000)
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd_a}"]')).to_have_count(
            4, timeout=3000)
        fds = log.evaluate_all("els => els.map(e => e.dataset.fd ?? ('no fd: ' + e.textContent))")
        assert fds and set(fds) == {str(fd_a)}, fds
        kinds = set(log.evaluate_all("els => els.map(e => e.dataset.kind)"))
        assert {"accept", "recv", "send"} <= kinds, kinds

        # clearing the filters brings the other fd and the waits back
        page.locator("#log-filter-fd").fill("")
        expect(page.locator(f'#event-log li[data-fd="{fd_b}"]').first).to_be_attached(timeout=3000)
        expect(page.locator('#event-log li[data-kind="wait"]').first).to_be_attached(timeout=3000)
    assert real_console_errors(dashboard) == []


def test_the_log_can_hide_idle_waits_and_keep_the_rest(dashboard):
    """An idle loop lists four timed-out waits a second: a learner's own recv scrolled out of
    the box within seconds, and the only way to keep it was to know to pick kind=recv."""
    page = dashboard.page
    idle_wait = page.locator('#event-log li[data-kind="wait"]', has_text=re.compile(r"ready=0\b"))
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        expect(idle_wait.first).to_be_attached(timeout=5000)
        page.locator("#log-filter-kind").select_option("-idle")
        expect(idle_wait).to_have_count(0, timeout=3000)
        assert echo(sock, b"mine\n") == b"mine\n"
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd}"]')).to_have_count(
            1, timeout=3000)
        busy = page.locator('#event-log li[data-kind="wait"]', has_text=re.compile(r"ready=[1-9]"))
        expect(busy.first).to_be_attached(timeout=3000)  # the wait that returned it stays
        page.wait_for_timeout(600)  # idle timeouts (250 ms) go on meanwhile: none is listed
        expect(idle_wait).to_have_count(0)
        # markers stay: hiding idle waits hides no dropped events or resyncs
        dashboard.page.evaluate("() => window.__muxscope.socket.ws.close()")
        expect(page.locator("#event-log li", has_text="— snapshot: state at seq")).to_have_count(
            1, timeout=10_000)
        page.locator("#log-filter-kind").select_option("")
        expect(idle_wait.first).to_be_attached(timeout=3000)
    assert real_console_errors(dashboard) == []
