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
from tests.browser.page_helpers import load_clients

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
        costs = page.evaluate("() => [...window.__muxscope.charts.waitSlept.epoll.values()].flat()")
        assert costs and max(costs) < 20_000, costs
        # a wait the engine did not sample (under load) has no cpu_us: its sleep is no cost
        unsampled = page.evaluate("""() => { const c = window.__muxscope.charts;
            c.onEvent({ kind: 'wait', backend: 'epoll', registered: 70000, timeout_ms: 250,
                        ready: 1, duration_us: 120000 });
            return [...c.waitAtOnce.epoll.values(), ...c.waitSlept.epoll.values()].flat(); }""")
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
        return { once: at(c.waitAtOnce.epoll), slept: at(c.waitSlept.epoll), series, markers }; }""")
    # (the page's own idle waits, at 3 fds, land beside them)
    assert result["slept"] == [[40, 35], None], result
    assert result["once"] == [None, [1.2, 1.5]], result
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


def test_at_600_px_the_connection_table_fits_and_the_set_lists_start_level(dashboard):
    """At 600 px the connection table scrolled sideways by 105 px (its "yours" stars out of
    view; again by 23 px with 6-digit byte counts: an address now breaks after its colon, and
    with 8-digit ones: a count now breaks after a comma when it must), and the fd panel's
    interest list, under a 3-line title, started a line below the ready list beside it (a
    visual review). The wait chart's figures, opened, scrolled sideways by 134 px."""
    page = dashboard.page
    page.set_viewport_size({"width": 600, "height": 900})
    with load_clients(dashboard, 6, 1024, 0), dashboard.connect() as sock:
        for _ in range(10):   # eight-digit byte counts (6- and 8-digit ones overflowed the box)
            echo(sock, b"x" * 1_000_000)
        page.wait_for_function("() => document.querySelectorAll('#connection-list tr').length >= 7",
                               timeout=8000)
        expect(page.locator("#connection-list")).to_contain_text("10,000,000", timeout=8000)
        fd = server_fd(dashboard, sock)   # the sets list the connections (their titles are long)
        expect(page.locator("#backend-sets .set").first).to_contain_text(f"fd {fd}:", timeout=8000)
        table = page.locator("#connection-table").evaluate(
            "(t) => { const box = t.closest('.table-wrap'); return [box.scrollWidth, box.clientWidth]; }")
        assert table[0] <= table[1], f"the connection table scrolls sideways: {table}"
        page.locator(".chart-figures summary").click()   # the wait chart's figures (7 columns)
        figures = page.locator("#chart-wait-table").evaluate(
            "(t) => { const box = t.closest('.table-wrap'); return [box.scrollWidth, box.clientWidth]; }")
        assert 0 < figures[0] <= figures[1], f"the wait chart's figures scroll sideways: {figures}"
        starts = page.evaluate("""() => [...document.querySelectorAll('#backend-sets .set')].map((s) => [
            s.getBoundingClientRect().top, s.querySelector('pre').getBoundingClientRect().top])""")
    rows: dict[int, list[int]] = {}
    for top, pre_top in starts:      # the sets side by side share a top
        rows.setdefault(round(top), []).append(round(pre_top))
    assert any(len(pres) >= 2 for pres in rows.values()), f"no two sets side by side: {starts}"
    assert all(len(set(pres)) == 1 for pres in rows.values()), starts


FOCUSED = "() => { const el = document.activeElement; return el ? (el.getAttribute('aria-label') || el.id || el.tagName) : null; }"


def test_focus_stays_where_the_keyboard_was_when_its_control_goes(dashboard):
    """A control that goes away or is disabled under the keyboard's focus dropped it to the
    page's top (the body): a keyboard user then tabbed through every control again. "Close fd
    N" (its row goes) moves it to the row now in that place, then to the panel's title when
    none is left; "Jump to latest" (hidden) to the log it scrolled; "Back to live" (disabled)
    to the timeline."""
    page = dashboard.page
    with dashboard.connect() as first, dashboard.connect() as second:
        echo(first, b"one\n")
        echo(second, b"two\n")
        fds = sorted([server_fd(dashboard, first), server_fd(dashboard, second)])
        for fd in fds:
            expect(page.get_by_role("button", name=f"Close fd {fd}", exact=True)).to_be_visible(
                timeout=DEADLINE_MS)
        page.get_by_role("button", name=f"Close fd {fds[0]}", exact=True).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("button", name=f"Close fd {fds[0]}", exact=True)).to_have_count(
            0, timeout=DEADLINE_MS)
        page.wait_for_function(f"() => ({FOCUSED})() === 'Close fd {fds[1]}'", timeout=DEADLINE_MS)
        page.keyboard.press("Enter")   # the last row: the panel's title
        page.wait_for_function(f"() => ({FOCUSED})() === 'connections-title'",
                               timeout=DEADLINE_MS)

    with dashboard.connect() as sock:
        for i in range(60):   # rows enough to scroll the log up
            echo(sock, b"line %d\n" % i)
        log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
        page.wait_for_function("() => { const el = document.querySelector('#event-log');"
                               " return el.scrollHeight > el.clientHeight + 50; }",
                               timeout=DEADLINE_MS)
        log.focus()
        page.keyboard.press("Home")   # scrolled up: the log holds still and offers the button
        expect(jump).to_be_visible(timeout=DEADLINE_MS)
        # (a key's scroll is animated: until it has reached the top)
        page.wait_for_function("() => document.getElementById('event-log').scrollTop === 0",
                               timeout=DEADLINE_MS)
        jump.focus()
        page.keyboard.press("Enter")
        expect(jump).to_be_hidden(timeout=DEADLINE_MS)
        assert page.evaluate(FOCUSED) == "Event log: newest last"   # (its aria-label)

        timeline = page.get_by_label("Timeline", exact=True)
        page.wait_for_function("() => Number(document.getElementById('timeline-range').max) > "
                               "Number(document.getElementById('timeline-range').min) + 2",
                               timeout=DEADLINE_MS)
        timeline.focus()
        page.keyboard.press("Home")   # the first iteration kept: viewing the past
        live = page.get_by_role("button", name="Back to live")
        expect(live).to_be_enabled(timeout=DEADLINE_MS)
        live.focus()
        page.keyboard.press("Enter")
        expect(live).to_be_disabled(timeout=DEADLINE_MS)
        assert page.evaluate(FOCUSED) == "timeline-range"


