"""Browser fixtures: Debian's headless Chromium driven by Playwright, against a real app.

Every page records console errors and every request that leaves 127.0.0.1; a test that fails
saves a screenshot under tests/artifacts/ so what a user saw can be looked at
(`MUXSCOPE_SCREENSHOTS=all`: every test does; a full-page one takes ~0.3 s, 40 s of a run).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from app.main import _asset_dir, create_app
from app.settings import Settings
from tests.conftest import run_asgi, wait_until
from tests.event_schema import assert_events_follow_spec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SCREENSHOT_ALL = os.environ.get("MUXSCOPE_SCREENSHOTS") == "all"
CALL_PASSED = pytest.StashKey[bool]()
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep whether the test itself passed, for the screenshot its dashboard takes at the end."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[CALL_PASSED] = report.passed


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield browser
        browser.close()


@dataclass
class Dashboard:
    base: str
    app: Any
    page: Page
    api: httpx.Client
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.engine.tcp_port), timeout=10)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _record(dash: Dashboard, page: Page) -> None:
    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            dash.console_errors.append(msg.text)

    def on_request(request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        if request.url.startswith(("data:", "blob:")):
            return
        if host not in LOCAL_HOSTS:
            dash.external_requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: dash.console_errors.append(f"pageerror: {exc}"))
    page.on("request", on_request)


VIEWPORT = {"width": 1400, "height": 1000}


class _Relay(list[str]):
    """A list whose appends go to the list of that name of the tab's current test."""

    def __init__(self, tab: _Tab, name: str) -> None:
        super().__init__()
        self.tab, self.name = tab, name

    def append(self, item: str) -> None:
        if self.tab.current is not None:
            getattr(self.tab.current, self.name).append(item)


class _Tab:
    """One browser tab a worker's tests take turns in. A new page costs a renderer process:
    ~0.4 s idle, 1-2 s beside the rest of the suite, and a dashboard's boot in a new one
    1.3-2.7 s against 0.6-0.9 s in a tab that has shown one before. A navigation gives each
    test a new document (its own module instances, its own socket); each test's app has its
    own port, so its own origin. After a test that failed the tab is replaced, so that a hung
    or crashed page cannot fail the next test."""

    def __init__(self, browser: Browser, routes: Callable[[BrowserContext], None] | None = None):
        self.context = browser.new_context(viewport=VIEWPORT)
        if routes is not None:
            routes(self.context)
        self.current: Dashboard | None = None
        self.page = self._new_page()

    def _new_page(self) -> Page:
        page = self.context.new_page()
        relay = Dashboard("", None, page, None)  # type: ignore[arg-type]
        relay.console_errors = _Relay(self, "console_errors")
        relay.external_requests = _Relay(self, "external_requests")
        _record(relay, page)
        return page

    def enter(self, dash: Dashboard) -> None:
        """Hand the tab to a test (routes and viewport as a new page has them)."""
        self.page.unroute_all(behavior="ignoreErrors")
        self.page.set_viewport_size(VIEWPORT)
        self.current = dash

    def leave(self, passed: bool) -> None:
        """Take it back: pages the test opened are closed, the page left for a blank one."""
        self.current = None
        for page in self.context.pages:
            if page is not self.page:
                page.close()
        if passed:
            try:
                self.page.goto("about:blank", timeout=5000)
                return
            except PlaywrightError:  # a page that will not leave is replaced
                pass
        self.page.close()
        self.page = self._new_page()


def _screenshot_unless_passed(dash: Dashboard, request: pytest.FixtureRequest, passed: bool,
                              suffix: str = "") -> None:
    if SCREENSHOT_ALL or not passed:
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "") + suffix
        dash.screenshot(name)


@pytest.fixture(scope="session")
def dashboard_tab(browser: Browser) -> Iterator[_Tab]:
    tab = _Tab(browser)
    yield tab
    tab.context.close()


@pytest.fixture
def dashboard(browser: Browser, dashboard_tab: _Tab,
              request: pytest.FixtureRequest) -> Iterator[Dashboard]:
    """The real app on free ports, and a fresh document on its dashboard (live, connected)."""
    yield from _dashboard(browser, request, Settings(http_port=0, echo_port=0, load_cap=500),
                          tab=dashboard_tab)


