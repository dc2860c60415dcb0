"""Panels out of view paint at most every OFF_VIEW_MS (static/js/onview.js), and at their own
rate again once scrolled into view; the kernel panel reads the server at most a tenth of the
time. At 10,000 connections the panels below the fold cost the page's main thread a third of
its time, painted at every frame, and the kernel panel's reads held a page scrolled to the log
at 15 frames a second (docs/BENCHMARKS-history.md, session 30)."""

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


# The kernel panel over a stand-in api whose reads take `ms`: how its reads are spaced
KERNEL_SPACING = """async ({ms}) => {
    const { api } = await import('/static/js/api.js');
    const { KernelPanel } = await import('/static/js/panels/kernel.js');
    const status = document.createElement('span');
    status.id = 'ws-status';
    status.dataset.state = 'open';   // serverConnected()
    const root = document.createElement('section');
    root.innerHTML = '<p id="kernel-summary"></p><table><tbody id="kernel-interest"></tbody></table>'
      + '<table><tbody id="kernel-queues"></tbody></table>';
    document.body.append(status, root);
    const slow = (body) => () => new Promise((done) => setTimeout(() => done(body), ms / 2));
    api.kernel = slow({ epoll: { fd: 5, interest: [{ fd: 7, mask: 1 }] }, connections: [] });
    api.state = slow({ backend: { name: 'epoll' }, registrations: [{ fd: 7, interest: ['EPOLLIN'], role: 'connection' }], connections: [] });
    const panel = new KernelPanel(root, null, { replay: false });   // (its own 1 s ticks poll too)
    panel.visible = true;
    const t0 = performance.now();
    await panel.poll();
    const first = { ...panel.reads };
    panel.paint();
    const summary = root.querySelector('#kernel-summary').textContent;
    const sleep = (t) => new Promise((done) => setTimeout(done, t));
    // polled every 50 ms: no second read before the spacing is over, one soon after it
    let early = 0;
    while (performance.now() < t0 + 10 * first.lastMs - 100) {
      if (panel.reads.started > 1) early++;
      await panel.poll();
      await sleep(50);
    }
    const deadline = performance.now() + 1500;
    while (panel.reads.done < 2 && performance.now() < deadline) { await panel.poll(); await sleep(50); }
    return { first, early, second: { ...panel.reads }, summary };
}"""


def test_the_kernel_panel_spaces_its_reads_by_how_long_the_last_one_took(bare_page):
    """At 10,000 connections a read is over 2 MiB of JSON and 200-400 ms of the page's thread: read
    every second, it held a page scrolled to the log at 15 frames a second. The next read
    waits ten times as long as the last one took, and the panel says so."""
    page = bare_page.page
    got = page.evaluate(KERNEL_SPACING, {"ms": 300})
    assert got["first"]["done"] == 1 and got["first"]["lastMs"] >= 290, got
    assert got["early"] == 0, got             # nothing read again within 10 x the read
    assert got["second"]["done"] == 2, got     # and read again once that was over
    assert "so the next waits" in got["summary"] and "a tenth of the time" in got["summary"], got
    fast = page.evaluate(KERNEL_SPACING, {"ms": 20})
    assert fast["second"]["done"] == 2, fast
    assert "next waits" not in fast["summary"], fast   # a quick read: nothing to say
    assert bare_page.console_errors == []
