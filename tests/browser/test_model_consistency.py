"""The page's model against the engine: state answers read again, ahead of or behind the
events, resyncs after dropped events, time travel and its checkpoints; what the page shows
stays what the engine did (SPEC §4, §5)."""

from __future__ import annotations

import time

from tests.browser.page_helpers import real_console_errors, state
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly


def test_time_travel_hands_a_rebuild_no_more_past_events_than_the_ring_holds(bare_page):
    """History.seek gave the rebuilt view the events before its checkpoint as far back as
    `view.ringSize`, a name the model's split (recent.js) left undefined: every scrub copied
    the whole history (up to 100,000 events in a replay) to keep the last 5,000 of them."""
    handed = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const { History } = await import('/static/js/history.js');
        const live = new Model();
        const history = new History(live);
        live.applySnapshot({ seq: 0, started_at: 0, state: {} });
        const events = [];
        for (let seq = 1; seq <= 12000; seq++) {
          events.push(seq % 4 === 1 ? { seq, ts: seq, kind: 'wait', backend: 'epoll', registered: 1,
                                         timeout_ms: 250, ready: 0, duration_us: 5 }
                                    : { seq, ts: seq, kind: 'error', message: 'm' });
        }
        live.applyEventsFrame({ dropped: 0, events });
        const view = new Model({ ringSize: 100 });
        let before = null;
        const rebuild = view.rebuild.bind(view);
        view.rebuild = (frame, evs, past) => { before = past.length; rebuild(frame, evs, past); };
        history.seek(view, history.end - 2);
        return { before, checkpoints: history.checkpoints.length };
    }""")
    assert handed["checkpoints"] >= 2, handed  # the seek starts from a later checkpoint
    assert handed["before"] == 100, handed


def test_a_state_answer_older_than_the_events_does_not_undo_a_switch(bare_page):
    """A GET /api/state answer captured before a backend switch can arrive after the switch's
    `backend` event (the page resyncs after each switch, and switches can follow each other):
    the page's model must keep the newer backend and ask for a fresh state instead."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({ seq: 100, started_at: 0,
                          state: { backend: { name: 'poll', trigger: 'level', oneshot: false } } });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 101, ts: 1, kind: 'backend', from: 'poll', to: 'select',
              trigger: 'level', oneshot: false, write: 'queued' },
            { seq: 102, ts: 2, kind: 'backend', from: 'select', to: 'epoll',
              trigger: 'level', oneshot: false, write: 'queued' }] });
        m.needResync = false;
        const stale = m.applyState({ backend: { name: 'select', fd: null },
                                     stats: { events_total: 101 } });
        const afterStale = { applied: stale, name: m.backend.name, resync: m.needResync };
        const fresh = m.applyState({ backend: { name: 'epoll', fd: 9 },
                                     stats: { events_total: 103 } });
        return { afterStale, fresh, name: m.backend.name, fd: m.backend.fd };
    }""")
    assert result["afterStale"] == {"applied": False, "name": "epoll", "resync": True}
    assert result["fresh"] is True
    assert result["name"] == "epoll" and result["fd"] == 9


#: the start of a model test run in the page (`"async () => {" + MODEL_PRELUDE + ...`): the
#: Model class, a connection's registration, and what the last wait was passed (fd -> bits)
MODEL_PRELUDE = """
        const { Model } = await import('/static/js/model.js');
        const reg = (fd, flags) => ({ fd, role: 'connection', interest: flags });
        const atWait = (model) => Object.fromEntries([...model.regsAtWait()].map(
            ([fd, r]) => [fd, [...r.bits].sort().join('|')]));
