"""The controls: a backend switch from the page, the keyboard (space pauses, s steps), a
reconnect after a refusal, resume with requests in flight, and errors shown, not swallowed
(SPEC §5)."""

from __future__ import annotations

import json
import re
import socket

from playwright.sync_api import expect

from tests.browser.conftest import echo, peer_of, server_fd
from tests.browser.page_helpers import (
    SYSCALL,
    loop_posts,
    real_console_errors,
    settle,
    state,
    wait_api,
)
from tests.conftest import wait_until


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

    loop_state = page.locator("#loop-state")
    color = "(el) => getComputedStyle(el).color"
    running_color = loop_state.evaluate(color)
    page.keyboard.press("Space")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible(timeout=3000)
    wait_api(dashboard, lambda s: s["loop"] == "paused", "space pauses")
    expect(loop_state).to_have_text(re.compile("^paused"), timeout=3000)
    # "paused" does not read like "running": it is in the Pause button's colour
    assert loop_state.evaluate(color) != running_color
    assert loop_state.evaluate(color) == page.locator("#pause-btn").evaluate(color)

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
    page.wait_for_timeout(200)  # an absence's window: a key that reached the loop pauses it
    assert state(dashboard)["loop"] == "running"

    # focused Pause button: space toggles exactly once (keydown) and the button does not
    # also "click" on keyup
    def space_on_the_focused_button(label: str, then: str, action: str, loop: str) -> None:
        n = len(posts)
        page.get_by_role("button", name=label, exact=True).focus()
        page.keyboard.press("Space")
        settle(page)
        expect(page.locator("#pause-btn")).to_have_text(then, timeout=3000)
        page.wait_for_timeout(300)  # an absence's window: a keyup "click" would post again
        wait_api(dashboard, lambda s: s["loop"] == loop, f"space on focused {label}")
        assert [json.loads(p) for p in posts[n:]] == [{"action": action}], posts[n:]
        assert state(dashboard)["loop"] == loop

    space_on_the_focused_button("Pause", "Resume", "pause", "paused")
    # and once more from the focused (now "Resume") button
    space_on_the_focused_button("Resume", "Pause", "resume", "running")
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
        # stranded: aborted at 3 s (an error); answered: well before (1,073 ms was seen on a
        # machine loaded 13 deep, with 2 cores)
        late = [r for r in results if "error" in r or r["status"] != 200 or r["ms"] > 2500]
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
