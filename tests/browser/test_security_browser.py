"""Hostile bytes from the network stay text in the page; the page is offline, CSP-strict (§6)."""

from __future__ import annotations

import socket

from playwright.sync_api import expect

from mux.events import preview
from tests.browser.conftest import echo, server_fd

IMG = b'<img src=x onerror="window.__pwned=1">'
SCRIPT = b"<script>window.__pwned=2</script>"
TELNET_CTRL_C = b"\xff\xf4\xff\xfd\x06"
INVALID_UTF8 = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\x00\x00\xfe\xff"
UDP_HOSTILE = b'<img src=x onerror="window.__pwned=3"><svg onload="window.__pwned=4">\x00\xff'

NO_MARKUP = """(sel) => {
  const root = document.querySelector(sel);
  return root ? root.querySelectorAll('img, script, svg, iframe, object, embed').length : -1;
}"""







def test_hostile_bytes_are_shown_as_text(dashboard):
    page = dashboard.page
    recv_rows = page.locator('#event-log li[data-kind="recv"]')
    with dashboard.connect() as sock:
        fd = server_fd(dashboard, sock)
        for payload in (IMG, SCRIPT, TELNET_CTRL_C, INVALID_UTF8, b"\x00" * 8, b"ok\n"):
            assert echo(sock, payload) == payload  # echoed byte for byte
        expect(page.locator(f'#connection-list tr[data-fd="{fd}"]')).to_have_count(1, timeout=3000)
        # every payload made it to the page (the websocket survived the binary ones)
        expect(recv_rows.filter(has_text="<img src=x")).to_have_count(1, timeout=3000)
        expect(recv_rows.filter(has_text="<script>window.__pwned=2</script>")).to_have_count(1)
        expect(recv_rows).to_have_count(6, timeout=3000)
        texts = recv_rows.all_inner_texts()
        for t in texts:
            assert t.isprintable(), f"non-printable characters in a preview: {t!r}"
        # the binary previews say how many bytes they were and render escaped, not raw
        sizes = [int(t.split("bytes=")[1].split()[0]) for t in texts]
        assert sizes == [len(IMG), len(SCRIPT), len(TELNET_CTRL_C), len(INVALID_UTF8), 8, 3], texts
        assert all("\\x" in t for t in texts[2:5]), texts  # binary bytes shown as escapes

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(UDP_HOSTILE, ("127.0.0.1", dashboard.engine.udp_port))
            data, addr = udp.recvfrom(65535)
            assert data == UDP_HOSTILE and addr[1] == dashboard.engine.udp_port
        dgrams = page.locator('#event-log li[data-kind="datagram"]')
        expect(dgrams.filter(has_text="<svg onload")).to_have_count(2, timeout=3000)  # in and out

        assert page.evaluate("() => typeof window.__pwned") == "undefined"
        for sel in ("#event-log", "#connection-list", "#engine-notices", "#syscall-line",
                    "#error-area"):
            assert page.evaluate(NO_MARKUP, sel) == 0, f"markup injected into {sel}"
        assert page.evaluate("() => document.querySelectorAll('img').length") == 0
        # the page is still live after the binary bytes: frames keep coming
        n = page.evaluate("() => window.__muxscope.frames.stats")
        page.wait_for_function(f"() => window.__muxscope.frames.stats > {n}", timeout=3000)
        snapshots = page.evaluate("() => window.__muxscope.frames.snapshot")
        assert snapshots == 1, "the websocket reconnected"
    assert dashboard.console_errors == []
    assert dashboard.external_requests == []


def test_page_has_strict_csp_and_stays_offline(dashboard):
    res = dashboard.api.get("/")
    assert res.status_code == 200
    csp = res.headers.get("content-security-policy")
    assert csp, "no Content-Security-Policy on GET /"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "script-src" in directives or "default-src" in directives, csp
    scripts = directives.get("script-src", directives.get("default-src"))
    assert "*" not in scripts and not any(s.startswith(("http:", "https:")) for s in scripts), csp
    # the page really runs under it (an inline script is refused), and uses only 127.0.0.1
    page = dashboard.page
    page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__inline = 1'; document.head.append(s); }""")
    assert page.evaluate("() => typeof window.__inline") == "undefined"
    page.wait_for_function("() => window.__muxscope.frames.stats >= 1", timeout=5000)
    page.reload()
    page.wait_for_function("() => window.__muxscope && window.__muxscope.frames.stats >= 1",
                           timeout=10_000)
    assert dashboard.external_requests == []
    errors = [e for e in dashboard.console_errors if "Content Security Policy" not in e]
    assert errors == []


def test_preview_is_shown_as_the_engine_escaped_it(dashboard):
    """The engine's preview is already safe, printable text (`\\xff`, `\\n`): the page shows
    it as it is, not escaped a second time (`\\\\xff`); only its quotes are escaped (`\\"`, as
    strace writes them), as the log quotes the preview."""
    page = dashboard.page
    recv_rows = page.locator('#event-log li[data-kind="recv"]')
    payloads = (TELNET_CTRL_C, b"ok\n", IMG)
    with dashboard.connect() as sock:
        for payload in payloads:
            assert echo(sock, payload) == payload
        expect(recv_rows).to_have_count(len(payloads), timeout=3000)
        texts = recv_rows.all_inner_texts()
    for payload, text in zip(payloads, texts, strict=True):
        expected = preview(payload).replace('"', '\\"')
        assert expected in text, f"preview {expected!r} shown as {text!r}"
