"""The page for keyboard, screen-reader and narrow-window users, and what it must not leave
unsaid: what a wait call costs (not how long it slept), events a recording lost."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

from playwright.sync_api import expect

from app.settings import Settings
from tests.browser.conftest import echo, server_fd

DEADLINE_MS = 8000


def test_the_fd_grid_shows_each_fds_details_from_the_keyboard(dashboard):
    """The grid's tooltip (role, peer, interest, last wait, queue) opened on mouse-over only."""
    page = dashboard.page
    with dashboard.connect() as sock:
        echo(sock, b"hi\n")
        fd = server_fd(dashboard, sock)
        grid = page.locator("#fd-canvas")
        tip = page.locator("#fd-tooltip")
        # the page must have the new connection's fd in its grid first (its accept event can
        # still be on its way after echo + /api/state: End then landed on the UDP socket)
        page.wait_for_function(f"() => window.__muxscope.model.regs.has({fd})",
                               timeout=DEADLINE_MS)
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        grid.focus()
        page.keyboard.press("End")          # the first key: the last fd (not the first)
        last = tip.text_content().split("\n")[0]
        assert last == f"fd {max(dashboard.engine.loop.handlers)} — " + last.split(" — ")[1]
        page.keyboard.press("Home")
        expect(tip).to_be_visible()
        seen = [tip.text_content().split("\n")[0]]
        while not seen[-1].startswith(f"fd {fd} ") and len(seen) < 40:
            page.keyboard.press("ArrowRight")
            seen.append(tip.text_content().split("\n")[0])
        assert seen[-1] == f"fd {fd} — connection", seen
        expect(tip).to_contain_text("interest: EPOLLIN")
        # read out through a live region that was there from the start (one made live in the
        # same update as its text is not read)
        expect(page.locator("#fd-grid-live")).to_have_text(re.compile(rf"^fd {fd} — connection; "))
        expect(page.locator("#fd-grid-live")).to_have_attribute("aria-live", "polite")
        assert len(set(seen)) == len(seen), seen     # each press one more fd
        page.keyboard.press("End")
        expect(tip).to_be_visible()
        page.keyboard.press("Home")
        first = tip.text_content().split("\n")[0]
        page.keyboard.press("ArrowDown")    # one row: nothing below the first fd, it stays
        assert tip.text_content().split("\n")[0] == first
        page.keyboard.press("Tab")          # leaving the grid closes it
        expect(tip).to_be_hidden()


def test_the_breakpoint_hint_is_on_screen_and_describes_the_button(dashboard):
    """It was a mouse-over `title` on a span: no keyboard or screen-reader user got it."""
    page = dashboard.page
    caption = page.locator("#breakpoint-caption")
    expect(caption).to_be_visible()
    expect(caption).to_contain_text("handlers of that wait have run")
    add = page.get_by_role("button", name="Add breakpoint", exact=True)
    expect(add).to_have_accessible_description(re.compile("handlers of that wait have run"))


def test_the_event_log_is_a_named_scroll_box_the_keyboard_can_reach(dashboard):
    page = dashboard.page
    log = page.get_by_role("list", name="Event log: newest last")
    expect(log).to_have_count(1)
    log.focus()
    assert page.evaluate("() => document.activeElement.id") == "event-log"


def contrast(page, selector: str, background: str) -> float:
    """WCAG contrast of an element's text colour against a background colour (CSS)."""
    return page.evaluate(
        """([sel, bg]) => {
          const rgb = (css) => css.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
          const lum = (c) => { const [r, g, b] = c.map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
          const fg = lum(rgb(getComputedStyle(document.querySelector(sel)).color));
          const probe = document.createElement('span'); probe.style.color = bg;
          document.body.append(probe); const b = lum(rgb(getComputedStyle(probe).color)); probe.remove();
          return (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
        }""", [selector, background])


def test_code_line_numbers_are_readable(dashboard):
    """#566074 on the code's #0b0d11 was 3.1:1 (WCAG AA asks 4.5:1), 2.1:1 on a marked line."""
    page = dashboard.page
    expect(page.locator("pre.code .ln").first).to_be_attached(timeout=DEADLINE_MS)
    assert contrast(page, "pre.code .ln", "#0b0d11") >= 4.5
    assert contrast(page, "pre.code .ln", "#3a2d10") >= 4.5