"""


def test_a_state_read_again_keeps_the_interest_of_the_wait_on_show(bare_page):
    """A state read (after dropped events, or a switch) replaced the registrations under the
    wait the page shows: poll's array then gave the interest of later as what was passed in,
    `events=POLLIN` beside `revents=POLLIN|POLLOUT` (1 sample in a full run, under load)."""
    result = bare_page.page.evaluate("async () => {" + MODEL_PRELUDE + """
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'poll', trigger: 'level', oneshot: false },
            registrations: [reg(7, ['POLLIN', 'POLLOUT']), reg(8, ['POLLIN'])] } });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 11, ts: 1, kind: 'wait', backend: 'poll', registered: 2, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            { seq: 12, ts: 1, kind: 'ready', fd: 7, flags: ['POLLOUT'] }] });
        // then events this page was not shown: fd 7's queue drained, fd 8 closed, fd 9 came
        m.applyEventsFrame({ dropped: 40, events: [] });
        const applied = m.applyState({ registrations: [reg(7, ['POLLIN']), reg(9, ['POLLIN'])],
                                       stats: { events_total: 52 } });
        return { applied, atWait: atWait(m), now: [...m.regs.keys()].sort() };
    }""")
    assert result["applied"] is True
    assert result["atWait"] == {"7": "in|out", "8": "in"}, result
    assert result["now"] == [7, 9]


def test_a_state_read_ahead_of_the_events_keeps_a_closed_fds_interest_at_the_wait(bare_page):
    """A resync answered with a state that already held the next wait's events (the close of
    its ready fd): those events then changed nothing, and the fd panel said "fd 39: (closed
    since; its interest at that wait is not known to this page)" (a flaky CI failure)."""
    result = bare_page.page.evaluate("async () => {" + MODEL_PRELUDE + """
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'epoll', trigger: 'level', oneshot: false },
            registrations: [reg(7, ['EPOLLIN']), reg(8, ['EPOLLIN'])] } });
        m.applyState({ registrations: [reg(8, ['EPOLLIN'])], stats: { events_total: 14 } });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 11, ts: 1, kind: 'wait', backend: 'epoll', registered: 2, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            { seq: 12, ts: 1, kind: 'ready', fd: 7, flags: ['EPOLLIN'] },
            { seq: 13, ts: 1, kind: 'interest', fd: 7, op: 'unregister', flags: ['EPOLLIN'] },
            { seq: 14, ts: 1, kind: 'close', fd: 7, reason: 'eof' }] });
        return atWait(m);
    }""")
    assert result == {"7": "in", "8": "in"}, result


def test_a_state_read_ahead_of_the_events_keeps_what_the_next_wait_was_passed(bare_page):
    """A resync answered after a Step already held the write interest that the step's own
    handler turned on (recv, queue): the syscall line showed the step's select passed fd 38
    in its write set, which it was not (a flaky CI failure under load). Also after a seek to
    a history checkpoint taken at that resync."""
    result = bare_page.page.evaluate("async () => {" + MODEL_PRELUDE + """
        const { snapshotOf } = await import('/static/js/history.js');
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'select', trigger: 'level', oneshot: false },
            registrations: [reg(7, ['read'])] } });
        m.applyState({ registrations: [reg(7, ['read', 'write'])], stats: { events_total: 15 } });
        const checkpoint = snapshotOf(m);
        const events = [
            { seq: 11, ts: 1, kind: 'wait', backend: 'select', registered: 1, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            { seq: 12, ts: 1, kind: 'ready', fd: 7, flags: ['read'] },
            { seq: 13, ts: 1, kind: 'recv', fd: 7, bytes: 1, preview: 'a' },
            { seq: 14, ts: 1, kind: 'queue', fd: 7, depth: 1, pending_bytes: 1 },
            { seq: 15, ts: 1, kind: 'interest', fd: 7, op: 'modify', flags: ['read', 'write'] }];
        m.applyEventsFrame({ dropped: 0, events });
        const seek = new Model();
        seek.applySnapshot(checkpoint);
        seek.applyEventsFrame({ dropped: 0, events });
        return { live: atWait(m), seek: atWait(seek),
                 now: [...m.regs.get(7).bits].sort().join('|') };
    }""")
    assert result == {"live": {"7": "in"}, "seek": {"7": "in"}, "now": "in|out"}, result


