"""Time travel (issue 6): the timeline scrubber, replay of a recording, breakpoints from the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.settings import Settings
from tests.browser.page_helpers import load_clients
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly

DEADLINE_MS = 8000


def row_fds(page: Page) -> list[int]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#connection-list tr')].map(tr => Number(tr.dataset.fd))")


def wait_for_row(page: Page, exclude: set[int] = frozenset()) -> int:
    """The fd of a connection row not in `exclude`, once one is listed."""
    handle = page.wait_for_function(
        """(ex) => [...document.querySelectorAll('#connection-list tr')]
                     .map(tr => Number(tr.dataset.fd)).find(fd => !ex.includes(fd))""",
        arg=list(exclude), timeout=DEADLINE_MS)
    return int(handle.json_value())


def iterations(page: Page) -> int:
    return int(page.evaluate("() => window.__muxscope.timeline.last"))


def scrub_to(page: Page, n: int) -> None:
    """Move the scrubber to iteration n, once its range holds n: live, the range's end follows
    the waits only a few times a second, and a value past it would be clamped to the end."""
    page.wait_for_function(
        "(n) => { const r = document.getElementById('timeline-range');"
        " return r && Number(r.min) <= n && Number(r.max) >= n; }", arg=n, timeout=DEADLINE_MS)
    page.get_by_label("Timeline", exact=True).fill(str(n))
    expect(page.locator("#timeline")).to_have_attribute("data-iteration", str(n), timeout=DEADLINE_MS)


def test_scrubbing_back_shows_a_connection_that_has_closed_since(dashboard):
    page = dashboard.page
    expect(page.locator("#timeline-status")).to_have_text("live")
    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        sock.sendall(b"time travel")
        assert recv_exactly(sock, 11) == b"time travel"
        page.wait_for_function(
            f"() => window.__muxscope.model.conns.get({fd})?.bytesOut === 11", timeout=DEADLINE_MS)
        open_at = iterations(page)
        assert open_at >= 1
    # closed: gone from the live list, once the close event has come and a few more waits ran
    expect(page.locator(f"#connection-list tr[data-fd='{fd}']")).to_have_count(0, timeout=DEADLINE_MS)
    page.wait_for_function(f"() => window.__muxscope.timeline.last >= {open_at + 2}",
                           timeout=DEADLINE_MS)

    scrub_to(page, open_at)
    expect(page.locator("#timeline-status")).to_contain_text(f"viewing iteration {open_at} of ")
    row = page.locator(f"#connection-list tr[data-fd='{fd}']")
    expect(row).to_have_count(1, timeout=DEADLINE_MS)
    expect(row.locator("td.out")).to_have_text("11")
    expect(row).to_contain_text("from this machine")
    # the log shows the past too: it ends inside that iteration, with the echo's send in it
    expect(page.locator(f"#event-log li.k-send[data-fd='{fd}']").first).to_be_attached()
    assert page.evaluate("() => window.__muxscope.timeline.viewing") is True

    page.get_by_role("button", name="Back to live").click()
    expect(page.locator("#timeline-status")).to_have_text("live")
    expect(page.locator(f"#connection-list tr[data-fd='{fd}']")).to_have_count(0, timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


def scrub_near_the_end(page: Page, back: int = 5) -> int:
    """Under a load past the page's budget its 20,000 events are about a second, trimmed at
    every checkpoint (~0.2 s): read the scrubber's end and move the scrubber in one page task,
    so that no round trip from here lets the iteration fall off the front before it is held."""
    n = int(page.evaluate(
        """(back) => { const r = document.getElementById('timeline-range');
                       const n = Math.max(Number(r.min), Number(r.max) - back);
                       r.value = String(n); r.dispatchEvent(new Event('input'));
                       return n; }""", back))
    expect(page.locator("#timeline")).to_have_attribute("data-iteration", str(n),
                                                          timeout=DEADLINE_MS)
    return n


def _paused_seq(page: Page) -> int:
    """The seq of the `loop paused` event, once the page has it as its latest event."""
    handle = page.wait_for_function(
        """() => {
             const last = window.__muxscope.model.recent(1)[0];
             return last && last.kind === 'loop' && last.state === 'paused' && last.seq;
           }""", timeout=DEADLINE_MS)
    return int(handle.json_value())


#: the page has a `loop paused` event past seq `prev` as its latest event (a step is over)
STEPPED_SINCE = """(prev) => {
    const last = window.__muxscope.model.recent(1)[0];
    return !!last && last.kind === 'loop' && last.state === 'paused' && last.seq > prev;
}"""


def _step_and_read(page: Page, previous_seq: int) -> tuple[int, str]:
    """Press Step; once the step's events are in (loop paused again), the syscall line."""
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function(
        """(prev) => {
             const m = window.__muxscope.model;
             const last = m.recent(1)[0];
             return m.lastWait && m.lastWait.seq > prev && last && last.kind === 'loop'
               && last.state === 'paused' && last.seq > m.lastWait.seq;
           }""", arg=previous_seq, timeout=DEADLINE_MS)
    line = page.locator("#syscall-line")
    seq = int(page.evaluate("() => window.__muxscope.model.lastWait.seq"))
    expect(line).to_have_attribute("data-seq", str(seq), timeout=DEADLINE_MS)
    return seq, line.inner_text()


