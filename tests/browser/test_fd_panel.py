"""The fd panel: each backend's own words for what its wait was passed and returned (select's
sets, poll's pollfd array, epoll's interest and ready lists), its legend and its grid's marks
(SPEC §2, §5)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import echo, server_fd
from tests.browser.page_helpers import real_console_errors, wait_api
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly

DEADLINE_MS = 8000


def test_fd_panel_speaks_each_backends_words_and_write_control_switches(dashboard):
    """SPEC §5: select's read/write/except sets in and out of the call, poll's pollfd array,
    epoll's interest list (edge and one-shot marked) and ready list; and the Write control."""
    page = dashboard.page
    sets = page.locator("#backend-sets")
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        page.get_by_label("Backend").select_option("select")
        wait_api(dashboard, lambda s: s["backend"]["name"] == "select", "switch to select")
        expect(sets).to_contain_text("in: the sets passed to select()", timeout=5000)
        expect(sets).to_contain_text("out: the sets select() returned", timeout=5000)
        expect(sets).to_contain_text(re.compile(rf"read:\s+\[[^\]]*\b{fd}\b"), timeout=5000)

        page.get_by_label("Backend").select_option("poll")
        wait_api(dashboard, lambda s: s["backend"]["name"] == "poll", "switch to poll")
        expect(sets).to_contain_text(f"{{fd={fd}, events=POLLIN", timeout=5000)

        page.get_by_label("Backend").select_option("epoll")
        wait_api(dashboard, lambda s: s["backend"]["name"] == "epoll", "switch to epoll")
        page.get_by_label("Trigger").select_option("edge")
        wait_api(dashboard, lambda s: s["backend"]["trigger"] == "edge", "trigger edge")
        page.get_by_label("One-shot").check()
        wait_api(dashboard, lambda s: s["backend"]["oneshot"] is True, "one-shot")
        expect(sets).to_contain_text("interest list", timeout=5000)
        expect(sets).to_contain_text(
            re.compile(rf"fd {fd}: EPOLLIN\|(?:\w+\|)*EPOLLET\|EPOLLONESHOT"), timeout=5000)
        assert echo(sock, b"ready now\n") == b"ready now\n"
        expect(sets).to_contain_text("ready list (returned by that epoll_wait)", timeout=5000)

        page.get_by_label("Write").select_option("eager")
        st = wait_api(dashboard, lambda s: s["backend"]["write"] == "eager", "write eager")
        assert st["backend"]["oneshot"] is True, "changing Write must keep the backend's mode"
        assert echo(sock, b"eager now\n" * 100) == b"eager now\n" * 100
        page.get_by_label("Write").select_option("queued")
        wait_api(dashboard, lambda s: s["backend"]["write"] == "queued", "write queued")
        assert echo(sock, b"queued again\n") == b"queued again\n"


