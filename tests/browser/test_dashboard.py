"""The dashboard driven as a user drives it: real Chromium, real app, real sockets (SPEC §5).

Every wait is a deadline (expect / wait_for_function with a timeout), never a fixed sleep,
except where a test must show that something does *not* happen (a short settle window).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from app.settings import Settings
from tests.browser.conftest import echo, peer_of, server_fd
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly, send_quietly

LOAD_RESOURCE = "Failed to load resource"


# -- helpers ---------------------------------------------------------------------------------

def real_console_errors(dashboard) -> list[str]:
    """Console errors, minus Chromium's own line for every non-2xx fetch (an answer, not a bug)."""
    return [e for e in dashboard.console_errors if LOAD_RESOURCE not in e]


def state(dashboard) -> dict[str, Any]:
    return dashboard.api.get("/api/state").json()


def wait_api(dashboard, pred, what: str, timeout: float = 5.0) -> dict[str, Any]:
    last: list[dict[str, Any]] = [{}]

    def matching_state() -> dict[str, Any] | None:
        last[0] = state(dashboard)
        return last[0] if pred(last[0]) else None

    try:
        found: dict[str, Any] = wait_until(matching_state, timeout, what, interval=0.02)
    except AssertionError as exc:
        raise AssertionError(f"{what}: API state never matched; last: {last[0]}") from exc
    return found


@contextlib.contextmanager
def load_clients(dashboard, connections: int, size: int, rate: int) -> Iterator[None]:
    """The page's own load generator (POST /api/load) for the block, stopped after it."""
    res = dashboard.api.post("/api/load", json={"connections": connections,
                                                "message_size": size, "rate": rate})
    assert res.status_code == 202, res.text
    try:
        yield
    finally:  # an error in the block stays the one reported
        stopped = dashboard.api.delete("/api/load")
    assert stopped.status_code == 200, stopped.text


def row(page: Page, fd: int):
    return page.locator(f'#connection-list tr[data-fd="{fd}"]')


