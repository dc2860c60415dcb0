"""Edges of the panels, the controls' helpers and the native-name tables that the wider
browser tests pass over (found by mutating static/js by hand: each test here failed with one
such bug that every other test let through).

Pure logic runs the page's own module in the page (``await import('/static/js/...')``) on a
panel built over detached elements and a hand-made model; the rest drive the page as a user.
"""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.browser.page_helpers import loop_posts, real_console_errors

DEADLINE_MS = 5000

# a detached copy of the connection table's elements, and a model holding `conns` (fd -> row)
CONNECTIONS = """async ({conns, isView, udp = null}) => {
    const { ConnectionsPanel } = await import('/static/js/panels/connections.js');
    const root = document.createElement('div');
    root.innerHTML = '<table><tbody id="connection-list"></tbody></table><p id="connection-more"></p>'
      + '<span id="connection-count"></span><p id="udp-summary"></p>';
    const closed = [];
    const panel = new ConnectionsPanel(root, { onClose: (fd) => closed.push(fd), onMine: () => {},
                                               replay: false });
    const model = { dirty: { conns: true }, take() {}, connsVersion: 1, isView, approximate: false,
      tcp: { fd: 5, port: 7000 }, udp,
      conns: new Map(conns.map(([fd, peer]) => [fd, { fd, peer, depth: 0, pending: 0, bytesIn: 0,
        bytesOut: 0, paused: false, lingering: false }])) };
    panel.paint(model, 1e9);
    const rows = [...root.querySelectorAll('#connection-list tr')];
    return { fds: rows.map((tr) => Number(tr.dataset.fd)),
             origins: rows.map((tr) => tr.querySelector('td.origin').textContent),
             count: root.querySelector('#connection-count').textContent,
             udp: root.querySelector('#udp-summary').textContent };
}"""


def test_connections_are_listed_in_numeric_fd_order_and_say_where_the_peer_is(bare_page):
    """SPEC §5: the list is sorted by fd. A sort of the fds as text put fd 10 and 100 before
    fd 9 (the live tests open a handful of fds, all of one width, so it went unseen); and a
    loopback peer (127.x, ::1, an IPv4-mapped 127.x) is "from this machine", any other
    "remote": a row marked remote for every peer had passed as well."""
    got = bare_page.page.evaluate(CONNECTIONS, {"conns": [
        [100, "192.0.2.7:4000"], [9, "127.0.0.1:5000"], [10, "[::1]:6000"],
        [1000, "::ffff:127.0.0.1:7000"], [11, "203.0.113.9:80"]], "isView": False})
    assert got["fds"] == [9, 10, 11, 100, 1000], got
    assert got["origins"] == ["from this machine", "from this machine", "remote", "remote",
                              "from this machine"], got
    assert got["count"] == "5"
    assert bare_page.console_errors == []


def test_the_udp_line_says_how_many_datagrams_were_the_servers_own_replies(dashboard):
    """The bug zoo's udp_wrong_address sends each reply to the server itself, which reads it
    back in: "2 datagrams received, 0 echoed" for one client datagram, with nothing saying
    what the second one was."""
    udp = {"fd": 6, "port": 7001, "received": 2, "echoed": 0, "dropped": 0}
    plain = dashboard.page.evaluate(CONNECTIONS, {"conns": [], "isView": False, "udp": udp})
    assert plain["udp"] == ("UDP socket fd 6 on port 7001: 2 datagrams received, 0 echoed, "
                            "0 dropped by the kernel"), plain
    own = dashboard.page.evaluate(CONNECTIONS, {"conns": [], "isView": False,
                                                "udp": {**udp, "from_self": 1}})
    assert own["udp"] == ("UDP socket fd 6 on port 7001: 2 datagrams received (1 of them its "
                          "own replies, sent to itself: not echoed), 0 echoed, 0 dropped by "
                          "the kernel"), own
    one = dashboard.page.evaluate(CONNECTIONS, {"conns": [], "isView": False,
                                                "udp": {**udp, "received": 1, "echoed": 1}})
    assert one["udp"].startswith("UDP socket fd 6 on port 7001: 1 datagram received, 1 echoed"), one
    assert dashboard.console_errors == []