def test_a_resync_after_dropped_events_takes_the_interest_from_the_state(bare_page):
    """The page's own registrations miss what the dropped events did (an accept, a close):
    kept as "the interest as of the last event" for the waits a resync's state covers, they
    showed a wait whose ready fd had never been passed to select, and a closed fd as passed."""
    result = bare_page.page.evaluate("async () => {" + MODEL_PRELUDE + """
        const wait = (seq) => ({ seq, ts: 1, kind: 'wait', backend: 'select', registered: 2,
                                 timeout_ms: 250, ready: 1, duration_us: 3 });
        const run = (before, after, ready) => {
            const m = new Model();
            m.applySnapshot({ seq: 10, started_at: 0, state: {
                backend: { name: 'select', trigger: 'level', oneshot: false },
                registrations: before } });
            m.applyEventsFrame({ dropped: 2, events: [] });   // 11-12: an accept, or a close
            m.applyState({ registrations: after, connections: [], stats: { events_total: 16 } });
            m.applyEventsFrame({ dropped: 0, events: [wait(13),
                { seq: 14, ts: 1, kind: 'ready', fd: ready, flags: ['read'] }] });
            return atWait(m);
        };
        return {
            accepted: run([reg(7, ['read'])], [reg(7, ['read']), reg(8, ['read'])], 8),
            closed: run([reg(7, ['read']), reg(9, ['read', 'write'])], [reg(7, ['read'])], 7),
        };
    }""")
    assert result == {"accepted": {"7": "in", "8": "in"}, "closed": {"7": "in"}}, result


def test_waits_a_resync_covers_copy_only_the_fds_whose_interest_differs(bare_page):
    """Each wait a state read covers copied every fd's interest (769 ms for 500 waits at
    10,000 fds), then every fd an event in that range touched, for good: write interest on and
    off for a partial send left the fd copied by every wait after it."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model();
        const regs = [...Array(1000).keys()].map((fd) => ({ fd: fd + 10, role: 'connection',
                                                             interest: ['EPOLLIN'] }));
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'epoll', trigger: 'level', oneshot: false }, registrations: regs } });
        m.applyState({ registrations: regs, stats: { events_total: 100 } });
        const interest = (seq, flags) => ({ seq, ts: 1, kind: 'interest', fd: 10, op: 'modify', flags });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 11, ts: 1, kind: 'wait', backend: 'epoll', registered: 1000, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            interest(12, ['EPOLLIN', 'EPOLLOUT']), interest(13, ['EPOLLIN'])] });
        return { before: m.lastWait.before.size, diff: m.preState.diff.size };
    }""")
    assert result == {"before": 0, "diff": 0}, result


def test_a_history_checkpoint_keeps_the_shown_waits_maker_and_interest(bare_page):
    """Time travel rebuilt the last iteration from a checkpoint taken at the resync after a
    switch: it lost the backend that made the wait (epoll_wait on the new epoll fd, no word of
    the switch) and the interest the wait was passed (the new EPOLLET bits)."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const { snapshotOf } = await import('/static/js/history.js');
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'epoll', trigger: 'level', oneshot: false, fd: 4 },
            registrations: [{ fd: 5, role: 'connection', interest: ['EPOLLIN'] }] } });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 11, ts: 1, kind: 'wait', backend: 'epoll', registered: 1, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            { seq: 12, ts: 1, kind: 'ready', fd: 5, flags: ['EPOLLIN'] },
            { seq: 13, ts: 2, kind: 'backend', from: 'epoll', to: 'epoll', trigger: 'edge',
              oneshot: false, write: 'queued', epoll_fd: 25, maxevents: 1023 },
            { seq: 14, ts: 2, kind: 'interest', fd: 5, op: 'register', moved: true,
              flags: ['EPOLLIN', 'EPOLLET'] }] });
        const rebuilt = new Model();
        rebuilt.applySnapshot(snapshotOf(m));
        const bits = (model) => Object.fromEntries([...model.regsAtWait()].map(
            ([fd, r]) => [fd, [...r.bits].sort().join('|')]));
        return { live: [m.lastWait.madeBy && m.lastWait.madeBy.fd, bits(m)],
                 rebuilt: [rebuilt.lastWait.madeBy && rebuilt.lastWait.madeBy.fd, bits(rebuilt),
                           rebuilt.lastWait.interestKnown] };
    }""")
    assert result["live"] == [4, {"5": "in"}]
    assert result["rebuilt"] == [4, {"5": "in"}, True], result