def test_the_fd_panel_keeps_the_shown_waits_words_and_fds(dashboard):
    """The fd panel's text describes the wait the syscall line shows. Paused after select's
    wait and then switched to poll, it showed that wait as poll's pollfd array (with select's
    `revents=read`); on epoll, a wait whose ready fd closed in its handlers had that fd in its
    ready list but not in the interest list, which was the live one."""
    page, api = dashboard.page, dashboard.api
    sets = page.locator("#backend-sets")
    line = page.locator("#syscall-line")
    assert api.post("/api/backend", json={"name": "select"}).status_code == 200
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        assert echo(sock, b"before the pause\n") == b"before the pause\n"
        assert api.post("/api/loop", json={"action": "pause"}).json()["loop"] == "paused"
        expect(line).to_have_attribute("data-backend", "select", timeout=5000)
        expect(sets).to_contain_text("in: the sets passed to select()", timeout=5000)
        assert api.post("/api/backend", json={"name": "poll"}).status_code == 200
        page.wait_for_function("() => window.__muxscope.model.backend.name === 'poll'",
                               timeout=5000)
        page.wait_for_function(
            "() => !document.getElementById('backend-sets').textContent.includes('pollfd')"
            " && document.getElementById('backend-name').textContent === 'poll'", timeout=5000)
        expect(sets).to_contain_text("in: the sets passed to select()", timeout=5000)
        expect(sets).to_contain_text("made by select before the switch to poll", timeout=5000)
        expect(line).to_have_attribute("data-backend", "select")
        assert api.post("/api/loop", json={"action": "resume"}).json()["loop"] == "running"
        # the next wait is poll's own, in its words again
        assert echo(sock, b"after the switch\n") == b"after the switch\n"
        expect(sets).to_contain_text(f"{{fd={fd}, events=POLLIN", timeout=5000)
        expect(sets).not_to_contain_text("before the switch", timeout=5000)

    # epoll: the peer closes, the wait reports the fd, its handler reads EOF and closes it
    assert api.post("/api/backend", json={"name": "epoll"}).status_code == 200
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        assert echo(sock, b"epoll\n") == b"epoll\n"
        bp = api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
    page.wait_for_function(
        "(fd) => !window.__muxscope.model.regs.has(fd) && window.__muxscope.model.loop === 'paused'",
        arg=fd, timeout=5000)
    expect(sets).to_contain_text("ready list (returned by that epoll_wait): ", timeout=5000)
    ready_block = sets.locator(".set").nth(1)
    expect(ready_block).to_contain_text(f"fd {fd}: ", timeout=5000)
    # innerText: the heading its own line (in textContent "…4 fdsfd 23: …" when the fd, a
    # number reused after other tests, came first in the list)
    expect(sets.locator(".set").first).to_contain_text(
        re.compile(rf"^fd {fd}: EPOLLIN", re.MULTILINE), timeout=5000, use_inner_text=True)
    api.delete(f"/api/breakpoints/{bp['id']}")
    assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
    assert real_console_errors(dashboard) == []


def test_the_fd_panel_names_the_epoll_that_waited_and_what_changed_since(dashboard):
    """A new trigger makes a new epoll: paused, a level-triggered wait was shown after the
    switch as epoll_wait on the new epoll fd, with no word of the switch. At a breakpoint the
    interest list (the shown wait's) said EPOLLIN where the grid and the kernel said
    EPOLLIN|EPOLLOUT, with nothing to tell the two apart; and after a reload it lacked the
    closed fd that its ready list named."""
    page, api = dashboard.page, dashboard.api
    sets, line = page.locator("#backend-sets"), page.locator("#syscall-line")
    level = api.post("/api/backend", json={"name": "epoll", "write": "queued"}).json()
    old_epfd = level["backend"]["fd"]
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        assert echo(sock, b"level\n") == b"level\n"
        assert api.post("/api/loop", json={"action": "pause"}).json()["loop"] == "paused"
        expect(line).to_contain_text(f"epoll_wait({old_epfd}, ", timeout=5000)
        edge = api.post("/api/backend", json={"name": "epoll", "trigger": "edge"}).json()
        new_epfd = edge["backend"]["fd"]
        assert new_epfd != old_epfd
        page.wait_for_function(
            "() => window.__muxscope.model.backend.trigger === 'edge'", timeout=5000)
        expect(sets).to_contain_text(
            f"made by epoll (level-triggered, epoll fd {old_epfd}) before the switch to "
            f"epoll (edge-triggered, epoll fd {new_epfd})", timeout=5000)
        expect(sets).to_contain_text(f"interest list of epoll fd {old_epfd} at that epoll_wait")
        expect(line).to_contain_text(f"epoll_wait({old_epfd}, ")
        # back to level, still paused: a third epoll, maybe given the first one's fd number
        again = api.post("/api/backend", json={"name": "epoll", "trigger": "level"}).json()
        page.wait_for_function(
            "() => window.__muxscope.model.backend.trigger === 'level'", timeout=5000)
        expect(sets).to_contain_text(
            f"made by epoll (level-triggered, epoll fd {old_epfd}) before the switch to "
            f"epoll (level-triggered, epoll fd {again['backend']['fd']})", timeout=5000)
        assert api.post("/api/loop", json={"action": "resume"}).json()["loop"] == "running"
        assert echo(sock, b"level again\n") == b"level again\n"
        expect(sets).not_to_contain_text("before the switch", timeout=5000)

        # queued: the handler that reads turns write interest on after the wait
        bp = api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
        sock.sendall(b"hello\n")
        page.wait_for_function("() => window.__muxscope.model.loop === 'paused'", timeout=5000)
        expect(sets.locator(".set").first).to_contain_text(
            re.compile(rf"^fd {fd}: EPOLLIN  → now EPOLLIN\|EPOLLOUT$", re.MULTILINE),
            timeout=5000, use_inner_text=True)
        api.delete(f"/api/breakpoints/{bp['id']}")
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        sock.settimeout(5)
        assert recv_exactly(sock, 6) == b"hello\n"

        # the peer closes at a breakpoint; a page loaded then knows the fd by its ready entry
        bp = api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
    page.wait_for_function(
        "(fd) => !window.__muxscope.model.regs.has(fd) && window.__muxscope.model.loop === 'paused'",
        arg=fd, timeout=5000)
    page.reload()
    page.wait_for_function("() => window.__muxscope && window.__muxscope.frames.snapshot >= 1",
                           timeout=10_000)
    first = sets.locator(".set").first
    expect(first).to_contain_text(
        f"fd {fd}: (closed since; its interest at that wait is not known to this page)",
        timeout=5000)
    # what that wait was passed is not in the state a page loads: the list says it is now's
    expect(first).to_contain_text("now (this page loaded after that epoll_wait")
    expect(first).not_to_contain_text("→ now")
    expect(sets.locator(".set").nth(1)).to_contain_text(f"fd {fd}: ")
    api.delete(f"/api/breakpoints/{bp['id']}")
    assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
    assert real_console_errors(dashboard) == []