# a zoo panel over detached elements, its catalogue read from the live server; `live.send(ev)`
# hands it an event
NEW_ZOO = """
    const { ZooPanel } = await import('/static/js/panels/zoo.js');
    const root = document.createElement('div');
    root.innerHTML = '<p id="zoo-status"></p><ul id="zoo-list"></ul>';
    const live = { subscribe(fn) { this.send = fn; } };
    const zoo = new ZooPanel(root, live, { replay: false });
    await zoo.load();
"""

ZOO = """async () => {""" + NEW_ZOO + """
    const seen = {};
    const look = () => { zoo.paint(); return {
      on: [...root.querySelectorAll('input[data-flaw]')].filter((b) => b.checked).map((b) => b.dataset.flaw),
      count: root.querySelector('li[data-flaw="eof_ignored"] .flaw-count').textContent }; };
    seen.start = look();
    live.send({ kind: 'loop', state: 'running', flaw: 'eof_ignored', seq: 20 });
    seen.switched = look();
    live.send({ kind: 'flaw', name: 'eof_ignored', message: 'fd 7 woke the loop', seq: 21 });
    seen.one = look();
    live.send({ kind: 'flaw', name: 'eof_ignored', message: 'fd 7 woke the loop', seq: 22 });
    seen.two = look();
    live.send({ kind: 'loop', state: 'running', flaw: null, seq: 23 });
    seen.off = look();
    return seen;
}"""


def test_the_zoo_follows_a_switch_made_elsewhere_and_counts_one_detection_singular(dashboard):
    """SPEC §5: the bug zoo's switches follow the server, one on at a time. A `loop` event
    naming the flaw switched on (by another page, or the API) turns its switch on and every
    other off at once: without it the page waited up to 3 s for its next re-read, which the
    live test's 5 s wait let through. And a flaw's count reads "1 detection", then "2
    detections" (a count always plural had passed: the live test reads only the number)."""
    seen = dashboard.page.evaluate(ZOO)
    assert seen["start"] == {"on": [], "count": "0 detections"}, seen
    assert seen["switched"] == {"on": ["eof_ignored"], "count": "0 detections"}, seen
    assert seen["one"]["count"] == "1 detection", seen
    assert seen["two"]["count"] == "2 detections", seen
    assert seen["off"]["on"] == [], seen
    assert dashboard.console_errors == []


RACED_COUNT = """async () => {""" + NEW_ZOO + """
    const answer = (detections, seq) => zoo.merge([{ name: 'eof_ignored', title: 'EOF ignored',
        on: true, detections, detections_seq: seq }]);
    const detection = (seq) => live.send({ kind: 'flaw', name: 'eof_ignored', message: 'm', seq });
    const count = () => { zoo.paint();
        return root.querySelector('li[data-flaw="eof_ignored"] .flaw-count').dataset.value; };
    const seen = {};
    answer(3, 30);        // the server counted the detection at seq 30 ...
    detection(30);        // ... before its event reached this page
    seen.newerAnswer = count();
    detection(31);
    seen.next = count();
    answer(4, 31);        // the re-read
    seen.reread = count();
    detection(40);
    detection(41);
    seen.two = count();
    answer(5, 40);        // an answer older than the websocket: 41 is still to be added
    seen.olderAnswer = count();
    answer(6, 41);
    seen.caughtUp = count();
    return seen;
}"""


def test_the_zoo_counts_a_detection_once_whichever_comes_first_answer_or_event(dashboard):
    """A flaw's count comes from two places: `/api/flaws` (re-read 1.5 s after a detection)
    and the `flaw` events. When the answer already counted a detection whose event had not
    arrived yet, the event added it again, and the re-read kept the larger number: "4
    detections" against the server's 3 (seen once in the bug zoo's review). The answer's
    `detections_seq` says up to which event it counted."""
    seen = dashboard.page.evaluate(RACED_COUNT)
    assert seen == {"newerAnswer": "3", "next": "4", "reread": "4", "two": "6",
                    "olderAnswer": "6", "caughtUp": "6"}, seen
    assert dashboard.console_errors == []


