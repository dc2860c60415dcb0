"""The page follows the server it is connected to: a slow motion set by another client, the
charts of a server restarted behind a reconnect, and the log's account of the events it did
not list."""

from __future__ import annotations

import json
import re
import signal
import socket
import time

from playwright.sync_api import Browser, expect

from app.main import create_app
from app.settings import Settings
from tests.app.test_cli import launch
from tests.app.test_replay_trace_files import trace_of_a_live_engine
from tests.browser.conftest import server_fd
from tests.browser.page_helpers import load_clients, wait_api, wait_for_a_scrollable_log
from tests.browser.test_timeline import scrub_to
from tests.conftest import port_held, run_asgi, wait_until
from tests.mux.conftest import recv_exactly

SNAPSHOTS = "() => window.__muxscope.frames.snapshot"
CHART_TIMES = "() => window.__muxscope.charts.times.slice()"
GAP_COUNT = re.compile(r"… (\d+) events not")
SNAPSHOT_AT = re.compile(r"snapshot: state at seq (\d+)")


def test_slow_motion_set_on_one_page_shows_on_another_which_can_turn_it_off(dashboard):
    """No frame carried `delay_ms`: a second page kept showing 0 ms, and typing 0 there sent
    nothing (it thought the loop was at 0 already), so it could not end the slow motion."""
    page_a = dashboard.page
    context_b = page_a.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page_b = context_b.new_page()
        page_b.goto(dashboard.base + "/")
        page_b.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
        slow_a, slow_b = page_a.get_by_label("Slow motion"), page_b.get_by_label("Slow motion")
        slow_a.fill("500")
        slow_a.press("Enter")
        wait_api(dashboard, lambda s: s["delay_ms"] == 500, "page A's slow motion")
        expect(slow_b).to_have_value("500", timeout=5000)
        expect(page_b.locator("#loop-state")).to_contain_text("+500 ms", timeout=5000)
        slow_b.fill("0")
        slow_b.press("Enter")
        wait_api(dashboard, lambda s: s["delay_ms"] == 0, "page B ends the slow motion")
        page_a.locator("body").click(position={"x": 5, "y": 5})  # A's field shows, unfocused
        expect(slow_a).to_have_value("0", timeout=5000)
    finally:
        context_b.close()


def test_charts_start_afresh_for_a_restarted_server(browser: Browser):
    """The series are seconds since the engine's start: after a restart on the same port the
    page appended the new server's times (1, 2, 3 s) to the old one's (…12, 13 s), and the
    time axis folded back on itself."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        with run_asgi(create_app(Settings(http_port=0, echo_port=0))) as base:
            port = int(base.rsplit(":", 1)[1])
            page.goto(base + "/")
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
            page.wait_for_function(f"() => ({CHART_TIMES})().length >= 4", timeout=15_000)
            page.wait_for_function(f"() => ({CHART_TIMES})().at(-1) >= 4", timeout=15_000)
        restarted = time.monotonic()  # the new engine starts after this: younger than it
        with run_asgi(create_app(Settings(http_port=0, echo_port=0)), port=port):
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 2", timeout=15_000)
            page.wait_for_function(f"() => ({CHART_TIMES})().length >= 2", timeout=15_000)
            times = page.evaluate(CHART_TIMES)
            assert times == sorted(times) and len(set(times)) == len(times), times
            assert times[-1] <= time.monotonic() - restarted + 0.5, (
                f"samples older than the restarted server: {times}")
    finally:
        context.close()


def test_a_lost_server_is_said_and_its_last_state_dimmed_until_it_is_back(browser: Browser):
    """With the server stopped only the header's link line changed: the connection list, the
    syscall line and the panels went on looking current (a review in Chromium, session 43)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    notice = page.locator("#stale-notice")
    dimmed = "() => getComputedStyle(document.querySelector('main.grid')).opacity"
    try:
        with run_asgi(create_app(Settings(http_port=0, echo_port=0))) as base:
            port = int(base.rsplit(":", 1)[1])
            page.goto(base + "/")
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
            expect(notice).to_be_hidden()
            assert page.evaluate(dimmed) == "1"
        with port_held(port):
            expect(notice).to_be_visible(timeout=10_000)
            expect(notice).to_have_text(re.compile(r"^The server is not answering: the\s+panels "
                                                   r"below show the last state it sent"))
            expect(page.locator("#ws-status")).to_contain_text("disconnected")
            assert float(page.evaluate(dimmed)) < 1
        with run_asgi(create_app(Settings(http_port=0, echo_port=0)), port=port):
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 2", timeout=15_000)
            expect(notice).to_be_hidden(timeout=5000)
            assert page.evaluate(dimmed) == "1"
    finally:
        context.close()