def _wait_for_recorded(path: Path, seq: int, timeout: float = 8.0) -> None:
    def recorded() -> bool:
        lines = path.read_text().splitlines()
        return any(json.loads(x).get("seq", -1) >= seq for x in lines[1:] if x.strip())

    wait_until(recorded, timeout, f"seq {seq} in {path}")


def test_replay_of_a_recording_renders_the_same_syscall_lines(open_dashboard, tmp_path):
    recording = tmp_path / "run.jsonl"
    live = open_dashboard(Settings(http_port=0, echo_port=0, record=recording), "-live")
    page = live.page
    seen: list[tuple[int, str]] = []
    with live.connect() as sock:
        fd = wait_for_row(page)
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        # The button's answer can come before the events of the last running iteration (they
        # travel through the pump): wait for the `loop paused` event itself, or that
        # iteration's wait would be taken for the first step's.
        seq = _paused_seq(page)
        for i in range(3):
            sock.sendall(b"chunk %d" % i)
            seq, text = _step_and_read(page, seq)     # readable: recv, queue, write interest on
            seen.append((seq, text))
            seq, text = _step_and_read(page, seq)     # writable: send the echo back
            seen.append((seq, text))
            assert recv_exactly(sock, 7) == b"chunk %d" % i
    # SPEC §5's form: epoll_wait(5, [{EPOLLIN, fd=7}], 1024, 250) = 1
    assert any(f"{{EPOLLIN, fd={fd}}}" in text for _, text in seen), seen
    assert any(f"{{EPOLLOUT, fd={fd}}}" in text for _, text in seen), seen
    _wait_for_recorded(recording, max(s for s, _ in seen) + 1)

    replay = open_dashboard(Settings(http_port=0, replay_file=recording), "-replay")
    rpage = replay.page
    expect(rpage.locator("body")).to_have_attribute("data-replay", "1")
    expect(rpage.locator("#timeline-status")).to_contain_text("(end of the recording)",
                                                             timeout=DEADLINE_MS)
    rpage.wait_for_function(
        f"() => window.__muxscope.timeline.iterationForSeq({seen[-1][0]}) > 0", timeout=DEADLINE_MS)
    for seq, text in seen:
        n = int(rpage.evaluate(f"() => window.__muxscope.timeline.iterationForSeq({seq})"))
        scrub_to(rpage, n)
        expect(rpage.locator("#syscall-line")).to_have_attribute("data-seq", str(seq))
        expect(rpage.locator("#syscall-line")).to_have_text(text)
    # and Play runs the recording forward from the start
    rpage.get_by_label("Speed").select_option("8")
    rpage.get_by_role("button", name="Play", exact=True).click()
    expect(rpage.get_by_role("button", name="Pause replay")).to_be_visible()
    rpage.wait_for_function("() => window.__muxscope.timeline.iteration > 1", timeout=DEADLINE_MS)
    assert replay.console_errors == [] and live.console_errors == []