HELD_SWITCH = """async () => {
    const { ZooPanel } = await import('/static/js/panels/zoo.js');
    const root = document.createElement('div');
    root.innerHTML = '<p id="zoo-status"></p><ul id="zoo-list"></ul>';
    document.body.append(root);
    const live = { subscribe(fn) { this.send = fn; } };
    const zoo = new ZooPanel(root, live, { replay: false });
    await zoo.load();
    zoo.paint();
    // the switch's POST is held until released: the page paints meanwhile
    let release;
    const gate = new Promise((r) => { release = r; });
    const realFetch = window.fetch;
    window.fetch = async (url, opts) => {
        if (opts && opts.method === 'POST' && String(url).includes('/api/flaws/')) await gate;
        return realFetch(url, opts);
    };
    const box = root.querySelector('input[data-flaw="eof_ignored"]');
    const seen = { clicked: null, detection: null, reread: null, after: null };
    try {
        box.click();
        seen.clicked = box.checked;
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'fd 7 woke the loop', seq: 9 });
        zoo.paint();
        seen.detection = box.checked;
        await zoo.load();       // a periodic re-read answering before the switch
        zoo.paint();
        seen.reread = box.checked;
    } finally {
        release();
        window.fetch = realFetch;
    }
    const until = performance.now() + 10000;
    while (box.disabled && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    zoo.paint();
    seen.after = box.checked;
    root.remove();
    return seen;
}"""


def test_a_flaw_switch_on_its_way_is_not_flipped_back_by_a_paint(dashboard):
    """A paint while this page's switch was on its way (a detection, the 3 s re-read) set the
    box from the server's last answer, "off": the box the user had just checked unchecked
    itself until the POST came back. Playwright's uncheck saw exactly that ("Clicking the
    checkbox did not change its state") in a run of the lab tests on two workers."""
    try:
        seen = dashboard.page.evaluate(HELD_SWITCH)
    finally:
        dashboard.api.post("/api/flaws/eof_ignored", json={"on": False})
    assert seen == {"clicked": True, "detection": True, "reread": True, "after": True}, seen
    assert dashboard.console_errors == []


def test_a_refused_flaw_switch_says_why_beside_the_zoo(dashboard):
    """SPEC §5: one flaw at a time; the server's 409 for a second one is in the alert area at
    the top of the page, far from the switch, so the zoo's own status line says it too
    ("Not switched: ..." with the server's reason). Without that line only the far alert
    said why the switch flipped back."""
    page = dashboard.page
    assert dashboard.api.post("/api/flaws/eof_ignored", json={"on": True}).status_code == 200
    eof = page.get_by_label("Flaw: EOF never handled", exact=True)
    expect(eof).to_be_checked(timeout=DEADLINE_MS)
    other = page.get_by_label("Flaw: hang-up checked before input", exact=True)
    other.click()
    expect(page.locator("#zoo-status")).to_contain_text("Not switched: ", timeout=DEADLINE_MS)
    expect(other).not_to_be_checked()
    expect(eof).to_be_checked()
    dashboard.api.post("/api/flaws/eof_ignored", json={"on": False})
    assert real_console_errors(dashboard) == []