def _hold_the_log(page) -> None:
    """Scroll the event log up (under load): it holds still and offers "Jump to latest"."""
    wait_for_a_scrollable_log(page)
    page.locator("#event-log").hover()
    page.mouse.wheel(0, -400)
    expect(page.locator("#log-jump-btn")).to_be_visible(timeout=5000)


def test_the_logs_gap_markers_count_every_event_it_did_not_list(dashboard):
    """Scrolled up, the log keeps at most 1,000 waiting events and let the rest fall off
    uncounted: after "Jump to latest" its marker said 793 where the seq numbers jumped 2,797."""
    page = dashboard.page
    jump = page.locator("#log-jump-btn")
    with load_clients(dashboard, 4, 16, 20):
        _hold_the_log(page)
        held_at = page.evaluate("() => window.__muxscope.lastSeq")
        # far more than the 1,000 events the held log keeps waiting
        page.wait_for_function(f"() => window.__muxscope.lastSeq > {held_at} + 3000",
                               timeout=20_000)
    assert dashboard.api.post("/api/loop", json={"action": "pause"}).status_code == 200
    try:
        jump.click()
        expect(jump).to_be_hidden(timeout=5000)
        rows: list[int | str] = wait_until(lambda: _rows_after_the_jump(page, held_at + 3000),
                                           5, "the rows painted after the jump")
    finally:
        assert dashboard.api.post("/api/loop", json={"action": "resume"}).status_code == 200
    checked = 0
    last_seq: int | None = None
    said = 0
    for item in rows:
        if isinstance(item, str) and (snapshot := SNAPSHOT_AT.search(item)):
            last_seq, said = int(snapshot.group(1)), 0   # the state it holds is no gap
            continue
        if isinstance(item, str) and "among them a snapshot" in item:
            last_seq = None   # a re-sync fell off unlisted: the seq numbers restart from it
            continue
        if isinstance(item, str):
            match = GAP_COUNT.search(item)
            said += int(match.group(1)) if match else 0
            continue
        if last_seq is not None:
            assert item - last_seq - 1 == said, f"#{last_seq} → #{item}, the markers said {said}"
            checked += said > 0
        last_seq, said = item, 0
    assert checked >= 1, rows


def _rows_after_the_jump(page, past: int) -> list[int | str] | None:
    """The log's rows once the jump has been painted: its newest row is past `past`. (The
    first paint may have made a marker of its own, for a start under load with over 500
    events waiting: that one is no sign the jump was painted.)"""
    rows = page.evaluate("""() => [...document.querySelectorAll('#event-log li')]
        .map(li => li.dataset.seq ? +li.dataset.seq : li.textContent)""")
    seqs = [r for r in rows if isinstance(r, int)]
    return rows if seqs and seqs[-1] > past else None


def test_another_clients_breakpoints_and_flaws_show_without_a_reload(dashboard):
    """The lists were read at start, on a hit, a detection or a reconnect only: a breakpoint
    added elsewhere stayed unseen, one deleted elsewhere stayed listed (its Delete then got a
    404), and a flaw switched on elsewhere showed off, so switching another one got a 409."""
    page, api = dashboard.page, dashboard.api
    listed = page.locator("#breakpoint-list")
    expect(listed).to_contain_text("no breakpoints", timeout=5000)
    bp = api.post("/api/breakpoints", json={"when": "backpressure"}).json()
    assert api.post("/api/flaws/eof_ignored", json={"on": True}).status_code == 200
    try:
        expect(listed).to_contain_text(f"Breakpoint {bp['id']}: backpressure", timeout=8000)
        expect(page.get_by_label("Flaw: EOF never handled", exact=True)).to_be_checked(
            timeout=8000)
    finally:
        api.delete(f"/api/breakpoints/{bp['id']}")
        api.post("/api/flaws/eof_ignored", json={"on": False})
    expect(listed).to_contain_text("no breakpoints", timeout=8000)
    expect(page.get_by_label("Flaw: EOF never handled", exact=True)).not_to_be_checked(
        timeout=8000)


