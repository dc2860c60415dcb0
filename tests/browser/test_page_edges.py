"""Edges of the page's own logic that the wider browser tests pass over (found by mutating
static/js by hand: each test here failed with one such bug that every other test let through).

The model's checks run the page's own module in the page (``await import('/static/js/...')``)
on a fresh Model fed hand-written frames (SPEC §3's fields): what a user sees in the panels is
read from these figures. The rest drive the page as a user does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import expect

from tests.browser.conftest import echo, server_fd
from tests.browser.page_helpers import load_clients, row, settled_scroll_top

# a snapshot of an engine with its TCP listener on fd 5 and no connection yet, at seq 10
SNAPSHOT = """{type: 'snapshot', seq: 10, started_at: 1000,
  state: {backend: {name: 'epoll', trigger: 'level', oneshot: false, write: 'queued'},
          listeners: {tcp: {fd: 5, port: 7000}, udp: null}, control_fd: 4,
          registrations: [{fd: 4, role: 'control', interest: ['EPOLLIN']},
                          {fd: 5, role: 'tcp_listener', interest: ['EPOLLIN']}],
          connections: []}}"""


def test_the_model_applies_each_kind_of_event_to_its_connection(bare_page):
    """SPEC §3/§5: accept adds a row registered for reading, recv and send add to the row's
    bytes in and out (each its own), queue sets the depth and pending bytes the queue bars and
    the row's "queue" cell draw, interest sets the fd's bits (the fd grid), backpressure
    pauses and resumes the row, close removes it. A send counted as "in", a depth left at 0 or
    a register with no bits had gone unseen: the live tests' resyncs overwrite the figures."""
    result = bare_page.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({SNAPSHOT});
        const row = () => {{ const c = m.conns.get(7); return c && {{
          peer: c.peer, in: c.bytesIn, out: c.bytesOut, depth: c.depth, pending: c.pending,
          paused: c.paused }}; }};
        const bits = () => {{ const r = m.regs.get(7); return r ? [...r.bits].sort().join('|') : null; }};
        const seen = {{}};
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 11, ts: 1, kind: 'accept', fd: 7, listener: 5, peer: '127.0.0.1:40000'}}]}});
        seen.accepted = [row(), m.regs.get(7) && m.regs.get(7).role];
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 12, ts: 1, kind: 'interest', fd: 7, op: 'register', flags: ['EPOLLIN']}},
          {{seq: 13, ts: 1, kind: 'recv', fd: 7, bytes: 100, preview: 'x'}},
          {{seq: 14, ts: 1, kind: 'queue', fd: 7, depth: 3, pending_bytes: 100}},
          {{seq: 15, ts: 1, kind: 'send', fd: 7, bytes: 40, partial: true}},
          {{seq: 16, ts: 1, kind: 'backpressure', fd: 7, paused: true}},
          {{seq: 17, ts: 1, kind: 'interest', fd: 7, op: 'modify', flags: ['EPOLLIN', 'EPOLLOUT']}}]}});
        seen.busy = [row(), bits()];
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 18, ts: 2, kind: 'backpressure', fd: 7, paused: false}},
          {{seq: 19, ts: 2, kind: 'interest', fd: 7, op: 'modify', flags: ['EPOLLIN']}}]}});
        seen.resumed = [row(), bits()];
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 20, ts: 3, kind: 'close', fd: 7, reason: 'eof'}}]}});
        seen.closed = [row() || null, bits(), m.dropped, m.gaps];
        return seen;
    }}""")
    empty = {"peer": "127.0.0.1:40000", "in": 0, "out": 0, "depth": 0, "pending": 0,
             "paused": False}
    assert result["accepted"] == [empty, "connection"], result
    busy = {**empty, "in": 100, "out": 40, "depth": 3, "pending": 100, "paused": True}
    assert result["busy"] == [busy, "in|out"], result
    assert result["resumed"] == [{**busy, "paused": False}, "in"], result
    assert result["closed"] == [None, None, 0, 0], result
    assert bare_page.console_errors == []


def test_a_skip_in_seq_counts_the_events_missed_and_a_new_snapshot_starts_afresh(bare_page):
    """A frame's `dropped` adds to the count the header shows, a skip in seq counts exactly the
    events between (seq 11 then 15: three), and a snapshot (a reconnect, or a restarted
    server) starts from its own state: no dropped count, loop state, last wait or rows of
    the engine before it are kept."""
    result = bare_page.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({SNAPSHOT});
        m.applyEventsFrame({{type: 'events', dropped: 3, events: [
          {{seq: 11, ts: 1, kind: 'accept', fd: 7, listener: 5, peer: '127.0.0.1:40000'}},
          {{seq: 15, ts: 1, kind: 'wait', backend: 'epoll', registered: 3, timeout_ms: 250,
            ready: 0, duration_us: 5}},
          {{seq: 16, ts: 1, kind: 'loop', state: 'paused'}}]}});
        const before = {{dropped: m.dropped, gaps: m.gaps, loop: m.loop, wait: !!m.lastWait,
                        approximate: m.approximate}};
        m.applySnapshot({SNAPSHOT});
        const after = {{dropped: m.dropped, gaps: m.gaps, loop: m.loop, wait: !!m.lastWait,
                       approximate: m.approximate, conns: m.conns.size, seq: m.seq}};
        return {{before, after}};
    }}""")
    assert result["before"] == {"dropped": 3, "gaps": 3, "loop": "paused", "wait": True,
                                "approximate": True}, result
    assert result["after"] == {"dropped": 0, "gaps": 0, "loop": "running", "wait": False,
                               "approximate": False, "conns": 0, "seq": 10}, result
    assert bare_page.console_errors == []