def loop_posts(page: Page) -> list[str]:
    """Record every POST /api/loop the page sends (body text), from now on."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "")
            if r.method == "POST" and r.url.split("?")[0].endswith("/api/loop") else None)
    return posts


def wait_for_a_scrollable_log(page: Page) -> None:
    """Until the event log holds more than two screens of rows (so it can be scrolled up)."""
    page.wait_for_function("""() => { const el = document.querySelector('#event-log');
                                      return el.scrollHeight > 2 * el.clientHeight; }""",
                           timeout=10_000)


def settled_scroll_top(page: Page, selector: str, timeout: float = 2.0) -> int:
    """`selector`'s scrollTop once two reads 100 ms apart agree (a wheel scroll has landed)."""
    element = page.locator(selector)
    last = element.evaluate("el => el.scrollTop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the spacing of the two reads
        now = element.evaluate("el => el.scrollTop")
        if now == last:
            return int(now)
        last = now
    raise AssertionError(f"{selector} kept scrolling for {timeout} s")


def settle(page: Page) -> None:
    """One round trip through the page's event loop: handlers of earlier input have run."""
    page.evaluate("() => new Promise(r => setTimeout(r, 0))")


# -- 1. a client appears ---------------------------------------------------------------------

def test_nc_client_appears_in_connection_list_within_1s(dashboard):
    page = dashboard.page
    started = time.monotonic()
    with dashboard.connect() as sock:
        peer = peer_of(sock)
        assert peer.startswith("127.0.0.1:")
        peer_cell = page.locator("#connection-list tr[data-fd] td.peer", has_text=re.compile(
            "^" + re.escape(peer) + "$"))
        remaining_ms = max(1.0, 1000 - (time.monotonic() - started) * 1000)
        expect(peer_cell).to_have_count(1, timeout=remaining_ms)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"row appeared after {elapsed:.3f} s"
        fd = server_fd(dashboard, sock)
        tr = row(page, fd)
        expect(tr).to_have_count(1)
        expect(tr.locator("td.fd")).to_have_text(str(fd))
        expect(tr.locator("td.peer")).to_have_text(peer)
        expect(page.locator("#connection-count")).to_have_text("1")
        expect(tr.get_by_role("button", name=f"Close fd {fd}", exact=True)).to_be_enabled()
    assert real_console_errors(dashboard) == []


# -- 2. live backend switch from the page ------------------------------------------------------

SYSCALL = {"select": r"^select\(", "poll": r"^poll\(", "epoll": r"^epoll_wait\("}


def test_poll_syscall_line_shows_the_whole_array_passed_in(dashboard):
    """strace's form: poll([{fd, events} for every registered fd], nfds, timeout) = n, then
    the entries the kernel filled in; not only the ready ones in the array's place."""
    page = dashboard.page
    assert dashboard.api.post("/api/backend", json={"name": "poll"}).status_code == 200
    with dashboard.connect() as sock:
        assert echo(sock, b"poll me\n") == b"poll me\n"
        fd = server_fd(dashboard, sock)
        line = page.locator("#syscall-line")
        expect(line).to_have_text(re.compile(rf"^poll\(\[.*\{{fd={fd}, events=POLLIN\}}"),
                                  timeout=5000)
        call = re.match(r"^poll\(\[(.*?)\], (\d+), (-?\d+)\) = (\d+)(.*)$", line.inner_text())
        assert call, line.inner_text()
        passed = re.findall(r"\{fd=\d+, events=[A-Z|]+\}", call[1])
        assert len(passed) == int(call[2]) >= 3, call[0]  # listener, control fd, our client
        filled = re.findall(r"\{fd=\d+, revents=[A-Z|]+\}", call[5])
        assert len(filled) == int(call[4]), call[0]


def test_select_line_prints_the_timeval_select_was_passed(dashboard):
    """CPython passes select microseconds; the line printed the event's milliseconds, rounded
    up (a timer's 249.3 ms as tv_usec=250000). A recording without them still prints its ms."""
    lines = dashboard.page.evaluate("""async () => {
        const { syscallLine } = await import('/static/js/vocab.js');
        const model = { regsAtWait: () => new Map(), interestAtWait: () => null };
        const wait = (extra) => ({backend: 'select', registered: 0, ready: 0, ready_list: [],
                                  duration_us: 1, ...extra});
        return [syscallLine(wait({timeout_ms: 250, timeout_us: 249300}), model, null),
                syscallLine(wait({timeout_ms: 1500}), model, null),
                syscallLine(wait({timeout_ms: null}), model, null)];
    }""")
    assert lines == ["select(0, NULL, NULL, NULL, {tv_sec=0, tv_usec=249300}) = 0",
                     "select(0, NULL, NULL, NULL, {tv_sec=1, tv_usec=500000}) = 0",
                     "select(0, NULL, NULL, NULL, NULL) = 0"]


def test_select_syscall_line_returns_what_select_returns(dashboard):
    """select returns the bits set in its three sets: an fd both readable and writable counts
    twice. The line printed the number of ready fds (`= 2` where strace showed `= 3 (in [4
    23], out [23])`), and never which sets came back."""
    page, api = dashboard.page, dashboard.api
    assert api.post("/api/backend", json={"name": "select", "write": "queued"}).status_code == 200
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        assert api.post("/api/loop", json={"action": "pause"}).json()["loop"] == "paused"

        def stepped_to(flags: set[str]) -> None:
            assert api.post("/api/loop", json={"action": "step"}).status_code == 200
            wait_api(dashboard, lambda s: any(
                r["fd"] == fd and set(r["flags"]) == flags
                for r in (s["last_wait"] or {}).get("ready_list", [])), f"a step: {flags}")

        sock.sendall(b"a")
        stepped_to({"read"})  # received and queued: write interest joins
        # the wait was passed no write set; the grid's stripes are the interest now (its
        # caption said "what was passed in" over an orange stripe select was never given).
        # As strace shows it: an empty set is NULL (CPython passes none), fds are separated
        # by spaces, the timeout is a struct timeval (the line had "[], [], 0.25")
        line = page.locator("#syscall-line")
        expect(line).to_have_text(re.compile(
            rf"^select\(\d+, \[(\d+ )*{fd}( \d+)*\], NULL, NULL, "
            r"\{tv_sec=\d+, tv_usec=\d+\}\) = "), timeout=5000)
        page.wait_for_function(f"() => window.__muxscope.model.regs.get({fd})?.bits.has('out')",
                               timeout=5000)
        caption = page.locator("#backend-caption")
        expect(caption).to_contain_text("stripes are the interest now")
        expect(caption).to_contain_text("The sets below are what that wait was passed")
        sock.sendall(b"b")
        stepped_to({"read", "write"})  # readable again, and writable
        ready = state(dashboard)["last_wait"]["ready"]
        line = page.locator("#syscall-line")
        expect(line).to_have_text(re.compile(rf"out \[[^\]]*\b{fd}\b"), timeout=5000)
        call = re.match(r"^select\(\d+, .*\) = (\d+) \(in \[([^\]]*)\], out \[([^\]]*)\]\)$",
                        line.inner_text())
        assert call, line.inner_text()
        back_in, back_out = (re.findall(r"\d+", call[i]) for i in (2, 3))
        assert str(fd) in back_in and str(fd) in back_out
        assert int(call[1]) == len(back_in) + len(back_out) == ready + 1
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        sock.sendall(b"c")
        sock.settimeout(5)
        assert recv_exactly(sock, 3) == b"abc"  # nothing lost to the steps


LAST_WAIT_TEXTS = """() => ({
  line: document.querySelector('#syscall-line').textContent,
  detail: document.querySelector('#syscall-detail').textContent,
  sets: document.querySelector('#backend-sets').innerText,
})"""


def test_the_syscall_line_and_the_fd_panel_show_the_same_wait(dashboard):
    """Both say "the last wait": under load the line (repainted at most every 100 ms) and the
    fd panel's ready list (every frame) showed different waits, 20 samples in 60 ("= 18",
    "18 of 23 fds ready", "ready list ...: 19 fds")."""
    page = dashboard.page
    with load_clients(dashboard, 20, 64, 50):
        expect(page.locator("#backend-sets")).to_contain_text("ready list", timeout=5000)
        seen = set()
        for _ in range(40):  # samples of one moment each (one evaluate reads all three)
            texts = page.evaluate(LAST_WAIT_TEXTS)
            line = re.search(r"= (\d+)$", texts["line"].strip())
            detail = re.search(r"(\d+) of \d+ fds ready", texts["detail"])
            listed = re.search(r"ready list \(returned by that epoll_wait\): (\d+) fds?",
                               texts["sets"])
            assert line and detail and listed, texts
            assert line[1] == detail[1] == listed[1], (line[1], detail[1], listed[1], texts)
            seen.add(line[1])
            page.wait_for_timeout(37)  # a sampling period, not synchronisation
        assert len(seen) > 1, "the load never changed the ready count: nothing was compared"


def _streaming_clients(dashboard, n: int, stop: threading.Event) -> list[threading.Thread]:
    """Clients that write 200 kB at a time and read what comes back, without blocking: their
    fds keep changing between readable, writable and both."""
    def run() -> None:
        with dashboard.connect() as sock:
            sock.setblocking(False)
            chunk = b"y" * 200_000
            while not stop.is_set():
                with contextlib.suppress(BlockingIOError):
                    sock.send(chunk)
                with contextlib.suppress(BlockingIOError):
                    while sock.recv(65536):
                        pass
                stop.wait(0.001)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def _fds(text: str) -> set[str]:
    return set(re.findall(r"\d+", text.split("…")[0]))


@pytest.mark.parametrize("backend", ["select", "poll"])
def test_the_fd_panel_never_shows_a_ready_fd_that_was_not_passed_in(dashboard, backend):
    """The panel's "out" half came from the wait the syscall line shows, its "in" half from the
    newest one: a write-ready fd that was not in the write set passed in, in 23 samples of 57."""
    page = dashboard.page
    assert dashboard.api.post("/api/backend", json={"name": backend}).status_code == 200
    stop = threading.Event()
    threads = _streaming_clients(dashboard, 3, stop)
    try:
        sets = page.locator("#backend-sets")
        expect(sets).to_contain_text("revents" if backend == "poll" else "out: the sets",
                                     timeout=5000)
        both = 0
        for _ in range(40):
            text = sets.inner_text()
            if backend == "select":
                half = text.index("out: the sets")
                for name in ("read", "write"):
                    passed = _fds(re.search(rf"{name}:\s+\[([^\]]*)\]", text[:half])[1])
                    back = _fds(re.search(rf"{name}:\s+\[([^\]]*)\]", text[half:])[1])
                    assert back <= passed, (name, back - passed, text)
                both += bool(re.search(r"write:\s+\[\d", text[half:]))
            else:
                for fd, events, revents in re.findall(
                        r"\{fd=(\d+), events=([^,]*), revents=([^}]*)\}", text):
                    for bit in ("POLLIN", "POLLOUT"):
                        assert bit not in revents or bit in events, (fd, events, revents)
                both += "revents=POLLIN|POLLOUT" in text or "revents=POLLOUT" in text
            page.wait_for_timeout(60)  # a sampling period, not synchronisation
        assert both, "no wait came back writable: nothing was compared"
    finally:
        stop.set()
        for t in threads:
            t.join(5)


WHEEL_IN_THE_PIN_FRAME = """() => new Promise((resolve) => {
  // The frame right after new rows came in (the pin to the end still pending): a wheel up, and
  // the scroll the browser performs for it. The log must stay where the user put it.
  const el = document.querySelector('#event-log');
  const probe = () => {
    if (!window.__muxscope.logPinPending) { requestAnimationFrame(probe); return; }
    el.dispatchEvent(new WheelEvent('wheel', { deltaY: -100, bubbles: true }));
    el.scrollTop -= 100;
    const after = () => resolve(el.scrollTop + el.clientHeight >= el.scrollHeight - 4);
    requestAnimationFrame(() => requestAnimationFrame(after));
  };
  requestAnimationFrame(probe);
})"""


def test_scrolling_the_log_up_stops_auto_scroll(dashboard):
    """SPEC §5: auto-scroll that stops when the user scrolls up, also in the frame where rows
    have just been appended (the page's own scrolling must not be taken for the user's)."""
    page = dashboard.page
    log, jump = page.locator("#event-log"), page.locator("#log-jump-btn")
    with load_clients(dashboard, 4, 16, 20):
        wait_for_a_scrollable_log(page)
        for _ in range(3):  # real input: one wheel notch up, while events keep coming
            log.hover()  # the mouse is over the log (the jump button's click moved it)
            page.mouse.wheel(0, -300)
            expect(jump).to_be_visible(timeout=2000)
            # the page holds the log on the wheel event; the scroll itself lands a moment later
            top = settled_scroll_top(page, "#event-log")
            page.wait_for_timeout(300)  # a settle window: the log must not move meanwhile
            assert log.evaluate("el => el.scrollTop") == top
            jump.click()
            expect(jump).to_be_hidden(timeout=2000)
        for _ in range(3):
            assert page.evaluate(WHEEL_IN_THE_PIN_FRAME) is False, "snapped back to the bottom"
            expect(jump).to_be_visible(timeout=2000)
            jump.click()
            expect(jump).to_be_hidden(timeout=2000)


def test_backend_switch_from_page_keeps_connection(dashboard):
    page = dashboard.page
    backend = page.get_by_label("Backend")
    with dashboard.connect() as sock:
        server_fd(dashboard, sock)
        assert echo(sock, b"before switching\n") == b"before switching\n"
        for i, name in enumerate(["poll", "select", "epoll"]):
            backend.select_option(name)
            st = wait_api(dashboard, lambda s, n=name: s["backend"]["name"] == n,
                          f"switch to {name}")
            assert st["backend"]["trigger"] == "level" and st["backend"]["oneshot"] is False
            expect(page.locator("#syscall-line")).to_have_text(re.compile(SYSCALL[name]),
                                                               timeout=5000)
            expect(page.locator("#backend-name")).to_have_text(name, timeout=5000)
            payload = f"after switch {i} to {name}\n".encode() * 3
            assert echo(sock, payload) == payload
            # the trigger / one-shot controls are only offered for epoll
            if name != "epoll":
                expect(page.get_by_label("Trigger")).to_be_disabled()
                expect(page.get_by_label("One-shot")).to_be_disabled()

        expect(page.get_by_label("Trigger")).to_be_enabled()
        page.get_by_label("Trigger").select_option("edge")
        wait_api(dashboard, lambda s: s["backend"]["trigger"] == "edge", "trigger edge")
        page.get_by_label("One-shot").check()
        st = wait_api(dashboard, lambda s: s["backend"]["oneshot"] is True, "one-shot")
        want = {"name": "epoll", "trigger": "edge", "oneshot": True}
        assert st["backend"] == {**st["backend"], **want}
        # the connection's interest now carries EPOLLET and EPOLLONESHOT
        conn = [c for c in st["connections"] if c["peer"] == peer_of(sock)]
        assert len(conn) == 1
        assert "EPOLLET" in conn[0]["interest"] and "EPOLLONESHOT" in conn[0]["interest"], conn
        expect(page.locator("#syscall-line")).to_have_text(re.compile(SYSCALL["epoll"]),
                                                           timeout=5000)
        for k in range(5):  # one-shot must re-arm after every round
            payload = f"edge one-shot round {k}\n".encode() * 50
            assert echo(sock, payload) == payload
        # the page agrees with the API after the switches
        expect(page.get_by_label("Backend")).to_have_value("epoll")
        expect(page.get_by_label("Trigger")).to_have_value("edge")
        expect(page.get_by_label("One-shot")).to_be_checked()
        assert len(state(dashboard)["connections"]) == 1  # nothing dropped
    assert real_console_errors(dashboard) == []
    assert page.locator("#error-area p.error-message").count() == 0


# -- 3. keyboard -------------------------------------------------------------------------------

def test_keyboard_space_pauses_and_s_steps(dashboard):
    page = dashboard.page
    engine = dashboard.engine
    posts = loop_posts(page)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    assert page.evaluate("() => document.activeElement === document.body")

    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible(timeout=3000)
    wait_api(dashboard, lambda s: s["loop"] == "paused", "space pauses")
    expect(page.locator("#loop-state")).to_have_text(re.compile("^paused"), timeout=3000)

    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible(timeout=3000)
    wait_api(dashboard, lambda s: s["loop"] == "running", "space resumes")

    # `s` while paused: exactly one wait
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible(timeout=3000)
    wait_api(dashboard, lambda s: s["loop"] == "paused", "space pauses again")
    waits = engine.stats.waits
    page.wait_for_timeout(300)  # settle: paused means no waits at all
    assert engine.stats.waits == waits, "waits went on while paused"
    with page.expect_response(lambda r: r.url.endswith("/api/loop"), timeout=5000) as step_res:
        page.keyboard.press("s")
    assert step_res.value.status == 200
    wait_until(lambda: engine.stats.waits != waits, 5, "the step's wait")
    page.wait_for_timeout(500)  # settle: a second wait would show up here
    assert engine.stats.waits == waits + 1, f"step ran {engine.stats.waits - waits} waits"
    assert state(dashboard)["loop"] == "paused"
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible(timeout=3000)
    wait_api(dashboard, lambda s: s["loop"] == "running", "resume after step")

    # typing a space in the "Slow motion" field does nothing to the loop
    n = len(posts)
    slowmo = page.get_by_label("Slow motion")
    slowmo.focus()
    page.keyboard.press("Space")
    page.keyboard.press("s")
    settle(page)
    assert posts[n:] == [], f"keys typed in a field reached the loop: {posts[n:]}"
    page.wait_for_timeout(200)
    assert state(dashboard)["loop"] == "running"

    # focused Pause button: space toggles exactly once (keydown) and the button does not
    # also "click" on keyup
    pause_btn = page.get_by_role("button", name="Pause", exact=True)
    pause_btn.focus()
    n = len(posts)
    page.keyboard.press("Space")
    settle(page)
    expect(page.locator("#pause-btn")).to_have_text("Resume", timeout=3000)
    page.wait_for_timeout(300)
    wait_api(dashboard, lambda s: s["loop"] == "paused", "space on focused button")
    assert [json.loads(p) for p in posts[n:]] == [{"action": "pause"}], posts[n:]
    assert state(dashboard)["loop"] == "paused"
    expect(page.locator("#pause-btn")).to_have_text("Resume", timeout=3000)
    # and once more from the focused (now "Resume") button
    n = len(posts)
    page.locator("#pause-btn").focus()
    page.keyboard.press("Space")
    settle(page)
    expect(page.locator("#pause-btn")).to_have_text("Pause", timeout=3000)
    page.wait_for_timeout(300)
    wait_api(dashboard, lambda s: s["loop"] == "running", "space on focused Resume")
    assert [json.loads(p) for p in posts[n:]] == [{"action": "resume"}], posts[n:]
    assert state(dashboard)["loop"] == "running"
    assert real_console_errors(dashboard) == []


def test_space_and_s_on_a_focused_checkbox_or_list_pause_and_step(dashboard):
    """SPEC §5: the keys are ignored only while typing in a field. On a focused checkbox space
    toggled it (here a backend switch to one-shot and back), and `s` on a focused list picked
    "select" by type-ahead: a switch nobody asked for, and neither paused nor stepped."""
    page = dashboard.page
    oneshot = page.get_by_label("One-shot")
    oneshot.check()
    wait_api(dashboard, lambda s: s["backend"]["oneshot"] is True, "one-shot on")
    oneshot.focus()
    page.keyboard.press("Space")
    wait_api(dashboard, lambda s: s["loop"] == "paused", "space on the checkbox pauses")
    assert state(dashboard)["backend"]["oneshot"] is True, "space toggled the checkbox"
    backend = page.get_by_label("Backend")
    backend.focus()
    waits = dashboard.engine.stats.waits
    with page.expect_response(lambda r: r.url.endswith("/api/loop"), timeout=5000) as stepped:
        page.keyboard.press("s")
    assert stepped.value.status == 200
    wait_until(lambda: dashboard.engine.stats.waits == waits + 1, 5, "the step's one wait")
    assert state(dashboard)["backend"]["name"] == "epoll", "`s` picked an option"
    page.get_by_role("button", name="Resume", exact=True).click()
    wait_api(dashboard, lambda s: s["loop"] == "running", "resumed")
    # with space the pause key, Enter switches a focused checkbox (a keyboard user could not
    # switch One-shot or any bug-zoo flaw at all)
    oneshot.focus()
    page.keyboard.press("Enter")
    wait_api(dashboard, lambda s: s["backend"]["oneshot"] is False, "Enter: one-shot off")
    flaw = page.get_by_label("Flaw: EOF never handled", exact=True)
    flaw.focus()
    page.keyboard.press("Enter")
    wait_until(lambda: any(f["on"] for f in dashboard.api.get("/api/flaws").json()), 5,
               "Enter: the flaw on")
    expect(flaw).to_be_checked(timeout=5000)
    expect(flaw).to_be_enabled(timeout=5000)   # its request answered: the switch is back
    expect(flaw).to_be_focused()   # (disabled meanwhile, it had lost the focus for good)
    page.keyboard.press("Enter")
    wait_until(lambda: not any(f["on"] for f in dashboard.api.get("/api/flaws").json()), 5,
               "Enter: the flaw off")
    assert state(dashboard)["loop"] == "running"


def test_after_a_reconnect_and_a_refusal_the_page_shows_the_servers_breakpoints_and_flaws(
        dashboard):
    """Another client's breakpoint and flaw (or those of a server restarted behind a reconnect)
    never showed: the lists were read at start only. A new snapshot re-reads them, and so does
    a flaw switch the server refuses."""
    page, api = dashboard.page, dashboard.api
    added = api.post("/api/breakpoints", json={"when": "hup"})
    assert added.status_code == 201, added.text
    assert api.post("/api/flaws/hup_before_in", json={"on": True}).status_code == 200
    try:
        page.locator("#zoo-panel").scroll_into_view_if_needed()
        # refused: hup_before_in is on (409). A click, not check(): the page unticks the box
        # again as soon as the refusal comes, which check() would take for a failure
        page.locator("#flaw-eof_ignored").click()
        expect(page.locator("#flaw-hup_before_in")).to_be_checked(timeout=5000)
        expect(page.locator("#flaw-eof_ignored")).not_to_be_checked()
        snapshots = page.evaluate("() => window.__muxscope.frames.snapshot")
        page.evaluate("() => window.__muxscope.socket.ws.close()")
        page.wait_for_function(f"() => window.__muxscope.frames.snapshot > {snapshots}",
                               timeout=10_000)
        expect(page.locator("#breakpoint-list")).to_contain_text("hang-up", timeout=5000)
    finally:
        api.post("/api/flaws/hup_before_in", json={"on": False})
        api.delete(f"/api/breakpoints/{added.json()['id']}")
    assert real_console_errors(dashboard) == []


def test_the_kernels_udp_drop_count_reaches_the_page(dashboard):
    """SPEC §4: UDP `dropped` is what the kernel dropped. It comes with no event, so the page
    showed the snapshot's number for good; the stats frames carry it now."""
    page, api = dashboard.page, dashboard.api
    port = state(dashboard)["listeners"]["udp"]["port"]
    assert api.post("/api/loop", json={"action": "pause"}).status_code == 200
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(3000):  # far more than the socket's receive buffer holds: dropped
            sock.sendto(b"u" * 1024, ("127.0.0.1", port))
        assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
        sock.sendto(b"last", ("127.0.0.1", port))  # its ancillary data carries the drop count
        st = wait_api(dashboard, lambda s: s["listeners"]["udp"]["dropped"] > 0
                      and s["listeners"]["udp"]["echoed"] == s["listeners"]["udp"]["received"],
                      "the kernel's count of dropped datagrams", timeout=10)
    dropped = st["listeners"]["udp"]["dropped"]
    expect(page.locator("#connections-panel")).to_contain_text(
        f"{dropped} dropped by the kernel", timeout=5000)


BURST = """async (n) => {
  const t0 = performance.now();
  const call = (method, path, body) => fetch(path, {
      method, cache: 'no-store', signal: AbortSignal.timeout(3000),
      headers: body ? {'Content-Type': 'application/json'} : {},
      body: body ? JSON.stringify(body) : undefined})
    .then(r => ({path, status: r.status, ms: Math.round(performance.now() - t0)}),
          e => ({path, error: String(e), ms: Math.round(performance.now() - t0)}));
  const all = [call('POST', '/api/loop', {action: 'resume'})];
  for (let i = 0; i < n; i++) all.push(call('GET', '/api/state'));
  return Promise.all(all);
}"""


def test_resume_answers_requests_in_flight(dashboard):
    """Resume while other requests to the engine are in flight (the page's own resync, a second
    browser, a script): every one of them is answered at once, none is left in the control
    queue without a wake-up until some later request happens to wake the loop."""
    page = dashboard.page
    for rnd in range(20):
        assert dashboard.api.post("/api/loop", json={"action": "pause"}).json()["loop"] == "paused"
        results = page.evaluate(BURST, 4)
        late = [r for r in results if "error" in r or r["status"] != 200 or r["ms"] > 1000]
        assert late == [], f"round {rnd}: requests stranded after a resume: {results}"
        assert state(dashboard)["loop"] == "running"


# -- 5. errors are shown -------------------------------------------------------------------------

def test_errors_are_shown_not_swallowed(dashboard):
    page = dashboard.page
    errors = page.locator("#error-area p.error-message")
    assert state(dashboard)["loop"] == "running"
    page.get_by_role("button", name="Step", exact=True).click()
    expect(errors.filter(has_text=re.compile("pause", re.I))).to_have_count(1, timeout=3000)
    expect(errors.first).to_contain_text("409")
    assert page.get_by_role("alert").locator("p.error-message").count() == 1
    # the same refusal again is the same one line, not a pile of them: the new line replaces
    # the one marked here (waited for, so the count is read after it came)
    for _ in range(2):
        errors.first.evaluate("(p) => { p.dataset.seen = '1'; }")
        page.get_by_role("button", name="Step", exact=True).click()
        expect(page.locator("#error-area p.error-message:not([data-seen])")).to_have_count(
            1, timeout=3000)
        expect(errors).to_have_count(1)

    slowmo = page.get_by_label("Slow motion")
    slowmo.fill("9000")
    slowmo.press("Enter")
    expect(errors.filter(has_text="422")).to_have_count(1, timeout=3000)
    assert state(dashboard)["delay_ms"] == 0
    # the value in force typed again (no request needed): the 422 beside it goes too
    slowmo.fill("0")
    slowmo.press("Enter")
    expect(errors.filter(has_text="422")).to_have_count(0, timeout=3000)
    slowmo.fill("9000")
    slowmo.press("Enter")
    expect(errors.filter(has_text="422")).to_have_count(1, timeout=3000)
    # a valid value is applied at once, and takes the old slow-motion error away (it stayed
    # on screen beside the value now in force); the Step error is another matter: it stays
    slowmo.fill("100")
    slowmo.press("Enter")
    wait_api(dashboard, lambda s: s["delay_ms"] == 100, "slow motion 100 ms")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("409")
    # typed, without Enter: applied once the keys pause (no Apply step)
    slowmo.fill("")
    slowmo.press_sequentially("250", delay=30)
    wait_api(dashboard, lambda s: s["delay_ms"] == 250, "slow motion 250 ms, typed")
    expect(errors).to_have_count(1)
    # a refused field is named as the page labels it, not by the API's name for it
    page.get_by_label("Clients", exact=True).fill("")
    page.get_by_role("button", name="Add clients").click()
    expect(errors.filter(has_text="Adding clients (422): Clients: ")).to_have_count(1,
                                                                               timeout=3000)
    page.get_by_label("Clients", exact=True).fill("1")
    page.get_by_label("Message bytes", exact=True).fill("2000000")
    page.get_by_role("button", name="Add clients").click()
    expect(errors.filter(has_text="Adding clients (422): Message bytes: ")).to_have_count(
        1, timeout=3000)
    assert real_console_errors(dashboard) == []


# -- 6. close a connection -----------------------------------------------------------------------

def test_close_button_closes_the_connection(dashboard):
    page = dashboard.page
    with dashboard.connect() as sock, dashboard.connect() as other:
        fd = server_fd(dashboard, sock)
        other_fd = server_fd(dashboard, other)
        assert echo(sock, b"hello\n") == b"hello\n"
        expect(row(page, fd)).to_have_count(1, timeout=3000)
        expect(row(page, other_fd)).to_have_count(1, timeout=3000)
        page.get_by_role("button", name=f"Close fd {fd}", exact=True).click()
        sock.settimeout(5)
        assert sock.recv(100) == b""
        expect(row(page, fd)).to_have_count(0, timeout=3000)
        assert fd not in [c["fd"] for c in state(dashboard)["connections"]]
        # the other connection is untouched
        expect(row(page, other_fd)).to_have_count(1)
        assert echo(other, b"still here\n") == b"still here\n"
        expect(page.locator("#connection-count")).to_have_text("1")
        expect(page.locator(f'#event-log li[data-kind="close"][data-fd="{fd}"]')).to_contain_text(
            "user", timeout=3000)
    assert real_console_errors(dashboard) == []


def test_a_lingering_close_is_shown_until_the_peer_ends_it_or_close_now(dashboard):
    """A close of a peer that is still sending lingers (mux/linger.py): the row stayed as it
    was for up to 5 s, its Close button live again, as if the click had done nothing. Now the
    row says "lingering" and its button "Close now"; the close event says how it ended. A
    second page, which did not click, learns it too (no event says when a linger begins: it
    showed "paused" and "Close", whose click was a second close, at once)."""
    page = dashboard.page
    other = page.context.new_page()
    other.goto(dashboard.base + "/")
    other.wait_for_function("() => window.__muxscope && window.__muxscope.frames.snapshot >= 1",
                            timeout=10_000)
    with dashboard.connect() as ended, dashboard.connect() as cut:
        fds = {name: server_fd(dashboard, sock) for name, sock in (("ended", ended), ("cut", cut))}
        for sock in (ended, cut):  # megabytes, and never a read: backpressure pauses them
            sock.settimeout(20)
            threading.Thread(target=send_quietly, args=(sock, b"f" * (64 << 20)),
                             daemon=True).start()
        wait_api(dashboard, lambda s: sum(c["reading_paused"] for c in s["connections"]) == 2,
                 "both paused by backpressure", timeout=10)
        for fd in fds.values():
            expect(row(page, fd)).to_have_count(1, timeout=3000)
            page.get_by_role("button", name=f"Close fd {fd}", exact=True).click()
            expect(row(page, fd).locator("td.paused")).to_have_text("lingering", timeout=3000)
            expect(row(page, fd).get_by_role("button", name=f"Close fd {fd}",
                                             exact=True)).to_have_text("Close now")
        for fd in fds.values():  # the other page: from the stats frames (one a second)
            expect(row(other, fd).locator("td.paused")).to_have_text("lingering", timeout=3000)
            expect(row(other, fd).get_by_role("button", name=f"Close fd {fd}",
                                              exact=True)).to_have_text("Close now")
        assert all(c["lingering"] for c in state(dashboard)["connections"])
        ended.shutdown(socket.SHUT_WR)  # the peer's EOF ends its linger: a clean close
        page.get_by_role("button", name=f"Close fd {fds['cut']}", exact=True).click()
        for name, fd in fds.items():
            expect(row(page, fd)).to_have_count(0, timeout=5000)
            line = page.locator(f'#event-log li[data-kind="close"][data-fd="{fd}"]')
            expect(line).to_contain_text("reason=user", timeout=3000)
            expect(line).to_contain_text(f"lingered={'eof' if name == 'ended' else 'user'}")
    assert real_console_errors(dashboard) == []


# -- 7. add / remove load clients ----------------------------------------------------------------

def test_add_and_remove_clients(dashboard):
    page = dashboard.page
    page.get_by_label("Clients", exact=True).fill("20")
    page.get_by_label("Message bytes").fill("64")
    page.get_by_label("Rate per client (msg/s)").fill("5")
    page.get_by_role("button", name="Add clients").click()
    expect(page.locator("#connection-count")).to_have_text("20", timeout=10_000)
    expect(page.locator("#connection-list tr[data-fd]")).to_have_count(20, timeout=5000)
    expect(page.locator("#load-status")).to_contain_text("20", timeout=3000)
    assert len(state(dashboard)["connections"]) == 20
    # they are sending: bytes flow through the echo server
    page.wait_for_function(
        "() => [...document.querySelectorAll('#connection-list td.out')]"
        ".filter(td => Number(td.textContent.replace(/[≈,]/g, '')) >= 64).length >= 10",
        timeout=5000)
    page.get_by_role("button", name="Remove clients").click()
    expect(page.locator("#connection-count")).to_have_text("0", timeout=10_000)
    expect(page.locator("#connection-list tr[data-fd]")).to_have_count(0, timeout=5000)
    wait_api(dashboard, lambda s: s["connections"] == [], "all load clients gone")
    assert real_console_errors(dashboard) == []
    assert page.locator("#error-area p.error-message").count() == 0


# -- 8. event log filters --------------------------------------------------------------------------

def test_event_log_filters_by_kind_and_fd(dashboard):
    page = dashboard.page
    log = page.locator("#event-log li")
    with dashboard.connect() as a, dashboard.connect() as b:
        fd_a, fd_b = server_fd(dashboard, a), server_fd(dashboard, b)
        for i in range(3):
            assert echo(a, f"a{i}\n".encode()) == f"a{i}\n".encode()
            assert echo(b, f"b{i}\n".encode()) == f"b{i}\n".encode()
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd_b}"]')).to_have_count(
            3, timeout=3000)
        assert page.locator('#event-log li[data-kind="wait"]').count() > 0

        page.locator("#log-filter-kind").select_option("recv")
        expect(page.locator('#event-log li[data-kind="wait"]')).to_have_count(0, timeout=3000)
        expect(page.locator('#event-log li[data-kind="recv"]')).to_have_count(6, timeout=3000)
        kinds = log.evaluate_all("els => els.map(e => e.dataset.kind || e.className)")
        assert kinds and set(kinds) == {"recv"}, kinds
        # new events obey the filter too
        assert echo(a, b"a3\n") == b"a3\n"
        expect(page.locator('#event-log li[data-kind="recv"]')).to_have_count(7, timeout=3000)
        kinds = log.evaluate_all("els => els.map(e => e.dataset.kind || e.className)")
        assert set(kinds) == {"recv"}, kinds

        page.locator("#log-filter-kind").select_option("")
        page.locator("#log-filter-fd").fill(str(fd_a))
        expect(page.locator(f'#event-log li[data-fd="{fd_b}"]')).to_have_count(0, timeout=3000)
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd_a}"]')).to_have_count(
            4, timeout=3000)
        fds = log.evaluate_all("els => els.map(e => e.dataset.fd ?? ('no fd: ' + e.textContent))")
        assert fds and set(fds) == {str(fd_a)}, fds
        kinds = set(log.evaluate_all("els => els.map(e => e.dataset.kind)"))
        assert {"accept", "recv", "send"} <= kinds, kinds

        # clearing the filters brings the other fd and the waits back
        page.locator("#log-filter-fd").fill("")
        expect(page.locator(f'#event-log li[data-fd="{fd_b}"]').first).to_be_attached(timeout=3000)
        expect(page.locator('#event-log li[data-kind="wait"]').first).to_be_attached(timeout=3000)
    assert real_console_errors(dashboard) == []


