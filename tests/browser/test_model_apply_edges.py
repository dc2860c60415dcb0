"""How each kind of event changes the page model (static/js/apply.js), at the edges the wider
browser tests pass over (found by mutating apply.js by hand: each test here failed with one
such bug that every other test let through).

Each check runs the page's own modules in the page (``await import('/static/js/...')``) on a
fresh Model fed hand-written frames (SPEC §3's fields): what the panels draw is read from it.
"""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Dashboard
from tests.browser.page_helpers import run_in_page

#: the start of every check: the Model, and an engine's snapshot at seq 10 (control fd 3,
#: TCP listener 4, UDP socket 5, plus `regs`/`extra`), events and what a wait was passed
PRELUDE = """
    const { Model } = await import('/static/js/model.js');
    const { READY_LIST_CAP } = await import('/static/js/apply.js');
    const reg = (fd, flags, role = 'connection') => ({ fd, role, interest: flags });
    const row = (fd, peer) => ({ fd, peer, queue_depth: 0, pending_bytes: 0, bytes_in: 0,
                                 bytes_out: 0, reading_paused: false });
    const EPOLL = { name: 'epoll', trigger: 'level', oneshot: false, write: 'queued',
                    fd: 9, maxevents: 64 };
    const snapshot = (backend, regs, extra = {}) => ({ type: 'snapshot', seq: 10, started_at: 0,
        state: { backend, control_fd: 3,
                 listeners: { tcp: { fd: 4, port: 7000 }, udp: { fd: 5, port: 7000,
                              received: 0, echoed: 0, dropped: 0 } },
                 registrations: [reg(3, ['EPOLLIN'], 'control'), reg(4, ['EPOLLIN'], 'tcp_listener'),
                                 reg(5, ['EPOLLIN'], 'udp'), ...regs],
                 connections: [], ...extra } });
    const model = (...args) => { const m = new Model(); m.applySnapshot(snapshot(...args)); return m; };
    const feed = (m, ...events) => m.applyEventsFrame({ dropped: 0, events });
    const wait = (seq, ready = 0) => ({ seq, ts: seq, kind: 'wait', backend: 'epoll',
        registered: 5, timeout_ms: 250, ready, duration_us: 5 });
    const ready = (seq, fd) => ({ seq, ts: seq, kind: 'ready', fd, flags: ['EPOLLIN'] });
    const atWait = (m) => Object.fromEntries([...m.regsAtWait()].map(
        ([fd, r]) => [fd, [...r.bits].sort().join('|')]));
"""


def run(bare_page: Dashboard, body: str) -> Any:
    return run_in_page(bare_page, PRELUDE, body)


def test_a_wait_keeps_at_most_the_cap_of_ready_entries_and_starts_with_none_ready(
        bare_page: Dashboard) -> None:
    """A wait's record holds READY_LIST_CAP (4096) ready entries at most, however many ready
    events follow it (the syscall line waits for that many, no more); and the next wait
    starts with no fd ready: the grid's green marks and the ready list are that wait's."""
    got = run(bare_page, """
        const m = model(EPOLL, [reg(7, ['EPOLLIN'])]);
        const events = [wait(11, 5000)];
        for (let i = 0; i < 4200; i++) events.push(ready(12 + i, 7));
        feed(m, ...events);
        const kept = m.lastWait.ready_list.length;
        const readyBefore = [...m.lastReady.keys()];
        feed(m, wait(5000));
        return { cap: READY_LIST_CAP, kept, readyBefore, readyAfter: [...m.lastReady.keys()] };
    """)
    assert got == {"cap": 4096, "kept": 4096, "readyBefore": [7], "readyAfter": []}, got


def test_a_close_drops_the_fds_ready_mark_unless_the_fd_stays_registered(
        bare_page: Dashboard) -> None:
    """A closed fd's cell goes with its ready mark and outline, and the wait keeps the fd's
    interest as passed; the bug zoo's close that leaves the fd registered keeps them (poll
    returns it as POLLNVAL, wait after wait)."""
    got = run(bare_page, """
        const m = model(EPOLL, [reg(7, ['EPOLLIN']), reg(8, ['EPOLLIN'])],
                        { connections: [row(7, 'a'), row(8, 'b')] });
        feed(m, wait(11, 2), ready(12, 7), ready(13, 8),
             { seq: 14, ts: 14, kind: 'close', fd: 7, reason: 'eof' },
             { seq: 15, ts: 15, kind: 'close', fd: 8, reason: 'eof', registered: true });
        return { ready: [...m.lastReady.keys()], flashes: [...m.flashes.keys()],
                 regs: [...m.regs.keys()], conns: [...m.conns.keys()], atWait: atWait(m) };
    """)
    # (the close implies its unregister, whose event a throttled iteration does not show:
    # the wait was still passed fd 7)
    assert got == {"ready": [8], "flashes": [8], "regs": [3, 4, 5, 8], "conns": [],
                   "atWait": {"3": "in", "4": "in", "5": "in", "7": "in", "8": "in"}}, got


