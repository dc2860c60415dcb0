from tests.browser.test_security_browser import IMG, SCRIPT, TELNET_CTRL_C, INVALID_UTF8, echo
def test_probe(dashboard):
    page = dashboard.page
    with dashboard.connect() as sock:
        for payload in (IMG, SCRIPT, TELNET_CTRL_C, INVALID_UTF8, b"\x00" * 8, b"ok\n"):
            echo(sock, payload)
        page.wait_for_timeout(800)
        for t in page.locator('#event-log li[data-kind="recv"]').all_inner_texts(): print(repr(t))