def test_the_log_can_hide_idle_waits_and_keep_the_rest(dashboard):
    """An idle loop lists four timed-out waits a second: a learner's own recv scrolled out of
    the box within seconds, and the only way to keep it was to know to pick kind=recv."""
    page = dashboard.page
    idle_wait = page.locator('#event-log li[data-kind="wait"]', has_text=re.compile(r"ready=0\b"))
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        expect(idle_wait.first).to_be_attached(timeout=5000)
        page.locator("#log-filter-kind").select_option("-idle")
        expect(idle_wait).to_have_count(0, timeout=3000)
        assert echo(sock, b"mine\n") == b"mine\n"
        expect(page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd}"]')).to_have_count(
            1, timeout=3000)
        busy = page.locator('#event-log li[data-kind="wait"]', has_text=re.compile(r"ready=[1-9]"))
        expect(busy.first).to_be_attached(timeout=3000)  # the wait that returned it stays
        page.wait_for_timeout(600)  # idle timeouts (250 ms) go on meanwhile: none is listed
        expect(idle_wait).to_have_count(0)
        # markers stay: hiding idle waits hides no dropped events or resyncs
        dashboard.page.evaluate("() => window.__muxscope.socket.ws.close()")
        expect(page.locator("#event-log li", has_text="— snapshot: state at seq")).to_have_count(
            1, timeout=10_000)
        page.locator("#log-filter-kind").select_option("")
        expect(idle_wait.first).to_be_attached(timeout=3000)
    assert real_console_errors(dashboard) == []