def test_what_a_wait_returned_was_in_the_interest_it_was_passed(bare_page):
    """Under dropped events the page's interest for an fd can miss a change (write interest
    turned on in an iteration it was not shown): select's "in" sets then lacked an fd its
    "out" write set held (3 fds, in a full run). The kernel reports in/out only when asked."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'select', trigger: 'level', oneshot: false },
            registrations: [{ fd: 7, role: 'connection', interest: ['read'] }] } });
        m.applyEventsFrame({ dropped: 3, events: [
            { seq: 14, ts: 1, kind: 'wait', backend: 'select', registered: 1, timeout_ms: 250,
              ready: 1, duration_us: 3 },
            { seq: 15, ts: 1, kind: 'ready', fd: 7, flags: ['read', 'write'] }] });
        const atWait = [...m.regsAtWait().get(7).bits].sort().join('|');
        // a wait known only from a loaded state: its interest is shown as of now, not mixed
        const loaded = new Model();
        loaded.applySnapshot({ seq: 20, started_at: 0, state: {
            backend: { name: 'select', trigger: 'level', oneshot: false },
            registrations: [{ fd: 7, role: 'connection', interest: ['read'] }],
            last_wait: { backend: 'select', registered: 1, timeout_ms: 250, ready: 1,
                         duration_us: 3, ready_list: [{ fd: 7, flags: ['read', 'write'] }] } } });
        return { atWait, live: [...m.regs.get(7).bits].sort().join('|'),
                 loaded: [...loaded.regsAtWait().get(7).bits].sort().join('|'),
                 known: loaded.lastWait.interestKnown };
    }""")
    assert result == {"atWait": "in|out", "live": "in", "loaded": "in", "known": False}


def test_two_switch_answers_in_either_order_keep_the_second_switch(bare_page):
    """Two switches in a row (edge, then one-shot): their HTTP answers can arrive in either
    order. The first one's registrations, applied after the second's, undid one-shot for good:
    the switch's events were already "in the state" (1 run in 12 of a browser test)."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model();
        const regs = (flags) => [{ fd: 12, role: 'connection', interest: flags }];
        m.applySnapshot({ seq: 40, started_at: 0, state: {
            backend: { name: 'epoll', trigger: 'level', oneshot: false },
            registrations: regs(['EPOLLIN']) } });
        const second = m.applyState({ backend: { name: 'epoll', trigger: 'edge', oneshot: true },
            registrations: regs(['EPOLLIN', 'EPOLLET', 'EPOLLONESHOT']),
            stats: { events_total: 62 } });
        const first = m.applyState({ backend: { name: 'epoll', trigger: 'edge', oneshot: false },
            registrations: regs(['EPOLLIN', 'EPOLLET']), stats: { events_total: 49 } });
        return { second, first, oneshot: m.backend.oneshot, bits: [...m.regs.get(12).bits].sort() };
    }""")
    assert result == {"second": True, "first": False, "oneshot": True,
                      "bits": ["et", "in", "oneshot"]}


