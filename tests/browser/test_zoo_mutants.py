"""Edges of the bug zoo's panel that every other browser test let through (found by a
hand-mutation round on zoo.js: each test here failed with one such mutant and passes on the
real code). As in test_panel_edges.py, the page's own module runs in the page on detached
elements; the zoo's `GET /api/flaws` is answered by a stand-in fetch (what it answers, and
when, is the test's), every other request goes to the real app.
"""

from __future__ import annotations

from tests.browser.page_helpers import run_in_page

# the zoo over detached elements; `answer` is what GET /api/flaws returns (read when the
# request is sent), `gate` (a promise) holds that answer back until it resolves
ZOO_PRELUDE = """
    const { ZooPanel } = await import('/static/js/panels/zoo.js');
    const realFetch = window.fetch;
    const fake = { answer: [], gate: null, gets: 0 };
    window.fetch = async (url, opts) => {
        const get = !(opts && opts.method && opts.method !== 'GET');
        if (get && String(url).split('?')[0].endsWith('/api/flaws')) {
            fake.gets++;
            const body = JSON.stringify(fake.answer);
            const gate = fake.gate;
            if (gate) await gate;
            return new Response(body, { status: 200, headers: { 'Content-Type': 'application/json' } });
        }
        if (fake.post && opts && opts.method === 'POST' && String(url).includes('/api/flaws/')) {
            const name = decodeURIComponent(String(url).split('?')[0].split('/api/flaws/')[1]);
            const { status, body } = fake.post(name, JSON.parse(opts.body));
            return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
        }
        return realFetch(url, opts);
    };
    const flaw = (name, extra = {}) => ({ name, title: name.toUpperCase(), caption: '', on: false,
                                          detections: 0, detections_seq: 0, ...extra });
    const root = document.createElement('div');
    root.innerHTML = '<p id="zoo-status"></p><ul id="zoo-list"></ul>';
    document.body.append(root);
    const live = { subscribe(fn) { this.send = fn; } };
    const tick = () => new Promise((r) => setTimeout(r, 0));
    const item = (name) => root.querySelector(`li[data-flaw="${name}"]`);
    const look = (zoo, name) => { zoo.paint(); const li = item(name); return {
        on: [...root.querySelectorAll('input[data-flaw]')].filter((b) => b.checked).map((b) => b.dataset.flaw),
        count: li.querySelector('.flaw-count').textContent,
        inert: li.querySelector('.flaw-inert').hidden ? null : li.querySelector('.flaw-inert').textContent }; };
    const until = async (pred, ms = 5000) => { const end = performance.now() + ms;
        while (!pred() && performance.now() < end) await new Promise((r) => setTimeout(r, 10)); };
    try {
"""
ZOO_END = """
    } finally { window.fetch = realFetch; root.remove(); }
"""


def zoo(bare_page, body: str):
    return run_in_page(bare_page, ZOO_PRELUDE, body + ZOO_END)


def test_a_zoo_read_sent_before_a_switch_made_elsewhere_does_not_undo_it(bare_page):
    """A re-read of /api/flaws (every 3 s) that was on its way when a `loop` event said
    another page switched a flaw on answers from before the switch: merged, it turned the
    switch off again until the next re-read. Neither the epoch check in load() nor the bump
    the event gives it was needed by any other test."""
    seen = zoo(bare_page, """
        fake.answer = [flaw('eof_ignored'), flaw('hup_first')];
        const z = new ZooPanel(root, live, { replay: false });
        await z.load();
        let release;
        fake.gate = new Promise((r) => { release = r; });
        const stale = z.load();            // the re-read, answered from before the switch
        await tick();
        live.send({ kind: 'loop', state: 'running', flaw: 'eof_ignored', seq: 5 });
        const switched = look(z, 'eof_ignored').on;
        release();
        await stale;
        fake.gate = null;
        return { switched, after: look(z, 'eof_ignored').on };
    """)
    assert seen == {"switched": ["eof_ignored"], "after": ["eof_ignored"]}, seen