def test_an_empty_page_says_how_to_connect_and_why_epoll_controls_are_grey(dashboard):
    """With --echo-port 0 (or a server someone else started) the port was only on the
    terminal: "Connections (0)" and an empty table. Trigger and One-shot went grey on select
    with no reason given."""
    page, engine = dashboard.page, dashboard.engine
    more = page.locator("#connection-more")
    expect(more).to_contain_text(f"connect with nc 127.0.0.1 {engine.tcp_port} (or telnet "
                                 f"127.0.0.1 {engine.tcp_port})", timeout=5000)
    expect(more).to_contain_text(f"nc -u 127.0.0.1 {engine.udp_port} for UDP")
    with dashboard.connect():
        expect(more).not_to_contain_text("No connections yet", timeout=5000)
    # opened as localhost (maybe ::1 first: nc -u gets no echo there), it names the address bound
    page.goto(dashboard.base.replace("127.0.0.1", "localhost") + "/")
    expect(more).to_contain_text(f"nc 127.0.0.1 {engine.tcp_port}", timeout=5000)
    expect(more).to_contain_text(f"nc -u 127.0.0.1 {engine.udp_port} for UDP")
    page.get_by_label("Backend").select_option("select")
    for control in (page.get_by_label("Trigger"), page.get_by_label("One-shot")):
        expect(control).to_be_disabled(timeout=5000)
        expect(control).to_have_attribute("title", re.compile("Only epoll has edge-triggered"))
    page.get_by_label("Backend").select_option("epoll")
    expect(page.get_by_label("Trigger")).to_be_enabled(timeout=5000)
    expect(page.get_by_label("Trigger")).to_have_attribute("title", "")
    assert real_console_errors(dashboard) == []