def test_a_stats_frame_is_kept_for_the_events_total_and_the_charts(bare_page):
    """The stats frame's figures (events_total, bytes) are what the header's event total and
    the charts' engine lines read: the model must keep the frame it was sent."""
    result = bare_page.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({SNAPSHOT});
        m.applyStats({{type: 'stats', events_total: 1234, bytes_in: 10, bytes_out: 9}});
        return [m.frames.stats, m.stats && m.stats.events_total, m.stats && m.stats.bytes_in];
    }}""")
    assert result == [1, 1234, 10], result
    assert bare_page.console_errors == []


def test_a_connections_row_counts_what_it_sent_as_out_and_what_it_read_as_in(dashboard):
    """SPEC §5 connection list: an echo of 1,000 bytes reads as 1,000 in and 1,000 out on the
    connection's row (the live stream alone, with no dropped events and so no resync to mend
    a wrong sum)."""
    page = dashboard.page
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        payload = b"y" * 999 + b"\n"
        assert echo(sock, payload) == payload
        expect(row(page, fd).locator("td.in")).to_have_text("1,000", timeout=5000)
        expect(row(page, fd).locator("td.out")).to_have_text("1,000", timeout=5000)
    assert page.evaluate("() => window.__muxscope.dropped") == 0
    assert dashboard.console_errors == []


@contextmanager
def _log_filling(dashboard, rows: int) -> Iterator[None]:
    """Load clients keep the log filling; entered once it lists `rows` rows."""
    with load_clients(dashboard, 4, 16, 20):
        dashboard.page.wait_for_function(
            f"() => document.querySelectorAll('#event-log li').length >= {rows}",
            timeout=10_000)
        yield


def test_a_log_scrolled_up_keeps_its_rows_while_events_keep_coming(dashboard):
    """SPEC §5 "auto-scroll that stops when the user scrolls up": the rows on view stay put.
    The log holds 500 rows and trims the oldest as new ones come: appended while scrolled up,
    its top rows went and those below slid under the reader, though scrollTop never moved."""
    page = dashboard.page
    log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
    with _log_filling(dashboard, 500):
        log.hover()
        page.mouse.wheel(0, -300)
        expect(jump).to_be_visible(timeout=2000)
        settled_scroll_top(page, "#event-log")
        first = log.locator("li").first.get_attribute("data-seq")
        last = log.locator("li").last.get_attribute("data-seq")
        # events go on meanwhile (a settle window: the rows must not change under the reader)
        seq = page.evaluate("() => window.__muxscope.model.seq")
        page.wait_for_function(f"() => window.__muxscope.model.seq > {seq} + 50", timeout=5000)
        page.wait_for_timeout(400)  # more than two of the log's paints (150 ms apart)
        assert log.locator("li").first.get_attribute("data-seq") == first
        assert log.locator("li").last.get_attribute("data-seq") == last
        jump.click()
        expect(jump).to_be_hidden(timeout=2000)
        # back at the end: the newer events are listed again
        page.wait_for_function(
            f"() => Number(document.querySelector('#event-log li:last-child').dataset.seq || 0)"
            f" > {int(last or 0)}", timeout=5000)
    assert dashboard.console_errors == []


def test_kernel_truth_calls_masks_of_the_same_size_but_other_bits_different(bare_page):
    """The kernel panel's compare(): a kernel mask of EPOLLOUT beside an engine table of
    EPOLLIN is a mismatch (two sets of one name each are not the same set); the implicit
    EPOLLERR/EPOLLHUP the kernel adds are no difference, and a fired one-shot (no event bits
    left) is "disarmed", not wrong."""
    result = bare_page.page.evaluate("""async () => {
        const { compare } = await import('/static/js/panels/kernel.js');
        return [
          compare(['EPOLLOUT'], ['EPOLLIN']).state,
          compare(['EPOLLIN', 'EPOLLET'], ['EPOLLIN', 'EPOLLONESHOT']).state,
          compare(['EPOLLIN', 'EPOLLERR', 'EPOLLHUP'], ['EPOLLIN']).state,
          compare(['EPOLLONESHOT'], ['EPOLLIN', 'EPOLLONESHOT']).state,
          compare(null, ['EPOLLIN']).state,
          compare(['EPOLLIN'], null).state,
        ];
    }""")
    assert result == ["differs", "differs", "ok", "disarmed", "engine-only", "kernel-only"]
    assert bare_page.console_errors == []


def test_the_syscall_detail_says_what_the_wait_returned_when_ready_events_were_dropped(dashboard):
    """SPEC §5 syscall line: a wait that returned 5 ready fds, of whose ready events the page
    was shown 2 (the rest dropped), says "5 of 6 fds ready" in its detail, as the line says
    "= 5": what the call returned, not how many of its events reached the page."""
    result = dashboard.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const {{ SyscallPanel }} = await import('/static/js/panels/syscall.js');
        const root = document.createElement('div');
        root.innerHTML = '<p id="syscall-line"></p><p id="syscall-detail"></p>';
        const m = new Model();
        m.applySnapshot({SNAPSHOT});
        m.applyEventsFrame({{type: 'events', dropped: 3, events: [
          {{seq: 11, ts: 1, kind: 'wait', backend: 'epoll', registered: 6, timeout_ms: 250,
            ready: 5, duration_us: 40}},
          {{seq: 12, ts: 1, kind: 'ready', fd: 4, flags: ['EPOLLIN']}},
          {{seq: 13, ts: 1, kind: 'ready', fd: 5, flags: ['EPOLLIN']}}]}});
        const panel = new SyscallPanel(root);
        panel.paint(m, 1000);
        panel.paint(m, 2000);   // the missing ready events are waited for 250 ms at most
        return [root.querySelector('#syscall-line').textContent,
                root.querySelector('#syscall-detail').textContent];
    }}""")
    line, detail = result
    assert line.endswith(" = 5"), result
    assert "5 of 6 fds ready" in detail, result
    assert dashboard.console_errors == []


