"""The teaching lab (issue 7): bug zoo, kernel truth, code view, your connection / spotlight."""

from __future__ import annotations

import contextlib
import re
import select
import socket
from collections.abc import Iterator

from playwright.sync_api import Page, expect

from tests.browser.conftest import echo
from tests.browser.page_helpers import load_clients
from tests.browser.test_timeline import scrub_to
from tests.conftest import wait_until
from tests.mux.conftest import recv_exactly

DEADLINE_MS = 8000


def wait_for_row(page: Page, exclude: set[int] = frozenset()) -> int:
    handle = page.wait_for_function(
        """(ex) => [...document.querySelectorAll('#connection-list tr')]
                     .map(tr => Number(tr.dataset.fd)).find(fd => !ex.includes(fd))""",
        arg=list(exclude), timeout=DEADLINE_MS)
    return int(handle.json_value())


def test_flaw_from_the_page_shows_its_detector_and_off_restores_echo(dashboard):
    page = dashboard.page
    eof = page.get_by_label("Flaw: EOF never handled", exact=True)
    expect(eof).not_to_be_checked(timeout=DEADLINE_MS)
    item = page.locator("#zoo-list li[data-flaw='eof_ignored']")
    expect(item).to_contain_text("recv() returning b'' means the peer closed")
    eof.check()
    expect(eof).to_be_checked()
    expect(item).to_have_class("flaw on")
    assert [f["name"] for f in dashboard.api.get("/api/flaws").json() if f["on"]] == ["eof_ignored"]

    # one at a time: the server's 409 is shown, and the second switch stays off
    other = page.get_by_label("Flaw: hang-up checked before input", exact=True)
    other.click()
    expect(page.locator("#error-area")).to_contain_text("409", timeout=DEADLINE_MS)
    expect(other).not_to_be_checked()
    # read, dismissed: while the error area is off screen, its notice sits fixed at the bottom
    # of the view, where it may cover the switch the test clicks next (a CI run's uncheck
    # "did not change its state", the notice drawn over the zoo in its screenshot)
    page.locator("#error-area .error-dismiss").click()
    expect(page.locator("#error-notice")).to_be_hidden()

    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        sock.sendall(b"still echoes")
        assert recv_exactly(sock, 12) == b"still echoes"
    # the peer closed; the flawed handler never sees EOF: the detector speaks
    message = item.locator(".flaw-message")
    expect(message).to_contain_text(f"fd {fd} woke the loop", timeout=DEADLINE_MS)
    expect(message).to_contain_text("EOF is never handled")
    assert int(item.locator(".flaw-count").get_attribute("data-value")) >= 1

    eof.uncheck()
    expect(eof).not_to_be_checked()
    expect(page.locator(f"#connection-list tr[data-fd='{fd}']")).to_have_count(0, timeout=DEADLINE_MS)
    assert not [f for f in dashboard.api.get("/api/flaws").json() if f["on"]]
    with dashboard.connect() as sock:
        sock.sendall(b"fixed")
        assert recv_exactly(sock, 5) == b"fixed"
    # Chromium logs the refused request itself; nothing else may have gone wrong
    assert [e for e in dashboard.console_errors if "409 (Conflict)" not in e] == []


def kernel_fds(page: Page) -> list[int]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#kernel-interest tr')].map(tr => Number(tr.dataset.fd))")


def test_kernel_truth_agrees_with_the_engine_then_shows_a_stale_fd(dashboard):
    page = dashboard.page
    panel = page.locator("#kernel-panel")
    with dashboard.connect() as a, dashboard.connect() as b:
        fd_a = wait_for_row(page)
        fd_b = wait_for_row(page, {fd_a})
        panel.scroll_into_view_if_needed()
        engine_fds = sorted(r["fd"] for r in dashboard.api.get("/api/state").json()["registrations"])
        assert fd_a in engine_fds and fd_b in engine_fds
        page.wait_for_function(
            f"""() => JSON.stringify([...document.querySelectorAll('#kernel-interest tr')]
                     .map(tr => Number(tr.dataset.fd))) === '{engine_fds}'.replaceAll(' ', '')""",
            timeout=DEADLINE_MS)
        expect(panel.locator("[data-mismatch='1']")).to_have_count(0)
        expect(panel.locator(f"#kernel-interest tr[data-fd='{fd_a}']")).to_contain_text("EPOLLIN")
        expect(page.locator("#kernel-summary")).to_contain_text("They agree")
        expect(page.locator(f"#kernel-queues tr[data-fd='{fd_b}']")).to_have_count(1)

        page.get_by_label("Flaw: closing without unregistering", exact=True).check()
        # the click's POST is asynchronous: close only once the server has the flaw on
        wait_until(lambda: any(f["on"] for f in dashboard.api.get("/api/flaws").json()
                               if f["name"] == "close_without_unregister"),
                   what="the flaw is on in the server")
        a.close()   # the server closes fd_a but leaves it in its table; epoll drops it
        # checking the flaw's box scrolled the zoo panel into view, and the kernel panel
        # polls only while it is on screen (IntersectionObserver): bring it back
        panel.scroll_into_view_if_needed()
        stale = panel.locator(f"#kernel-interest tr[data-fd='{fd_a}']")
        expect(stale).to_have_attribute("data-mismatch", "1", timeout=DEADLINE_MS)
        expect(stale).to_have_class("mismatch")
        expect(stale).to_contain_text("MISMATCH")
        expect(panel.locator("[data-mismatch='1']")).to_have_count(1)
        expect(page.locator("#zoo-list li[data-flaw='close_without_unregister'] .flaw-message")) \
            .to_contain_text(f"fd {fd_a} was closed while registered")
        page.get_by_label("Flaw: closing without unregistering", exact=True).uncheck()
        expect(panel.locator("[data-mismatch='1']")).to_have_count(0, timeout=DEADLINE_MS)
        b.sendall(b"ok")
        assert recv_exactly(b, 2) == b"ok"
    assert dashboard.console_errors == []