def test_a_breakpoint_hit_says_which_fd_matched(dashboard):
    """An "any fd" breakpoint paused the loop without saying on which fd: the engineer had to
    dig through the log for it. The page must name the fd the engine matched. That is this
    test's connection unless a stray beat it: under xdist another worker's port probe may reach
    this app's listener, and once a stray connection's readiness came first (CI, session 51)."""
    page, api = dashboard.page, dashboard.api
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        bp = api.post("/api/breakpoints", json={"when": "readable"}).json()
        sock.sendall(b"here")
        hit = page.locator("#breakpoint-hit")
        expect(hit).to_contain_text(f"Breakpoint {bp['id']} fired at iteration ", timeout=8000)
        matched = next(b for b in api.get("/api/breakpoints").json() if b["id"] == bp["id"])
        assert matched["hits"] >= 1 and matched["last_fd"] is not None, matched
        expect(hit).to_contain_text(f"on fd {matched['last_fd']} ")
        expect(hit).to_contain_text(f"the engine's wait #{matched['last_wait']})")
        if matched["last_fd"] != fd:  # a stray's readiness first: ours is the next one
            print(f"the breakpoint matched fd {matched['last_fd']}, not this test's {fd}")
        api.delete(f"/api/breakpoints/{bp['id']}")
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        assert recv_exactly(sock, 4) == b"here"


def test_a_page_opened_while_the_loop_sits_at_a_breakpoint_says_so(dashboard):
    """The hit line is built from the `loop` event: a page opened after it showed a paused
    loop and no word of the breakpoint holding it."""
    page, api = dashboard.page, dashboard.api
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        bp = api.post("/api/breakpoints", json={"when": "readable", "fd": fd}).json()
        sock.sendall(b"late")
        wait_until(lambda: api.get("/api/state").json()["loop"] == "paused", 5, "the hit")
        assert api.post("/api/loop", json={"action": "step"}).status_code == 200
        wait_until(lambda: (api.get("/api/state").json()["paused_at"] or {}).get("steps") == 1,
                   5, "the step")
        late = page.context.new_page()
        try:
            late.goto(dashboard.base + "/")
            hit = late.locator("#breakpoint-hit")
            expect(hit).to_contain_text(f"Breakpoint {bp['id']} fired before this page's timeline",
                                        timeout=8000)
            expect(hit).to_contain_text(f"on fd {fd}")
            expect(hit).to_contain_text("the loop is paused, stepped 1 time since: Step or Resume")
            late.get_by_role("button", name="Step", exact=True).click()
            expect(hit).to_contain_text("stepped 2 times since", timeout=8000)
            api.delete(f"/api/breakpoints/{bp['id']}")
            assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
            expect(hit).to_contain_text("(the loop has been resumed since", timeout=8000)
            assert recv_exactly(sock, 4) == b"late"
            late.reload()   # a fresh snapshot of a running loop: no hit to show
            late.wait_for_function("() => window.__muxscope.frames.snapshot >= 1", timeout=8000)
            late.evaluate("() => new Promise((painted) => requestAnimationFrame(() =>"
                          " requestAnimationFrame(painted)))")   # the panel painted since
            expect(hit).to_be_hidden()
        finally:
            late.close()
    assert dashboard.console_errors == []