# -- 9. download trace ----------------------------------------------------------------------------

def _download_trace(page: Page) -> dict[str, Any]:
    """Click the "Download trace" button; the browser's download, parsed as JSON."""
    button = page.get_by_role("button", name="Download trace")
    expect(button).to_be_enabled()
    with page.expect_download(timeout=10_000) as dl_info:
        button.click()
    dl = dl_info.value
    assert dl.failure() is None
    assert dl.suggested_filename == "muxscope-trace.json"
    with open(dl.path(), encoding="utf-8") as fh:
        return json.load(fh)


def test_download_trace_button(dashboard):
    page = dashboard.page
    with dashboard.connect() as sock:
        assert echo(sock, b"trace me\n") == b"trace me\n"
    res = dashboard.api.get("/api/trace?format=chrome")
    assert res.status_code == 200
    body = res.json()
    assert isinstance(body, dict) and isinstance(body["traceEvents"], list)
    assert len(body["traceEvents"]) > 0
    for ev in body["traceEvents"][:50]:
        assert "ph" in ev and "name" in ev, ev
    # the page's button downloads that same format (a real download, not a link to follow)
    downloaded = _download_trace(page)
    assert isinstance(downloaded["traceEvents"], list) and downloaded["traceEvents"]
    assert all("ph" in ev and "name" in ev for ev in downloaded["traceEvents"][:50])
    expect(page.locator("#error-area .error-message")).to_have_count(0)
    assert real_console_errors(dashboard) == []