def test_the_loop_state_is_said_once_per_change(dashboard):
    """The header's loop state is a polite live region (space pauses with the focus anywhere:
    a screen-reader user heard nothing), written only when it changes: a rewrite of the same
    text on each repaint would be read out again and again."""
    page = dashboard.page
    state = page.locator("#loop-state")
    expect(state).to_have_attribute("aria-live", "polite")
    expect(state).to_have_text("running", timeout=DEADLINE_MS)
    page.evaluate("""() => { window.__loopStateWrites = 0;
        new MutationObserver((m) => { window.__loopStateWrites += m.length; })
          .observe(document.getElementById('loop-state'),
                   { childList: true, characterData: true, subtree: true }); }""")
    repainted = page.evaluate("""async () => { const m = window.__muxscope.model;
        const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        let painted = 0;
        for (let i = 0; i < 5; i++) {   // the controls repainted while the state holds
            m.mark('controls');
            await frame();
            if (!m.dirty.controls) painted++;   // taken: Controls.paint ran
        }
        return painted; }""")
    assert repainted == 5, repainted
    assert page.evaluate("() => window.__loopStateWrites") == 0
    page.keyboard.press("Space")
    expect(state).to_have_text("paused", timeout=DEADLINE_MS)
    writes = page.evaluate("() => window.__loopStateWrites")
    assert 1 <= writes <= 2, writes   # its text replaced: one change (a node out, one in)
    page.keyboard.press("Space")
    expect(state).to_have_text("running", timeout=DEADLINE_MS)


def test_a_skip_link_takes_the_keyboard_past_the_connection_list(dashboard):
    """Each row has two buttons: with a thousand connections (200 rows shown) the event log,
    the bug zoo and the trace were 400 Tab presses past the fd grid (a review's finding)."""
    page = dashboard.page
    with dashboard.connect() as a, dashboard.connect() as b:
        echo(a, b"a\n")
        echo(b, b"b\n")
        fd = min(server_fd(dashboard, a), server_fd(dashboard, b))
        expect(page.get_by_role("button", name=f"Close fd {fd}", exact=True)).to_be_visible(
            timeout=DEADLINE_MS)
        skip = page.get_by_role("link", name="Skip the connection list")
        page.locator("#udp-summary").evaluate("(el) => { el.tabIndex = -1; el.focus(); }")
        page.keyboard.press("Tab")   # the link comes first after the panel's text
        assert page.evaluate("() => document.activeElement.classList.contains('skip-link')")
        expect(skip).to_be_in_viewport()   # on screen while it has the focus
        page.keyboard.press("Enter")
        assert page.evaluate(FOCUSED) == "log-title"
        page.keyboard.press("Tab")   # on into the event log's own controls, not a row
        assert page.evaluate("() => document.activeElement.closest('#log-panel') !== null")


def test_the_charts_figures_are_there_as_text_and_one_lucky_call_moves_no_point(dashboard):
    """The charts were canvases with a legend reading `--` until a mouse hovered them: a
    screen-reader user learnt no rate and no wait cost (a review's finding). The latest
    second's rates are a line of text, and the wait chart's points a table. And the wait
    chart drew the least CPU time seen: one lucky poll at 1,004 fds, 60 µs among calls of
    223-1,000 µs, was drawn below the calls that returned at once. It draws the median of
    the latest calls."""
    page = dashboard.page
    with dashboard.connect() as sock:
        echo(sock, b"hello\n")
        expect(page.locator("#chart-now")).to_have_text(
            re.compile(r"^In the last second: [\d,]+ events/s from the engine \([\d,]+ shown on "
                       r"this page\); TCP [\d,]+ bytes/s in, [\d,]+ bytes/s out$"),
            timeout=DEADLINE_MS)
    page.evaluate("""() => { const c = window.__muxscope.charts;
        const wait = (cpu, slept) => c.onEvent({ kind: 'wait', backend: 'poll', registered: 1004,
            timeout_ms: 250, ready: 1, duration_us: slept ? cpu + 500 : cpu, cpu_us: cpu });
        for (const cpu of [60, 900, 950, 1000, 820]) wait(cpu, true);
        for (const cpu of [353, 360, 340]) wait(cpu, false);
        c.waitAt = 0; c.paint(); }""")
    figures = page.locator(".chart-figures")
    figures.locator("summary").click()
    row = figures.locator("tbody tr", has_text=re.compile(r"^1,000"))
    # fds, select at once/slept, poll at once/slept, epoll at once/slept
    expect(row.locator("td").nth(3)).to_have_text("353")
    expect(row.locator("td").nth(4)).to_have_text("900")
    assert page.evaluate("""() => { const c = window.__muxscope.charts;
        const i = c.wait.data[0].indexOf(1000); return [c.wait.data[2][i], c.wait.data[5][i]]; }""") \
        == [353, 900]
    assert dashboard.console_errors == []
