"""Security middleware: same-origin, DNS-rebinding and token checks (SPEC §6).

A pure ASGI middleware, so it sees websocket upgrades as well as HTTP requests (Starlette's
``BaseHTTPMiddleware`` never does). Checks, in order:

1. On a loopback bind, the ``Host`` header must name a loopback host (``localhost``,
   ``127.0.0.1`` or ``[::1]``, with or without a port; any other 127.0.0.0/8 literal too: an
   address cannot be rebound) -> else 403 (DNS rebinding).
2. A state-changing request (POST/PUT/PATCH/DELETE) or any websocket upgrade that carries an
   ``Origin`` must come from ``http://`` + the request's own ``Host`` -> else 403
   (``Origin: null`` included). No ``Origin`` at all (curl, scripts) is allowed.
3. An ``/api``, ``/metrics`` or ``/ws`` request a browser marks ``Sec-Fetch-Site:
   cross-site`` or ``same-site`` (another site's page, even a no-cors GET that carries no
   ``Origin``) -> 403: such a page looping on a costly read took a server core.
4. With a token, every ``/api``, ``/metrics`` and ``/ws`` request must carry it, as
   ``Authorization: Bearer <token>`` or ``?token=<token>`` -> else 401.

Every HTTP response also gets a strict Content-Security-Policy and friends.

`BodyLimitMiddleware` bounds request bodies (SPEC §6: everything is bounded): the API's bodies
are a few dozen bytes, and without a limit a 300 MB POST was held whole in memory.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_SECURITY_HEADER_NAMES = {name for name, _ in SECURITY_HEADERS}

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROTECTED_PREFIXES = ("/api", "/metrics", "/ws")
LOOPBACK_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


class Refusal(Exception):
    """A request the middleware refuses: an HTTP status and a reason a person can read."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def is_loopback_host(host: str) -> bool:
    """True when a bind address is loopback: 127.0.0.0/8, ::1 or localhost."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost."):
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def host_header_is_loopback(host: str) -> bool:
    """True when a ``Host`` header value names a loopback host, with or without a port:
    ``localhost``, or any loopback IP literal (127.0.0.0/8, ``[::1]``, ``[::ffff:127.x.y.z]``),
    so that every loopback address the server may bind is reachable by its own URL. A DNS
    rebinding attack needs a *name* that resolves to loopback; an IP literal cannot be one."""
    name, port = _split_host_header(host.strip().lower())
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return False
    if name in LOOPBACK_HOSTNAMES:
        return True
    bracketed = name.startswith("[") and name.endswith("]")
    if ":" in name and not bracketed:  # an IPv6 literal in Host must be in brackets
        return False
    return name != "localhost." and is_loopback_host(name)


def _split_host_header(host: str) -> tuple[str, str | None]:
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, None
        rest = host[end + 1 :]
        if not rest:
            return host, None
        return host[: end + 1], rest[1:] if rest.startswith(":") else "invalid"
    name, sep, port = host.partition(":")
    return (name, port) if sep else (name, None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [bytes(value).decode("latin-1") for key, value in scope.get("headers", [])
            if key.lower() == name]


def _token_from_request(scope: Scope) -> str | None:
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    values = parse_qs(query).get("token")
    return values[0] if values else None


def _token_matches(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SecurityMiddleware:
    """ASGI middleware enforcing SPEC §6 on HTTP requests and websocket upgrades."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, token: str | None) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope)
        except Refusal as refusal:
            if kind == "http":
                await _refuse_http(send, refusal)
            else:
                await _refuse_websocket(scope, receive, send, refusal)
            return
        if kind == "http":
            await self.app(scope, receive, _with_security_headers(send))
        else:
            await self.app(scope, receive, send)

    def check(self, scope: Scope) -> None:
        """Raise ``Refusal`` when the request must not reach the app."""
        host = _header(scope, b"host")
        if self.loopback_only:
            self._check_host(host)
        if scope["type"] == "websocket" or scope.get("method", "GET").upper() in UNSAFE_METHODS:
            self._check_origin(scope, host)
        self._check_fetch_site(scope)
        if self.token is not None:
            self._check_token(scope)

    @staticmethod
    def _check_host(host: str | None) -> None:
        if not host:
            raise Refusal(403, "Missing Host header.")
        if not host_header_is_loopback(host):
            raise Refusal(
                403,
                "Host not allowed: this server only answers to localhost or a loopback address.",
            )

    @staticmethod
    def _check_origin(scope: Scope, host: str | None) -> None:
        # Every Origin header counts, not just the first: a request carrying its own origin
        # and a foreign one is refused (browsers send one; two is a forgery or a proxy bug).
        origins = _headers(scope, b"origin")
        if not origins:
            return
        own = None if not host else "http://" + host.strip().lower()
        if any(origin.strip().lower() != own for origin in origins):
            raise Refusal(403, "Cross-origin request refused.")

    @staticmethod
    def _check_fetch_site(scope: Scope) -> None:
        """A browser says where a request comes from (Sec-Fetch-Site) even on the no-cors GETs
        that carry no Origin: another site's page may not make this server read the trace
        ring, the sources or the kernel's tables for it (CPU taken from the engine)."""
        if not scope.get("path", "").startswith(PROTECTED_PREFIXES):
            return
        site = (_header(scope, b"sec-fetch-site") or "").strip().lower()
        if site in ("cross-site", "same-site"):
            raise Refusal(403, "Cross-origin request refused.")

    def _check_token(self, scope: Scope) -> None:
        path = scope.get("path", "")
        if not path.startswith(PROTECTED_PREFIXES):
            return
        assert self.token is not None
        if not _token_matches(_token_from_request(scope), self.token):
            raise Refusal(401, "Missing or wrong token: use the dashboard URL printed at start.")


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if bytes(name).lower() not in _SECURITY_HEADER_NAMES
            ]
            message["headers"] = headers + SECURITY_HEADERS
        await send(message)

    return wrapped


