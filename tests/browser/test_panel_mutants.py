"""Edges of the connection list and the live controls that every other browser test let
through (found by a hand-mutation round on connections.js and controls.js: each test here
failed with one such mutant and passes on the real code). As in test_panel_edges.py, the
page's own module runs in the page on detached elements; the controls' POSTs are answered by
a stand-in fetch, so the real server is never switched, slowed or loaded.
"""

from __future__ import annotations

from tests.browser.page_helpers import run_in_page

# the connection table over detached elements; `paint(conns, opts)` paints a model holding
# `conns` ([fd, peer, {fields}]) and returns what the rows and lines say
CONN_PRELUDE = """
    const { ConnectionsPanel, connectHint } = await import('/static/js/panels/connections.js');
    const { ui } = await import('/static/js/ui.js');
    const root = document.createElement('div');
    root.innerHTML = '<table><tbody id="connection-list"></tbody></table><p id="connection-more"></p>'
      + '<span id="connection-count"></span><p id="udp-summary"></p>';
    const panel = new ConnectionsPanel(root, { onClose: () => {}, onMine: () => {}, replay: false });
    let now = 1e9;
    let version = 0;
    const model = { dirty: { conns: false }, take(k) { this.dirty[k] = false; }, connsVersion: 0,
                    isView: false, approximate: false, tcp: { fd: 5, port: 7000 }, udp: null,
                    conns: new Map() };
    const paint = (conns, opts = {}, dirty = true) => {   // dirty: the model marks the list changed
      if (conns) {
        model.conns = new Map(conns.map(([fd, peer, more]) => [fd, { fd, peer, depth: 0, pending: 0,
          bytesIn: 0, bytesOut: 0, paused: false, lingering: false, ...(more || {}) }]));
        model.connsVersion = ++version;
      }
      if (dirty) model.dirty.conns = true;
      Object.assign(model, opts);
      now += 1000;
      panel.paint(model, now);
      const rows = [...root.querySelectorAll('#connection-list tr')];
      return { fds: rows.map((tr) => Number(tr.dataset.fd)),
               closeDisabled: rows.map((tr) => tr.querySelector('button[data-fd]').disabled),
               closeTitle: rows.map((tr) => tr.querySelector('button[data-fd]').title),
               paused: rows.map((tr) => [tr.querySelector('td.paused').textContent, tr.classList.contains('paused')]),
               more: root.querySelector('#connection-more').textContent,
               udp: root.querySelector('#udp-summary').textContent };
    };
    try {
"""
CONN_END = """
    } finally { ui.setSpotlight(null); }
"""


def conns(dashboard, body: str):
    return run_in_page(dashboard, CONN_PRELUDE, body + CONN_END)


def test_a_spotlight_alone_repaints_the_connection_list_and_names_what_it_shows(bare_page):
    """SPEC §5 (spotlight): choosing an fd repaints the list at once, with no connection
    event to mark it dirty (the view's version says so); its line counts the connections in
    all, "1 connection" singular; and a spotlight on an fd that is not a connection (now)
    shows no row, not all of them. The live spotlight test runs with traffic flowing, which
    repaints the list anyway, and a spotlight on an open fd only."""
    seen = conns(bare_page, """
        const all = paint([[7, '127.0.0.1:4000'], [9, '127.0.0.1:4001']]);
        ui.setSpotlight(9);
        const spot = paint(null, {}, false);         // nothing changed but the view
        const one = paint([[9, '127.0.0.1:4001']]);
        ui.setSpotlight(12);
        const gone = paint(null, {}, false);
        return { all: all.fds, spot: [spot.fds, spot.more], one: one.more, gone: [gone.fds, gone.more] };
    """)
    assert seen["all"] == [7, 9], seen
    assert seen["spot"] == [[9], "spotlight on fd 9: showing it alone; 2 connections in all"], seen
    assert seen["one"] == "spotlight on fd 9: showing it alone; 1 connection in all", seen
    assert seen["gone"] == [[], "spotlight on fd 12: not a connection (now); 1 connection in all"], seen


def test_viewing_the_past_disables_close_and_gives_no_connect_hint(bare_page):
    """Viewing the past (time travel), a row's Close is disabled and says why ("Back to
    live"), and an empty list of the past gives no "connect with nc" hint (it is not now):
    the live time-travel tests look at the rows' texts only."""
    seen = conns(bare_page, """
        const live = paint([[7, '127.0.0.1:4000']]);
        const past = paint([[7, '127.0.0.1:4000']], { isView: true });
        const back = paint([[7, '127.0.0.1:4000']], { isView: false });
        const emptyPast = paint([], { isView: true });
        const emptyLive = paint([], { isView: false });
        return { live: live.closeDisabled, past: [past.closeDisabled, past.closeTitle],
                 back: back.closeDisabled, emptyPast: emptyPast.more,
                 emptyLive: emptyLive.more.startsWith('No connections yet: connect with nc ') };
    """)
    assert seen["live"] == [False], seen
    assert seen["past"] == [[True], ['Viewing the past: "Back to live" to close connections']], seen
    assert seen["back"] == [False], seen
    assert seen["emptyPast"] == "", seen
    assert seen["emptyLive"] is True, seen