def test_events_up_to_a_resyncs_seq_do_not_count_twice(bare_page):
    """A resync's figures already hold the events up to its seq: those that arrive after it
    (they were on their way) must not add their bytes again, the later ones must."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model();
        m.applySnapshot({ seq: 10, started_at: 0, state: { connections: [
            { fd: 7, peer: 'p', interest: ['EPOLLIN'], queue_depth: 0, pending_bytes: 0,
              bytes_in: 0, bytes_out: 0, reading_paused: false }] } });
        m.applyEventsFrame({ dropped: 5, events: [
            { seq: 16, ts: 1, kind: 'recv', fd: 7, bytes: 100 }] });
        const unsynced = m.unsynced;
        m.applyState({ stats: { events_total: 20 }, connections: [
            { fd: 7, peer: 'p', queue_depth: 0, pending_bytes: 0, bytes_in: 700,
              bytes_out: 600, reading_paused: false }] });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 17, ts: 2, kind: 'send', fd: 7, bytes: 100 },     // in the state already
            { seq: 21, ts: 3, kind: 'recv', fd: 7, bytes: 50 }] });  // after it
        const c = m.conns.get(7);
        return { unsynced, bytesIn: c.bytesIn, bytesOut: c.bytesOut, seq: m.seq };
    }""")
    assert result == {"unsynced": True, "bytesIn": 750, "bytesOut": 600, "seq": 21}


def test_a_resync_holds_against_late_events_fd_reuse_closes_not_seen_and_time_travel(
        bare_page):
    """What a review found in the first resync: a late close and accept of a reused fd
    emptied the state's row (its recv skipped), rows whose close was dropped stayed, a late
    one-shot `ready` showed an armed fd disarmed, and a history checkpoint taken after the
    resync lost its seq (time travel counted the late bytes twice)."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const { History, snapshotOf } = await import('/static/js/history.js');
        const row = (fd, peer, bytes) => ({ fd, peer, queue_depth: 0, pending_bytes: 0,
            bytes_in: bytes, bytes_out: bytes, reading_paused: false });
        const m = new Model();
        const history = new History(m);
        m.applySnapshot({ seq: 10, started_at: 0, state: {
            backend: { name: 'epoll', trigger: 'level', oneshot: true },
            registrations: [{ fd: 7, role: 'connection', interest: ['EPOLLIN', 'EPOLLONESHOT'] },
                            { fd: 8, role: 'connection', interest: ['EPOLLIN', 'EPOLLONESHOT'] },
                            { fd: 9, role: 'connection', interest: ['EPOLLIN', 'EPOLLONESHOT'] }],
            connections: [row(7, 'a', 0), row(8, 'b', 0), row(9, 'ghost', 0)] } });
        m.applyEventsFrame({ dropped: 50, events: [{ seq: 61, ts: 1, kind: 'wait' }] });
        // the state at seq 100: fd 7 was closed and given to peer c, which echoed 1000 bytes;
        // fd 9 was closed (its close event among those dropped)
        m.applyState({ stats: { events_total: 100 },
            registrations: [{ fd: 7, role: 'connection', interest: ['EPOLLIN', 'EPOLLONESHOT'] },
                            { fd: 8, role: 'connection', interest: ['EPOLLIN', 'EPOLLONESHOT'] }],
            connections: [row(7, 'c', 1000), row(8, 'b', 40)] });
        history.checkpoint();
        const cp = history.checkpoints.at(-1).frame;
        m.applyEventsFrame({ dropped: 0, events: [          // late: all in the state already
            { seq: 90, ts: 2, kind: 'close', fd: 7, reason: 'user' },
            { seq: 91, ts: 2, kind: 'accept', fd: 7, peer: 'c', listener: 3 },
            { seq: 92, ts: 2, kind: 'recv', fd: 7, bytes: 1000 },
            { seq: 95, ts: 3, kind: 'wait' },
            { seq: 96, ts: 3, kind: 'ready', fd: 8, flags: ['EPOLLIN'] },
            { seq: 97, ts: 3, kind: 'recv', fd: 8, bytes: 40 },
            { seq: 101, ts: 4, kind: 'recv', fd: 8, bytes: 2 }] });   // after it
        const view = new Model();
        view.rebuild(cp, history.events.slice(history.checkpoints.at(-1).pos - history.offset));
        const fig = (model) => [...model.conns.values()].map((c) => [c.fd, c.peer, c.bytesIn]);
        return { live: fig(m), view: fig(view), cpSeq: cp.state_seq,
                 armed8: m.regs.get(8).armed, regs: [...m.regs.keys()].sort() };
    }""")
    assert result["live"] == [[7, "c", 1000], [8, "b", 42]]
    assert result["view"] == result["live"] and result["cpSeq"] == 100
    assert result["armed8"] is True and result["regs"] == [7, 8]


