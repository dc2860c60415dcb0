"""The page does not jump under a user's pointer while events come in.

A panel that changes height moves everything below it: a button there moves between the moment
a person (or Playwright) aims and the moment the click lands, and the click hits something
else. Seen: the backend panel's fd sets went from two lines to three and back as fds came and
went (19 px each time), and the charts, the code view and the bug zoo's list grew when their
content came; twice in CI a click then did nothing (the trace download, a flaw's switch).
"""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser.conftest import SNAPSHOT_PAINTED, echo, server_fd
from tests.browser.page_helpers import load_clients, row

#: where the trace button and the zoo's first switch are, relative to the page's top
WHERE = """() => ['download-trace', 'zoo-list'].map(
    (id) => Math.round(document.getElementById(id).getBoundingClientRect().top + window.scrollY))"""
#: each panel's height and the page's scroll, to say which one moved the button (the backend
#: panel, 18 px, twice in CI: its interest list took a line for the client as the syscall line
#: caught up with the connection, after the typing had begun)
HEIGHTS = """() => Object.fromEntries([...document.querySelectorAll('section.panel')].map(
    (s) => [s.id, Math.round(s.getBoundingClientRect().height)]).concat([['scrollY', window.scrollY]]))"""


def test_the_panels_keep_their_height_while_a_client_types(dashboard):
    page = dashboard.page
    expect(page.locator("#zoo-list li").first).to_be_attached(timeout=10_000)  # loaded
    with dashboard.connect() as sock:
        assert echo(sock, b"first line\n") == b"first line\n"
        expect(row(page, server_fd(dashboard, sock))).to_have_count(1, timeout=5000)
        expect(page.locator("#code-steps li").first).to_be_attached(timeout=5000)
        # the fd panel shows the wait its syscall line shows (painted every 100 ms at most): a
        # wait from before the connection, until then (it was still so at the first line typed)
        fd_line = f"fd {server_fd(dashboard, sock)}:"
        expect(page.locator("#backend-sets .set").first).to_contain_text(fd_line, timeout=5000)
        seen, heights = [], []
        deadline = time.monotonic() + 3.0
        i = 0
        while time.monotonic() < deadline:  # a person typing: a line every 30 ms, for 3 s
            assert echo(sock, b"line %d of what someone types\n" % i)
            i += 1
            seen.append(tuple(page.evaluate(WHERE)))
            heights.append(page.evaluate(HEIGHTS))
        button_ys = sorted({y for y, _ in seen})
        zoo_ys = sorted({z for _, z in seen})
        changed = {key: sorted({h[key] for h in heights}) for key in heights[0]
                   if len({h[key] for h in heights}) > 1}
        assert len(seen) > 20, len(seen)
        assert button_ys[-1] - button_ys[0] <= 2, f"Download trace moved: {button_ys}; {changed}"
        assert zoo_ys[-1] - zoo_ys[0] <= 2, f"the bug zoo's list moved: {zoo_ys}; {changed}"


def test_the_backend_panel_keeps_its_height_as_clients_come_and_go(dashboard):
    """Its interest list grows a line an fd: it scrolls inside a box of one height."""
    page = dashboard.page
    panel = page.locator("#backend-panel")
    sets = page.locator("#backend-sets .set").first
    expect(sets).to_contain_text("fd ", timeout=10_000)
    before = panel.bounding_box()["height"]
    socks = [dashboard.connect() for _ in range(6)]
    try:
        for sock in socks:
            assert echo(sock, b"here\n") == b"here\n"
        # the list of the wait on view holds the last client's fd: the panel has caught up
        expect(sets).to_contain_text(f"fd {server_fd(dashboard, socks[-1])}:", timeout=5000)
        assert panel.bounding_box()["height"] == before
    finally:
        for sock in socks:
            sock.close()