def test_the_fd_legend_names_every_mark_a_cell_can_carry(dashboard):
    """Each mark drawn in a grid cell has a legend entry, the peer's colour dot included: its
    hues (green, orange, violet...) would otherwise read as the ready, write or except marks."""
    items = dashboard.page.locator("#fd-legend li")
    expect(items.first).to_be_visible(timeout=5000)
    texts = items.all_inner_texts()
    for mark in ("control fd", "listener", "connection", "read interest", "write interest",
                 "except", "ready", "within the last second", "EPOLLET", "one-shot",
                 "reading paused", "peer's own colour"):
        assert any(mark in t for t in texts), f"no legend entry for {mark!r}: {texts}"
    # epoll's own marks are listed only while the grid is epoll's (select and poll listed them)
    epoll_only = items.filter(has_text=re.compile("EPOLLET|one-shot"))
    expect(epoll_only).to_have_count(2)
    for name in ("poll", "select"):
        assert dashboard.api.post("/api/backend", json={"name": name}).status_code == 200
        expect(epoll_only.first).to_be_hidden(timeout=5000)
        expect(epoll_only.last).to_be_hidden()
        expect(items.filter(has_text="read interest")).to_be_visible()
    assert dashboard.api.post("/api/backend", json={"name": "epoll"}).status_code == 200
    expect(epoll_only.first).to_be_visible(timeout=5000)
    expect(epoll_only.last).to_be_visible()
    # the hang-up mark: poll's and epoll's (select's three sets have no such bit)
    hangup = items.filter(has_text="a hang-up or error came back")
    expect(hangup).to_be_visible()
    assert dashboard.api.post("/api/backend", json={"name": "select"}).status_code == 200
    expect(hangup).to_be_hidden(timeout=5000)
    assert dashboard.api.post("/api/backend", json={"name": "poll"}).status_code == 200
    expect(hangup).to_be_visible(timeout=5000)


def test_the_hang_up_legend_follows_the_backend_that_made_the_drawn_wait(bare_page):
    """After a switch to select, the grid still draws the last wait poll or epoll made (its
    hang-ups too) until select waits (a paused loop: for good): the legend kept the red
    slash's entry hidden for select meanwhile, a mark on the grid with no word for it."""
    hidden = bare_page.page.evaluate("""async () => {
        const { BackendPanel } = await import('/static/js/panels/backend.js');
        const panel = {};
        BackendPanel.prototype.buildLegend.call(panel, document.createElement('ul'));
        const hangup = panel.legendItems.find(([, cls]) => cls === 'hangup')[0];
        const sync = (model) => {
            BackendPanel.prototype.syncLegend.call(panel, model);
            return hangup.hidden;
        };
        return [
            sync({ backend: { name: 'select' }, lastWait: { madeBy: { name: 'poll' } } }),
            sync({ backend: { name: 'select' }, lastWait: {} }),   // select's own wait
            sync({ backend: { name: 'select' }, lastWait: null }),
            sync({ backend: { name: 'epoll' }, lastWait: { madeBy: { name: 'select' } } }),
            sync({ backend: { name: 'poll' }, lastWait: {} }),
        ];
    }""")
    assert hidden == [False, True, True, True, False]
    assert bare_page.console_errors == []