def _dashboard(browser: Browser, request: pytest.FixtureRequest, settings: Settings,
               path: str = "/", suffix: str = "", tab: _Tab | None = None) -> Iterator[Dashboard]:
    """The app, and a page on it: in `tab`, or a page of its own (more than one in a test)."""
    app = create_app(settings)
    with run_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as api:
        context = None
        if tab is None:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            dash = Dashboard(base, app, page, api)
            _record(dash, page)
        else:
            dash = Dashboard(base, app, tab.page, api)
            tab.enter(dash)
        passed = False
        try:
            dash.page.goto(base + path)
            # the snapshot, and the frame after it, which paints every panel with it: until
            # then the panels grow as their content comes, and what is below them moves
            dash.page.wait_for_function(SNAPSHOT_PAINTED, timeout=10_000)
            yield dash
            passed = request.node.stash.get(CALL_PASSED, False)
        finally:
            try:
                _screenshot_unless_passed(dash, request, passed, suffix)
            finally:
                if context is not None:
                    context.close()
                if tab is not None:
                    tab.leave(passed)
    # the events the app passed on to the page (its trace ring holds the last ones): SPEC §3
    assert_events_follow_spec(app.state.trace.events())


#: the page has its snapshot, and has painted every panel with it since (the frame after it)
SNAPSHOT_PAINTED = ("() => window.__muxscope && window.__muxscope.frames.snapshot >= 1"
                    " && window.__muxscope.paints > window.__muxscope.snapshotPaint")

BARE_PATH = "/__bare-page"  # answered by the browser itself (a route): the server has no such page


@pytest.fixture(scope="session")
def module_server() -> Iterator[tuple[str, Any, httpx.Client]]:
    """One server per worker of the page's static files alone, for the checks that only
    import its modules. No engine: a whole app kept for the worker's session ran its loop
    beside every later test, and a test that counts calls to a patched `time` function
    counted the loop's too."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=str(_asset_dir("static"))), name="static")
    with run_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as api:
        yield base, app, api


@pytest.fixture(scope="session")
def bare_tab(browser: Browser, module_server: tuple[str, Any, httpx.Client]) -> Iterator[_Tab]:
    def blank(context: BrowserContext) -> None:
        context.route(module_server[0] + BARE_PATH, lambda route: route.fulfill(
            status=200, content_type="text/html",
            body="<!doctype html><html lang=en><title>muxscope modules</title><body></body></html>"))

    tab = _Tab(browser, routes=blank)
    yield tab
    tab.context.close()


@pytest.fixture
def bare_page(bare_tab: _Tab, module_server: tuple[str, Any, httpx.Client],
              request: pytest.FixtureRequest) -> Iterator[Dashboard]:
    """A fresh document on the app's origin with no dashboard booted in it: for checks that
    run the page's own modules on hand-written frames (``await import('/static/js/...')``),
    in a tab of their own (`_Tab`; its storage cleared first: one origin for all of them). A
    booted dashboard costs ~1.3 s a test (3.3 s beside the rest of the suite), this a
    navigation. No live page's model, socket or timers can touch what a check builds."""
    base, app, api = module_server
    dash = Dashboard(base, app, bare_tab.page, api)
    bare_tab.enter(dash)
    passed = False
    try:
        dash.page.goto(base + BARE_PATH)
        dash.page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
        yield dash
        passed = request.node.stash.get(CALL_PASSED, False)
    finally:
        try:
            _screenshot_unless_passed(dash, request, passed)
        finally:
            bare_tab.leave(passed)


@pytest.fixture
def open_dashboard(browser: Browser,
                   request: pytest.FixtureRequest) -> Iterator[Callable[..., Dashboard]]:
    """``open_dashboard(settings, suffix="")``: more dashboards in one test (e.g. a live run
    with ``Settings(record=path)``, then ``Settings(replay_file=path)``); each is closed (and
    screenshotted as ``<test name><suffix>.png``) at the end of the test."""
    with contextlib.ExitStack() as stack:
        def _open(settings: Settings, suffix: str = "", path: str = "/") -> Dashboard:
            gen = _dashboard(browser, request, settings, path, suffix)
            dash = next(gen)
            stack.callback(lambda: next(gen, None))
            return dash

        yield _open


def peer_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def server_fd(dashboard, sock: socket.socket, timeout: float = 5.0) -> int:
    """The server-side fd of our client socket, from GET /api/state (matched by peer)."""
    peer = peer_of(sock)

    def fd_of_peer() -> int | None:  # an fd is never 0 here: stdin holds that
        connections = dashboard.api.get("/api/state").json()["connections"]
        return next((c["fd"] for c in connections if c["peer"] == peer), None)

    fd: int = wait_until(fd_of_peer, timeout, f"a connection with peer {peer} in /api/state",
                     interval=0.02)
    return fd


def echo(sock: socket.socket, data: bytes, timeout: float = 5.0) -> bytes:
    """Send data and read back exactly len(data) bytes (fails on EOF or timeout)."""
    sock.settimeout(timeout)
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(len(data) - len(got))
        if not chunk:
            raise AssertionError(f"EOF after {len(got)} of {len(data)} echoed bytes")
        got += chunk
    return got