# a replay's zoo whose catalogue (/api/flaws) is held back until after a `flaw` event; then
# let through and merged
CATALOGUE_HELD = """let release;
        fake.gate = new Promise((r) => { release = r; });
        fake.answer = [{ name: 'eof_ignored', title: 'EOF never handled', caption: 'c', on: false,
                         detections: 0 }];
        const z = new ZooPanel(root, live, { replay: true });
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'fd 7 woke the loop' });"""
CATALOGUE_COMES = """release();
        await until(() => z.flaws.get('eof_ignored').title !== 'eof_ignored');
        fake.gate = null;"""


def replay_zoo(bare_page, body: str):
    return zoo(bare_page, body.replace("__CATALOGUE_HELD__", CATALOGUE_HELD)
                              .replace("__CATALOGUE_COMES__", CATALOGUE_COMES))


def test_a_replays_catalogue_keeps_the_detections_its_events_counted_first(bare_page):
    """In a replay the catalogue (/api/flaws: titles, no `detections_seq`) may answer after
    the recording's `flaw` events have been counted: the larger count is kept. Taking the
    catalogue's 0 lost them; the replay test reads the zoo only once it has settled. And a
    replay's switches are disabled (nothing can be switched in a recording): the replay test
    only checks that none is on."""
    seen = replay_zoo(bare_page, """
        __CATALOGUE_HELD__
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'fd 7 woke the loop' });
        __CATALOGUE_COMES__
        const got = look(z, 'eof_ignored');
        return { ...got, title: item('eof_ignored').querySelector('.flaw-title').textContent,
                 disabled: item('eof_ignored').querySelector('input[data-flaw]').disabled };
    """)
    assert seen == {"on": [], "count": "2 detections", "inert": None,
                    "title": "EOF never handled", "disabled": True}, seen


def test_a_switch_drawn_before_the_catalogue_came_takes_its_title_as_its_name(bare_page):
    """A replay's `flaw` events can reach a slow page before /api/flaws answers: the switch
    was drawn then, named after the raw name ("Flaw: eof_ignored"), and kept that name when
    the title came (the text beside it changed; a screen reader, or get_by_label, did not)."""
    seen = replay_zoo(bare_page, """
        __CATALOGUE_HELD__
        z.paint();
        const box = () => item('eof_ignored').querySelector('input[data-flaw]');
        const before = box().getAttribute('aria-label');
        __CATALOGUE_COMES__
        z.paint();
        return { before, after: box().getAttribute('aria-label') };
    """)
    assert seen == {"before": "Flaw: eof_ignored", "after": "Flaw: EOF never handled"}, seen


def test_the_zoo_repaints_a_reread_and_reads_again_after_a_backend_switch(bare_page):
    """A re-read's news (another page's detections, a flaw that cannot show with the new
    backend) is painted at the next frame: merge() marks the panel dirty. And a `backend`
    event makes the zoo read again at once, for the flaws' `inert` notes. Neither was needed
    by the live tests: a detection's event repaints the panel anyway, and the 3 s re-read
    brings the note within their waits."""
    seen = zoo(bare_page, """
        fake.answer = [flaw('eof_ignored')];
        const z = new ZooPanel(root, live, { replay: false });
        await z.load();
        const start = look(z, 'eof_ignored');
        fake.answer = [flaw('eof_ignored', { detections: 3, detections_seq: 9 })];
        await z.load();
        const reread = look(z, 'eof_ignored');
        fake.answer = [flaw('eof_ignored', { detections: 3, detections_seq: 9,
                                             inert: 'epoll reports EPOLLRDHUP' })];
        live.send({ kind: 'backend', name: 'epoll', seq: 10 });
        // at once: the 3 s re-read of an open tab (from the panel's birth) must not be what brings it
        await until(() => z.flaws.get('eof_ignored').inert, 1000);
        return { start, reread, backend: look(z, 'eof_ignored') };
    """)
    assert seen["start"]["count"] == "0 detections", seen
    assert seen["reread"]["count"] == "3 detections", seen
    assert seen["backend"]["inert"] == "No effect now: epoll reports EPOLLRDHUP.", seen