def test_a_closed_fd_left_registered_stays_in_the_pollfd_array_as_pollnval(dashboard):
    """The bug zoo's "closing without unregistering" on poll: the page dropped the fd's
    registration at its close event, so the pollfd array lacked the very fd poll returned as
    POLLNVAL wait after wait (three entries beside nfds 4) until the next state re-read."""
    page, api = dashboard.page, dashboard.api
    assert api.post("/api/backend", json={"name": "poll"}).status_code == 200
    assert api.post("/api/flaws/close_without_unregister", json={"on": True}).status_code == 200
    sets = page.locator("#backend-sets")
    try:
        with dashboard.connect() as sock:
            fd = wait_for_row(page)
            assert echo(sock, b"one line\n") == b"one line\n"
        # well inside the page's periodic re-read (5 s), which hid the bug after a while
        expect(sets).to_contain_text(f"{{fd={fd}, events=POLLIN, revents=POLLNVAL}}",
                                     timeout=2500)
        assert page.evaluate(f"() => window.__muxscope.model.regs.has({fd})")
    finally:
        api.post("/api/flaws/close_without_unregister", json={"on": False})
    expect(sets).not_to_contain_text("POLLNVAL", timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


#: counts the layout reads the code panel makes while it rebuilds its view
TRAP_LAYOUT_READS_IN_RENDER = """async () => {
    const { CodePanel } = await import('/static/js/panels/code.js');
    window.__layoutReadsInRender = 0;
    let inside = false;
    const render = CodePanel.prototype.render;
    CodePanel.prototype.render = function (...args) {
        inside = true;
        try { return render.apply(this, args); } finally { inside = false; }
    };
    for (const name of ['offsetTop', 'clientHeight']) {
        const proto = name === 'offsetTop' ? HTMLElement.prototype : Element.prototype;
        const get = Object.getOwnPropertyDescriptor(proto, name).get;
        Object.defineProperty(proto, name, { configurable: true, get() {
            if (inside) window.__layoutReadsInRender++;
            return get.call(this);
        } });
    }
}"""
#: the first function's highlighted line lies inside its scrolled box
HIGHLIGHT_IN_VIEW = """() => {
    const pre = document.querySelector('#code-view pre');
    const hl = pre && pre.querySelector('.hl');
    if (!hl) return false;
    const box = pre.getBoundingClientRect(), line = hl.getBoundingClientRect();
    return pre.scrollTop > 0 && line.top >= box.top && line.bottom <= box.bottom;
}"""


def test_code_view_names_the_handler_of_a_step(dashboard):
    page = dashboard.page
    panel = page.locator("#code-panel")
    page.evaluate(TRAP_LAYOUT_READS_IN_RENDER)
    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        sock.sendall(b"step me")
        page.get_by_role("button", name="Step", exact=True).click()
        recv_item = panel.get_by_role("button", name=f"Show code: recv fd {fd}", exact=True)
        expect(recv_item).to_contain_text("TcpConnection.on_ready › TcpConnection._on_data",
                                          timeout=DEADLINE_MS)
        # by default the last event of the step is shown: here the write interest it turned on
        expect(panel.locator("#code-current")).to_contain_text(f"interest fd {fd}")
        expect(panel.locator(".code-fn").first).to_have_attribute("data-qualname", "Registrations.set_interest")
        recv_item.click()
        expect(recv_item).to_have_attribute("aria-pressed", "true")
        expect(panel).to_have_attribute("data-kind", "recv")
        fns = panel.locator(".code-fn")
        expect(fns).to_have_count(2)
        expect(fns.nth(0)).to_have_attribute("data-qualname", "TcpConnection.on_ready")
        expect(fns.nth(1)).to_have_attribute("data-qualname", "TcpConnection._on_data")
        expect(fns.nth(0).locator(".line.hl")).to_have_count(1)
        expect(fns.nth(0).locator(".line.hl")).to_contain_text("_on_data")
        expect(fns.nth(0)).to_contain_text("def on_ready(self, mask: int)")
        # the highlighted line is centred, in the frame after the rebuild: read right after
        # it, the layout was forced (up to 45 ms with the other panels' writes of that frame)
        page.wait_for_function(HIGHLIGHT_IN_VIEW, timeout=DEADLINE_MS)
        assert page.evaluate("() => window.__layoutReadsInRender") == 0

        # the next step sends the echo: the view moves on to it
        page.get_by_role("button", name="Step", exact=True).click()
        expect(panel.get_by_role("button", name=f"Show code: send fd {fd}", exact=True)) \
            .to_contain_text("TcpConnection.on_ready", timeout=DEADLINE_MS)
        assert recv_exactly(sock, 7) == b"step me"
    assert dashboard.console_errors == []


def test_spotlight_shows_only_the_chosen_fd(dashboard):
    page = dashboard.page
    with dashboard.connect() as a, dashboard.connect() as b:
        fd_a = wait_for_row(page)
        fd_b = wait_for_row(page, {fd_a})
        for sock, data in ((a, b"mine"), (b, b"theirs")):
            sock.sendall(data)
            assert recv_exactly(sock, len(data)) == data
        mine = page.get_by_role("button", name=f"Mark fd {fd_a} as mine", exact=True)
        mine.click()
        expect(mine).to_have_attribute("aria-pressed", "true")
        expect(page.locator(f"#connection-list tr[data-fd='{fd_a}']")).to_have_class("mine")
        colour_a = page.locator(f"#connection-list tr[data-fd='{fd_a}'] .peer-swatch") \
            .evaluate("el => el.style.backgroundColor")
        colour_b = page.locator(f"#connection-list tr[data-fd='{fd_b}'] .peer-swatch") \
            .evaluate("el => el.style.backgroundColor")
        assert colour_a and colour_b and colour_a != colour_b

        spot = page.get_by_label("Spotlight fd")
        expect(spot).to_have_value("")
        page.wait_for_function(
            f"() => [...document.querySelectorAll('#spotlight-select option')].some(o => o.value === '{fd_a}')",
            timeout=DEADLINE_MS)
        spot.select_option(str(fd_a))
        rows = page.locator("#connection-list tr")
        expect(rows).to_have_count(1, timeout=DEADLINE_MS)
        expect(rows.first).to_have_attribute("data-fd", str(fd_a))
        b.sendall(b"hidden")   # more traffic on the other fd stays out of the log
        assert recv_exactly(b, 6) == b"hidden"
        page.wait_for_function(
            f"() => [...window.__muxscope.model.recent(50)].some(e => e.kind === 'send' && e.fd === {fd_b})",
            timeout=DEADLINE_MS)
        # a log paint after the event reached the model has taken it (and filtered it out)
        painted = page.evaluate("() => window.__muxscope.logPaints")
        page.wait_for_function(f"() => window.__muxscope.logPaints > {painted}",
                               timeout=DEADLINE_MS)
        fds = page.evaluate("() => [...document.querySelectorAll('#event-log li')].map(li => li.dataset.fd)")
        assert fds and set(fds) == {str(fd_a)}, fds
        assert page.locator(f"#event-log li.k-recv[data-fd='{fd_a}']").count() >= 1
        assert page.locator(f"#event-log li.mine[data-fd='{fd_a}']").count() >= 1

        spot.select_option("")
        expect(rows).to_have_count(2, timeout=DEADLINE_MS)
        expect(page.locator(f"#event-log li[data-fd='{fd_b}']").first).to_be_attached(timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


def test_code_view_shows_the_flawed_handler_that_ran_and_where_registrations_come_from(
        dashboard):
    """With a flaw on, its own handler reads the socket: the panel showed the correct code
    (`TcpConnection.on_ready`) that did not run. And an `interest` register (on accept) was
    put down to `Registrations.set_interest`, which only modifies."""
    page = dashboard.page
    panel = page.locator("#code-panel")
    page.get_by_label("Flaw: EOF never handled", exact=True).check()
    expect(page.locator("#zoo-panel")).to_have_attribute("data-on", "eof_ignored",
                                                         timeout=DEADLINE_MS)
    try:
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        with dashboard.connect() as sock:
            page.get_by_role("button", name="Step", exact=True).click()  # the accept
            fd = wait_for_row(page)
            registered = panel.get_by_role("button", name=f"Show code: interest fd {fd}",
                                           exact=False)
            expect(registered.first).to_contain_text("Engine.adopt › Registrations.register",
                                                     timeout=DEADLINE_MS)
            sock.sendall(b"flawed")
            page.get_by_role("button", name="Step", exact=True).click()
            recv_item = panel.get_by_role("button", name=f"Show code: recv fd {fd}", exact=True)
            expect(recv_item).to_contain_text("EofIgnored.connection_ready › TcpConnection._on_data",
                                              timeout=DEADLINE_MS)
            recv_item.click()
            first = panel.locator(".code-fn").first
            expect(first).to_have_attribute("data-qualname", "EofIgnored.connection_ready")
            expect(first.locator(".line.hl")).to_contain_text("_on_data")
            page.get_by_role("button", name="Resume", exact=True).click()
            assert recv_exactly(sock, 6) == b"flawed"
    finally:
        dashboard.api.post("/api/loop", json={"action": "resume"})
        dashboard.api.post("/api/flaws/eof_ignored", json={"on": False})
    assert dashboard.console_errors == []


def test_viewing_the_past_the_code_panel_shows_the_handler_that_ran_then(dashboard):
    """The code panel followed the flaw on *now*: back at an iteration whose recv the flawed
    handler made, with the flaw off since, it named the correct handler, which had not run.
    The flaw switch (made here by another client) is now a `loop` event the page follows."""
    page, api = dashboard.page, dashboard.api
    panel = page.locator("#code-panel")
    recv_seq = """(fd) => { const e = window.__muxscope.model.recent(2000)
                              .filter(e => e.kind === 'recv' && e.fd === fd).pop();
                            return e ? e.seq : 0; }"""
    try:
        with dashboard.connect() as sock:
            fd = wait_for_row(page)
            assert api.post("/api/flaws/eof_ignored", json={"on": True}).status_code == 200
            page.wait_for_function("() => window.__muxscope.model.flaw === 'eof_ignored'",
                                   timeout=DEADLINE_MS)
            sock.sendall(b"flawed")
            assert recv_exactly(sock, 6) == b"flawed"
            flawed = int(page.wait_for_function(recv_seq, arg=fd, timeout=DEADLINE_MS).json_value())
            assert api.post("/api/flaws/eof_ignored", json={"on": False}).status_code == 200
            page.wait_for_function("() => window.__muxscope.model.flaw === ''", timeout=DEADLINE_MS)
            expect(page.locator("#zoo-panel")).to_have_attribute("data-on", "", timeout=DEADLINE_MS)
            sock.sendall(b"fixed")
            assert recv_exactly(sock, 5) == b"fixed"
            page.wait_for_function(f"(fd) => ({recv_seq})(fd) > {flawed}", arg=fd,
                                   timeout=DEADLINE_MS)
            fixed = int(page.evaluate(recv_seq, fd))
            timeline = "window.__muxscope.timeline"
            then = int(page.evaluate(f"() => {timeline}.iterationForSeq({flawed})"))
            now = int(page.evaluate(f"() => {timeline}.iterationForSeq({fixed})"))
            assert 0 < then < now
            recv_item = panel.get_by_role("button", name=f"Show code: recv fd {fd}", exact=True)
            scrub_to(page, then)
            expect(recv_item).to_contain_text("EofIgnored.connection_ready ›", timeout=DEADLINE_MS)
            scrub_to(page, now)
            expect(recv_item).to_contain_text("TcpConnection.on_ready ›", timeout=DEADLINE_MS)
            expect(recv_item).not_to_contain_text("EofIgnored")
    finally:
        api.post("/api/flaws/eof_ignored", json={"on": False})
    assert dashboard.console_errors == []


def test_a_pause_buttons_loop_event_shows_the_pauses_code_not_a_steps(dashboard):
    """Every `loop` event was put down to the step's code (`LoopControl._step`), a Pause
    button's and a breakpoint's too: the code panel named a path that had not run. The
    event's `cause` picks the chain."""
    page = dashboard.page
    panel = page.locator("#code-panel")
    with dashboard.connect() as sock:
        wait_for_row(page)
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        sock.sendall(b"x")  # the step below has something to handle besides its loop events
        paused = panel.locator("button[data-kind='loop']").last
        expect(paused).to_contain_text("LoopControl._set_paused › LoopControl._emit_loop",
                                       timeout=DEADLINE_MS)
        page.get_by_role("button", name="Step", exact=True).click()
        stepped = panel.locator("button[data-kind='loop']").last
        expect(stepped).to_contain_text("LoopControl._step › LoopControl._emit_loop",
                                        timeout=DEADLINE_MS)
        page.get_by_role("button", name="Resume", exact=True).click()
        assert recv_exactly(sock, 1) == b"x"
    assert dashboard.console_errors == []


def test_a_long_iterations_list_keeps_its_last_events_pickable(dashboard):
    """The code panel listed an iteration's first 40 events only: with 12 fds ready in one
    step, the event it showed (the last handler's, #N) was not in its own list, and neither
    was the step's `loop paused`. The last ones are listed too now."""
    page = dashboard.page
    panel = page.locator("#code-panel")
    socks = [dashboard.connect() for _ in range(12)]
    try:
        expect(page.locator("#connection-list tr")).to_have_count(12, timeout=DEADLINE_MS)
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        for sock in socks:
            sock.sendall(b"many")
        dashboard.api.post("/api/loop", json={"action": "step"})
        expect(panel.locator("li.muted")).to_contain_text("more events of this iteration",
                                                          timeout=DEADLINE_MS)
        pressed = panel.locator("button[aria-pressed='true']")
        expect(pressed).to_have_count(1)  # the event shown is one of the list's
        seq = pressed.get_attribute("data-seq")
        expect(panel.locator("#code-current")).to_contain_text(f"(#{seq})")
        last = panel.locator("button[data-kind]").last
        expect(last).to_have_attribute("data-kind", "loop")
        expect(last).to_contain_text("LoopControl._step")
        page.get_by_role("button", name="Resume", exact=True).click()
        for sock in socks:
            assert recv_exactly(sock, 4) == b"many"
    finally:
        for sock in socks:
            sock.close()
    assert dashboard.console_errors == []


@contextlib.contextmanager
def paused_with_flaw(dashboard, flaw: str) -> Iterator[tuple[socket.socket, int]]:
    """Flaw `flaw` on and the loop paused from the page, then one client accepted by a Step:
    (its socket, its fd). Resumed and the flaw off again afterwards."""
    page, api = dashboard.page, dashboard.api
    try:
        assert api.post(f"/api/flaws/{flaw}", json={"on": True}).status_code == 200
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(page.locator("#loop-state")).to_have_text("paused", timeout=DEADLINE_MS)
        with dashboard.connect() as sock:
            page.get_by_role("button", name="Step", exact=True).click()  # the accept
            yield sock, wait_for_row(page)
    finally:
        api.post("/api/loop", json={"action": "resume"})
        api.post(f"/api/flaws/{flaw}", json={"on": False})


def test_a_flaws_own_early_close_shows_its_code_not_the_usual_path(dashboard):
    """hup_before_in closes on a hang-up before reading: the code panel put that close down to
    `TcpConnection.on_ready › _on_eof`, the correct path, which had not run."""
    page = dashboard.page
    panel = page.locator("#code-panel")
    with paused_with_flaw(dashboard, "hup_before_in") as (sock, fd):
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        page.get_by_role("button", name="Step", exact=True).click()  # input and hang-up
        # (its name is "Show code: c\u2060lose fd N": "Close fd N" names the list's buttons)
        closed = panel.locator("button[data-kind='close']", has_text=f"close fd {fd} ")
        expect(closed).to_contain_text("HupBeforeIn.connection_ready › TcpClosing.close",
                                       timeout=DEADLINE_MS)
        expect(closed).not_to_contain_text("_on_eof")
        closed.click()
        first = panel.locator(".code-fn").first
        expect(first).to_have_attribute("data-qualname", "HupBeforeIn.connection_ready")
        expect(first.locator(".line.hl")).to_contain_text("conn.close(hangup_reason(")
    assert dashboard.console_errors == []


def test_a_users_close_shows_its_flush_as_the_closes_not_a_handlers(dashboard):
    """"Close fd N" sends what is queued through on_ready's write half, called by shut_down:
    the code panel put that send down to a readiness, and with a flaw on to the flaw's own
    handler, neither of which ran."""
    page = dashboard.page
    panel = page.locator("#code-panel")
    with paused_with_flaw(dashboard, "eof_ignored") as (sock, fd):
        sock.sendall(b"queued, then closed")
        page.get_by_role("button", name="Step", exact=True).click()  # recv: queued
        expect(panel.locator("button[data-kind='queue']", has_text=f"queue fd {fd} ")
               ).to_have_count(1, timeout=DEADLINE_MS)
        page.get_by_role("button", name=f"Close fd {fd}", exact=True).click()
        sent = panel.locator("button[data-kind='send']", has_text=f"send fd {fd} ")
        expect(sent).to_contain_text(
            "Engine._close_connection › TcpClosing.shut_down › TcpConnection.on_ready",
            timeout=DEADLINE_MS)
        expect(sent).not_to_contain_text("EofIgnored")
        assert recv_exactly(sock, 19) == b"queued, then closed"
    assert dashboard.console_errors == []


def test_kernel_truth_fits_its_panel_with_the_longest_masks(dashboard):
    """Edge-triggered one-shot masks (EPOLLIN|EPOLLERR|EPOLLHUP|EPOLLONESHOT|EPOLLET ...) had
    no break opportunity: at 1400 px the table ran out of its panel sideways, hiding the
    server's column and the check column with its notes."""
    page = dashboard.page
    # off screen it has not been read: the page says so (its tables were just empty)
    expect(page.locator("#kernel-summary")).to_have_text(
        "Not read yet: the first read comes once this panel is on screen.")
    assert dashboard.api.post("/api/backend", json={"name": "epoll", "trigger": "edge",
                                                    "oneshot": True}).status_code == 200
    with dashboard.connect() as sock:
        fd = wait_for_row(page)
        assert echo(sock, b"x") == b"x"
        page.locator("#kernel-panel").scroll_into_view_if_needed()
        expect(page.locator(f"#kernel-interest tr[data-fd='{fd}']")).to_contain_text(
            "EPOLLONESHOT", timeout=DEADLINE_MS)
        wrap = page.locator("#kernel-interest-table").locator("xpath=..")
        sizes = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert sizes[0] <= sizes[1], f"the table is {sizes[0]} px wide in {sizes[1]} px"
        # the sockets' table too: the UDP socket's "0 of 212992 (memory, overhead included)"
        # did not wrap, and pushed the server's queue column out of view (a review, session 43)
        queues = page.locator("#kernel-queues-table")
        expect(queues).to_contain_text("overhead included", timeout=DEADLINE_MS)
        expect(queues.locator(f"tr[data-fd='{fd}']")).to_have_count(1, timeout=DEADLINE_MS)
        sizes = queues.locator("xpath=..").evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert sizes[0] <= sizes[1], f"the queues table is {sizes[0]} px wide in {sizes[1]} px"
        # the read is a command through the control fd, which its wake-up disarmed: the
        # answer said so of the control fd (the page explained it); it is re-armed first now
        control = dashboard.api.get("/api/state").json()["control_fd"]
        row = page.locator(f"#kernel-interest tr[data-fd='{control}']")
        expect(row).to_contain_text("EPOLLIN", timeout=DEADLINE_MS)
        expect(row).not_to_contain_text("disarmed")
        item = next(i for i in dashboard.api.get("/api/kernel").json()["epoll"]["interest"]
                    if i["fd"] == control)
        assert item["mask"] & select.EPOLLIN, item


CHAIN_KEYS = """async ([write, events]) => {
    const { CodePanel } = await import('/static/js/panels/code.js');
    return events.map((_, i) => CodePanel.prototype.chainKey.call({ write }, events, i));
}"""


def test_the_code_view_tells_apart_the_paths_of_one_kind(dashboard):
    """A bug zoo audit found events put down to another path than the one that ran: every
    eager send to the recv handler (the write half's too), an eager partial send's queue to
    the write half, an echoed datagram to the receiving code, a close after the queue left at
    EOF went out to _on_eof, a one-shot re-arm to a handler's set_interest."""
    ev = lambda kind, **f: {"kind": kind, "fd": 7, **f}  # noqa: E731
    eager = [ev("ready", flags=["EPOLLIN"]), ev("recv", bytes=9), ev("send", partial=True),
             ev("queue", depth=1), ev("ready", flags=["EPOLLOUT"]), ev("send", partial=False),
             ev("queue", depth=0), ev("interest", op="modify", cause="rearm"),
             ev("close", reason="eof", flushed=True), ev("close", reason="eof"),
             ev("close", reason="user", flushed=True)]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["eager", eager]) == [
        "ready", "recv", "send@eager", "queue", "ready", "send", "queue@send",
        "interest@rearm", "close@flushed", "close", "close@user"]
    udp = [ev("datagram", dir="in"), ev("flaw", name="udp_wrong_address"),
           ev("datagram", dir="out"), ev("ready", flags=["EPOLLOUT"]), ev("datagram", dir="out"),
           ev("interest", op="modify", cause="flaw", flags=["EPOLLIN", "EPOLLRDHUP"]),
           ev("interest", op="modify", cause="flaw", flags=["EPOLLIN"]),
           ev("interest", op="unregister", cause="stale", flags=["EPOLLIN"])]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", udp]) == [
        "datagram", "flaw", "datagram@out", "ready", "datagram@flush", "interest@flaw",
        "interest@flaw-off", "interest@stale"]
    # a user's close (from the control fd's handler, or after a pause) flushes the queue;
    # an eager send that failed inside recv's handler closes there
    # the queue flushed by shut_down (a user's close, also in slow motion, or the engine's
    # stop: `closing`); an eager send that failed inside recv's handler (close() unregisters,
    # then says close); a release is always a readiness's write half
    unregister = ev("interest", op="unregister", flags=["EPOLLIN"])
    closing = [ev("ready", flags=["EPOLLIN"]), ev("recv", bytes=3), ev("queue", depth=1),
               ev("send", partial=False, closing="user"), ev("queue", depth=0, closing="user"),
               ev("interest", op="modify", flags=["EPOLLIN"]),
               unregister, ev("close", reason="user"),
               ev("send", partial=True, closing="shutdown"),
               ev("queue", depth=1, closing="shutdown"), ev("backpressure", paused=False),
               ev("ready", flags=["EPOLLIN"]), ev("recv", bytes=3), unregister,
               ev("close", reason="reset"), unregister, ev("close", reason="reset")]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["eager", closing]) == [
        "ready", "recv", "queue", "send@user", "queue@user", "interest@user-emptied",
        "interest@unregister", "close@user", "send@shutdown", "queue@shutdown", "backpressure@release", "ready",
        "recv", "interest@unregister", "close@eager-reset", "interest@unregister",
        "close@reset"]
    # after a close's flush: write interest kept (_after_write), the queue emptied (on_ready's
    # own end), or a streaming peer's close lingering (shut_down reads only); a one-shot
    # control fd armed again inside its own handler by /api/kernel's read (`early`)
    after_flush = [ev("queue", depth=2, closing="user"),
                   ev("interest", op="modify", flags=["EPOLLIN", "EPOLLOUT"]),
                   ev("queue", depth=0, closing="shutdown"), ev("interest", op="modify", flags=["EPOLLIN"]),
                   ev("queue", depth=3, closing="user"), ev("interest", op="modify", flags=["EPOLLIN"]),
                   ev("interest", op="modify", cause="rearm", early=True)]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", after_flush])[1::2] == [
        "interest@user", "interest@shutdown-emptied", "interest@linger"]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", after_flush])[-1] == "interest@rearm-early"
    # a recording made before `closing`: a flush with no readiness of its fd, ended by its
    # user close in the same iteration
    legacy = [{"kind": "wait"}, {"kind": "ready", "fd": 4, "flags": ["EPOLLIN"]},
              ev("send", partial=False), ev("queue", depth=0), unregister,
              ev("close", reason="user")]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", legacy])[2:4] == [
        "send@user", "queue@user"]
    # a pause by _put (watched: its queue and interest events before it), or by the batch
    # dispatch's inline read in an iteration nobody watched (`inline`, mux/hot.py)
    paused = [ev("recv", bytes=9), ev("queue", depth=9), ev("interest", op="modify"),
              ev("backpressure", paused=True), ev("backpressure", paused=True, inline=True)]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", paused])[3:] == [
        "backpressure", "backpressure@inline"]
    # an `error` names the path that found it; the engine's own close after a handler
    # raised, or of a connection it refused, follows its fd's error (the unregister between)
    errors = [ev("error", message="m", cause="crash"), unregister, ev("close", reason="error"),
              ev("error", message="m", cause="refused"), ev("close", reason="error"),
              ev("error", message="m"), ev("error", message="m", cause="udp"),
              ev("recv", bytes=3), ev("close", reason="error"), ev("close", reason="error")]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", errors]) == [
        "error@crash", "interest@unregister", "close@crash", "error@refused", "close@refused",
        "error", "error@udp", "recv", "close@eager-error", "close@error"]
    # close_without_unregister's flaw event stands where the unregister would be; a
    # recording made before errors said their cause: read from the engine's wording
    legacy = [ev("error", message="m", cause="crash"), ev("flaw", name="close_without_unregister"),
              ev("close", reason="error"),
              ev("error", message="the handler of fd 7 raised RuntimeError: x; closed the connection"),
              unregister, ev("close", reason="error"),
              ev("error", message="connection limit (1) reached; closed the new connection fd 7"),
              ev("close", reason="error"),
              ev("error", message="accept failed: Too many open files (EMFILE); pausing accepts"),
              ev("error", message="accept failed: Software caused connection abort"),
              ev("error", message="accepting again: file descriptors are available"),
              ev("error", message="udp recv: Connection refused")]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", legacy]) == [
        "error@crash", "flaw", "close@crash", "error@crash", "interest@unregister",
        "close@crash", "error@refused", "close@refused", "error", "error@accept",
        "error@recovered", "error@udp"]
    code = dashboard.api.get("/api/code").json()
    late = [{"kind": "wait", "late": True}, ev("ready", flags=["EPOLLIN"], late=True),
            {"kind": "wait"}, ev("ready", flags=["EPOLLIN"])]
    assert dashboard.page.evaluate(CHAIN_KEYS, ["queued", late]) == [
        "wait@late", "ready@late", "wait", "ready"]
    for key in ("wait@late", "ready@late", "interest@user", "interest@shutdown", "interest@user-emptied",
                "interest@shutdown-emptied", "interest@linger", "interest@rearm-early", "error@crash", "close@crash", "error@refused", "close@refused", "error@accept",
                "error@recovered", "error@udp", "backpressure@inline", "send@user", "queue@user", "send@shutdown", "queue@shutdown", "close@eager-reset",
                "close@eager-error", "send@eager", "queue@send", "interest@rearm", "close@flushed", "datagram@out",
                "datagram@flush", "interest@flaw", "interest@flaw-off", "interest@stale"):
        assert code[key], key  # every key the page picks has its chain