def test_a_breakpoint_added_with_no_fd_is_on_any_fd_and_listed_in_the_pages_words(dashboard):
    """SPEC §5: "Break when" queue_over with the fd field left empty is a breakpoint on any
    fd; the list says so in words ("queue over (depth > 4) on any fd — 0 hits"). An empty
    field sent as fd 0 (Number('')) had made it a breakpoint on stdin that never fires; the
    raw API names ("queue_over") or a depth left out had passed the live tests too."""
    page = dashboard.page
    page.get_by_label("Break when").select_option("queue_over")
    page.get_by_label("Depth", exact=True).fill("4")
    page.get_by_role("button", name="Add breakpoint").click()
    item = page.locator("#breakpoint-list li")
    expect(item).to_have_count(1, timeout=DEADLINE_MS)
    expect(item).to_contain_text("queue over (depth > 4) on any fd — 0 hits")
    [bp] = dashboard.api.get("/api/breakpoints").json()
    assert bp["fd"] is None and bp["when"] == "queue_over" and bp["depth"] == 4, bp
    page.get_by_label("Break when").select_option("hup")
    page.get_by_label("Breakpoint fd", exact=True).fill("7")
    page.get_by_role("button", name="Add breakpoint").click()
    expect(item).to_have_count(2, timeout=DEADLINE_MS)
    expect(item.nth(1)).to_contain_text("hang-up on fd 7 — 0 hits")
    page.get_by_role("button", name=f"Delete breakpoint {bp['id']}").click()
    expect(item).to_have_count(1, timeout=DEADLINE_MS)
    expect(item).not_to_contain_text("queue over")
    assert dashboard.console_errors == []


BREAKPOINT_LIST = """async (items) => {
    const { BreakpointsPanel } = await import('/static/js/panels/breakpoints.js');
    const root = document.createElement('div');
    root.innerHTML = '<form id="breakpoint-form"><select id="breakpoint-when"><option>readable</option>'
      + '</select><input id="breakpoint-fd"><input id="breakpoint-depth"><button id="breakpoint-add">'
      + '</button></form><ul id="breakpoint-list"></ul><p id="breakpoint-hit" hidden></p>';
    const live = { subscribe() {}, conns: new Map(), pausedAt: null, loop: 'running', seq: 0 };
    const panel = new BreakpointsPanel(root, live, { last: 0 }, { replay: true });
    await panel.refresh();   // the server's (empty) list first, then the one under test
    panel.items = items;
    panel.dirty = true;
    panel.paint();
    return [...root.querySelectorAll('#breakpoint-list li span')].map((s) => s.textContent);
}"""


def test_the_breakpoint_list_says_one_hit_and_where_the_last_one_was(dashboard):
    """A breakpoint's line counts its hits in words ("1 hit", "2 hits") and says where the
    last one was (the engine's wait number, the fd). The live test looks for "1 hit" as a
    part of the line, which "1 hits" contains too."""
    lines = dashboard.page.evaluate(BREAKPOINT_LIST, [
        {"id": 1, "when": "readable", "fd": None, "hits": 1, "last_wait": 3, "last_fd": None},
        {"id": 2, "when": "backpressure", "fd": 7, "hits": 2, "last_wait": 12, "last_fd": 7}])
    assert lines == ["Breakpoint 1: readable on any fd — 1 hit, last at engine wait #3",
                     "Breakpoint 2: backpressure on fd 7 — 2 hits, last at engine wait #12 on fd 7"]
    assert dashboard.console_errors == []


SPOTLIGHT = """async () => {
    const { ui } = await import('/static/js/ui.js');
    const { Spotlight } = await import('/static/js/panels/spotlight.js');
    const seen = {};
    const v0 = ui.version;
    seen.mine = [ui.toggleMine('127.0.0.1:4000'), ui.isMine('127.0.0.1:4000'), ui.version - v0];
    seen.notMine = [ui.toggleMine('127.0.0.1:4000'), ui.isMine('127.0.0.1:4000'), ui.version - v0];
    seen.noPeer = [ui.toggleMine(''), ui.version - v0];
    const select = document.createElement('select');
    const spot = new Spotlight(select, () => {});
    const model = { connsVersion: 1, conns: new Map([[5, { peer: '127.0.0.1:4000' }],
                                                     [12, { peer: '' }]]) };
    ui.setSpotlight(9);   // a spotlight on an fd that has closed since
    spot.paint(model, 1e9);
    seen.options = [...select.options].map((o) => [o.value, o.textContent]);
    seen.value = select.value;
    ui.setSpotlight(null);
    return seen;
}"""