def test_after_a_reset_the_zoo_counts_from_the_new_servers_numbers(bare_page):
    """A `reset` (a reconnect, a restarted server whose event numbers start again) forgets
    which detections this page counted past the old server's answer: kept, a restarted
    server's count of 0 showed as 1, and its first detection (seq 2, below the old server's
    30) was not counted at all."""
    seen = zoo(bare_page, """
        fake.answer = [flaw('eof_ignored', { on: true, detections: 3, detections_seq: 30 })];
        const z = new ZooPanel(root, live, { replay: false });
        await z.load();
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'm', seq: 31 });
        const before = look(z, 'eof_ignored').count;
        fake.answer = [flaw('eof_ignored', { on: true, detections: 0, detections_seq: 1 })];
        const gets = fake.gets;
        live.send({ kind: 'reset' });
        await until(() => fake.gets > gets);
        await until(() => z.flaws.get('eof_ignored').countedTo === 1);
        const restarted = look(z, 'eof_ignored').count;
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'm', seq: 2 });
        return { before, restarted, first: look(z, 'eof_ignored').count };
    """)
    assert seen == {"before": "4 detections", "restarted": "0 detections",
                    "first": "1 detection"}, seen


def test_a_detection_has_the_zoo_read_the_servers_count_soon(bare_page):
    """The server's count is the truth (a detection this page never got an event for, after
    a dropped event): a `flaw` event has the zoo read /api/flaws again 1.5 s later. Without
    that re-read the count stayed this page's until the 3 s re-read of an open tab."""
    seen = zoo(bare_page, """
        fake.answer = [flaw('eof_ignored', { on: true })];
        const z = new ZooPanel(root, live, { replay: false });
        await z.load();
        fake.answer = [flaw('eof_ignored', { on: true, detections: 5, detections_seq: 12 })];
        const gets = fake.gets;
        live.send({ kind: 'flaw', name: 'eof_ignored', message: 'm', seq: 12 });
        const event = look(z, 'eof_ignored').count;
        const t0 = performance.now();
        await until(() => fake.gets > gets);
        await until(() => z.flaws.get('eof_ignored').countedTo === 12);
        return { event, reread: look(z, 'eof_ignored').count, within: performance.now() - t0 < 2500 };
    """)
    assert seen == {"event": "1 detection", "reread": "5 detections", "within": True}, seen



def test_a_flaw_switch_says_what_it_did_and_a_refused_one_flips_back_at_once(bare_page):
    """SPEC §5 (bug zoo, one flaw at a time): the zoo's status line says what this page's
    switch did ("<title>: on", then "all flaws off: the correct code runs"), and a refused
    switch (409) is flipped back as soon as the refusal comes, not only once the re-read
    that follows it answers. The live tests read the box after auto-waiting and never the
    line's on/off wording."""
    seen = zoo(bare_page, """
        const list = (on) => [flaw('eof_ignored', { title: 'EOF never handled', on: on === 'eof_ignored' }),
                              flaw('hup_first', { title: 'Hang-up first', on: on === 'hup_first' })];
        fake.answer = list(null);
        fake.post = (name, body) => ({ status: 200, body: list(body.on ? name : null) });
        const z = new ZooPanel(root, live, { replay: false });
        await z.load();
        z.paint();
        const box = (name) => root.querySelector(`input[data-flaw="${name}"]`);
        const status = () => root.querySelector('#zoo-status').textContent;
        const settled = async (name) => { await until(() => !box(name).disabled); z.paint(); };
        box('eof_ignored').click();
        await settled('eof_ignored');
        const on = [status(), box('eof_ignored').checked];
        box('eof_ignored').click();
        await settled('eof_ignored');
        const off = [status(), box('eof_ignored').checked];
        fake.answer = list('eof_ignored');             // another page's switch
        fake.post = () => ({ status: 409, body: { detail: 'flaw eof_ignored is on: one at a time' } });
        let release;
        fake.gate = new Promise((r) => { release = r; });
        box('hup_first').click();
        await until(() => status().startsWith('Not switched'));
        const refused = [status(), box('hup_first').checked];   // the re-read still on its way
        release();
        fake.gate = null;
        await settled('hup_first');
        return { on, off, refused, after: [box('hup_first').checked, box('eof_ignored').checked] };
    """)
    assert seen["on"] == ["EOF never handled: on", True], seen
    assert seen["off"] == ["all flaws off: the correct code runs", False], seen
    assert seen["refused"] == ["Not switched: flaw eof_ignored is on: one at a time", False], seen
    assert seen["after"] == [False, True], seen