GRID_OVERLAY = """async (flags) => {
    const { BackendPanel } = await import('/static/js/panels/backend.js');
    const { stripeHeight } = await import('/static/js/panels/fdcell.js');
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 30;
    const ctx = canvas.getContext('2d');
    const panel = { index: new Map([[7, 0]]), cellBox: () => ({ x: 0, y: 0, s: 30 }) };
    BackendPanel.prototype.drawOverlay.call(
        panel, ctx, { lastReady: [[7, flags]], flashes: new Map() }, 0);
    const stripe = stripeHeight(30);
    const at = (x, y) => [...ctx.getImageData(x, y, 1, 1).data];
    // right-hand end of the read stripe (bottom) and of the write stripe (above it), clear of
    // the slash; and the cell's centre, on the slash
    return { read: at(27, 30 - stripe / 2), write: at(27, 30 - 1.5 * stripe), centre: at(15, 15) };
}"""


def test_the_grid_marks_only_the_bits_that_came_back_and_a_hang_up_apart(bare_page):
    """A reset of a fd watched for writing alone (reading paused, or EOF seen with a queue to
    flush) returns POLLOUT|POLLERR|POLLHUP: the grid drew that as readable, a green read
    stripe, though no POLLIN came back. Now the read stripe is green only for a read bit, and
    a hang-up or error is a red slash of its own."""
    page = bare_page.page
    green, red = (124, 255, 155, 255), (255, 93, 93, 255)   # --ready, --danger
    reset = page.evaluate(GRID_OVERLAY, ["POLLOUT", "POLLERR", "POLLHUP"])
    assert reset["read"] == [0, 0, 0, 0], reset            # nothing drawn: no read bit came
    assert tuple(reset["write"]) == green, reset
    assert tuple(reset["centre"]) == red, reset
    readable = page.evaluate(GRID_OVERLAY, ["EPOLLIN"])
    assert tuple(readable["read"]) == green and readable["centre"] == [0, 0, 0, 0], readable
    assert bare_page.console_errors == []


@pytest.mark.parametrize(("backend", "note"), [
    ("epoll", "(closed while registered: gone from the kernel's list, only in the program's table)"),
    ("poll", "(closed while registered: still in the array, poll answers POLLNVAL)"),
])
def test_an_fd_closed_while_registered_is_marked_in_the_backends_list(dashboard, backend, note):
    """The bug zoo's "closing without unregistering" on epoll: the fd panel listed the closed
    fd under "interest list … (kept in the kernel)" as if the kernel still held it, while the
    flaw's own message (and /api/kernel) said the kernel had dropped it. The row says what it
    is now, from the close event and, after a reload, from the state (a registration with no
    connection behind it)."""
    page, api = dashboard.page, dashboard.api
    assert api.post("/api/backend", json={"name": backend}).status_code == 200
    assert api.post("/api/flaws/close_without_unregister", json={"on": True}).status_code == 200
    sets = page.locator("#backend-sets")
    try:
        with dashboard.connect() as sock:
            fd = server_fd(dashboard, sock)
            assert echo(sock, b"one line\n") == b"one line\n"
            expect(sets).not_to_contain_text("closed while registered")
        row = f"fd {fd}: EPOLLIN" if backend == "epoll" else f"{{fd={fd}, events=POLLIN"
        stale = re.compile(re.escape(row) + r"[^\n]*" + re.escape(note))
        expect(sets).to_contain_text(stale, timeout=DEADLINE_MS)
        page.reload()   # the state alone: a registration with no connection behind it
        expect(sets).to_contain_text(stale, timeout=DEADLINE_MS)
    finally:
        api.post("/api/flaws/close_without_unregister", json={"on": False})
    expect(sets).not_to_contain_text("closed while registered", timeout=DEADLINE_MS)
    assert real_console_errors(dashboard) == []