def test_the_zoo_says_which_flaws_cannot_show_with_this_backend(dashboard):
    page, api = dashboard.page, dashboard.api
    item = page.locator("#zoo-list li[data-flaw='et_no_drain'] .flaw-inert")
    assert api.post("/api/backend", json={"name": "epoll", "trigger": "level"}).status_code == 200
    expect(item).to_contain_text("No effect now: it needs edge-triggered epoll",
                                 timeout=DEADLINE_MS)
    assert api.post("/api/backend", json={"name": "epoll", "trigger": "edge",
                                          "write": "eager"}).status_code == 200
    expect(item).to_be_hidden(timeout=DEADLINE_MS)   # the switch's event made the page re-read
    assert dashboard.console_errors == []


def test_a_focused_code_step_keeps_the_focus_while_the_loop_runs(dashboard):
    """The list of steps is rebuilt on every iteration: a focused step lost the focus to the
    page's body within a second, so the panel could not be used from the keyboard."""
    page = dashboard.page
    steps = page.locator("#code-steps button")
    expect(steps.first).to_be_visible(timeout=DEADLINE_MS)
    steps.first.focus()
    first = page.evaluate("() => window.__muxscope.timeline.last")
    page.wait_for_function(f"() => window.__muxscope.timeline.last >= {first + 3}",
                           timeout=DEADLINE_MS)   # (an idle loop waits 4 times a second)
    assert page.evaluate("() => document.getElementById('code-steps')"
                         ".contains(document.activeElement)")