def _refusal_response(refusal: Refusal) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": refusal.detail}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
    ]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return headers, body


async def _refuse_http(send: Send, refusal: Refusal, *, close: bool = False) -> None:
    headers, body = _refusal_response(refusal)
    if close:  # the body was left unread: end the connection rather than read it all
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: True in the task that has just refused a websocket with an HTTP status (DenialLogFilter)
_DENIED: contextvars.ContextVar[bool] = contextvars.ContextVar("ws_denied", default=False)


class DenialLogFilter(logging.Filter):
    """Drop the ERROR uvicorn 0.54 logs after every websocket refused with an HTTP status.

    Its websockets-sansio protocol never counts a denial response as the end of the handshake
    (uvicorn PR #3138, open), so each 403/401 here, which the client receives as it should,
    was followed by "ASGI callable returned without completing handshake." in the server log.
    Only in the task that sent the denial (a context variable): any other such line passes.
    """

    MESSAGE = "ASGI callable returned without completing handshake."

    #: a client's fault, answered as it should be (close 1007), which uvicorn logs as an
    #: ERROR with a traceback: any local client could fill the log so. One WARNING line.
    CLIENT_FAULTS = ("Invalid UTF-8 sequence received from client.",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.CLIENT_FAULTS and record.levelno >= logging.ERROR:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        return not (_DENIED.get() and record.msg == self.MESSAGE)


def install_denial_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DenialLogFilter) for f in logger.filters):
        logger.addFilter(DenialLogFilter())


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
    """Refuse before accept: a real HTTP status if the server supports it, else close 1008."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers, body = _refusal_response(refusal)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        _DENIED.set(True)  # this task only: see DenialLogFilter
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.detail})


#: The largest request body accepted: every body of the API is a small JSON object.
MAX_BODY_BYTES = 64 << 10


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without a Content-Length grows too big: an
    HTTPException, so FastAPI's body parsing passes it on and it is answered as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request body too large (at most {max_bytes} bytes).")


def _within(content_length: str, limit: int) -> bool:
    value = content_length.strip()
    return value.isascii() and value.isdigit() and int(value) <= limit


class BodyLimitMiddleware:
    """413 for an HTTP request body over `max_bytes`, before it is read (Content-Length) or
    as soon as the bytes received pass the limit (chunked), so a body is never held whole."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = Refusal(413, BodyTooLarge(self.max_bytes).detail)
        length = _header(scope, b"content-length")
        if length is not None and not _within(length, self.max_bytes):
            await _refuse_http(send, refusal, close=True)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse_http(send, refusal, close=True)
