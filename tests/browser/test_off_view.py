"""Panels out of view paint at most every OFF_VIEW_MS (static/js/onview.js), and at their own
rate again once scrolled into view. At 10,000 connections the panels below the fold cost the
page's main thread a third of its time, painted at every frame (docs/BENCHMARKS.md, Scale)."""

from __future__ import annotations

import threading

from playwright.sync_api import expect

from tests.browser.conftest import echo

DEADLINE_MS = 5000
OFF_VIEW_MS = 500

# OnView fed by hand: `seen` as the IntersectionObserver calls it, `due` at given times
DUE = """async ({off, times}) => {
    const { OnView } = await import('/static/js/onview.js');
    const view = new OnView();
    const el = document.createElement('section');
    el.id = 'p';
    const out = [];
    view.seen([{ target: el, isIntersecting: !off }]);
    for (const t of times) out.push(view.due(el, t));
    view.seen([{ target: el, isIntersecting: true }]);
    out.push(view.due(el, times[times.length - 1] + 1));   // back on view: at once
    return { out, skipped: view.skipped.p || 0 };
}"""


def test_a_panel_out_of_view_paints_at_most_every_off_view_ms_and_at_once_back_on_view(
        bare_page):
    """A mutant painting at every frame, or never again, or holding a panel back on view, or
    counting from the first paint only, fails one of these."""
    page = bare_page.page
    got = page.evaluate(DUE, {"off": True, "times": [0, 100, 499, 500, 999, 1000, 1600]})
    assert got["out"] == [True, False, False, True, False, True, True, True], got
    assert got["skipped"] == 3, got
    got = page.evaluate(DUE, {"off": False, "times": [0, 1, 2]})
    assert got["out"] == [True, True, True, True] and got["skipped"] == 0, got
    assert bare_page.console_errors == []


def _rates(page, panel: str, seconds: float) -> dict[str, float]:
    """Over `seconds` of the page's time: log paints and this panel's skipped paints, per s."""
    return page.evaluate("""async ([panel, ms]) => {
        const m = window.__muxscope;
        const skips = () => m.onView.skipped[panel] || 0;
        const t0 = performance.now(), p0 = m.logPaints, s0 = skips(), f0 = m.paints;
        await new Promise((done) => setTimeout(done, ms));
        const s = (performance.now() - t0) / 1000;
        return { logPaints: (m.logPaints - p0) / s, skipped: (skips() - s0) / s,
                 frames: (m.paints - f0) / s, seconds: s };
    }""", [panel, seconds * 1000])


def test_the_event_log_below_the_fold_follows_twice_a_second_and_fully_once_scrolled_to(
        dashboard):
    """At 1400 x 1000 the log starts below the fold. With a client echoing all along, it still
    takes in new events, at most twice a second, and paints as before once in view."""
    page = dashboard.page
    page.wait_for_function(
        "() => [...window.__muxscope.onView.off].map((e) => e.id).includes('log-panel')",
        timeout=DEADLINE_MS)
    on_view = page.evaluate("() => ['syscall-panel', 'log-panel', 'queues-panel']"
                            ".map((id) => window.__muxscope.onView.off.has(document.getElementById(id)))")
    assert on_view == [False, True, True], on_view

    stop = threading.Event()
    sock = dashboard.connect()

    def chatter() -> None:
        while not stop.is_set():
            echo(sock, b"tick\n")
            stop.wait(0.02)   # pacing: ~50 echoes a second, each a few events

    talker = threading.Thread(target=chatter, daemon=True)
    talker.start()
    try:
        off = _rates(page, "log-panel", 2.0)
        # each paint after the first needs OFF_VIEW_MS of page time since the last one
        assert off["logPaints"] <= (off["seconds"] * 1000 / OFF_VIEW_MS + 1) / off["seconds"], off
        assert off["logPaints"] > 0 and off["skipped"] > 0, off

        page.locator("#log-panel").scroll_into_view_if_needed()
        page.wait_for_function(
            "() => !window.__muxscope.onView.off.has(document.getElementById('log-panel'))",
            timeout=DEADLINE_MS)
        on = _rates(page, "log-panel", 2.0)
        assert on["skipped"] == 0, on
        assert on["logPaints"] > 0, on
    finally:
        stop.set()
        talker.join(timeout=5)
        sock.close()
    expect(page.locator("#event-log li.k-recv").last).to_be_attached(timeout=DEADLINE_MS)
    assert dashboard.console_errors == []