def test_fast_changing_texts_are_not_live_regions(dashboard):
    """A screen reader read out the timeline status 83 times in 5 s of Play, and each bug-zoo
    detection (a busy flaw rewrites its message every second)."""
    page = dashboard.page
    expect(page.locator("#timeline-status")).to_have_attribute("aria-live", "off")
    messages = page.locator("#zoo-list .flaw-message")
    expect(messages.first).to_be_attached(timeout=DEADLINE_MS)
    assert page.evaluate("() => [...document.querySelectorAll('#zoo-list .flaw-message')]"
                         ".every(m => !m.hasAttribute('role') && !m.hasAttribute('aria-live'))")


def test_panels_below_the_fold_are_in_the_accessibility_tree(dashboard):
    """`content-visibility: auto` kept off-screen panels out of Chromium's accessibility tree
    (`ignored: notRendered`): a screen reader's headings stopped at the fifth of 14 panels."""
    page = dashboard.page
    page.evaluate("() => window.scrollTo(0, 0)")
    cdp = page.context.new_cdp_session(page)
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    for selector in ("#zoo-title", "#log-title", "#code-title", "#trace-title"):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        [ax] = cdp.send("Accessibility.getPartialAXTree",
                        {"nodeId": node, "fetchRelatives": False})["nodes"][:1]
        assert not ax.get("ignored"), (selector, ax.get("ignoredReasons"))