def test_stepping_forward_in_time_travel_keeps_every_datagram(bare_page):
    """A forward seek rebuilt from any checkpoint it crossed (meant for resync ones only),
    whose UDP counts are the last stats frame's, up to 0.5 s behind the events: stepping
    through a UDP run came out hundreds of datagrams short of the live page."""
    result = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const { History } = await import('/static/js/history.js');
        const m = new Model();
        const h = new History(m);
        m.applySnapshot({ seq: 0, started_at: 0, state: { listeners: {
            tcp: null, udp: { fd: 5, port: 9, received: 0, echoed: 0, dropped: 0 } } } });
        let seq = 0;
        const datagrams = 3000;
        for (let i = 0; i < datagrams; i++) {
            m.applyEventsFrame({ dropped: 0, events: [
                { seq: ++seq, ts: i, kind: 'wait' },
                { seq: ++seq, ts: i, kind: 'datagram', fd: 5, dir: 'in', bytes: 1 }] });
            if (i === 1000) m.applyStats({ udp: { received: 900, echoed: 0, dropped: 0 } });
        }
        m.applyStats({ udp: { received: datagrams, echoed: 0, dropped: 0 } });
        const view = new Model();
        let at = h.seek(view, h.range(h.first)[1], null);
        for (let n = h.first + 1; n <= h.last; n++) at = h.seek(view, h.range(n)[1], at);
        return { live: m.udp.received, stepped: view.udp.received,
                 crossed: h.checkpoints.length };
    }""")
    assert result["crossed"] >= 2  # an ordinary checkpoint lies on the way
    assert result["stepped"] == result["live"] == 3000


def test_after_dropped_events_the_page_reads_the_figures_again(dashboard):
    """Beyond the observation budget whole iterations go unshown: the page summed recv/send
    bytes and replayed interest from events only, so after a burst its connection table said
    bytes in != bytes out for an echo, and idle connections kept EPOLLOUT, for good."""
    page = dashboard.page
    dashboard.engine.observers.budget = 300  # events/s: a short burst goes past it
    socks = [dashboard.connect() for _ in range(5)]
    try:
        # Rounds until the page has seen a drop: a burst of a fixed size went past the budget
        # but once, on a loaded CI, when its rounds came slowly enough for the budget's
        # carry-over (three windows' worth) to show it whole.
        rounds, deadline = 0, time.monotonic() + 15
        while rounds < 60 or not page.evaluate("() => window.__muxscope.dropped > 0"):
            assert time.monotonic() < deadline, f"no drop seen by the page in {rounds} rounds"
            for _ in range(10):
                for sock in socks:
                    sock.sendall(b"x" * 1000)
                for sock in socks:
                    assert recv_exactly(sock, 1000) == b"x" * 1000
            rounds += 10
        fds = {c["fd"] for c in state(dashboard)["connections"]}
        assert len(fds) == 5

        def page_agrees() -> bool:
            api = {c["fd"]: c for c in state(dashboard)["connections"]}
            shown = page.evaluate("""() => [...window.__muxscope.model.conns.values()].map(
                c => [c.fd, c.bytesIn, c.bytesOut,
                      [...(window.__muxscope.model.regs.get(c.fd)?.bits || [])].sort()])""")
            return sorted(shown) == sorted(
                [fd, api[fd]["bytes_in"], api[fd]["bytes_out"], ["in"]] for fd in fds)

        wait_until(page_agrees, 10, "the page's figures equal the server's")
        assert all(c["bytes_in"] == rounds * 1000 for c in state(dashboard)["connections"])
    finally:
        for sock in socks:
            sock.close()
    assert real_console_errors(dashboard) == []