def test_a_steps_loop_event_starts_the_iteration_its_wait_makes(dashboard):
    """`loop step` comes just before the step's wait, and was listed as the last row of the
    iteration before: a view of that iteration had the loop stepping (the syscall line said
    the next wait had not started, though its `loop step` was in), and the code view never
    listed the Step that made the iteration."""
    page = dashboard.page
    with dashboard.connect() as sock:
        wait_for_row(page)
        page.get_by_role("button", name="Pause", exact=True).click()
        seq = _paused_seq(page)
        for i in range(3):
            sock.sendall(b"s%d" % i)
            seq, _ = _step_and_read(page, seq)
            seq, _ = _step_and_read(page, seq)
            assert recv_exactly(sock, 2) == b"s%d" % i
        last = iterations(page)
        codes = page.locator("#code-steps button")
        expect(codes.first).to_have_attribute("data-kind", "loop", timeout=DEADLINE_MS)
        for n in range(last - 4, last + 1):   # stepped iterations, each made by one Step
            kinds = page.evaluate(
                f"() => window.__muxscope.timeline.events({n}).map(e => e.kind + ':' + (e.state || ''))")
            assert kinds[:2] == ["loop:step", "wait:"], (n, kinds)
            assert kinds[-1] == "loop:paused" and "loop:step" not in kinds[1:], (n, kinds)
        scrub_to(page, last - 1)
        expect(codes.first).to_have_attribute("data-kind", "loop", timeout=DEADLINE_MS)
        expect(codes.last).to_contain_text("loop")
        page.get_by_role("button", name="Back to live").click()
        page.get_by_role("button", name="Resume", exact=True).click()
    assert dashboard.console_errors == []