def test_a_refusal_caused_far_down_the_page_is_shown_on_screen(dashboard):
    """A second flaw's 409 went to the error area at the top of the page, 2,000 px above the
    zoo the user was looking at. A line at the bottom says so now (the area made sticky
    covered the controls keyboard focus moved to); Show takes the user there, and Escape or
    Dismiss brings the keyboard back to the control it left."""
    page = dashboard.page
    page.get_by_label("Flaw: EOF never handled", exact=True).check()
    other = page.get_by_label("Flaw: hang-up checked before input", exact=True)
    other.click()  # scrolls the zoo into view first
    area, notice = page.locator("#error-area"), page.locator("#error-notice")
    expect(area).to_contain_text("409", timeout=DEADLINE_MS)
    assert page.evaluate("window.scrollY") > 1000  # far below the top, where the area sits
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("409")
    # room below the page's last row for it: it covered the last controls' bottom edge
    assert page.evaluate("parseFloat(getComputedStyle(document.body).paddingBottom)") > 20
    expect(notice).to_contain_text("shown at the top of the page")
    box, viewport = notice.bounding_box(), page.viewport_size
    assert box is not None and viewport is not None
    assert 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], box
    notice.get_by_role("button", name="Show").click()
    expect(notice).to_be_hidden()  # the area itself is on screen now
    expect(area.get_by_role("button", name="Dismiss")).to_be_focused()
    page.keyboard.press("Escape")
    expect(area.locator("p.error-message")).to_have_count(0)
    assert page.evaluate("getComputedStyle(document.body).paddingBottom") == "0px"
    expect(other).to_be_focused()  # where the keyboard was when the error came
    page.get_by_label("Flaw: EOF never handled", exact=True).uncheck()