def test_marking_a_peer_as_mine_repaints_and_a_spotlight_on_a_gone_fd_stays_chosen(bare_page):
    """"Mark fd N as mine" moves the view version every panel checks before it repaints (the
    log's stars, the queue bars, the fd grid): without the bump only a panel that repainted
    for traffic showed the star. And a spotlight on an fd that closed since stays the select's
    choice, listed as "fd 9 (not open here)": dropped from the options, the select showed
    "all" while every panel still hid all but fd 9."""
    seen = bare_page.page.evaluate(SPOTLIGHT)
    assert seen["mine"] == [True, True, 1], seen
    assert seen["notMine"] == [False, False, 2], seen
    assert seen["noPeer"] == [False, 2], seen
    assert seen["options"] == [["", "all"], ["5", "fd 5 (127.0.0.1:4000)"], ["12", "fd 12"],
                               ["9", "fd 9 (not open here)"]], seen
    assert seen["value"] == "9", seen
    assert bare_page.console_errors == []


QUEUE_PICK = """async () => {
    const { QueuesPanel } = await import('/static/js/panels/queues.js');
    // 70 idle connections (over the 64 bars), but fd 70 paused by backpressure, fd 3 with bytes
    const conns = new Map();
    for (let fd = 1; fd <= 70; fd++) conns.set(fd, { fd, peer: '', pending: 0, depth: 0,
      paused: false, activeAt: 0, peak: 0, peakAt: 0 });
    Object.assign(conns.get(70), { paused: true });
    Object.assign(conns.get(3), { pending: 5000, depth: 2 });
    const model = { conns };
    const bars = QueuesPanel.prototype.pick.call({}, model, 0).map((c) => c.fd);
    const summaryEl = document.createElement('p');
    QueuesPanel.prototype.summary.call({ summaryEl }, model, bars.length);
    return { bars, summary: summaryEl.textContent };
}"""


def test_over_the_bar_cap_the_queues_show_the_paused_and_busy_connections(dashboard):
    """SPEC §5 (queues, backpressure drawn red): past 64 connections the panel draws the
    busiest, a paused one first of all, and its summary says it shows some only. With the
    paused-first rule gone, a paused connection with an empty queue (the one the red bar is
    for) lost its bar among idle ones; the load test's clients are all alike, so it passed."""
    got = dashboard.page.evaluate(QUEUE_PICK)
    assert len(got["bars"]) == 64 and got["bars"] == sorted(got["bars"]), got
    assert 70 in got["bars"] and 3 in got["bars"], got
    assert got["summary"].startswith("showing the 64 busiest of 70 connections · 2 chunks, "), got
    assert "1 paused by backpressure" in got["summary"], got
    assert dashboard.console_errors == []


QUEUE_COLOURS = """async () => {
    const { QueuesPanel } = await import('/static/js/panels/queues.js');
    const { colors } = await import('/static/js/canvas.js');
    const root = document.createElement('div');
    root.innerHTML = '<p id="queue-caption"></p><div id="queue-canvas-wrap">'
      + '<canvas id="queue-canvas"></canvas></div><p id="queue-summary"></p>';
    root.querySelector('#queue-canvas-wrap').style.width = '300px';   // CSSOM: the CSP allows it
    document.body.append(root);
    const conn = (fd, paused) => ({ fd, peer: '', pending: 2 << 20, depth: 9, paused,
                                    activeAt: 0, peak: 0, peakAt: 0 });
    const model = { backend: { write: 'queued' }, limits: {}, take: () => true,
                    conns: new Map([[1, conn(1, true)], [2, conn(2, false)]]) };
    new QueuesPanel(root).paint(model, 1000);
    // two bars 44 px apart; a point low in each (both queues hold 2 MiB: tall bars)
    const dpr = window.devicePixelRatio || 1;
    const ctx = root.querySelector('#queue-canvas').getContext('2d');
    const at = (x) => [...ctx.getImageData(Math.round(x * dpr), Math.round(150 * dpr), 1, 1).data];
    const swatch = document.createElement('canvas').getContext('2d');
    const rgba = (css) => { swatch.fillStyle = css; swatch.fillRect(0, 0, 1, 1);
                            return [...swatch.getImageData(0, 0, 1, 1).data]; };
    const got = { paused: at(10), running: at(54), danger: rgba(colors().danger),
                  write: rgba(colors().write) };
    root.remove();
    return got;
}"""