def test_a_replay_that_begins_at_a_breakpoint_says_so(open_dashboard, tmp_path):
    """A rotated segment can begin while the loop sits at a breakpoint: its snapshot says so
    (`paused_at`), and the replayed page showed nothing of it."""
    recording = tmp_path / "segment.jsonl"
    wait = {"kind": "wait", "backend": "epoll", "registered": 3, "timeout_ms": 250, "ready": 0,
            "duration_us": 250}
    lines = [
        {"type": "snapshot", "seq": 40, "started_at": 1.0, "state": {
            "loop": "paused", "paused_at": {"breakpoint": 3, "wait": 17, "fd": 7, "steps": 2}}},
    ]
    for state, cause in (("step", "step"), ("wait", ""), ("paused", "step"),
                         ("step", "step"), ("wait", ""), ("paused", "step"),
                         ("running", "command"), ("wait", "")):
        seq = 41 + len(lines) - 1
        lines.append({"seq": seq, "ts": seq / 10, **wait} if state == "wait" else
                     {"seq": seq, "ts": seq / 10, "kind": "loop", "state": state, "delay_ms": 0,
                      "flaw": None, "cause": cause})
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = open_dashboard(Settings(http_port=0, replay_file=recording))
    hit = replay.page.locator("#breakpoint-hit")
    expect(hit).to_contain_text("Breakpoint 3 fired before this page's timeline began (the "
                                "engine's wait #17) on fd 7 (the loop has been resumed since",
                                timeout=8000)
    expect(replay.page.locator("#loop-state")).to_have_text("running (as recorded)")   # at the end
    scrub_to(replay.page, 1)   # the first stepped iteration: three steps since the hit
    expect(hit).to_contain_text("the loop is paused, stepped 3 times since", timeout=8000)
    # the header tells the loop's state then (it said the end's while the view was paused)
    expect(replay.page.locator("#loop-state")).to_have_text("paused (as recorded)")
    scrub_to(replay.page, 2)   # resumed after it
    expect(replay.page.locator("#loop-state")).to_have_text("running (as recorded)")
    assert replay.console_errors == []


def test_a_replay_at_the_end_of_a_recording_says_the_engine_shut_down(open_dashboard, tmp_path):
    """A recording ends with the shutdown, every fd unregistered: the header read "running"
    and the grid "no fds registered yet" there."""
    recording = tmp_path / "ended.jsonl"
    lines: list[dict] = [{"type": "snapshot", "seq": 0, "started_at": 1.0,
                          "state": {"control_fd": 3}}]

    def add(**event: object) -> None:
        seq = len(lines)
        lines.append({"seq": seq, "ts": seq / 10, **event})

    for fd in (3, 5):
        add(kind="interest", fd=fd, op="register", flags=["EPOLLIN"])
    for ready in (1, 0):
        add(kind="wait", backend="epoll", registered=2, timeout_ms=250, ready=ready,
            duration_us=250)
    for fd in (5, 3):  # the shutdown: the control fd goes last
        add(kind="interest", fd=fd, op="unregister", flags=[])
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = open_dashboard(Settings(http_port=0, replay_file=recording))
    state = replay.page.locator("#loop-state")
    expect(state).to_have_text("stopped (the engine shut down)", timeout=8000)
    scrub_to(replay.page, 1)   # before the shutdown
    expect(state).not_to_have_text(re.compile("stopped"))
    assert replay.console_errors == []


def test_a_replayed_trace_download_whose_last_connection_closed_is_no_shutdown(
        open_dashboard, tmp_path):
    """A trace download has no registrations from before its first event: its last
    connection's close emptied the page's fd list, which read as the engine's shutdown."""
    path = trace_of_a_live_engine(tmp_path, "poll")
    replay = open_dashboard(Settings(http_port=0, replay_file=path))
    expect(replay.page.locator("#replay-note")).to_contain_text("no snapshot line")
    replay.page.wait_for_function("() => window.__muxscope.frames.events >= 1", timeout=8000)
    expect(replay.page.locator("#loop-state")).to_have_text("running (as recorded)", timeout=8000)
    # nor is its first line in the log a snapshot's, which the note says it does not have
    first = replay.page.locator("#event-log li").first
    expect(first).to_have_text(re.compile(r"^— the file starts here: it has no snapshot, the "
                                          r"state before seq \d+ is not known —$"))
    assert replay.console_errors == []