def test_kernel_truth_shows_the_udp_sockets_queue_where_a_paused_burst_waits(dashboard):
    """The panel listed TCP connections only: a paused loop's datagrams, and what the kernel
    dropped of them, were nowhere on the page."""
    page = dashboard.page
    udp = dashboard.api.get("/api/state").json()["listeners"]["udp"]
    panel = page.locator("#kernel-panel")
    panel.scroll_into_view_if_needed()
    row = page.locator("#kernel-queues tr[data-role='udp']")
    expect(row).to_contain_text(f"UDP socket, port {udp['port']}", timeout=DEADLINE_MS)
    assert dashboard.api.post("/api/loop", json={"action": "pause"}).status_code == 200
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        for _ in range(3000):  # more than the buffer holds: the kernel drops the rest
            client.sendto(b"u" * 1000, ("127.0.0.1", udp["port"]))
        expect(row).to_contain_text("next datagram 1000 B", timeout=DEADLINE_MS)
        expect(row).to_contain_text(re.compile(r"[\d,]+ dropped by the kernel"))
        assert dashboard.api.post("/api/loop", json={"action": "resume"}).status_code == 200
        expect(row).not_to_contain_text("next datagram", timeout=DEADLINE_MS)
    assert dashboard.console_errors == []


def test_the_error_notice_shows_while_less_than_half_of_the_error_area_is_on_screen(dashboard):
    """The area's bottom sliver alone (its Dismiss, no error text in view) counted as "on
    screen" and hid the notice that says where the error is; half of it must be in view."""
    page = dashboard.page
    page.get_by_role("button", name="Step").click()  # while running: 409, pause first
    area, notice = page.locator("#error-area"), page.locator("#error-notice")
    expect(area).to_contain_text("409", timeout=DEADLINE_MS)
    page.evaluate("() => document.body.style.minHeight = '5000px'")  # room to scroll it away

    def scroll_to_show(fraction: float) -> None:
        """Scroll so that only the area's bottom `fraction` is in the viewport."""
        page.evaluate("""(f) => { const r = document.getElementById('error-area').getBoundingClientRect();
                                 window.scrollBy(0, r.top + r.height * (1 - f)); }""", fraction)

    scroll_to_show(0.25)
    expect(notice).to_be_visible()
    scroll_to_show(0.75)
    expect(notice).to_be_hidden()
    scroll_to_show(0.25)
    expect(notice).to_be_visible()
    assert [e for e in dashboard.console_errors if "409 (Conflict)" not in e] == []  # (the Step's)