def test_breakpoint_set_from_the_page_fires(dashboard):
    page = dashboard.page
    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        page.get_by_label("Break when").select_option("readable")
        page.get_by_label("Breakpoint fd").fill(str(fd))
        expect(page.get_by_label("Depth")).to_be_disabled()
        page.get_by_role("button", name="Add breakpoint").click()
        delete = page.get_by_role("button", name="Delete breakpoint 1", exact=True)
        expect(delete).to_be_visible(timeout=DEADLINE_MS)
        expect(page.locator("#breakpoint-list")).to_contain_text(f"readable on fd {fd}")
        assert page.locator("#breakpoint-hit").is_hidden()

        sock.sendall(b"stop here")
        hit = page.locator("#breakpoint-hit")
        expect(hit).to_be_visible(timeout=DEADLINE_MS)
        expect(hit).to_contain_text("Breakpoint 1 fired at iteration ")
        expect(hit).to_have_attribute("data-id", "1")
        iteration = int(hit.get_attribute("data-iteration"))
        assert 1 <= iteration <= iterations(page)
        expect(page.locator("#loop-state")).to_have_text("paused")
        expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
        assert dashboard.api.get("/api/state").json()["loop"] == "paused"
        expect(page.locator("#breakpoint-list")).to_contain_text("1 hit")

        delete.click()
        expect(delete).to_have_count(0, timeout=DEADLINE_MS)
        assert dashboard.api.get("/api/breakpoints").json() == []
        page.get_by_role("button", name="Resume", exact=True).click()
        assert recv_exactly(sock, 9) == b"stop here"
        expect(hit).to_contain_text("resumed", timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


def test_scrubbing_back_shows_that_iterations_past_not_a_later_ones(dashboard):
    """The view model kept its recent-events ring across a rebuild: after a later iteration
    had been on view, going back to one just before a history checkpoint showed the later
    iteration's events in the event log and the code view."""
    page = dashboard.page
    with load_clients(dashboard, 10, 64, 30):
        page.wait_for_function(
            "() => window.__muxscope.timeline.history.checkpoints.length >= 3", timeout=20_000)
        page.get_by_role("button", name="Pause", exact=True).click()
        # once the page has every event up to the pause, the history stands still
        page.wait_for_function(
            """() => { const last = window.__muxscope.model.recent(1)[0];
                       return last && last.kind === 'loop' && last.state === 'paused'; }""",
            timeout=20_000)
    h = page.evaluate("""() => { const h = window.__muxscope.timeline.history;
        return {cps: h.checkpoints.map(c => c.pos), waits: h.waits.slice(), off: h.iterOffset,
                last: h.last}; }""")
    # the iteration whose wait comes just before the second checkpoint
    target = h["waits"].index(h["cps"][1] - 1) + 1 + h["off"]
    # live, the scrubber's end follows the waits a few times a second: let it catch up
    expect(page.get_by_label("Timeline", exact=True)).to_have_attribute(
        "max", str(h["last"]), timeout=DEADLINE_MS)
    scrub_to(page, h["last"] - 1)
    scrub_to(page, target)
    seqs = [e["seq"] for e in page.evaluate(f"() => window.__muxscope.timeline.events({target})")]
    low, high = seqs[0], seqs[-1]
    page.wait_for_function(
        """([low, high]) => {
             const log = [...document.querySelectorAll('#event-log li[data-seq]')]
               .map(e => Number(e.dataset.seq));
             const code = [...document.querySelectorAll('#code-steps button')]
               .map(e => Number(e.dataset.seq));
             return log.length && code.length && Math.max(...log) === high
               && code.every(s => s >= low && s <= high);
           }""", arg=[low, high], timeout=DEADLINE_MS)
    page.get_by_role("button", name="Back to live").click()
    page.get_by_role("button", name="Resume", exact=True).click()
    assert dashboard.console_errors == []


def test_the_breakpoint_hit_line_follows_the_iteration_on_view(dashboard):
    """Viewing an iteration before the hit, the page still said "Breakpoint 1 fired at
    iteration 49": every other panel showed that earlier iteration, and its list had none."""
    page, api = dashboard.page, dashboard.api
    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        page.wait_for_function("() => window.__muxscope.timeline.last >= 3", timeout=DEADLINE_MS)
        bp = api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
        sock.sendall(b"hit")
        hit = page.locator("#breakpoint-hit")
        expect(hit).to_contain_text(f"Breakpoint {bp['id']} fired at iteration ",
                                    timeout=DEADLINE_MS)
        at = int(hit.get_attribute("data-iteration"))
        api.delete(f"/api/breakpoints/{bp['id']}")
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        assert recv_exactly(sock, 3) == b"hit"
        page.wait_for_function(f"() => window.__muxscope.timeline.last >= {at + 2}",
                               timeout=DEADLINE_MS)
        scrub_to(page, at - 1)
        expect(hit).to_be_hidden(timeout=DEADLINE_MS)
        scrub_to(page, at)
        expect(hit).to_be_visible(timeout=DEADLINE_MS)
        expect(hit).to_contain_text("the loop is paused")  # as it was then
        scrub_to(page, at + 1)
        expect(hit).to_contain_text("resumed since", timeout=DEADLINE_MS)


def hit_a_readable_breakpoint(dashboard, sock) -> tuple[int, dict[str, Any], Any]:
    """A `readable` breakpoint on `sock`'s server fd, hit: (fd, the breakpoint, the hit line)."""
    page = dashboard.page
    fd = wait_for_row(page)
    bp = dashboard.api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
    sock.sendall(b"hit")
    hit = page.locator("#breakpoint-hit")
    expect(hit).to_contain_text(f"Breakpoint {bp['id']} fired at iteration ",
                                timeout=DEADLINE_MS)
    return fd, bp, hit


def test_the_breakpoint_hit_line_counts_the_steps_since_and_says_a_deletion(dashboard):
    """After the hit a teacher stepped 12 times and deleted the breakpoint: the line still
    said "fired at iteration 133 — the loop is paused: Step or Resume", as if just hit, while
    the list said "no breakpoints". It counts the steps since and says the deletion now."""
    page, api = dashboard.page, dashboard.api
    with dashboard.connect() as sock:
        _fd, bp, hit = hit_a_readable_breakpoint(dashboard, sock)
        expect(hit).to_contain_text("the loop is paused: Step or Resume")
        for _ in range(2):
            assert api.post("/api/loop", json={"action": "step"}).status_code == 200
        expect(hit).to_contain_text("the loop is paused, stepped 2 times since",
                                    timeout=DEADLINE_MS)
        assert api.delete(f"/api/breakpoints/{bp['id']}").status_code == 200
        page.get_by_role("button", name="Step", exact=True).click()  # (the list: its 3 s poll)
        expect(hit).to_contain_text("stepped 3 times since; breakpoint deleted since",
                                    timeout=DEADLINE_MS)
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        assert recv_exactly(sock, 3) == b"hit"
        expect(hit).to_contain_text("(the loop has been resumed since; breakpoint deleted",
                                    timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


def test_the_timeline_says_which_iterations_are_no_longer_held(dashboard):
    """The page keeps the last 20,000 events (a replay 100,000): the scrubber's range just
    began later, and nothing said that the earlier iterations exist but are out of reach (a
    100 MB recording: iterations 4863-5331 of 5331 reachable, 91 % of it silently not)."""
    page = dashboard.page
    with load_clients(dashboard, 50, 16, 50):
        page.wait_for_function("() => window.__muxscope.timeline.first > 1", timeout=20_000)
    # the load's last events (and its 50 closes) are still on their way to the page: a
    # checkpoint among them trims the front and moves `first` past a value read now
    wait_until(lambda: dashboard.engine.stats.connections == 0, 10, "the load clients gone")
    target = dashboard.engine.observers.seq
    page.wait_for_function(f"() => window.__muxscope.lastSeq >= {target}", timeout=DEADLINE_MS)
    first = int(page.evaluate("() => window.__muxscope.timeline.first"))
    scrub_to(page, first)
    status = page.locator("#timeline-status")
    expect(status).to_contain_text(f"viewing iteration {first} of ", timeout=DEADLINE_MS)
    expect(status).to_contain_text(f"iterations 1–{first - 1} are no longer held")
    expect(status).to_contain_text("the page keeps the last 20,000 events")
    page.get_by_role("button", name="Back to live").click()
    expect(status).to_have_text("live")
    assert dashboard.console_errors == []


def test_a_replay_past_the_pages_hold_says_how_to_record_one_it_can_scrub_whole(
        open_dashboard, tmp_path):
    """A replay keeps the recording's last 100,000 events: the status names the limit and what to
    record instead, so that the missing start of a long file is not a mystery."""
    from tests.app.test_replay import write_recording

    # one wait per iteration; the page trims at its checkpoints, every 4,000 events
    recording = write_recording(tmp_path / "long.jsonl", 110_000)
    replay = open_dashboard(Settings(http_port=0, replay_file=recording), "-replay")
    page, status = replay.page, replay.page.locator("#timeline-status")
    page.wait_for_function("() => window.__muxscope.lastSeq >= 110_010", timeout=20_000)
    expect(status).to_contain_text("(end of the recording)", timeout=DEADLINE_MS)
    first = int(page.evaluate("() => window.__muxscope.timeline.first"))
    assert 1 < first <= 10_001, first   # never fewer than 100,000 kept
    expect(status).to_contain_text(f"iterations 1–{first - 1} are no longer held")
    expect(status).to_contain_text(
        "the page keeps the last 100,000 events: record with --record-max-mb 8 to scrub")
    assert replay.console_errors == []


@pytest.mark.parametrize(("duration_us", "cpu_us", "said"), [
    (1, 2, "took 1 µs, 1 µs of it on the CPU"),
    (0, 0, "took under 1 µs, under 1 µs of it on the CPU"),
], ids=["cpu-over-wall", "under-1us"])
def test_a_replayed_waits_time_is_said_as_the_engine_counted_it(open_dashboard, tmp_path,
                                                                duration_us, cpu_us, said):
    """A recording made before the engine capped `cpu_us` at the wall time: the syscall panel
    said "took 1 µs, 2 µs of it on the CPU". The engine counts whole µs (truncated): a wait
    that returned an fd at once said "took 0 µs, 0 µs of it on the CPU" beside its "= 1"."""
    from tests.app.test_replay import WAIT, write_recording

    recording = write_recording(tmp_path / "old.jsonl", 0)
    with recording.open("a") as f:
        f.write(json.dumps({"seq": 11, "ts": 0.011, "kind": "wait", **WAIT,
                            "duration_us": duration_us, "cpu_us": cpu_us}) + "\n")
    replay = open_dashboard(Settings(http_port=0, replay_file=recording), "-replay")
    expect(replay.page.locator("#syscall-detail")).to_contain_text(said, timeout=DEADLINE_MS)


VIEW_OF_THE_PAST = """async () => {
    const { Model } = await import('/static/js/model.js');
    const { snapshotOf } = await import('/static/js/history.js');
    const frame = { type: 'snapshot', seq: 10, started_at: 1, state_seq: 10, state: {
        backend: { name: 'epoll' }, control_fd: 3, listeners: { tcp: { fd: 5, port: 1 } },
        connections: [{ fd: 7, peer: '127.0.0.1:1', interest: ['EPOLLIN'], queue_depth: 0,
                        pending_bytes: 0, bytes_in: 0, bytes_out: 0, reading_paused: false }] } };
    const wait = (seq, ts) => ({ seq, ts, kind: 'wait', backend: 'epoll', registered: 3,
                                 timeout_ms: 250, ready: 1, duration_us: 5 });
    const ready = (seq, ts) => ({ seq, ts, kind: 'ready', fd: 7, flags: ['EPOLLIN'] });
    const recv = (seq, ts) => ({ seq, ts, kind: 'recv', fd: 7, bytes: 4, preview: 'ping' });
    const view = (events, from = frame) => {
        const m = new Model({ ringSize: 100 });
        m.isView = true;
        m.rebuild(from, events);
        return m;
    };
    const whole = [wait(11, 1.0), ready(12, 1.0), recv(13, 1.5)];
    const gap = [wait(11, 1.0), ready(12, 1.0), recv(20, 1.5)];   // 14..19 never came
    const idleAfter = [...whole, wait(21, 2.0)];                   // a wait that returned nothing
    const checkpoint = snapshotOf(view(gap));
    const atZero = { ...frame, seq: 0, state_seq: 0 };
    const queue = (seq, ts, pending) => ({ seq, ts, kind: 'queue', fd: 7, depth: 1,
                                           pending_bytes: pending });
    const peaked = view([queue(11, 1.0, 50000), queue(12, 1.2, 20), queue(13, 4.0, 10)]);
    return {
        fromZeroApprox: view([wait(6, 1.0)], atZero).approximate,   // 1..5 never came
        peakLater: peaked.conns.get(7).peak,
        wholeApprox: view(whole).approximate,
        gapApprox: view(gap).approximate,
        fromCheckpointApprox: view([], checkpoint).approximate,
        flashedAtReady: [...view(whole).flashes.keys()],
        flashedAfterIdleWait: [...view(idleAfter).flashes.keys()],
        activeAt: view(whole).conns.get(7).activeAt,
        activeAtFromCheckpoint: view([], checkpoint).conns.get(7).activeAt,
    };
}"""


def test_a_view_of_the_past_is_marked_approximate_and_outlines_its_own_ready_fds(bare_page):
    """Time travel against live, iteration by iteration (an audit's findings): a view rebuilt
    across dropped events showed its byte sums as exact (live marks them `≈`); it outlined
    every fd ready in the iterations it replayed, as if just now; and it ordered equal queues
    by the time of the scrub (a page clock) where live used the time the events came."""
    got = bare_page.page.evaluate(VIEW_OF_THE_PAST)
    assert got["wholeApprox"] is False
    assert got["gapApprox"] is True
    assert got["fromCheckpointApprox"] is True
    assert got["flashedAtReady"] == [7]
    assert got["flashedAfterIdleWait"] == []
    assert got["activeAt"] == 1.5 and got["activeAtFromCheckpoint"] == 1.5
    assert got["fromZeroApprox"] is True   # a page opened on a fresh engine: snapshot at seq 0
    # the queue's peak is kept for 1.5 s of the engine's time: replayed in one instant of the
    # page's, a view showed a peak from seconds before the iteration on view
    assert got["peakLater"] == 10


def test_a_log_listed_again_after_a_reconnect_says_snapshot_not_dropped(bare_page):
    """The model's ring spans a reconnect: a log listed from it (a filter changed, back from
    the past) said the events the new snapshot holds were dropped."""
    got = bare_page.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const { withGapMarkers } = await import('/static/js/log.js');
        const m = new Model({ ringSize: 100 });
        const snapshot = (seq) => ({ type: 'snapshot', seq, started_at: 1, state: {} });
        const ev = (seq) => ({ seq, ts: seq / 10, kind: 'loop', state: 'running' });
        m.applySnapshot(snapshot(10));
        [11, 12].forEach((s) => m.applyEvent(ev(s)));
        m.applySnapshot(snapshot(40));   // a reconnect: 13..40 are in this snapshot
        [41, 45].forEach((s) => m.applyEvent(ev(s)));   // 42..44 dropped
        return withGapMarkers(m.recent(), m.recentSnapshots())
            .map((e) => e.marker || String(e.seq));
    }""")
    assert got == ["— snapshot: state at seq 10 —", "11", "12", "— snapshot: state at seq 40 —",
                   "41", "… 3 events not delivered to this page (dropped) …", "45"]


def test_the_log_of_a_view_of_the_past_marks_where_events_were_dropped(open_dashboard, tmp_path):
    """Live, the log says "… N events not delivered to this page (dropped) …" between the
    events either side of a gap; time travel listed those events as if adjacent."""
    wait = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": 250, "ready": 0,
            "duration_us": 250}
    lines = [{"type": "snapshot", "seq": 0, "started_at": 1.0, "state": {}}]
    lines += [{"seq": seq, "ts": seq / 10, **wait} for seq in (1, 2, 10, 11, 12)]  # 3..9 lost
    recording = tmp_path / "gap.jsonl"
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = open_dashboard(Settings(http_port=0, replay_file=recording))
    page = replay.page
    marker = page.locator("#event-log li.k-gap", has_text="7 events not delivered to this page")
    expect(marker).to_have_count(1, timeout=DEADLINE_MS)   # at the recording's end
    scrub_to(page, 3)   # the wait after the gap: the log as it was then
    expect(page.locator("#event-log li[data-seq]")).to_have_count(3, timeout=DEADLINE_MS)
    expect(marker).to_have_count(1)
    assert page.evaluate("() => [...document.querySelectorAll('#event-log li')]"
                         ".map(li => li.dataset.seq || 'gap')") == ["1", "2", "gap", "10"]
    assert replay.console_errors == []


def test_a_breakpoint_removed_with_its_connection_says_so_not_deleted(dashboard):
    """The engine removes a breakpoint whose connection closed (no event says so): the hit
    line said "breakpoint deleted since" to a learner who had deleted nothing."""
    page, api = dashboard.page, dashboard.api
    sock = dashboard.connect()
    fd, _bp, hit = hit_a_readable_breakpoint(dashboard, sock)
    expect(page.locator("#breakpoint-list")).to_contain_text(f"fd {fd}", timeout=DEADLINE_MS)
    sock.close()  # a step or two: the request read and echoed, then the EOF: closed
    for _ in range(3):
        if fd not in {c["fd"] for c in api.get("/api/state").json()["connections"]}:
            break
        # the step's own `loop paused`: the loop sat paused (at the hit) before the click, so
        # `model.loop === 'paused'` held at once, before the step's events came
        before = _paused_seq(page)
        page.get_by_role("button", name="Step", exact=True).click()
        page.wait_for_function(STEPPED_SINCE, arg=before, timeout=DEADLINE_MS)
    wait_until(lambda: api.get("/api/breakpoints").json() == [], 5, "the breakpoint gone")
    page.get_by_role("button", name="Step", exact=True).click()  # (the list: its 3 s poll)
    expect(hit).to_contain_text(f"breakpoint removed since (its connection, fd {fd}, closed)",
                                timeout=DEADLINE_MS)
    expect(hit).not_to_contain_text("deleted")
    assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
    assert dashboard.console_errors == []


def test_a_breakpoint_on_the_udp_socket_deleted_by_another_client_says_deleted(dashboard):
    """The page said "removed since (its connection, fd 8, closed)" for a breakpoint on the
    UDP socket that another client had deleted: the engine removes only a breakpoint whose
    connection closed, and the UDP socket is none."""
    import socket

    page, api = dashboard.page, dashboard.api
    udp = api.get("/api/state").json()["listeners"]["udp"]
    bp = api.post("/api/breakpoints", json={"when": "readable", "fd": udp["fd"]}).json()
    expect(page.locator("#breakpoint-list")).to_contain_text(f"fd {udp['fd']}",
                                                             timeout=DEADLINE_MS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"hit", ("127.0.0.1", udp["port"]))
        hit = page.locator("#breakpoint-hit")
        expect(hit).to_contain_text(f"Breakpoint {bp['id']} fired", timeout=DEADLINE_MS)
        assert api.delete(f"/api/breakpoints/{bp['id']}").status_code == 200
        page.get_by_role("button", name="Step", exact=True).click()  # (the list: its 3 s poll)
        expect(hit).to_contain_text("breakpoint deleted since", timeout=DEADLINE_MS)
        expect(hit).not_to_contain_text("removed since")
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        client.settimeout(5)
        assert client.recvfrom(10)[0] == b"hit"
    assert dashboard.console_errors == []


def test_a_view_of_the_past_holds_its_iteration_while_the_load_goes_on(dashboard):
    """Past the page's budget its 20,000 events are about a second: a parked view was pushed
    forward four times a second (the iteration on view fell off the front). The events from
    the viewed iteration on are kept now, up to three times that."""
    page = dashboard.page
    with load_clients(dashboard, 100, 16, 50):
        page.wait_for_function("() => window.__muxscope.timeline.last > 50", timeout=20_000)
        n = scrub_near_the_end(page)
        start = page.evaluate(f"() => window.__muxscope.timeline.history.range({n})[0]")
        # until the events since the viewed iteration are more than the page keeps live; read
        # in the same page task, since a starved page can take in 30,000 events in one go
        # and so pass the hold's limit (3 x cap) between two reads from here
        seen = page.wait_for_function(
            f"""() => {{ const t = window.__muxscope.timeline, h = t.history;
                         const span = h.end - {start};
                         return span > h.cap + 9000 && {{ span, limit: 3 * h.cap,
                             iteration: t.iteration, first: t.first }}; }}""",
            timeout=20_000).json_value()  # (+9000: two checkpoints past the cap)
        if seen["span"] <= seen["limit"]:   # held: without the hold the cap's trim took it
            assert (seen["iteration"], seen["first"] <= n) == (n, True), seen
            expect(page.locator("#timeline")).to_have_attribute("data-iteration", str(n))
        else:   # past the limit: on to an iteration still kept, not stuck on a dropped one
            page.wait_for_function(
                "() => window.__muxscope.timeline.iteration >= window.__muxscope.timeline.first",
                timeout=DEADLINE_MS)
            assert page.evaluate("() => window.__muxscope.timeline.viewing") is True
    page.get_by_role("button", name="Back to live").click()
    expect(page.locator("#timeline-status")).to_have_text("live", timeout=DEADLINE_MS)
    assert page.evaluate("() => window.__muxscope.timeline.history.holdPos") is None
    assert dashboard.console_errors == []


def test_a_view_that_falls_off_the_hold_lands_a_pages_cap_from_the_end(dashboard):
    """Once the events since a parked view passed the hold's limit, the view moved to the
    first iteration kept, which the next trim dropped again: it was pushed on four times a
    second. It lands a page's cap from the end now, with room to stay there."""
    page = dashboard.page
    with load_clients(dashboard, 100, 16, 50):
        page.wait_for_function("() => window.__muxscope.timeline.last > 50", timeout=20_000)
        n = scrub_near_the_end(page)
        # measured in the frame that moves the view: how many events lie from there to the end
        page.wait_for_function(
            f"""() => {{ const t = window.__muxscope.timeline, h = t.history;
                        if (!t.viewing || t.iteration === {n}) return false;
                        const r = h.range(t.iteration);
                        window.__landed = {{ iteration: t.iteration, behind: r ? h.end - r[0] : -1,
                                            cap: h.cap }};
                        return true; }}""", polling="raf", timeout=25_000)
        landed = page.evaluate("() => window.__landed")
        assert landed["iteration"] > n
        # a page's cap (plus the iteration's own events), not the 3 x cap a trim is about to cut
        assert 0 < landed["behind"] <= landed["cap"] * 1.5, landed
    page.get_by_role("button", name="Back to live").click()
    expect(page.locator("#timeline-status")).to_have_text("live", timeout=DEADLINE_MS)
    assert dashboard.console_errors == []