def test_download_trace_button_passes_the_token_on(open_dashboard):
    token = "download-token"
    dash = open_dashboard(Settings(http_port=0, echo_port=0, token=token),
                          path=f"/?token={token}")
    assert dash.api.get("/api/trace?format=chrome").status_code == 401  # the token is needed
    with dash.page.expect_request(lambda r: "/api/trace" in r.url) as sent:
        downloaded = _download_trace(dash.page)
    assert f"token={token}" in sent.value.url
    assert isinstance(downloaded["traceEvents"], list)
    expect(dash.page.locator("#error-area .error-message")).to_have_count(0)
    assert real_console_errors(dash) == []


# -- 10. the page under load ----------------------------------------------------------------------

def test_connection_list_shows_200_rows_and_says_how_many_more(dashboard):
    """SPEC §5: the connection list is capped, with "and N more" for the rest."""
    page = dashboard.page
    with load_clients(dashboard, 205, 64, 0):
        expect(page.locator("#connection-count")).to_have_text("205", timeout=10_000)
        expect(page.locator("#connection-more")).to_have_text("and 5 more", timeout=5000)
        expect(page.locator("#connection-list tr[data-fd]")).to_have_count(200)


def test_page_keeps_working_under_200_load_clients(dashboard):
    page = dashboard.page
    with load_clients(dashboard, 200, 64, 50):
        expect(page.locator("#connection-count")).to_have_text("200", timeout=10_000)
        page.wait_for_function("() => window.__muxscope.eventsApplied > 1000", timeout=10_000)
        sample = ("() => ({applied: window.__muxscope.eventsApplied,"
                  " dropped: window.__muxscope.dropped,"
                  " stats: window.__muxscope.frames.stats, events: window.__muxscope.frames.events,"
                  " paints: window.__muxscope.paints, seq: window.__muxscope.lastSeq,"
                  " t: performance.now()})")
        before = page.evaluate(sample)
        engine_before = dashboard.engine.observers.seq
        page.wait_for_timeout(2000)
        after = page.evaluate(sample)
        engine_after = dashboard.engine.observers.seq
        secs = (after["t"] - before["t"]) / 1000
        applied = (after["applied"] - before["applied"]) / secs
        dropped = (after["dropped"] - before["dropped"]) / secs
        produced = (engine_after - engine_before) / secs
        paints = (after["paints"] - before["paints"]) / secs
        print(f"\n[muxscope] one browser, POST /api/load 200 clients x 64 B @ 50 msg/s: "
              f"{applied:,.0f} events/s applied by the page, "
              f"{dropped:,.0f} events/s dropped for it, "
              f"{produced:,.0f} events/s produced by the engine, {paints:.0f} paints/s, "
              f"{after['stats'] - before['stats']} stats frames and "
              f"{after['events'] - before['events']} events frames in {secs:.2f} s; "
              f"page behind the "
              f"engine by {engine_before - before['seq']:,} events at the start and "
              f"{engine_after - after['seq']:,} at the end", flush=True)
        dashboard.screenshot("test_page_keeps_working_under_200_load_clients-under-load")
        assert after["stats"] - before["stats"] >= 1, "no stats frame in 2 s"
        assert after["events"] > before["events"]
        assert after["applied"] > before["applied"]
        assert after["paints"] - before["paints"] >= 5, "the page stopped painting"
        assert real_console_errors(dashboard) == []
        # the page is still responsive: a control round trip works under load
        page.get_by_role("button", name="Pause", exact=True).click()
        wait_api(dashboard, lambda s: s["loop"] == "paused", "pause under load")
        expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible(timeout=5000)
        page.get_by_role("button", name="Resume", exact=True).click()
        wait_api(dashboard, lambda s: s["loop"] == "running", "resume under load")
    expect(page.locator("#connection-count")).to_have_text("0", timeout=10_000)
    # nothing lost silently: once the page has caught up with the engine, every seq gap it
    # saw is accounted for by `dropped`
    with dashboard.connect() as sock:
        assert echo(sock, b"after the load\n") == b"after the load\n"
    target = dashboard.engine.observers.seq
    page.wait_for_function(f"() => window.__muxscope.lastSeq >= {target}", timeout=5000)
    model = page.evaluate(
        "() => ({gaps: window.__muxscope.model.gaps, dropped: window.__muxscope.dropped})")
    assert model["gaps"] == model["dropped"], model
    assert real_console_errors(dashboard) == []