def test_kernel_truth_lists_queues_by_fd_and_says_where_its_tables_stop(dashboard):
    """With 520 clients both tables stopped at 200 rows without a word, and the queue table
    was in accept order: a learner's own connection (a high fd) was nowhere, and a paused fd
    sat below later ones."""
    page = dashboard.page
    panel = page.locator("#kernel-panel")
    with load_clients(dashboard, 205, 1, 0):
        wait_until(lambda: len(dashboard.api.get("/api/state").json()["connections"]) >= 205,
                   10, "the generated clients held")
        panel.scroll_into_view_if_needed()
        summary = page.locator("#kernel-summary")
        try:  # two reads a second of 205 clients' tables, on a machine this loaded: 15 s
            expect(summary).to_contain_text(
                re.compile(r"The interest list table shows the lowest 200 fds of \d+\. "
                           r"Read at .*The socket queues table shows the lowest 200 fds of \d+\."),
                timeout=15_000)
        except AssertionError as exc:  # (once in CI: empty for 8 s, the cause not seen)
            reads = page.evaluate("() => window.__muxscope.kernelPoll")
            ws = page.locator("#ws-status").get_attribute("data-state")
            raise AssertionError(f"{exc}\nthe panel's polls: {reads}; websocket: {ws}") from None
        shown = re.findall(r"lowest 200 fds of (\d+)", summary.text_content() or "")
        assert all(int(n) >= 205 for n in shown), shown
        fds = page.evaluate("""() => [...document.querySelectorAll('#kernel-queues tr')]
                               .filter(tr => tr.dataset.role !== 'udp')
                               .map(tr => Number(tr.dataset.fd))""")
        assert len(fds) == 200 and fds == sorted(fds), fds
    assert dashboard.console_errors == []