def test_the_charts_tally_bytes_from_events_and_take_the_engines_rate_from_stats(bare_page):
    """SPEC §5 charts: between two stats frames the bytes/s lines come from the page's own
    recv/send events (TCP), and with fresh stats frames the "engine" events/s line is the
    engine's count (events_total), not the events that reached this page (none here)."""
    result = bare_page.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const {{ Charts }} = await import('/static/js/charts.js');
        const root = document.createElement('div');
        root.innerHTML = '<div id="chart-events"></div><div id="chart-bytes"></div>'
          + '<div id="chart-wait"></div>';
        document.body.append(root);
        const tick = () => new Promise((resolve) => setTimeout(resolve, 50));
        const m = new Model();
        m.applySnapshot({SNAPSHOT});
        const c = new Charts(root, m);
        c.sample();
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 11, ts: 1, kind: 'accept', fd: 7, listener: 5, peer: '127.0.0.1:40000'}},
          {{seq: 12, ts: 1, kind: 'recv', fd: 7, bytes: 100, preview: 'x'}},
          {{seq: 13, ts: 1, kind: 'send', fd: 7, bytes: 60, partial: false}}]}});
        await tick();
        c.sample();
        const local = {{in: c.bIn.at(-1), out: c.bOut.at(-1), page: c.evPage.at(-1)}};
        m.applyStats({{type: 'stats', events_total: 13, bytes_in: 100, bytes_out: 60}});
        c.sample();
        await tick();
        m.applyStats({{type: 'stats', events_total: 5013, bytes_in: 100100, bytes_out: 60}});
        c.sample();
        const fresh = {{engine: c.evEngine.at(-1), page: c.evPage.at(-1), in: c.bIn.at(-1),
                       out: c.bOut.at(-1)}};
        root.remove();
        return {{local, fresh}};
    }}""")
    local, fresh = result["local"], result["fresh"]
    assert local["in"] > 0 and local["out"] > 0 and local["page"] > 0, result
    assert local["in"] > local["out"], result  # 100 bytes in, 60 out, over the same interval
    assert fresh["page"] == 0 and fresh["engine"] > 1000, result  # 5,000 events in < 1 s
    assert fresh["in"] > 1000 and fresh["out"] == 0, result
    assert bare_page.console_errors == []



def test_dragging_the_logs_scrollbar_up_stops_auto_scroll(dashboard):
    """SPEC §5 "auto-scroll that stops when the user scrolls up", by the scrollbar too: a drag
    of its thumb is no wheel or key, only a pointer held down on the log and the scroll
    events it causes say the user moved up. (Headless Chromium's scrollbars are overlays a
    mouse cannot grab: the drag is its pointerdown, the scroll it makes, and its pointerup.)"""
    page = dashboard.page
    log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
    with _log_filling(dashboard, 300):
        log.scroll_into_view_if_needed()
        log.dispatch_event("pointerdown")
        # a drag moves the thumb frame after frame (the first move's scroll event can come
        # with the page's pin to the end still to be seen, as a move down)
        log.evaluate("""async (el) => {
            for (let i = 0; i < 6; i++) {
              el.scrollTop -= 300;
              await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            }
        }""")
        expect(jump).to_be_visible(timeout=2000)
        log.dispatch_event("pointerup")
        top = settled_scroll_top(page, "#event-log")
        seq = page.evaluate("() => window.__muxscope.model.seq")
        page.wait_for_function(f"() => window.__muxscope.model.seq > {seq} + 50", timeout=5000)
        page.wait_for_timeout(400)  # a settle window: the log must not snap back to the end
        assert log.evaluate("el => el.scrollTop") == top
        assert log.evaluate("el => el.scrollTop + el.clientHeight < el.scrollHeight - 4")
        expect(jump).to_be_visible()
    assert dashboard.console_errors == []


def test_the_syscall_line_keeps_the_epoll_fd_of_the_wait_made_before_a_switch(dashboard):
    """SPEC §5 syscall line: a new trigger makes a new epoll; the last wait, made before the
    switch, stays `epoll_wait(<the old epoll fd>, ...)` and the fd panel is told it was
    replaced, until a wait of the new epoll comes (the live test of this checks the line
    only as fast as it repaints, and let a line naming the new fd through)."""
    result = dashboard.page.evaluate(f"""async () => {{
        const {{ Model }} = await import('/static/js/model.js');
        const {{ SyscallPanel }} = await import('/static/js/panels/syscall.js');
        const root = document.createElement('div');
        root.innerHTML = '<p id="syscall-line"></p><p id="syscall-detail"></p>';
        const snapshot = {SNAPSHOT};
        Object.assign(snapshot.state.backend, {{fd: 9, maxevents: 1024}});
        const m = new Model();
        m.applySnapshot(snapshot);
        const panel = new SyscallPanel(root);
        const line = () => root.querySelector('#syscall-line').textContent;
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 11, ts: 1, kind: 'wait', backend: 'epoll', registered: 2, timeout_ms: 250,
            ready: 1, duration_us: 40}},
          {{seq: 12, ts: 1, kind: 'ready', fd: 5, flags: ['EPOLLIN']}},
          {{seq: 13, ts: 1, kind: 'backend', from: 'epoll', to: 'epoll', trigger: 'edge',
            oneshot: false, write: 'queued', epoll_fd: 12, maxevents: 1024}}]}});
        panel.paint(m, 1000);
        const before = [line(), m.shownWait.made.fd, m.shownWait.made.replaced];
        m.applyEventsFrame({{type: 'events', dropped: 0, events: [
          {{seq: 14, ts: 2, kind: 'wait', backend: 'epoll', registered: 2, timeout_ms: 250,
            ready: 0, duration_us: 30}}]}});
        panel.paint(m, 2000);
        return {{before, after: [line(), m.shownWait.made.fd, m.shownWait.made.replaced]}};
    }}""")
    assert result["before"] == ["epoll_wait(9, [{EPOLLIN, fd=5}], 1024, 250) = 1", 9, True], result
    assert result["after"] == ["epoll_wait(12, [], 1024, 250) = 0", 12, False], result
    assert dashboard.console_errors == []


def test_a_log_filter_that_finds_nothing_says_so_until_something_matches(dashboard):
    """An empty black box read as a broken log: the event had left the page's window."""
    page = dashboard.page
    note = page.locator("#log-no-match")
    expect(note).to_be_hidden()
    page.select_option("#log-filter-kind", "close")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Nothing matches this filter among the last 5,000 events")
    with dashboard.connect() as sock:
        echo(sock, b"bye\n")
    expect(page.locator("#event-log li[data-kind='close']")).to_have_count(1)
    expect(note).to_be_hidden()
    page.fill("#log-filter-fd", "65000")
    expect(note).to_be_visible()
    page.fill("#log-filter-fd", "")
    page.select_option("#log-filter-kind", "")
    expect(note).to_be_hidden()
    assert dashboard.console_errors == []