def test_cells_changed_by_an_event_are_marked_for_a_redraw(bare_page: Dashboard) -> None:
    """The grid redraws only the cells in `touched` (and re-lays out on `regsChanged`): a
    one-shot fd disarmed by its ready event, a connection paused, a new peer on a reused fd
    (its close not seen: the row's lingering mark goes, its interest stays) and a close that
    leaves the fd registered must each mark their cell, or it keeps its old look."""
    got = run(bare_page, """
        const m = model({ ...EPOLL, oneshot: true }, [reg(7, ['EPOLLIN', 'EPOLLONESHOT'])],
                        { connections: [row(7, 'a')] });
        const seen = {};
        m.touched.clear();
        feed(m, wait(11, 1), ready(12, 7));
        seen.disarmed = [m.regs.get(7).armed, m.touched.has(7)];
        m.touched.clear();
        feed(m, { seq: 13, ts: 13, kind: 'backpressure', fd: 7, paused: true });
        seen.paused = [m.conns.get(7).paused, m.touched.has(7)];
        m.touched.clear();
        m.markLingering(7, 'a');
        const version = m.connsVersion;
        feed(m, { seq: 14, ts: 14, kind: 'accept', fd: 7, listener: 4, peer: 'b' });
        const c = m.conns.get(7);
        seen.reused = [c.peer, c.lingering, m.connsVersion > version, m.touched.has(7),
                       [...m.regs.get(7).bits].sort().join('|')];
        m.touched.clear();
        feed(m, { seq: 15, ts: 15, kind: 'close', fd: 7, reason: 'eof', registered: true });
        seen.closed = [m.conns.has(7), m.regs.has(7), m.touched.has(7)];
        return seen;
    """)
    assert got == {"disarmed": [False, True], "paused": [True, True],
                   "reused": ["b", False, True, True, "in|oneshot"],
                   "closed": [False, True, True]}, got


#: a model whose state read (at seq 16) is ahead of its events: fd 7 and 8 connections, fd 8
#: unregistered (and not closed) in the state's events, fd 9 closed but left registered
AHEAD = """
    const m = model(EPOLL, [reg(7, ['EPOLLIN']), reg(8, ['EPOLLIN']), reg(9, ['EPOLLIN'])],
                    { connections: [row(7, 'a'), row(9, 'c')] });
    m.applyState({ stats: { events_total: 16 },
        listeners: { tcp: { fd: 4, port: 7000 }, udp: { fd: 5, port: 7000, received: 0,
                     echoed: 0, dropped: 0, pending: 0, reading_paused: false } },
        registrations: [reg(3, ['EPOLLIN'], 'control'), reg(4, ['EPOLLIN'], 'tcp_listener'),
                        reg(5, ['EPOLLIN'], 'udp'), reg(7, ['EPOLLIN']), reg(9, ['EPOLLIN'])],
        connections: [row(7, 'a')] });
"""


def test_events_a_state_read_holds_change_neither_rows_nor_what_later_waits_were_passed(
        bare_page: Dashboard) -> None:
    """Events up to a state read's seq are in its figures already: a late queue event leaves
    the row's depth, a late UDP backpressure the socket's, and the waits among them are
    passed the interest as replayed (an unregistered fd is not passed; a close that leaves
    its fd registered does not take it out)."""
    got = run(bare_page, AHEAD + """
        feed(m, wait(11),
             { seq: 12, ts: 12, kind: 'interest', fd: 8, op: 'unregister', flags: ['EPOLLIN'] },
             { seq: 13, ts: 13, kind: 'queue', fd: 7, depth: 3, pending_bytes: 300 },
             { seq: 14, ts: 14, kind: 'backpressure', fd: 5, paused: true, udp: true, pending: 20 },
             { seq: 15, ts: 15, kind: 'close', fd: 9, reason: 'user', registered: true },
             wait(16));
        return { atWait: atWait(m), depth: [m.conns.get(7).depth, m.conns.get(7).pending],
                 udp: [m.udp.reading_paused, m.udp.pending] };
    """)
    assert got == {"atWait": {"3": "in", "4": "in", "5": "in", "7": "in", "9": "in"},
                   "depth": [0, 0], "udp": [False, 0]}, got