PEER_DOTS = """async () => {
    const { peerColor } = await import('/static/js/ui.js');
    const p = window.__muxscope.backendPanel;
    const m = window.__muxscope.model;
    const ctx = p.layer.getContext('2d');
    const scale = ctx.getTransform().a;
    const probe = document.createElement('canvas').getContext('2d', { willReadFrequently: true });
    const rgb = (css) => { probe.fillStyle = css; probe.fillRect(0, 0, 1, 1);
                           return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3)).join(); };
    const out = {};
    for (const [fd, c] of m.conns) {
        const i = p.index.get(fd);
        if (i === undefined) continue;
        const { x, y, s } = p.cellBox(i);
        const r = Math.max(2, Math.floor(s / 8));   // the dot's centre (drawCell)
        const px = ctx.getImageData(Math.floor((x + s - r - 2) * scale), Math.floor((y + r + 2) * scale), 1, 1).data;
        const middle = ctx.getImageData(Math.floor((x + s / 2) * scale), Math.floor((y + s / 2) * scale), 1, 1).data;
        // [a load client's, its dot in its peer's colour, the cell drawn at all]
        out[fd] = [c.generated, Array.from(px.slice(0, 3)).join() === rgb(peerColor(c.peer)), middle[3] > 0];
    }
    return out;
}"""


def test_the_grid_dots_a_persons_connection_in_its_peers_colour_not_the_load_clients(dashboard):
    """With a thousand idle load clients in every hue, the corner dots read as a thousand fds
    ready or with write interest (a review's finding): the load generator's connections get
    none, a person's keeps its peer's colour."""
    page = dashboard.page
    res = dashboard.api.post("/api/load", json={"connections": 6, "message_size": 16, "rate": 0})
    assert res.status_code == 202, res.text
    try:
        with dashboard.connect() as sock:
            echo(sock, b"mine\n")
            fd = server_fd(dashboard, sock)
            page.wait_for_function("""(fd) => { const m = window.__muxscope.model;
                return m.conns.has(fd) && [...m.conns.values()].filter((c) => c.generated).length === 6; }""",
                                   arg=fd, timeout=DEADLINE_MS)
            # the grid draws at its own pace: until every connection's cell is drawn. Polled
            # from here: `wait_for_function` does not await an async predicate (its promise
            # counts as true at once), and PEER_DOTS must import the page's colours.
            last: list[dict[str, list[bool]]] = [{}]

            def all_drawn() -> dict[str, list[bool]] | None:
                last[0] = page.evaluate(PEER_DOTS)
                drawn = [d for d in last[0].values() if d[2]]
                return last[0] if len(drawn) == 7 and last[0].get(str(fd), [0, 0])[1] else None

            dots = wait_until(all_drawn, DEADLINE_MS / 1000, lambda: f"grid cells: {last[0]}",
                              interval=0.05)
            generated = {k: v for k, v in dots.items() if v[0]}
            assert len(generated) == 6, dots
            assert not any(dot for _, dot, _ in generated.values()), dots
            assert dots[str(fd)] == [False, True, True], dots
    finally:
        dashboard.api.delete("/api/load")


def test_a_cells_fd_label_fits_between_the_et_corner_and_the_peer_dot(bare_page):
    """The label's font shrinks to fit by an estimate of a digit's advance (MONO_WIDTH): measured
    in this browser's monospace font, every label that can fit at the smallest font (6 px) ends
    before the peer's dot and starts after the EPOLLET corner, in every labelled cell size."""
    over = bare_page.page.evaluate("""async () => {
        const { labelFit, LABEL_FONT } = await import('/static/js/panels/fdcell.js');
        const ctx = document.createElement('canvas').getContext('2d');
        const over = [];
        let checked = 0;
        for (let s = 24; s <= 46; s++) for (const label of ['5', '64', '140', '1023', '19999'])
          for (const et of [false, true]) for (const dot of [false, true]) {
            const { left, right, px } = labelFit(s, label, et, dot);
            ctx.font = `${px}px ${LABEL_FONT}`;
            const width = ctx.measureText(label).width;
            if (px === 6 && left + width > s - right) continue;   // cannot fit at 6 px
            checked += 1;
            if (left + width > s - right + 0.5 || px > 12) over.push([s, label, et, dot, px, width]);
          }
        return { over, checked };
    }""")
    assert over["checked"] > 300, over
    assert over["over"] == [], over