def test_the_frame_after_a_snapshot_paints_the_panels_out_of_view_too(dashboard):
    """Out of view a panel paints every 500 ms at most: its first paint (empty, at load) held
    the snapshot's content back that long, and the panel then grew under a first click."""
    page = dashboard.page
    with dashboard.connect() as sock:
        assert echo(sock, b"before the page\n") == b"before the page\n"
        fd = server_fd(dashboard, sock)
        page.reload()
        page.wait_for_function(SNAPSHOT_PAINTED, timeout=10_000)
        painted = page.evaluate("""(fd) => {
            const panel = document.getElementById('connections-panel').getBoundingClientRect();
            return {below: panel.top > window.innerHeight,
                    row: !!document.querySelector(`#connection-list tr[data-fd="${fd}"]`)}; }""", fd)
    assert painted == {"below": True, "row": True}


BOX = """(id) => { const r = document.getElementById(id).getBoundingClientRect();
    return [Math.round(r.top + window.scrollY), Math.round(r.width), Math.round(r.height)]; }"""


def test_the_syscall_line_keeps_its_height_whatever_the_wait_returned(dashboard):
    """Its ready list is as long as the wait's answer: under load the panel went from 196 to
    303 px and back at each paint (1400 px wide), moving every panel below it."""
    page = dashboard.page
    line = page.locator("#syscall-line")
    expect(line).to_contain_text("epoll_wait", timeout=10_000)
    idle = page.evaluate(BOX, "syscall-panel")[1:]  # width and height
    with load_clients(dashboard, 150, 64, 50):
        page.wait_for_function(  # a wait that returned many fds is on the line
            "() => (document.getElementById('syscall-line').textContent.match(/fd=/g) || []).length >= 8",
            timeout=10_000)
        busy = {tuple(page.evaluate(BOX, "syscall-panel")[1:]) for _ in range(20)}
    assert busy == {tuple(idle)}, (idle, busy)


def test_the_timeline_keeps_its_width_while_its_status_changes(dashboard):
    """The status beside the range took its width as its text grew ("viewing iteration 494 of
    571; iterations 1–165 are no longer held …"): the thumb left the pointer mid-drag."""
    page = dashboard.page
    with dashboard.connect() as sock:
        for i in range(4):
            assert echo(sock, b"line %d\n" % i) == b"line %d\n" % i
    page.wait_for_function("() => Number(document.getElementById('timeline-range').max) > "
                           "Number(document.getElementById('timeline-range').min) + 2", timeout=10_000)
    live = page.evaluate(BOX, "timeline-range")
    timeline = page.get_by_label("Timeline", exact=True)
    timeline.focus()
    page.keyboard.press("Home")   # the first iteration kept: the status says much more
    expect(page.locator("#timeline-status")).not_to_have_text("live", timeout=5000)
    assert page.evaluate(BOX, "timeline-range") == live
    # the longest it says, once the page has let the first iterations go
    page.evaluate("""() => { document.getElementById('timeline-status').textContent +=
        '; iterations 1–165 are no longer held (the page keeps the last 20,000 events)'; }""")
    assert page.evaluate(BOX, "timeline-range") == live


def test_the_load_line_does_not_move_the_button_that_wrote_it(dashboard):
    """Written beside the buttons, it wrapped the group onto a row of its own: "Add clients"
    went from y=79 to y=144 under the click, the page 38 px down (1920 px wide)."""
    page = dashboard.page
    page.set_viewport_size({"width": 1920, "height": 1000})
    page.get_by_label("Clients", exact=True).fill("2")
    page.get_by_label("Rate per client (msg/s)").fill("0")
    before = page.evaluate(BOX, "add-clients-btn")
    try:
        page.get_by_role("button", name="Add clients").click()
        expect(page.locator("#load-status")).to_contain_text("generated clients", timeout=10_000)
        assert page.evaluate(BOX, "add-clients-btn") == before
    finally:
        assert dashboard.api.delete("/api/load").status_code == 200


CHART_BOXES = """() => ['#chart-events', '#chart-bytes', '#chart-wait'].map((id) => {
    const r = document.querySelector(id).getBoundingClientRect();
    return [Math.round(r.top), Math.round(r.left), Math.round(r.right)]; })"""