def test_a_lingering_row_that_is_also_paused_reads_lingering_and_udp_waits_are_said_once(bare_page):
    """A connection closed on request that is still read away (lingering) says "lingering",
    not "paused", and is not styled as paused even when its reading was paused before; and
    the UDP line says its waiting replies once, in the paused wording when reading is
    paused (the live tests meet the two states apart)."""
    seen = conns(bare_page, """
        const rows = paint([[7, '127.0.0.1:4000', { lingering: true, paused: true }],
                            [8, '127.0.0.1:4001', { paused: true }]]);
        const udp = { fd: 6, port: 7001, received: 3, echoed: 1, dropped: 0,
                      reading_paused: true, pending: 2 };
        const paused = paint(null, { udp }).udp;
        const writing = paint(null, { udp: { ...udp, reading_paused: false } }).udp;
        return { rows: rows.paused, paused, writing };
    """)
    assert seen["rows"] == [["lingering", False], ["paused", True]], seen
    assert seen["paused"] == ("UDP socket fd 6 on port 7001: 3 datagrams received, 1 echoed, 0 "
                              "dropped by the kernel · not read (backpressure): 2 replies wait "
                              "for writability"), seen
    assert seen["writing"] == ("UDP socket fd 6 on port 7001: 3 datagrams received, 1 echoed, 0 "
                               "dropped by the kernel · 2 replies wait for writability"), seen


def test_the_connect_hint_gives_the_udp_sockets_own_port(bare_page):
    """The empty list's hint names the UDP socket's port for `nc -u`, not the TCP one: the
    live tests run both on ports the test picks, and read only the TCP part."""
    hint = run_in_page(bare_page, "", """
        const { connectHint } = await import('/static/js/panels/connections.js');
        return connectHint({ tcp: { host: '127.0.0.1', port: 7000 },
                             udp: { host: '127.0.0.1', port: 7001 } }, '127.0.0.1');
    """)
    assert hint == ("No connections yet: connect with nc 127.0.0.1 7000 (or telnet 127.0.0.1 "
                    "7000), type a line, and watch it go through; nc -u 127.0.0.1 7001 for "
                    "UDP."), hint


# the live controls over a detached copy of the page's own #controls (found by a stand-in
# `doc`), a hand-made model, and POST /api/loop answered by a stand-in (recorded in `posts`)
CONTROLS_PRELUDE = """
    const { Controls } = await import('/static/js/controls.js');
    const root = document.createElement('div');
    root.innerHTML = document.getElementById('controls').outerHTML
      + (document.querySelector('#controls #loop-state') ? '' : '<span id="loop-state"></span>');
    document.body.append(root);
    const doc = { getElementById: (id) => root.querySelector('#' + CSS.escape(id)) };
    const model = { subscribe() {}, take: () => true, marked: 0, mark() { this.marked++; },
                    loop: 'running', delayMs: 0, paused: false, available: ['select', 'poll', 'epoll'],
                    backend: { name: 'poll', trigger: 'level', oneshot: false, write: 'queued' },
                    load: null, loadKey: 0 };
    const realFetch = window.fetch;
    const posts = [];
    window.fetch = async (url, opts) => {
        if (opts && opts.method === 'POST' && String(url).split('?')[0].endsWith('/api/loop')) {
            const body = JSON.parse(opts.body);
            posts.push(body);
            const answer = body.action ? { loop: body.action === 'pause' ? 'paused' : 'running' }
                                       : { delay_ms: body.delay_ms };
            return new Response(JSON.stringify(answer), { status: 200,
                                headers: { 'Content-Type': 'application/json' } });
        }
        if (opts && opts.method === 'POST' && String(url).split('?')[0].endsWith('/api/load')) {
            const body = JSON.parse(opts.body);
            posts.push(body);
            return new Response(JSON.stringify({ connections: body.connections, cap: 500 }), { status: 202,
                                headers: { 'Content-Type': 'application/json' } });
        }
        if (opts && opts.method === 'POST' && String(url).split('?')[0].endsWith('/api/backend')) {
            const body = JSON.parse(opts.body);
            posts.push(body);
            return new Response(JSON.stringify({ backend: body, connections: [] }), { status: 200,
                                headers: { 'Content-Type': 'application/json' } });
        }
        return realFetch(url, opts);
    };
    const controls = new Controls(doc, model, { replay: false });
    const $ = (id) => doc.getElementById(id);
    const wait = (ms) => new Promise((r) => setTimeout(r, ms));
    const errors = () => [...document.querySelectorAll('#error-area p.error-message')].map((p) => p.textContent);
    try {
"""
CONTROLS_END = """
    } finally { window.fetch = realFetch; root.remove(); }
"""


