"""SecurityMiddleware against a real uvicorn server (SPEC §6)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from app.security import (
    DenialLogFilter,
    SecurityMiddleware,
    host_header_is_loopback,
    install_denial_log_filter,
    is_loopback_host,
)
from tests.conftest import run_async, wait_until

ServeAsgi = Callable[..., AbstractContextManager[str]]
EVIL = "http://evil.example"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def index() -> dict[str, bool]:
        return {"page": True}

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/x")
    def get_x() -> dict[str, str]:
        return {"x": "get"}

    @app.post("/api/x")
    def post_x() -> dict[str, str]:
        return {"x": "post"}

    @app.delete("/api/x")
    def delete_x() -> dict[str, str]:
        return {"x": "delete"}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse("muxscope_events_total 0\n")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    return app


@pytest.fixture(scope="module")
def base(serve_asgi: ServeAsgi) -> Iterator[str]:
    """Loopback bind: Host and Origin checks, no token."""
    app = SecurityMiddleware(make_app(), loopback_only=True, token=None)
    with serve_asgi(app) as url:
        yield url


@pytest.fixture(scope="module")
def token_base(serve_asgi: ServeAsgi) -> Iterator[str]:
    """As for a non-loopback bind: token "t" required (still served on 127.0.0.1)."""
    app = SecurityMiddleware(make_app(), loopback_only=False, token="t")
    with serve_asgi(app) as url:
        yield url


def netloc(url: str) -> str:
    return urlsplit(url).netloc


def ws_url(url: str, path: str = "/ws") -> str:
    return "ws://" + netloc(url) + path


def ws_open(url: str, *, sock: socket.socket | None = None, **kwargs: Any) -> str:
    """Open a websocket, return the first message (raises InvalidStatus when refused)."""
    with connect(url, sock=sock, proxy=None, open_timeout=5, **kwargs) as ws:
        message = ws.recv(timeout=5)
    assert isinstance(message, str)
    return message


def ws_refusal(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        ws_open(url, **kwargs)
    return info.value.response.status_code


def raw_request(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------- helpers, no server


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("LocalHost:8000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:1", True),
        ("[::1]", True),
        ("[::1]:8000", True),
        ("::1", False),
        ("evil.example", False),
        ("evil.example:8000", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("127.0.0.1:80:80", False),
        ("127.0.0.1:abc", False),
        ("[::1]x", False),
        ("", False),
        # any loopback IP literal the server may be bound to (--host 127.0.0.2 ...)
        ("127.0.0.2:8000", True),
        ("127.255.255.254", True),
        ("[::ffff:127.0.0.1]:8000", True),
        ("[::ffff:10.0.0.1]:8000", False),
        ("128.0.0.1", False),
        ("0.0.0.0:8000", False),
        ("localhost.:8000", False),
    ],
)
def test_host_header_is_loopback(host: str, expected: bool) -> None:
    assert host_header_is_loopback(host) is expected


# ----------------------------------------------------------------- origin checks


def test_same_origin_post_allowed(base: str) -> None:
    r = httpx.post(base + "/api/x", headers={"Origin": "http://" + netloc(base)})
    assert r.status_code == 200
    assert r.json() == {"x": "post"}


def test_post_without_origin_allowed(base: str) -> None:
    assert httpx.post(base + "/api/x").status_code == 200


@pytest.mark.parametrize(
    "origin",
    # the last two: same host name but another port, or another scheme: other origins
    [EVIL, "null", "http://localhost", "http://127.0.0.1:1", "https://127.0.0.1"],
)
def test_cross_origin_post_refused(base: str, origin: str) -> None:
    r = httpx.post(base + "/api/x", headers={"Origin": origin})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert "detail" in r.json()


def test_cross_origin_text_plain_post_refused(base: str) -> None:
    r = httpx.post(
        base + "/api/x",
        content=b'{"name": "select"}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
    )
    assert r.status_code == 403


def test_cross_origin_delete_refused(base: str) -> None:
    assert httpx.delete(base + "/api/x", headers={"Origin": EVIL}).status_code == 403


def test_cross_origin_get_is_not_state_changing(base: str) -> None:
    assert httpx.get(base + "/api/x", headers={"Origin": EVIL}).status_code == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_another_sites_page_cannot_make_the_server_read_for_it(base: str, site: str) -> None:
    """A no-cors GET carries no Origin: another site's page looping on GET /api/code (0.26 s
    of CPU and 1 MB each, then) took a server core from the echo. The browser says where the
    request comes from in Sec-Fetch-Site."""
    for path in ("/api/code", "/api/x", "/metrics"):
        assert httpx.get(base + path, headers={"Sec-Fetch-Site": site}).status_code == 403
    for own in ("same-origin", "none"):  # the page itself; a URL typed in
        assert httpx.get(base + "/api/x", headers={"Sec-Fetch-Site": own}).status_code == 200
    assert httpx.get(base + "/", headers={"Sec-Fetch-Site": site}).status_code == 200  # a link


def test_origin_compare_is_case_insensitive_on_host(base: str) -> None:
    origin = "http://" + netloc(base).upper()
    assert httpx.post(base + "/api/x", headers={"Origin": origin}).status_code == 200


def test_websocket_same_origin_accepted(base: str) -> None:
    assert ws_open(ws_url(base), origin="http://" + netloc(base)) == "hi"


def test_websocket_without_origin_accepted(base: str) -> None:
    assert ws_open(ws_url(base)) == "hi"


@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_websocket_cross_origin_refused(base: str, origin: str) -> None:
    assert ws_refusal(ws_url(base), origin=origin) == 403


# ----------------------------------------------------------------- DNS rebinding (Host)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example"])
def test_foreign_host_refused(base: str, host: str) -> None:
    r = httpx.get(base + "/", headers={"Host": host})
    assert r.status_code == 403
    assert "Host" in r.json()["detail"]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.1"])
def test_loopback_host_names_allowed(base: str, host: str) -> None:
    host = host.format(port=urlsplit(base).port)
    assert httpx.get(base + "/", headers={"Host": host}).status_code == 200


def test_missing_host_refused(base: str) -> None:
    answer = raw_request(base, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403")


def test_websocket_foreign_host_refused(base: str) -> None:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    try:
        assert ws_refusal(f"ws://evil.example:{parts.port}/ws", sock=sock) == 403
    finally:
        sock.close()


def test_no_token_needed_on_loopback(base: str) -> None:
    assert httpx.get(base + "/metrics").status_code == 200


# ----------------------------------------------------------------- security headers


def test_security_headers_on_every_response(base: str) -> None:
    for response in (
        httpx.get(base + "/"),
        httpx.get(base + "/nowhere"),
        httpx.post(base + "/api/x", headers={"Origin": EVIL}),
    ):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


# ----------------------------------------------------------------- token (non-loopback)


@pytest.mark.parametrize("path", ["/api/x", "/metrics"])
def test_token_required(token_base: str, path: str) -> None:
    r = httpx.get(token_base + path)
    assert r.status_code == 401
    assert "token" in r.json()["detail"]
    assert httpx.get(token_base + path + "?token=wrong").status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert httpx.get(token_base + path, headers=wrong).status_code == 401


@pytest.mark.parametrize("path", ["/api/x", "/metrics"])
def test_token_by_bearer_header(token_base: str, path: str) -> None:
    r = httpx.get(token_base + path, headers={"Authorization": "Bearer t"})
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/api/x", "/metrics"])
def test_token_by_query(token_base: str, path: str) -> None:
    assert httpx.get(token_base + path + "?token=t").status_code == 200


def test_token_post(token_base: str) -> None:
    assert httpx.post(token_base + "/api/x").status_code == 401
    assert httpx.post(token_base + "/api/x?token=t").status_code == 200


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/app.js"])
def test_open_paths_need_no_token(token_base: str, path: str) -> None:
    assert httpx.get(token_base + path).status_code in (200, 404)
    assert httpx.get(token_base + path).status_code != 401


def test_foreign_host_allowed_when_not_loopback(token_base: str) -> None:
    r = httpx.get(token_base + "/healthz", headers={"Host": "muxscope.example"})
    assert r.status_code == 200


def test_websocket_without_token_refused_with_401(token_base: str) -> None:
    # uvicorn's websocket protocols support the "websocket.http.response" denial extension,
    # so the refusal is a real 401 (servers without it would answer 403).
    assert ws_refusal(ws_url(token_base)) == 401
    assert ws_refusal(ws_url(token_base, "/ws?token=wrong")) == 401


def test_websocket_with_token_accepted(token_base: str) -> None:
    assert ws_open(ws_url(token_base, "/ws?token=t")) == "hi"
    assert ws_open(ws_url(token_base), additional_headers={"Authorization": "Bearer t"}) == "hi"


def test_websocket_with_token_but_cross_origin_refused(token_base: str) -> None:
    assert ws_refusal(ws_url(token_base, "/ws?token=t"), origin=EVIL) == 403


def test_websocket_refusal_without_denial_extension_closes_1008() -> None:
    """A server without the denial-response extension gets websocket.close 1008 (-> 403)."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be reached")

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"origin", b"null")],
        "extensions": {},
    }
    middleware = SecurityMiddleware(app, loopback_only=True, token=None)
    run_async(middleware(scope, receive, send))
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