def test_a_wait_after_a_state_read_skipped_to_is_passed_the_states_interest(
        bare_page: Dashboard) -> None:
    """The first wait past a state read's seq (the events just before it not shown, no drop
    said) was passed the state's interest, not the one replayed up to the events shown; and
    a ready fd the replayed interest lacks (its accept not shown) was passed, with the
    state's bits."""
    got = run(bare_page, """
        const m = model(EPOLL, [reg(7, ['EPOLLIN'])], { connections: [row(7, 'a')] });
        m.applyState({ stats: { events_total: 14 }, registrations: [
            reg(3, ['EPOLLIN'], 'control'), reg(4, ['EPOLLIN'], 'tcp_listener'),
            reg(5, ['EPOLLIN'], 'udp'), reg(7, ['EPOLLIN', 'EPOLLOUT']), reg(8, ['EPOLLIN'])],
            connections: [row(7, 'a'), row(8, 'b')] });
        feed(m, wait(12, 1), ready(13, 8));   // 11 (fd 8's accept) not shown
        const ready8 = atWait(m)[8] || null;
        feed(m, wait(16));                    // 14 (fd 7's write interest) and 15 not shown
        return { ready8, next: atWait(m)[7] };
    """)
    assert got == {"ready8": "in", "next": "in|out"}, got


def test_interest_keeps_a_registrations_role_and_udp_counts_follow_their_rules(
        bare_page: Dashboard) -> None:
    """An interest change on the control fd keeps it the control fd (its cell's colour);
    a misdirected reply (the bug zoo's, sent to this server) is no echo; once stats frames
    carry the UDP totals datagram events add nothing; the kernel's drop total never goes
    back; a loop event with flaw '' says no flaw is on."""
    got = run(bare_page, """
        const m = model(EPOLL, []);
        m.flaw = 'slow_handler';
        feed(m, { seq: 11, ts: 11, kind: 'interest', fd: 3, op: 'modify',
                  flags: ['EPOLLIN', 'EPOLLOUT'] },
             { seq: 12, ts: 12, kind: 'datagram', fd: 5, dir: 'in', bytes: 4 },
             { seq: 13, ts: 13, kind: 'datagram', fd: 5, dir: 'out', bytes: 4, misdirected: true },
             { seq: 14, ts: 14, kind: 'datagram', fd: 5, dir: 'out', bytes: 4 },
             { seq: 15, ts: 15, kind: 'datagram', fd: 5, dir: 'in', bytes: 4, from_self: true },
             { seq: 16, ts: 16, kind: 'error', fd: 5, cause: 'udp', message: 'udp', udp_dropped: 9 },
             { seq: 17, ts: 17, kind: 'error', fd: 5, cause: 'udp', message: 'udp', udp_dropped: 4 },
             { seq: 18, ts: 18, kind: 'loop', state: 'running', flaw: '' });
        const events = [m.regs.get(3).role, m.udp.received, m.udp.from_self, m.udp.echoed,
                        m.udp.dropped, m.flaw];
        m.applyStats({ udp: { received: 10, from_self: 3, echoed: 10, dropped: 9 } });
        feed(m, { seq: 19, ts: 19, kind: 'datagram', fd: 5, dir: 'in', bytes: 4, from_self: true });
        return { events, afterStats: [m.udp.received, m.udp.from_self] };
    """)
    assert got == {"events": ["control", 2, 1, 1, 9, ""], "afterStats": [10, 3]}, got