def test_the_charts_stand_side_by_side_on_a_wide_page_and_stack_on_a_narrow_one(dashboard):
    """Stacked in a half-width panel, the three charts made it ~1,000 px tall, and the queues
    panel beside it left 700-800 px of background (a visual review at 1024 px and up)."""
    page = dashboard.page
    page.set_viewport_size({"width": 1600, "height": 1000})
    panel = page.locator("#charts-panel").bounding_box()
    wide = page.evaluate(CHART_BOXES)
    assert len({top for top, _, _ in wide}) == 1, wide           # one row
    assert wide[0][2] <= wide[1][1] and wide[1][2] <= wide[2][1], wide
    assert panel["height"] < 700, panel
    # two columns, not three: the wait chart takes the second row whole (alone at half width,
    # it left half the panel empty at 900-1024 px)
    page.set_viewport_size({"width": 1000, "height": 1000})
    page.wait_for_function(f"() => new Set(({CHART_BOXES})().map((b) => b[0])).size === 2")
    two = page.evaluate(CHART_BOXES)
    assert two[0][0] == two[1][0] < two[2][0], two
    assert two[2][1] == two[0][1] and two[2][2] == two[1][2], two
    page.set_viewport_size({"width": 600, "height": 1000})
    page.wait_for_function(f"() => new Set(({CHART_BOXES})().map((b) => b[0])).size === 3")
    narrow = page.evaluate(CHART_BOXES)
    width = page.locator("#charts-panel").bounding_box()["width"]
    assert all(right - left <= width for _, left, right in narrow), (narrow, width)


def test_the_syscall_detail_keeps_its_height_at_600_px_whatever_its_text(dashboard):
    """At 600 px "took under 1 µs, under 1 µs of it on the CPU · 3 of 36 fds ready · timeout
    250 ms" took two lines and "took 1 µs, ..." one: under load every panel below moved 19 px
    several times a second (a visual review)."""
    page = dashboard.page
    page.set_viewport_size({"width": 600, "height": 1000})
    heights = page.evaluate("""() => {
        const detail = document.getElementById('syscall-detail');
        const panel = document.getElementById('syscall-panel');
        const texts = ['took 1 µs, 1 µs of it on the CPU · 3 of 36 fds ready · timeout 250 ms',
            'took under 1 µs, under 1 µs of it on the CPU · 3 of 36 fds ready · timeout 250 ms'];
        return texts.map((t) => { detail.textContent = t; return [panel.getBoundingClientRect().height,
            detail.getClientRects().length && detail.getBoundingClientRect().height]; });
    }""")
    assert heights[0][0] == heights[1][0], heights
    line = page.evaluate("() => parseFloat(getComputedStyle(document.getElementById('syscall-detail')).lineHeight)")
    assert heights[1][1] > 1.5 * line, f"the longer text is meant to take two lines here: {heights}"


def test_the_queue_bars_leave_the_scale_its_gutter_and_name_every_kth_fd_when_narrow(dashboard):
    """At 600 px 33 bars got no fd number at all (one was drawn only under a 22 px slot), and
    at 600-1400 px the scale's labels ("high-water 1.0 MiB") were drawn over the last bars."""
    page = dashboard.page
    page.set_viewport_size({"width": 600, "height": 1000})
    with load_clients(dashboard, 33, 16, 0):
        page.locator("#queues-panel").scroll_into_view_if_needed()
        drawn = page.wait_for_function(
            "() => { const d = window.__muxscope.queueBars; return d && d.bars >= 33 && d; }",
            timeout=10_000).json_value()
    assert drawn["slot"] * drawn["bars"] <= drawn["width"] - drawn["gutter"], drawn
    assert drawn["gutter"] >= 60, drawn                       # "high-water 1.0 MiB" at 10 px
    assert drawn["slot"] < 22 and drawn["slot"] * drawn["labelEvery"] >= 22, drawn