def test_time_travel_hands_a_rebuild_no_more_past_events_than_the_ring_holds(dashboard):
    """History.seek gave the rebuilt view the events before its checkpoint as far back as
    `view.ringSize`, a name the model's split (recent.js) left undefined: every scrub copied
    the whole history (up to 100,000 events in a replay) to keep the last 5,000 of them."""
    handed = dashboard.page.evaluate("""async () => {
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


def test_a_state_answer_older_than_the_events_does_not_undo_a_switch(dashboard):
    """A GET /api/state answer captured before a backend switch can arrive after the switch's
    `backend` event (the page resyncs after each switch, and switches can follow each other):
    the page's model must keep the newer backend and ask for a fresh state instead."""
    result = dashboard.page.evaluate("""async () => {
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


def test_a_state_read_again_keeps_the_interest_of_the_wait_on_show(dashboard):
    """A state read (after dropped events, or a switch) replaced the registrations under the
    wait the page shows: poll's array then gave the interest of later as what was passed in,
    `events=POLLIN` beside `revents=POLLIN|POLLOUT` (1 sample in a full run, under load)."""
    result = dashboard.page.evaluate("async () => {" + MODEL_PRELUDE + """
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


def test_a_state_read_ahead_of_the_events_keeps_a_closed_fds_interest_at_the_wait(dashboard):
    """A resync answered with a state that already held the next wait's events (the close of
    its ready fd): those events then changed nothing, and the fd panel said "fd 39: (closed
    since; its interest at that wait is not known to this page)" (a flaky CI failure)."""
    result = dashboard.page.evaluate("async () => {" + MODEL_PRELUDE + """
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


def test_a_state_read_ahead_of_the_events_keeps_what_the_next_wait_was_passed(dashboard):
    """A resync answered after a Step already held the write interest that the step's own
    handler turned on (recv, queue): the syscall line showed the step's select passed fd 38
    in its write set, which it was not (a flaky CI failure under load). Also after a seek to
    a history checkpoint taken at that resync."""
    result = dashboard.page.evaluate("async () => {" + MODEL_PRELUDE + """
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


def test_a_resync_after_dropped_events_takes_the_interest_from_the_state(dashboard):
    """The page's own registrations miss what the dropped events did (an accept, a close):
    kept as "the interest as of the last event" for the waits a resync's state covers, they
    showed a wait whose ready fd had never been passed to select, and a closed fd as passed."""
    result = dashboard.page.evaluate("async () => {" + MODEL_PRELUDE + """
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


def test_waits_a_resync_covers_copy_only_the_fds_whose_interest_differs(dashboard):
    """Each wait a state read covers copied every fd's interest (769 ms for 500 waits at
    10,000 fds), then every fd an event in that range touched, for good: write interest on and
    off for a partial send left the fd copied by every wait after it."""
    result = dashboard.page.evaluate("""async () => {
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


def test_a_history_checkpoint_keeps_the_shown_waits_maker_and_interest(dashboard):
    """Time travel rebuilt the last iteration from a checkpoint taken at the resync after a
    switch: it lost the backend that made the wait (epoll_wait on the new epoll fd, no word of
    the switch) and the interest the wait was passed (the new EPOLLET bits)."""
    result = dashboard.page.evaluate("""async () => {
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


def test_what_a_wait_returned_was_in_the_interest_it_was_passed(dashboard):
    """Under dropped events the page's interest for an fd can miss a change (write interest
    turned on in an iteration it was not shown): select's "in" sets then lacked an fd its
    "out" write set held (3 fds, in a full run). The kernel reports in/out only when asked."""
    result = dashboard.page.evaluate("""async () => {
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


def test_two_switch_answers_in_either_order_keep_the_second_switch(dashboard):
    """Two switches in a row (edge, then one-shot): their HTTP answers can arrive in either
    order. The first one's registrations, applied after the second's, undid one-shot for good:
    the switch's events were already "in the state" (1 run in 12 of a browser test)."""
    result = dashboard.page.evaluate("""async () => {
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


def test_events_up_to_a_resyncs_seq_do_not_count_twice(dashboard):
    """A resync's figures already hold the events up to its seq: those that arrive after it
    (they were on their way) must not add their bytes again, the later ones must."""
    result = dashboard.page.evaluate("""async () => {
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
        dashboard):
    """What a review found in the first resync: a late close and accept of a reused fd
    emptied the state's row (its recv skipped), rows whose close was dropped stayed, a late
    one-shot `ready` showed an armed fd disarmed, and a history checkpoint taken after the
    resync lost its seq (time travel counted the late bytes twice)."""
    result = dashboard.page.evaluate("""async () => {
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


def test_stepping_forward_in_time_travel_keeps_every_datagram(dashboard):
    """A forward seek rebuilt from any checkpoint it crossed (meant for resync ones only),
    whose UDP counts are the last stats frame's, up to 0.5 s behind the events: stepping
    through a UDP run came out hundreds of datagrams short of the live page."""
    result = dashboard.page.evaluate("""async () => {
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
        for _ in range(60):
            for sock in socks:
                sock.sendall(b"x" * 1000)
            for sock in socks:
                assert recv_exactly(sock, 1000) == b"x" * 1000
        fds = {c["fd"] for c in state(dashboard)["connections"]}
        assert len(fds) == 5
        page.wait_for_function("() => window.__muxscope.dropped > 0", timeout=5000)

        def page_agrees() -> bool:
            api = {c["fd"]: c for c in state(dashboard)["connections"]}
            shown = page.evaluate("""() => [...window.__muxscope.model.conns.values()].map(
                c => [c.fd, c.bytesIn, c.bytesOut,
                      [...(window.__muxscope.model.regs.get(c.fd)?.bits || [])].sort()])""")
            return sorted(shown) == sorted(
                [fd, api[fd]["bytes_in"], api[fd]["bytes_out"], ["in"]] for fd in fds)

        wait_until(page_agrees, 10, "the page's figures equal the server's")
        assert all(state(dashboard)["connections"][i]["bytes_in"] == 60_000 for i in range(5))
    finally:
        for sock in socks:
            sock.close()
    assert real_console_errors(dashboard) == []


def test_chart_axes_are_readable(dashboard):
    """Tick values in few characters but distinct, and a log axis ticked at powers of ten
    only (the 2..9 lines of each decade had merged into a band); the plots tall enough for
    several ticks."""
    page = dashboard.page
    result = page.evaluate("""async () => {
        const { compact, compactTicks, decades } = await import('/static/js/charts.js');
        const plot = document.querySelector('#chart-events .u-over');
        return {
          compact: [0, 7.5, 950, 1500, 20000, 812345, 3e6].map((v) => compact(v)),
          steady: compactTicks([3150, 3175, 3200, 3225, 3250]),
          decades: decades(null, 1, 3, 2500),
          plotHeight: plot ? plot.getBoundingClientRect().height : 0,
        };
    }""")
    assert result["compact"] == ["0", "7.5", "950", "1.5k", "20k", "812k", "3M"]
    # a steady rate: close ticks get the decimals that tell them apart (all "3.2k" before)
    assert len(set(result["steady"])) == 5 and result["steady"][2] == "3.2k", result["steady"]
    assert result["decades"] == [10, 100, 1000]
    assert result["plotHeight"] >= 100, result  # room for four or more ticks at 24 px apart


def test_code_panel_picks_the_path_from_the_event(dashboard):
    """The code panel's key for an event: its kind, or kind@variant where the kind has more
    than one path (GET /api/code has both)."""
    keys = dashboard.page.evaluate("""async () => {
        const { CodePanel } = await import('/static/js/panels/code.js');
        // the key of the last of `events` (the ones before it are its iteration's)
        const key = (events, write = 'queued') =>
          CodePanel.prototype.chainKey.call({ write }, events, events.length - 1);
        return [
          key([{ kind: 'send', fd: 7 }, { kind: 'queue', fd: 7 }]),
          key([{ kind: 'recv', fd: 7 }, { kind: 'queue', fd: 7 }]),
          key([{ kind: 'close', fd: 7, reason: 'user' }]),
          key([{ kind: 'close', fd: 7, reason: 'eof' }]),
          key([{ kind: 'backpressure', fd: 7, paused: false }]),
          key([{ kind: 'recv', fd: 7 }, { kind: 'send', fd: 7 }], 'eager'),
          key([{ kind: 'send', fd: 7 }], 'eager'),   // no recv before it: the write half's
          key([{ kind: 'wait' }]),
          key([{ kind: 'backpressure', fd: 8, paused: true, udp: true }]),
          key([{ kind: 'backpressure', fd: 8, paused: false, udp: true }]),
          key([{ kind: 'recv', fd: 7, bytes: 0, eof: true }]),   // recv() returned 0: EOF
          // eager, the flush of a queue left at EOF follows the EOF's recv: not an eager echo
          key([{ kind: 'recv', fd: 7, bytes: 0, eof: true }, { kind: 'send', fd: 7 }], 'eager'),
        ];
    }""")
    assert keys == ["queue@send", "queue", "close@user", "close", "backpressure@release",
                    "send@eager", "send", "wait", "backpressure@udp", "backpressure@udp-release",
                    "recv@eof", "send"]


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
    expect(sets.locator(".set").first).to_contain_text(
        re.compile(rf"^fd {fd}: EPOLLIN", re.MULTILINE), timeout=5000)
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
            timeout=5000)
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


def test_a_rows_byte_counts_say_when_they_miss_dropped_events(dashboard):
    """A flood past the page's event budget: the row's bytes are sums of the events shown, so
    they fell far behind the engine's (0.8 GB shown against 5.8 GB) and were re-read only every
    5 s, with nothing to say so (bytes out above bytes in, on poll). Now they are marked `≈`
    and re-read every second while the drops go on; exact once they stop."""
    page = dashboard.page
    state_reads: list[float] = []
    page.on("request", lambda r: state_reads.append(time.monotonic())
            if r.url.split("?")[0].endswith("/api/state") else None)
    stop = threading.Event()
    chunk = b"x" * 16384
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        cell = row(page, fd).locator("td.in")

        sock.settimeout(0.2)  # both threads look at `stop` at least this often

        def flood() -> None:
            while not stop.is_set():
                try:
                    sock.sendall(chunk)
                except TimeoutError:  # a partial chunk is fine: it is all "x"
                    continue
                except OSError:
                    return

        def drain() -> None:
            while True:
                try:
                    if not sock.recv(1 << 20):
                        return
                except TimeoutError:
                    if stop.is_set():
                        return
                except OSError:
                    return

        threads = [threading.Thread(target=flood), threading.Thread(target=drain)]
        for t in threads:
            t.start()
        try:
            expect(cell).to_have_text(re.compile(r"^≈[\d,]+$"), timeout=5000)
            expect(page.locator("#connection-more")).to_contain_text("events were dropped")
            began = time.monotonic()
            page.wait_for_timeout(3000)  # a span of drops to count the state reads in
            during = [t for t in state_reads if t >= began]
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        assert len(during) >= 2, f"{len(during)} state reads in 3 s of drops"
        last = [-1]

        def settled() -> int | None:  # the server reads what the kernel still held, then stops
            # (two equal reads 0.3 s apart were no proof: an engine thread held up that long
            # left bytes in the kernel, read after `total` was taken, and the cell went past it)
            # the kernel first: read after the state, it could say 0 for bytes the engine
            # read in between (counted in no state read yet)
            kernel = dashboard.api.get("/api/kernel").json()["connections"]
            conn = state(dashboard)["connections"][0]
            unread = next(k["recv_queue"] for k in kernel if k["fd"] == conn["fd"])
            now = conn["bytes_in"]
            same, last[0] = now == last[0], now
            return now if same and (unread == 0 or conn["reading_paused"]) else None

        total = wait_until(settled, 5, "bytes in, settled", interval=0.3)
        expect(cell).to_have_text(f"{total:,}", timeout=5000)
    assert real_console_errors(dashboard) == []


def test_a_previews_quotes_are_escaped_and_a_cut_preview_says_so(dashboard):
    """`preview="say "hi""` could not be read back, and a 100-byte message's preview looked
    like the whole message."""
    page = dashboard.page
    message = b'say "hi" ' + b"." * 91
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        assert echo(sock, message) == message
        recv_row = page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd}"]').first
        expect(recv_row).to_contain_text('bytes=100 preview="say \\"hi\\" ...', timeout=5000)
        assert recv_row.inner_text().endswith('."…'), recv_row.inner_text()
        assert echo(sock, b"short\n") == b"short\n"
        short = page.locator(f'#event-log li[data-kind="recv"][data-fd="{fd}"]').nth(1)
        expect(short).to_contain_text('preview="short\\n"', timeout=5000)
        assert short.inner_text().endswith('preview="short\\n"'), short.inner_text()


def test_a_right_to_left_preview_is_set_apart_from_the_rest_of_its_row(dashboard):
    """Previews show UTF-8 as text now: Hebrew bytes "שלום 123 abc" were laid out by the
    bidi algorithm with the row around them and read "123 שלום abc". Such a preview sits in
    a first-strong isolate (U+2068 ... U+2069); a left-to-right one is left as it was."""
    rows = dashboard.page.evaluate("""async () => {
        const { formatEvent } = await import('/static/js/log.js');
        const recv = (preview) => ({ seq: 1, ts: 0, kind: 'recv', fd: 7, bytes: 12, preview });
        return [formatEvent(recv('שלום 123 abc')), formatEvent(recv('héllo 123'))];
    }""")
    assert 'preview="\u2068שלום 123 abc\u2069"' in rows[0], rows
    assert rows[1].endswith('preview="héllo 123"'), rows


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


def test_the_hang_up_legend_follows_the_backend_that_made_the_drawn_wait(dashboard):
    """After a switch to select, the grid still draws the last wait poll or epoll made (its
    hang-ups too) until select waits (a paused loop: for good): the legend kept the red
    slash's entry hidden for select meanwhile, a mark on the grid with no word for it."""
    hidden = dashboard.page.evaluate("""async () => {
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
    assert dashboard.console_errors == []


GRID_OVERLAY = """async (flags) => {
    const { BackendPanel } = await import('/static/js/panels/backend.js');
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 30;
    const ctx = canvas.getContext('2d');
    const panel = { index: new Map([[7, 0]]), cellBox: () => ({ x: 0, y: 0, s: 30 }),
                    stripeH: BackendPanel.prototype.stripeH };
    BackendPanel.prototype.drawOverlay.call(
        panel, ctx, { lastReady: [[7, flags]], flashes: new Map() }, 0);
    const stripe = panel.stripeH(30);
    const at = (x, y) => [...ctx.getImageData(x, y, 1, 1).data];
    // right-hand end of the read stripe (bottom) and of the write stripe (above it), clear of
    // the slash; and the cell's centre, on the slash
    return { read: at(27, 30 - stripe / 2), write: at(27, 30 - 1.5 * stripe), centre: at(15, 15) };
}"""


def test_the_grid_marks_only_the_bits_that_came_back_and_a_hang_up_apart(dashboard):
    """A reset of a fd watched for writing alone (reading paused, or EOF seen with a queue to
    flush) returns POLLOUT|POLLERR|POLLHUP: the grid drew that as readable, a green read
    stripe, though no POLLIN came back. Now the read stripe is green only for a read bit, and
    a hang-up or error is a red slash of its own."""
    page = dashboard.page
    green, red = (124, 255, 155, 255), (255, 93, 93, 255)   # --ready, --danger
    reset = page.evaluate(GRID_OVERLAY, ["POLLOUT", "POLLERR", "POLLHUP"])
    assert reset["read"] == [0, 0, 0, 0], reset            # nothing drawn: no read bit came
    assert tuple(reset["write"]) == green, reset
    assert tuple(reset["centre"]) == red, reset
    readable = page.evaluate(GRID_OVERLAY, ["EPOLLIN"])
    assert tuple(readable["read"]) == green and readable["centre"] == [0, 0, 0, 0], readable
    assert dashboard.console_errors == []


def test_backpressure_shows_on_the_page_and_clears_when_the_client_reads(dashboard):
    """SPEC §2 and §5: past the high-water mark the server stops reading the connection and
    the page shows it paused (its row and the queue panel); once the client reads its echo
    back, reading resumes, the page says so, and every byte came back in order."""
    page = dashboard.page
    # 12 MiB: more than the socket buffers towards the client (4 MiB at most on the server's
    # side, 2 MiB on ours) and the 1 MiB high-water mark together
    payload = bytes(range(256)) * (12 << 12)
    with dashboard.connect() as sock:
        # a fixed receive buffer (no autotuning up to 32 MiB), big enough to read fast later
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        fd = server_fd(dashboard, sock)
        writer = threading.Thread(target=send_quietly, args=(sock, payload), daemon=True)
        writer.start()
        wait_api(dashboard, lambda s: any(c["fd"] == fd and c["reading_paused"]
                                          for c in s["connections"]), "backpressure on")
        expect(row(page, fd)).to_contain_text("paused", timeout=5000)
        expect(page.locator("#queue-summary")).to_contain_text("1 paused by backpressure",
                                                               timeout=5000)
        assert recv_exactly(sock, len(payload)) == payload
        writer.join(timeout=10)
        wait_api(dashboard, lambda s: not any(c["fd"] == fd and c["reading_paused"]
                                              for c in s["connections"]), "backpressure off")
        expect(page.locator("#queue-summary")).to_contain_text("0 paused by backpressure",
                                                               timeout=5000)
        expect(row(page, fd)).not_to_contain_text("paused", timeout=5000)


def test_udp_backpressure_and_waiting_replies_are_said_on_the_page(dashboard, monkeypatch):
    """A reply the kernel refuses waits in a bounded queue; when that was full the server threw
    replies away, said nowhere. Now it stops reading the socket, and the page says so."""
    import mux.udp
    from tests.mux.test_udp_backpressure import RefusingSocket

    monkeypatch.setattr(mux.udp, "MAX_PENDING_REPLIES", 10)
    page, engine = dashboard.page, dashboard.engine
    udp = engine.udp
    refusing = RefusingSocket(udp.sock)
    engine.call(setattr, udp, "sock", refusing).result(5)
    summary = page.locator("#udp-summary")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            for i in range(30):
                client.sendto(b"%02d" % i, ("127.0.0.1", engine.udp_port))
            expect(summary).to_contain_text(
                "not read (backpressure): 10 replies wait for writability", timeout=5000)
            engine.call(setattr, refusing, "refusing", False).result(5)
            assert [client.recvfrom(10)[0] for _ in range(30)] == [b"%02d" % i for i in range(30)]
            expect(summary).to_contain_text("30 datagrams received, 30 echoed", timeout=5000)
            expect(summary).not_to_contain_text("backpressure")
            expect(summary).not_to_contain_text("wait for writability")
    finally:
        engine.call(setattr, udp, "sock", refusing.real).result(5)
    assert real_console_errors(dashboard) == []


def test_a_view_of_the_past_takes_udp_drops_and_pending_replies_from_the_events(dashboard):
    """A view rebuilt from events (time travel, replay) showed 0 dropped after a burst the
    kernel dropped 2,834 of (no datagram event says it), and "0 replies wait" beside a UDP
    socket paused with 20 waiting (the backpressure event said neither)."""
    udp = dashboard.page.evaluate("""async () => {
        const { Model } = await import('/static/js/model.js');
        const m = new Model({ ringSize: 100 });
        m.applySnapshot({ seq: 0, state: { listeners: {
            tcp: { fd: 3, port: 9000 },
            udp: { fd: 8, port: 9000, received: 0, echoed: 0, dropped: 0 } } } });
        m.applyEventsFrame({ dropped: 0, events: [
            { seq: 1, ts: 0.1, kind: 'error', fd: 8, cause: 'udp', message: 'udp: ...',
              udp_dropped: 2834 },
            { seq: 2, ts: 0.2, kind: 'backpressure', fd: 8, paused: true, udp: true,
              pending: 20, pending_bytes: 80 } ] });
        return { dropped: m.udp.dropped, pending: m.udp.pending, paused: m.udp.reading_paused };
    }""")
    assert udp == {"dropped": 2834, "pending": 20, "paused": True}


def test_the_connect_hint_names_a_wildcard_binds_own_loopback_for_localhost(dashboard):
    """Bound to 0.0.0.0 and opened as http://localhost, it said `nc -u localhost P`: localhost
    may be ::1 first, and a datagram there gets no echo from an IPv4 wildcard bind."""
    hints = dashboard.page.evaluate("""async () => {
        const { connectHint } = await import('/static/js/panels/connections.js');
        const model = (host) => ({ tcp: { port: 9000, host }, udp: { port: 9001, host } });
        return [connectHint(model('0.0.0.0'), 'localhost'), connectHint(model('::'), 'localhost'),
                connectHint(model('0.0.0.0'), '192.168.1.5'), connectHint(model('127.0.0.1'), 'localhost')];
    }""")
    assert "nc 127.0.0.1 9000" in hints[0] and "nc -u 127.0.0.1 9001" in hints[0]
    assert "nc ::1 9000" in hints[1] and "nc -u ::1 9001" in hints[1]
    assert "nc 192.168.1.5 9000" in hints[2]  # reached by its address: that address
    assert "nc -u 127.0.0.1 9001" in hints[3]