def test_the_connection_table_fits_an_800_px_window(dashboard):
    """At 800 px the table was 23 px wider than its box: every row scrolled sideways."""
    page = dashboard.page
    page.set_viewport_size({"width": 800, "height": 900})
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(dashboard.connect()) for _ in range(3)]
        for sock in socks:
            echo(sock, b"x" * 70_000)    # five-digit byte counts
        page.wait_for_function("() => document.querySelectorAll('#connection-list tr').length >= 3",
                               timeout=DEADLINE_MS)
        expect(page.locator("#connection-list tr").first.locator("td.in")).to_have_text(
            re.compile(r"^70\D?000$"), timeout=DEADLINE_MS)
        box = page.evaluate("() => { const w = document.querySelector('#connections-panel .table-wrap');"
                            " return [w.scrollWidth, w.clientWidth]; }")
        assert box[0] <= box[1], box


def test_the_wait_chart_draws_what_a_call_costs_not_how_long_it_slept(dashboard):
    """It drew the least wall time per fd count: with a few typing clients every wait sleeps
    until a key comes, so the chart read 1.3 ms at 3 fds and 6 µs at 33 (load), the opposite
    of what select and poll cost. It draws the call's CPU time (the wait event's `cpu_us`)."""
    page = dashboard.page
    with dashboard.connect() as sock:
        echo(sock, b"first\n")
        for _ in range(3):
            time.sleep(0.12)               # typing: the loop sleeps until the key comes
            echo(sock, b"k")
        fd = server_fd(dashboard, sock)
        # the page has seen a wait that slept, then returned our fd
        slept = page.wait_for_function(
            f"""() => {{ let wait = null;
                  for (const e of window.__muxscope.model.recent(400)) {{
                    if (e.kind === 'wait') wait = e;
                    else if (e.kind === 'ready' && e.fd === {fd} && wait && wait.duration_us > 50000) return wait;
                  }}
                  return null; }}""",
            timeout=DEADLINE_MS).json_value()
        assert slept["cpu_us"] < 20_000, slept
        costs = page.evaluate("() => [...window.__muxscope.charts.waitMinSlept.epoll.values()]")
        assert costs and max(costs) < 20_000, costs
        # a wait the engine did not sample (under load) has no cpu_us: its sleep is no cost
        unsampled = page.evaluate("""() => { const c = window.__muxscope.charts;
            c.onEvent({ kind: 'wait', backend: 'epoll', registered: 70000, timeout_ms: 250,
                        ready: 1, duration_us: 120000 });
            return [...c.waitMin.epoll.values(), ...c.waitMinSlept.epoll.values()]; }""")
        assert max(unsampled) < 20_000, unsampled
        expect(page.locator("#syscall-detail")).to_contain_text("µs of it on the CPU")