# ----------------------------------------------------------------- the server log


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.records.append(record)


def test_a_refused_websocket_logs_no_handshake_error(serve_asgi: ServeAsgi) -> None:
    """uvicorn 0.54 logs "ASGI callable returned without completing handshake." at ERROR
    after each denial response; the refusal is deliberate, so that line is filtered there,
    and only there: the same line from a route that really forgot its handshake stays."""
    app = make_app()

    @app.websocket("/forgetful")
    async def forgetful(websocket: WebSocket) -> None:
        return None  # neither accepts nor closes: a real handshake failure

    install_denial_log_filter()
    records = _Records()
    logger = logging.getLogger("uvicorn.error")
    with serve_asgi(SecurityMiddleware(app, loopback_only=True, token=None)) as url:
        logger.addHandler(records)  # after uvicorn has configured its loggers
        try:
            assert ws_refusal(ws_url(url), origin=EVIL) == 403
            with pytest.raises(InvalidStatus):
                connect(ws_url(url, "/forgetful"), proxy=None, open_timeout=5).close()
            wait_until(lambda: records.messages, 5, "the forgetful route's error")
        finally:
            logger.removeHandler(records)
    assert records.messages == [DenialLogFilter.MESSAGE], records.messages


def test_a_clients_invalid_utf8_is_one_warning_line_not_an_error_with_a_traceback() -> None:
    """uvicorn answers a text frame of invalid UTF-8 as it should (close 1007) and logs it
    with logger.exception: any local client could fill the server's log with tracebacks."""
    logger = logging.getLogger("uvicorn.error")
    install_denial_log_filter()
    records = _Records()
    logger.addHandler(records)
    try:
        try:
            b"\xff".decode()
        except UnicodeDecodeError:
            logger.exception("Invalid UTF-8 sequence received from client.")
        logger.error("something else")
    finally:
        logger.removeHandler(records)
    fault, other = records.records
    assert (fault.levelname, fault.exc_info) == ("WARNING", None)
    assert other.levelname == "ERROR"


# ----------------------------------------------------------------- token compared whole


@pytest.mark.parametrize("given", ["tX", "t0", "tt"])
def test_a_token_that_only_starts_with_the_right_one_is_refused(token_base: str,
                                                               given: str) -> None:
    """The token is compared whole: one that merely begins with it (an attacker who appends
    to a leaked prefix, or a stale longer token) is not the token."""
    r = httpx.get(token_base + "/api/x", params={"token": given})
    assert r.status_code == 401, r.text
    r = httpx.get(token_base + "/api/x", headers={"Authorization": f"Bearer {given}"})
    assert r.status_code == 401, r.text
    assert httpx.get(token_base + "/api/x", params={"token": "t"}).status_code == 200


@pytest.mark.parametrize("host", ["localhost:0", "127.0.0.1:65536"])
def test_a_request_whose_host_port_is_out_of_range_is_refused(base: str,
                                                              host: str) -> None:
    """A port is 1-65535 (test_guards.py checks the rule itself): a Host with another is
    refused at the server, before the app."""
    r = httpx.get(base + "/", headers={"Host": host})
    assert r.status_code == 403
    assert "Host" in r.json()["detail"]
