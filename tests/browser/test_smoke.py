"""The page loads in headless Chromium, offline and without console errors."""

from __future__ import annotations


def test_page_loads_without_errors_or_external_requests(dashboard):
    page = dashboard.page
    page.get_by_label("Backend").wait_for()
    assert page.locator("#syscall-line").inner_text(timeout=5000)
    page.wait_for_function("() => window.__muxscope.frames.stats >= 1", timeout=5000)
    assert dashboard.console_errors == []
    assert dashboard.external_requests == []