def test_a_replayed_trace_downloads_interest_list_counts_what_the_wait_was_passed(
        open_dashboard, tmp_path):
    """A trace download starts after the control fd and the listeners were registered: the
    syscall detail said "1 of 4 fds ready" (the wait's own count) and the interest list's
    header "1 fds", its lines leaving the three out without a word."""
    path = trace_of_a_live_engine(tmp_path, "epoll")
    replay = open_dashboard(Settings(http_port=0, replay_file=path))
    page = replay.page
    detail = page.locator("#syscall-detail")
    expect(detail).to_contain_text(re.compile(r"of \d+ fds ready"), timeout=8000)
    header = page.locator("#backend-sets h3").first
    expect(header).to_contain_text("interest list")

    def agree() -> bool:
        passed = re.search(r"of (\d+) fds ready", detail.text_content() or "")
        listed = re.search(r": (\d+) fds?$", header.text_content() or "")
        return bool(passed and listed and passed[1] == listed[1])
    wait_until(agree, 8, "the header's count is the wait's")
    sets = page.locator("#backend-sets").text_content() or ""
    assert re.search(r"… and \d+ more in it, not known to this page \(registered before", sets), sets
    assert replay.console_errors == []


def test_replay_shows_a_flaw_that_fired_as_detected_not_as_on(open_dashboard, tmp_path):
    """The replayed page never read the catalogue and made every flaw that fired "on", under
    its raw name: all seven at once in a long recording, though one at a time is the rule."""
    recording = tmp_path / "run.jsonl"
    live = open_dashboard(Settings(http_port=0, echo_port=0, record=recording), "-live")
    assert live.api.post("/api/flaws/eof_ignored", json={"on": True}).status_code == 200
    sock = live.connect()
    sock.sendall(b"x")
    assert recv_exactly(sock, 1) == b"x"
    sock.close()  # EOF the flawed handler ignores: the detector fires
    wait_until(lambda: any(f["detections"] for f in live.api.get("/api/flaws").json()), 10,
               "the detection")
    assert live.api.post("/api/flaws/eof_ignored", json={"on": False}).status_code == 200

    def recorded() -> list[dict]:  # whole lines (the last may be being written): a newline ends one
        return [json.loads(line) for line in recording.read_bytes().split(b"\n")[1:-1]]

    # the detection, and the switch off after it: waiting for the detection alone, the file
    # could end before the off (once in a browser run: the replay showed the flaw on)
    wait_until(lambda: any(e["kind"] == "flaw" for e in recorded()) and any(
        e["kind"] == "loop" and e.get("cause") == "flaw" and e.get("flaw") is None
        for e in recorded()), 10, "the detection and the switch off recorded")

    replay = open_dashboard(Settings(http_port=0, replay_file=recording), "-replay")
    # a replay is not "live", and no server keeps running behind it
    expect(replay.page.locator("#ws-status")).to_have_text("replay")
    expect(replay.page.locator("#timeline-caption")).not_to_contain_text("keeps running")
    switch = replay.page.get_by_label("Flaw: EOF never handled", exact=True)
    expect(switch).not_to_be_checked(timeout=8000)
    item = replay.page.locator("#zoo-list li[data-flaw='eof_ignored']")
    expect(item.locator(".flaw-message")).to_contain_text("EOF is never handled", timeout=8000)
    assert int(item.locator(".flaw-count").get_attribute("data-value")) >= 1
    assert replay.page.locator("#zoo-list li.on").count() == 0