def test_the_wait_chart_keeps_calls_that_slept_apart_from_calls_that_returned_at_once(dashboard):
    """A call that slept pays its wake-up on the CPU (~15 µs on these machines), more than an
    epoll call that found an fd ready at once (~1 µs). Drawn on one line per backend, an idle
    page's waits at 3 fds and a flood's at 200 made epoll look 50 times cheaper with more fds."""
    result = dashboard.page.evaluate("""() => { const c = window.__muxscope.charts;
        c.onEvent({ kind: 'wait', backend: 'epoll', registered: 7, timeout_ms: 250,
                    ready: 0, duration_us: 250100, cpu_us: 40 });           // timed out
        c.onEvent({ kind: 'wait', backend: 'epoll', registered: 7, timeout_ms: 250,
                    ready: 1, duration_us: 900, cpu_us: 35 });              // slept, then one fd
        c.onEvent({ kind: 'wait', backend: 'epoll', registered: 210, timeout_ms: 250,
                    ready: 9, duration_us: 1.6, cpu_us: 1.2 });             // ready at once
        c.onEvent({ kind: 'wait', backend: 'epoll', registered: 210, timeout_ms: 0,
                    ready: 0, duration_us: 2, cpu_us: 1.5 });               // a poll, no sleep
        const series = c.wait.series.slice(1).map((s) => s.label);
        const markers = [...c.wait.root.querySelectorAll('.u-marker')].map((m) =>
          `${m.style.borderStyle} ${m.style.backgroundColor === 'transparent' || m.style.backgroundColor === 'rgba(0, 0, 0, 0)' ? 'hollow' : 'filled'}`);
        const at = (m) => [m.get(7) ?? null, m.get(210) ?? null];
        return { once: at(c.waitMin.epoll), slept: at(c.waitMinSlept.epoll), series, markers }; }""")
    # (the page's own idle waits, at 3 fds, land beside them)
    assert result["slept"] == [35, None], result
    assert result["once"] == [None, 1.2], result
    assert result["series"] == ["select, returned at once", "poll, returned at once",
                                "epoll, returned at once", "select, slept first",
                                "poll, slept first", "epoll, slept first"], result
    # the legend tells the two lines of a backend apart (they share its colour)
    assert result["markers"][-6:] == ["solid filled"] * 3 + ["dashed hollow"] * 3, result
    assert dashboard.console_errors == []


def test_events_the_recording_lost_are_said_on_the_page(open_dashboard):
    """A full disk under --record was said on the server's stderr and in /metrics only: the
    person watching the page believed the file held what they saw."""
    dash = open_dashboard(Settings(http_port=0, echo_port=0, record=Path("/dev/full")))
    with dash.connect() as sock:
        echo(sock, b"ping\n")
        notice = dash.page.locator("#engine-notices .record-lost")
        expect(notice).to_contain_text("events could not be written to the --record file",
                                       timeout=DEADLINE_MS)
    assert dash.console_errors == []


def test_without_losses_the_page_says_nothing_of_the_recording(dashboard):
    with dashboard.connect() as sock:
        echo(sock, b"ping\n")
    stats = dashboard.page.evaluate("() => window.__muxscope.frames.stats")
    dashboard.page.wait_for_function(f"() => window.__muxscope.frames.stats > {stats}",
                                     timeout=DEADLINE_MS)
    expect(dashboard.page.locator("#engine-notices .record-lost")).to_have_count(0)


def test_at_400_px_each_label_stays_beside_its_control_and_nothing_leaves_its_panel(dashboard):
    """At 400 x 800 "Message bytes" ended one line and its 64 began the next, beside "Rate per
    client", so 64 read as the rate; "ms" left its field; One-shot's box and its label were
    a line apart; and the "Break when" select ran 77 px past its panel, arrow hidden."""
    page = dashboard.page
    page.set_viewport_size({"width": 400, "height": 800})
    pairs = page.evaluate("""() => [...document.querySelectorAll('.controls label[for]')].map((label) => {
        const control = document.getElementById(label.htmlFor);
        const a = label.getBoundingClientRect(), b = control.getBoundingClientRect();
        return [label.htmlFor, Math.abs((a.top + a.bottom) / 2 - (b.top + b.bottom) / 2)];
    })""")
    assert len(pairs) >= 8, pairs
    apart = [(name, gap) for name, gap in pairs if gap > 4]
    assert apart == [], f"label and control on different lines: {apart}"
    unit = page.evaluate("""() => {
        const u = document.querySelector('#slowmo-input + .unit').getBoundingClientRect();
        const i = document.getElementById('slowmo-input').getBoundingClientRect();
        return Math.abs((u.top + u.bottom) / 2 - (i.top + i.bottom) / 2);
    }""")
    assert unit <= 4, f"'ms' is {unit} px off its field's line"
    overflow = page.evaluate("""() => [...document.querySelectorAll('select, input, button')]
        .filter((el) => el.offsetParent !== null)
        .map((el) => [el.id || el.textContent.trim(),
                      el.getBoundingClientRect().right - (el.closest('section, fieldset, .panel, form')
                          || document.documentElement).getBoundingClientRect().right])
        .filter(([, past]) => past > 1)""")
    assert overflow == [], f"controls past their panel's right edge: {overflow}"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 400