def test_a_paused_connections_queue_bar_is_drawn_red(dashboard):
    """SPEC §5 (backpressure visible): the bar of a connection whose reading is paused is
    drawn in the danger red, the others in the queue colour. The backpressure test reads the
    row's "paused" word and the summary's count, never the canvas: bars all one colour
    passed it."""
    got = dashboard.page.evaluate(QUEUE_COLOURS)
    assert got["paused"] == got["danger"], got
    assert got["running"] == got["write"], got
    assert dashboard.console_errors == []


TIMELINE_PLAY = """async () => {
    const { Timeline } = await import('/static/js/timeline.js');
    const root = document.createElement('div');
    root.innerHTML = '<input type="range" id="timeline-range"><output id="timeline-status"></output>'
      + '<button id="timeline-play"></button><select id="timeline-speed"></select>'
      + '<button id="timeline-live"></button>';
    // ten recorded iterations, one a second (ts in seconds), each found by its own number
    const history = { first: 1, last: 10, cap: 1000, events: [],
      waitEvent: (n) => (n >= 1 && n <= 10 ? { ts: n, seq: n } : null),
      iterationAtTs: (ts) => Math.max(1, Math.min(10, Math.floor(ts))),
      range: (n) => [n, n], seek: (view, seq) => ({ pos: seq }) };
    const live = { recentEvents: { size: 10 }, markAll() {} };
    const t = new Timeline(root, live, history, { replay: false });
    t.view = { markAll() {}, viewGen: 0 };   // viewing the last iteration
    t.iter = 10;
    const play = root.querySelector('#timeline-play');
    t.togglePlay();
    const seen = { started: [t.target, play.textContent, play.getAttribute('aria-pressed')] };
    t.speedSel.value = '4';
    t.tick(1000);
    t.tick(1250);   // a quarter of a second at 4x: one recorded second on
    seen.after = [t.iter, t.playing];
    t.togglePlay();
    seen.paused = [play.textContent, play.getAttribute('aria-pressed')];
    document.body.classList.remove('time-travel');
    return seen;
}"""


def test_play_at_the_end_of_the_timeline_starts_over_and_runs_at_the_chosen_speed(bare_page):
    """SPEC §5 (time travel: Play/Pause replay, speed): Play pressed on the last iteration
    plays from the first one (from there it had stopped at once, nothing to play), and the
    speed chosen scales the replay: a quarter second at 4x is one recorded second. A speed
    select that changed nothing passed the replay test, which plays at 1x."""
    seen = bare_page.page.evaluate(TIMELINE_PLAY)
    assert seen["started"] == [1, "Pause replay", "true"], seen
    assert seen["after"] == [2, True], seen
    assert seen["paused"] == ["Play", "false"], seen
    assert bare_page.console_errors == []


def test_ctrl_s_is_the_browsers_and_shift_s_steps(dashboard):
    """SPEC §5: `s` steps the loop, whatever the case (Shift, or Caps Lock, gives "S"), but a
    key with Ctrl is the browser's (Ctrl+S saves the page): it must not also step. Neither
    was pressed by the keyboard test, which steps with a plain `s`."""
    page = dashboard.page
    assert dashboard.api.post("/api/loop", json={"action": "pause"}).status_code == 200
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible(timeout=DEADLINE_MS)
    posts = loop_posts(page)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Control+s")
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/api/loop"),
                              timeout=DEADLINE_MS) as res:
        page.keyboard.press("Shift+S")
    assert res.value.status == 200
    assert [json.loads(p) for p in posts] == [{"action": "step"}], posts
    assert dashboard.api.post("/api/loop", json={"action": "resume"}).status_code == 200
    assert dashboard.console_errors == []