def test_a_switch_of_one_shot_alone_notes_the_epoll_that_made_the_last_wait(
        bare_page: Dashboard) -> None:
    """A new one-shot setting makes a new epoll (as a new trigger does): the last wait keeps
    the epoll that made it (its fd, its words); a change of write strategy alone does not.
    A switch away from epoll forgets its fd and maxevents."""
    got = run(bare_page, """
        const m = model(EPOLL, []);
        feed(m, wait(11), { seq: 12, ts: 12, kind: 'backend', from: 'epoll', to: 'epoll',
                            trigger: 'level', oneshot: false, write: 'eager' });
        const writeOnly = m.lastWait.madeBy;
        feed(m, { seq: 13, ts: 13, kind: 'backend', from: 'epoll', to: 'epoll', trigger: 'level',
                  oneshot: true, write: 'eager', epoll_fd: 11, maxevents: 64 });
        const made = m.lastWait.madeBy && [m.lastWait.madeBy.fd, m.lastWait.madeBy.oneshot];
        feed(m, { seq: 14, ts: 14, kind: 'backend', from: 'epoll', to: 'poll' });
        const edge = model(EPOLL, []);
        feed(edge, wait(11), { seq: 12, ts: 12, kind: 'backend', from: 'epoll', to: 'epoll',
                               trigger: 'edge', oneshot: false, write: 'queued', epoll_fd: 11 });
        const edgeMade = edge.lastWait.madeBy && [edge.lastWait.madeBy.fd, edge.lastWait.madeBy.trigger];
        return { writeOnly, made, poll: [m.backend.fd, m.backend.maxevents], edgeMade };
    """)
    assert got == {"writeOnly": None, "made": [9, False], "poll": [None, None],
                   "edgeMade": [9, "level"]}, got


def test_polls_array_keeps_a_registration_closed_after_the_wait_in_its_place(
        bare_page: Dashboard) -> None:
    """The line describes the wait: fd 7, registered before 9 and closed by a handler after
    the wait returned, is still where the call had it; fd 6, registered after 9 (a number
    reused), comes after it. Unknown places (none here) would go last."""
    got = run(bare_page, """
        const { syscallLine } = await import('/static/js/vocab.js');
        const POLL = { name: 'poll', trigger: 'level', oneshot: false, write: 'queued',
                       fd: null, maxevents: null };
        const m = model(POLL, [reg(7, ['POLLIN']), reg(9, ['POLLIN']), reg(6, ['POLLIN'])]);
        feed(m, { ...wait(11, 1), backend: 'poll', registered: 6 },
             { seq: 12, ts: 12, kind: 'ready', fd: 7, flags: ['POLLIN'] },
             { seq: 13, ts: 13, kind: 'interest', fd: 7, op: 'unregister', flags: [] },
             { seq: 14, ts: 14, kind: 'close', fd: 7, reason: 'eof', registered: false });
        return syscallLine(m.lastWait, m, m.backend);
    """)
    passed = got.split("], ")[0]
    assert passed == ("poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}, "
                      "{fd=5, events=POLLIN}, {fd=7, events=POLLIN}, {fd=9, events=POLLIN}, "
                      "{fd=6, events=POLLIN}"), got


def test_a_time_travel_view_does_not_renumber_the_live_models_poll_array(
        bare_page: Dashboard) -> None:
    """A checkpoint shared the live wait's saved places by reference: a view rebuilt from it
    (its own numbering) wrote into them, and the live poll line put fd 7 after 9 (the
    session's code review)."""
    got = run(bare_page, """
        const { syscallLine } = await import('/static/js/vocab.js');
        const { snapshotOf } = await import('/static/js/history.js');
        const POLL = { name: 'poll', trigger: 'level', oneshot: false, write: 'queued',
                       fd: null, maxevents: null };
        const line = (m) => syscallLine(m.lastWait, m, m.backend).split('], ')[0];
        const live = model(POLL, [reg(7, ['POLLIN']), reg(9, ['POLLIN'])]);
        feed(live, { ...wait(11, 0), backend: 'poll', registered: 5 });
        const checkpoint = snapshotOf(live);
        const modify = { seq: 12, ts: 12, kind: 'interest', fd: 7, op: 'modify',
                         flags: ['POLLIN', 'POLLOUT'] };
        feed(live, modify);
        const before = line(live);
        const view = new Model();
        for (let i = 0; i < 5; i++) view.rebuild(checkpoint, []);
        view.rebuild(checkpoint, [modify]);
        return { before, after: line(live), view: line(view) };
    """)
    order = "poll([{fd=3, events=POLLIN}, {fd=4, events=POLLIN}, {fd=5, events=POLLIN}, " \
            "{fd=7, events=POLLIN}, {fd=9, events=POLLIN}"
    assert got == {"before": order, "after": order, "view": order}, got