def controls(dashboard, body: str):
    return run_in_page(dashboard, CONTROLS_PRELUDE, body + CONTROLS_END)


def test_a_typed_delay_is_sent_when_the_keys_pause_up_to_5000_and_never_half_typed(dashboard):
    """SPEC §5 (a change applies at once): a delay typed into the slow-motion field is sent
    once the keys pause, 5000 (the top of the range) included; a field left empty half-way
    through typing sends nothing and shows no error while the user is still at it. The live
    tests press Enter, which sends whatever is there."""
    seen = controls(dashboard, """
        const slowmo = $('slowmo-input');
        slowmo.focus();
        slowmo.value = '5000';
        slowmo.dispatchEvent(new Event('input', { bubbles: true }));
        await wait(700);
        const top = posts.slice();
        model.delayMs = 5000;
        slowmo.value = '';
        slowmo.dispatchEvent(new Event('input', { bubbles: true }));
        await wait(700);
        return { top, empty: posts.slice(top.length), errors: errors() };
    """)
    assert seen == {"top": [{"delay_ms": 5000}], "empty": [], "errors": []}, seen


def test_the_controls_follow_their_own_answers_and_leave_alone_what_is_being_changed(dashboard):
    """Pause applies the answer's loop state at once (the `loop` event may come later, and
    the button said "Pause" meanwhile); a paint leaves the slow-motion field alone while it
    has the focus, and the backend select while this page's own switch is in flight; the
    loop line says the slow-motion delay. Every live test waited for the event."""
    seen = controls(dashboard, """
        await controls.togglePause();
        const paused = [model.loop, posts.slice()];
        const slowmo = $('slowmo-input');
        slowmo.focus();
        slowmo.value = '300';
        model.delayMs = 250;
        controls.paint(model);
        const typing = [slowmo.value, $('loop-state').textContent];
        slowmo.blur();
        controls.paint(model);
        const left = slowmo.value;
        $('backend-select').value = 'epoll';   // this page's switch, on its way
        controls.busy = 1;
        controls.paint(model);
        const busy = $('backend-select').value;
        controls.busy = 0;
        controls.paint(model);
        return { paused, typing, left, busy, idle: $('backend-select').value };
    """)
    assert seen["paused"] == ["paused", [{"action": "pause"}]], seen
    assert seen["typing"] == ["300", "paused (+250 ms)"], seen
    assert seen["left"] == "250", seen
    assert seen["busy"] == "epoll" and seen["idle"] == "poll", seen


def test_the_load_line_is_empty_until_there_were_generated_clients(dashboard):
    """The load line says nothing on a page that never had generated clients, the count and
    the cap while there are some, and "no generated clients" once they are gone (not on a
    page that never had any)."""
    seen = controls(dashboard, """
        const line = () => { controls.paintLoad(model); return $('load-status').textContent; };
        const start = line();
        model.loadKey = 1;
        const none = line();
        model.load = { connections: 3, cap: 500 };
        model.loadKey = 2;
        const some = line();
        model.load = null;
        model.loadKey = 3;
        return { start, none, some, gone: line() };
    """)
    assert seen == {"start": "", "none": "", "some": "3 generated clients (cap 500)",
                    "gone": "no generated clients"}, seen


def test_add_clients_says_the_answers_count_at_once(dashboard):
    """"Add clients" says what the server's answer says (its count, its cap) as soon as it
    comes: the live tests read the load line only after a stats frame has rewritten it from
    the server's count, so a line built from the wrong field of the answer passed them."""
    seen = controls(dashboard, """
        $('load-connections').value = '4';
        $('load-size').value = '32';
        $('load-rate').value = '1';
        await controls.addLoad();
        return { posts, line: $('load-status').textContent };
    """)
    assert seen == {"posts": [{"connections": 4, "message_size": 32, "rate": 1}],
                    "line": "4 generated clients (cap 500)"}, seen


def test_a_backend_switchs_answer_stands_for_the_state_read_that_was_due(dashboard):
    """A backend switch answers with the whole state; once the page has applied it, a state
    read that was due (an event the page could not place set `needResync`) is not sent as
    well: at 10,000 connections that read is a 2 MiB body. Leaving the flag set passed every
    test, the extra read changing nothing that is shown."""
    seen = controls(dashboard, """
        const applied = [];
        model.applyState = (state) => { applied.push(state.backend.name); return true; };
        model.needResync = true;
        $('backend-select').value = 'select';
        await controls.sendBackend();
        return { posts, applied, needResync: model.needResync };
    """)
    assert seen == {"posts": [{"name": "select", "trigger": "level", "oneshot": False,
                               "write": "queued"}],
                    "applied": ["select"], "needResync": False}, seen