def test_a_non_json_refusal_and_a_lost_request_are_shown_in_the_alert_area(dashboard):
    """SPEC §5: errors shown, not swallowed. A proxy's HTML error page (not JSON) is shown
    with its status (a JSON.parse of it had thrown past the alert area: nothing said why the
    switch flipped back), and a request that never got an answer (the network gone) is shown
    as a network error: a user's own action is never failed silently."""
    page = dashboard.page
    errors = page.locator("#error-area p.error-message")
    eof = page.get_by_label("Flaw: EOF never handled", exact=True)
    expect(eof).not_to_be_checked(timeout=DEADLINE_MS)
    page.route("**/api/flaws/eof_ignored", lambda route: route.fulfill(
        status=502, content_type="text/html", body="<html><body>Bad gateway</body></html>"))
    eof.click()
    expect(errors.filter(has_text="Turning flaw eof_ignored on (502): ")).to_have_count(
        1, timeout=DEADLINE_MS)
    expect(eof).not_to_be_checked()
    page.unroute("**/api/flaws/eof_ignored")
    page.route("**/api/flaws/eof_ignored", lambda route: route.abort())
    eof.click()
    expect(errors.filter(has_text="Turning flaw eof_ignored on: network error (")).to_have_count(
        1, timeout=DEADLINE_MS)
    expect(eof).not_to_be_checked()
    assert not [f for f in dashboard.api.get("/api/flaws").json() if f["on"]]
    assert real_console_errors(dashboard) == []


VOCAB = """async () => {
    const { toBits, toNative } = await import('/static/js/vocab.js');
    const bits = (flags) => [...toBits(flags)].sort();
    const native = (b, backend) => toNative(new Set(b), backend);
    return {
      select: [bits(['read', 'write', 'except']), native(['in', 'out', 'pri'], 'select')],
      poll: [bits(['POLLIN', 'POLLRDHUP', 'POLLNVAL']), native(['in', 'rdhup', 'hup', 'nval'], 'poll')],
      epoll: [bits(['EPOLLIN', 'EPOLLET', 'EPOLLONESHOT', 'EPOLLRDHUP']),
              native(['oneshot', 'et', 'rdhup', 'in'], 'epoll')],
      cannot: [native(['in', 'et', 'oneshot', 'hup'], 'select'), native(['out', 'et'], 'poll')],
      unknown: [bits(['EPOLLWAKEUP']), native(['in', '?EPOLLWAKEUP'], 'epoll')],
    };
}"""


def test_native_flag_names_map_to_the_same_bits_and_back_for_each_backend(bare_page):
    """SPEC §5: each backend's panel and syscall line speak its own words. select's
    "except" set is the priority bit (POLLPRI, EPOLLPRI), POLLRDHUP is read-hang-up, not
    hang-up, a bit a backend cannot express is left out, and a name the page does not know
    is shown as it came (EPOLLWAKEUP), not dropped. The live tests meet only IN, OUT and HUP."""
    got = bare_page.page.evaluate(VOCAB)
    assert got["select"] == [["in", "out", "pri"], ["read", "except", "write"]], got
    assert got["poll"] == [["in", "nval", "rdhup"], ["POLLIN", "POLLHUP", "POLLNVAL", "POLLRDHUP"]], got
    assert got["epoll"] == [["et", "in", "oneshot", "rdhup"],
                            ["EPOLLIN", "EPOLLRDHUP", "EPOLLET", "EPOLLONESHOT"]], got
    assert got["cannot"] == [["read"], ["POLLOUT"]], got
    assert got["unknown"] == [["?EPOLLWAKEUP"], ["EPOLLIN", "EPOLLWAKEUP"]], got
    assert bare_page.console_errors == []