def test_no_error_piles_up_while_the_server_is_down(browser: Browser):
    """The 3 s re-reads of the breakpoints and the bug zoo (and the kernel panel's 1 s ones)
    went on with the server gone: the alert area filled with "network error" lines, which
    stayed after the reconnect. The header already says the page is disconnected; the
    re-reads wait for the connection."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        with run_asgi(create_app(Settings(http_port=0, echo_port=0))) as base:
            port = int(base.rsplit(":", 1)[1])
            page.goto(base + "/")
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
            # in view, the kernel panel reads /api/kernel every second (it did with the
            # server down too: two "network error"s a second)
            page.locator("#kernel-panel").scroll_into_view_if_needed()
        with port_held(port):
            expect(page.locator("#ws-status")).not_to_have_attribute("data-state", "open",
                                                                     timeout=10_000)
            # the loop's last state is no longer news (it said "running" with the server gone)
            expect(page.locator("#loop-state")).to_have_text("unknown (not connected)")
            page.wait_for_timeout(7000)  # a window of two re-read periods, not synchronisation
            errors = page.locator(".error-message").all_inner_texts()
        assert not [e for e in errors if "Reading" in e], errors
    finally:
        context.close()


def test_a_snapshot_that_fell_off_the_held_log_is_said_in_the_gap_marker(dashboard):
    """Scrolled up, a reconnect's snapshot marker could fall off the held log with the events
    around it, and the gap marker counted only events: the page had re-synced (the seq numbers
    around it do not follow each other) and the log no longer said so."""
    page = dashboard.page
    log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
    with load_clients(dashboard, 4, 16, 20):
        _hold_the_log(page)
        page.evaluate("() => window.__muxscope.socket.ws.close()")  # the page reconnects
        page.wait_for_function(f"() => ({SNAPSHOTS})() >= 2", timeout=10_000)
        resynced_at = page.evaluate("() => window.__muxscope.model.seq")
        # far more than the 1,000 events the held log keeps waiting: the snapshot falls off
        page.wait_for_function(f"() => window.__muxscope.lastSeq > {resynced_at} + 3000",
                               timeout=20_000)
    jump.click()
    expect(jump).to_be_hidden(timeout=5000)
    marker = log.locator("li.k-gap", has_text="among them a snapshot")
    expect(marker.first).to_contain_text("the page re-synced at seq ", timeout=5000)
    assert dashboard.console_errors == []


def test_the_queue_caption_follows_the_write_mode_and_names_the_low_water_mark(dashboard):
    """Reading resumes below the low-water mark, not once the queue is empty: the caption said
    "until the queue drains". Both marks come from the server (`limits` in /api/state)."""
    page, api = dashboard.page, dashboard.api
    limits = api.get("/api/state").json()["limits"]
    assert (limits["high_water"], limits["low_water"]) == (1 << 20, 256 << 10)
    caption = page.locator("#queue-caption")
    assert api.post("/api/backend", json={"name": "epoll", "write": "queued"}).status_code == 200
    expect(caption).to_contain_text("Queued writes", timeout=8000)
    expect(caption).to_contain_text("high-water mark (1.0 MiB)")
    expect(caption).to_contain_text("until it drains down to the low-water mark (256 KiB)")
    assert api.post("/api/backend", json={"name": "epoll", "write": "eager"}).status_code == 200
    expect(caption).to_contain_text("Eager writes", timeout=8000)
    expect(caption).to_contain_text("low-water mark (256 KiB)")


def test_the_load_line_follows_the_servers_generated_clients(dashboard):
    """The count of generated clients came only in the answer to this page's own POST: clients
    added from another page or the API, or closed by the server, never showed; and one the
    server closed went uncounted (select's refusals of fds of 1024 and up vanished so)."""
    page, api = dashboard.page, dashboard.api
    status = page.locator("#load-status")
    added = api.post("/api/load", json={"connections": 3, "message_size": 64, "rate": 0})
    assert added.status_code == 202
    cap = added.json()["cap"]
    expect(status).to_have_text(f"3 generated clients (cap {cap})", timeout=8000)
    wait_until(lambda: len(api.get("/api/state").json()["connections"]) == 3)
    fds = [c["fd"] for c in api.get("/api/state").json()["connections"]]
    assert api.post(f"/api/connections/{min(fds)}/close").status_code == 200
    expect(status).to_have_text(f"2 generated clients (cap {cap}); 1 closed by the server",
                                timeout=8000)
    assert api.delete("/api/load").status_code == 200
    expect(status).to_have_text("no generated clients", timeout=8000)


LOAD_TEXTS = """() => {
    window.__loadTexts = [];
    const el = document.querySelector('#load-status');
    new MutationObserver(() => window.__loadTexts.push(el.textContent))
        .observe(el, { childList: true, characterData: true, subtree: true });
}"""


def test_the_pages_own_add_and_remove_are_not_undone_by_an_older_count(dashboard):
    """Every paint rewrote the load line from the last stats frame: right after this page's
    own Add its answer gave way to the count from before it, and "removed" never showed."""
    page, api = dashboard.page, dashboard.api
    status = page.locator("#load-status")
    assert api.post("/api/load", json={"connections": 3, "message_size": 64,
                                       "rate": 0}).status_code == 202
    expect(status).to_contain_text("3 generated clients", timeout=8000)
    page.evaluate(LOAD_TEXTS)
    page.get_by_label("Clients", exact=True).fill("2")
    page.get_by_label("Rate per client (msg/s)").fill("0")
    page.get_by_role("button", name="Add clients").click()
    expect(status).to_contain_text("5 generated clients", timeout=8000)
    page.get_by_role("button", name="Remove clients").click()
    expect(status).to_have_text("no generated clients", timeout=8000)
    texts = page.evaluate("() => window.__loadTexts")
    after_add = texts[next(i for i, t in enumerate(texts) if t.startswith("5 "))]
    assert "generated clients removed" in texts, texts
    assert not [t for t in texts[texts.index(after_add):] if t.startswith("3 ")], texts


def test_a_network_error_from_the_outage_goes_when_the_server_is_back(browser: Browser):
    """Pause pressed while the server was down said "network error", and the line stayed up
    beside a page working again with the restarted server until dismissed. Refusals the
    server gave (a 422) are still news: they stay."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = page.locator("#error-area p.error-message")
    try:
        with run_asgi(create_app(Settings(http_port=0, echo_port=0))) as base:
            port = int(base.rsplit(":", 1)[1])
            page.goto(base + "/")
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
            page.get_by_label("Clients", exact=True).fill("")
            page.get_by_role("button", name="Add clients").click()
            expect(errors.filter(has_text="422")).to_have_count(1, timeout=5000)
        with port_held(port):
            expect(page.locator("#ws-status")).not_to_have_attribute("data-state", "open",
                                                                     timeout=10_000)
            page.get_by_role("button", name="Pause", exact=True).click()
            expect(errors.filter(has_text="network error")).to_have_count(1, timeout=5000)
        with run_asgi(create_app(Settings(http_port=0, echo_port=0)), port=port):
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 2", timeout=15_000)
            expect(errors.filter(has_text="network error")).to_have_count(0, timeout=5000)
            expect(errors.filter(has_text="422")).to_have_count(1)
            expect(errors).to_have_count(1)
    finally:
        context.close()


def test_a_server_shut_down_is_said_until_the_page_is_back(browser: Browser):
    """Ctrl-C: the page says the server shut down, and keeps saying it while its reconnects
    fail with bare codes (it showed "code 1012", then "code 1006"). A server back on the same
    port clears it: that one killed outright is a bare 1006, not a shutdown."""
    with socket.socket() as probe:  # a free port, for the server started again on it
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    args = ("--http-port", port, "--echo-port", "0", "--no-udp")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    status = page.locator("#ws-status")
    try:
        with launch(*args) as run:
            url = run.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")[1]
            page.goto(url)
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 1", timeout=10_000)
            expect(status).to_have_text("live")
            code, stderr = run.stop(signal.SIGINT)
            assert code == 0, stderr
        with port_held(int(port)):
            expect(status).to_contain_text(
                "1001 muxscope is shutting down; reconnecting: code 1006", timeout=10_000)
        with launch(*args) as run:
            run.read_until(r"Dashboard: ")
            page.wait_for_function(f"() => ({SNAPSHOTS})() >= 2", timeout=20_000)
            expect(status).to_have_text("live")
            run.stop(signal.SIGKILL)
        with port_held(int(port)):
            expect(status).to_contain_text("disconnected (code 1006; retrying", timeout=10_000)
            assert "shutting down" not in (status.text_content() or "")
    finally:
        context.close()
