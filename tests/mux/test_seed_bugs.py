"""One regression test per bug of the seed's servers (SPEC §9): ours must not repeat them."""

from __future__ import annotations

import select
import socket

import pytest

from mux.backends import READABLE, create
from mux.events import preview

from .conftest import connect, recv_exactly, wait_until


def test_tcp_closed_peer_is_noticed(make_engine):
    """Seed: `data == ''` compares bytes to str, so EOF is never seen (endless loop)."""
    engine, rec = make_engine(backend="poll", wait_timeout=0.05)  # later waits, no traffic
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    sock.close()
    assert rec.wait_for("close", fd=fd)["reason"] == "eof"
    wait_until(lambda: fd not in engine.connections)
    waits = engine.stats.waits
    wait_until(lambda: engine.stats.waits > waits)
    assert not [e for e in rec.of("ready") if e["fd"] == fd and e["seq"] > rec.of(
        "close", fd=fd)[0]["seq"]], "a closed peer kept waking the loop"


def test_select_unregisters_peer_after_eof(make_engine):
    """Seed (select): a peer that sent EOF stays in the inputs list forever."""
    engine, rec = make_engine(backend="select")
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    sock.close()
    rec.wait_for("interest", fd=fd, op="unregister")
    wait_until(lambda: fd not in engine.loop.backend.registered)
    assert fd not in engine.loop.backend.rlist


def test_select_empty_queue_never_blocks_the_loop(make_engine):
    """Seed (select): `queue.get()` blocks on an empty queue; other clients starve."""
    engine, _ = make_engine(backend="select")
    with connect(engine.tcp_port) as idle, connect(engine.tcp_port) as busy:
        idle.sendall(b"one")
        assert recv_exactly(idle, 3) == b"one"
        for _ in range(5):  # `idle`'s queue is empty now; `busy` is still served
            busy.sendall(b"two")
            assert recv_exactly(busy, 3) == b"two"


def test_select_echoes_exactly_what_came(make_engine):
    """Seed (select): discards the result of `data + b'...'`; echo must be byte-exact."""
    engine, _ = make_engine(backend="select")
    with connect(engine.tcp_port) as sock:
        sock.sendall(b"exact")
        assert recv_exactly(sock, 5) == b"exact"
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing extra arrives


def test_select_except_list_is_not_the_read_list(make_engine):
    """Seed (select): passes `inputs` as the exceptional-condition list."""
    engine, rec = make_engine(backend="select")
    with connect(engine.tcp_port):
        rec.wait_for("accept")
        backend = engine.loop.backend
        assert backend.rlist and not backend.xlist
        assert backend.xlist is not backend.rlist


@pytest.mark.parametrize("name", ["poll", "epoll"])
def test_in_and_hup_together_still_read(name):
    """Seed (poll): `event == POLLIN` ignores POLLIN|POLLHUP; (epoll) HUP checked first."""
    backend = create(name)
    try:
        prefix = "POLL" if name == "poll" else "EPOLL"
        both = getattr(select, prefix + "IN") | getattr(select, prefix + "HUP")
        assert backend.generic(both) & READABLE
        assert backend.names(both) == [prefix + "IN", prefix + "HUP"]
    finally:
        backend.close()


@pytest.mark.parametrize("backend", ["poll", "epoll"])
def test_last_bytes_before_hangup_are_read(make_engine, backend):
    """The bytes that arrive together with the peer's close are echoed-read, not lost."""
    engine, rec = make_engine(backend=backend)
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    wait_until(lambda: fd in engine.connections)
    engine.pause().result(5)
    sock.sendall(b"last words")
    sock.close()
    engine.resume().result(5)
    rec.wait_for("close", fd=fd)
    assert sum(e["bytes"] for e in rec.of("recv", fd=fd)) == 10


def test_poll_answers_more_than_once(make_engine):
    """Seed (poll): answers once and closes the connection."""
    engine, _ = make_engine(backend="poll")
    with connect(engine.tcp_port) as sock:
        for i in range(5):
            sock.sendall(b"msg%d" % i)
            assert recv_exactly(sock, 4) == b"msg%d" % i


def test_epoll_closed_peer_is_unregistered(make_engine):
    """Seed (epoll): recv() == b"" never handled: registered and readable forever."""
    engine, rec = make_engine(backend="epoll")
    sock = connect(engine.tcp_port)
    fd = rec.wait_for("accept")["fd"]
    sock.close()
    rec.wait_for("interest", fd=fd, op="unregister")
    wait_until(lambda: fd not in engine.loop.backend.interest)


def test_edge_mode_uses_epollet(make_engine):
    """Seed (epoll): `EPOLLRT` is a typo; edge-triggered means the EPOLLET bit."""
    engine, rec = make_engine(backend="epoll", trigger="edge")
    with connect(engine.tcp_port):
        fd = rec.wait_for("accept")["fd"]
        flags = rec.wait_for("interest", fd=fd, op="register")["flags"]
        assert "EPOLLET" in flags
        wait_until(lambda: fd in engine.loop.backend.interest)
        assert engine.loop.backend.interest[fd] & select.EPOLLET


def test_udp_replies_to_the_sender_not_itself(make_engine):
    """Seed (UDP): `sendto(data, address)` answers the server's own address."""
    engine, rec = make_engine(backend="epoll")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(b"hi", ("127.0.0.1", engine.udp_port))
        data, addr = client.recvfrom(100)
        assert data == b"hi" and addr == ("127.0.0.1", engine.udp_port)
        out = rec.wait_for("datagram", dir="out")
        assert out["peer"] == f"127.0.0.1:{client.getsockname()[1]}"


def test_non_utf8_bytes_are_echoed_exactly_and_previewed_safely(make_engine):
    """Seed (clients): encode GBK, decode UTF-8. Bytes are bytes: echoed as they came."""
    engine, rec = make_engine()
    gbk = "你好".encode("gbk") + b"\xff\xf4\xff\xfd\x06\x00"
    with connect(engine.tcp_port) as sock:
        sock.sendall(gbk)
        assert recv_exactly(sock, len(gbk)) == gbk
    preview = rec.wait_for("recv")["preview"]
    assert preview.isprintable() and preview.isascii()  # GBK is no UTF-8: every byte escaped
    assert "\\xff\\xf4" in preview


@pytest.mark.parametrize(("data", "shown"), [
    ("héllo wörld ✓\r\n".encode(), "héllo wörld ✓\\r\\n"),  # text a person typed, as text
    ("日本".encode() + b"\xff", "日本\\xff"),  # a byte that is no UTF-8 among text
    ("a\u202eb\u200bc".encode(), "a\\xe2\\x80\\xaeb\\xe2\\x80\\x8bc"),  # bidi, zero width
    # drawn as nothing though str.isprintable() passes them: an emoji's variation selector,
    # a Hangul filler (a "blank" name), the grapheme joiner, a tag character
    ("ok ✔\ufe0f".encode(), "ok ✔\\xef\\xb8\\x8f"),
    ("a\u3164b\r\n".encode(), "a\\xe3\\x85\\xa4b\\r\\n"),
    ("x\u034fy\U000e0041".encode(), "x\\xcd\\x8fy\\xf3\\xa0\\x81\\x81"),
    (b"back\\slash \xc3\xa9", "back\\\\slash é"),  # a backslash shown is always an escape's
    (("x" * 63 + "é").encode(), "x" * 63 + "\\xc3"),  # a character cut at the 64th byte
    # no quote escaped, ASCII or not (repr escaped a ' when a " came with it: a backslash
    # that was not in the bytes)
    (b"it's \"q\"\x01", "it's \"q\"\\x01"),
    ("it's \"q\"\x01é".encode(), "it's \"q\"\\x01é"),
    (b"\\'\"", "\\\\'\""),  # a backslash then a quote: the backslash's own escape stays
    (b"don\\'t", "don\\\\'t"),  # the same with no " (repr then quotes with ")
    (b"\\\\'", "\\\\\\\\'"),
])
def test_a_utf8_preview_is_text_and_everything_else_escaped(data: bytes, shown: str) -> None:
    """SPEC §3: the preview is the first bytes "as text, non-printables escaped": é is
    printable (it was shown as \\xc3\\xa9); a bidi override or a zero-width space is not."""
    assert preview(data) == shown
    assert preview(memoryview(data)) == shown


def test_the_preview_escape_table_stays_bounded_and_keeps_what_is_in_use() -> None:
    """The table stopped caching at its bound: 4,096 characters seen once (unassigned code
    points) kept out for good the ones in use, each then escaped in Python on every call."""
    from mux import events

    table = events._ESCAPES
    for code in range(0xE0000, 0xE0000 + 2 * table.LIMIT):  # mostly unassigned: not printable
        preview(chr(code).encode() + b"\x01")
        assert len(table) <= table.LIMIT
    # a character first met now (U+2066, a bidi isolate) is still cached: the table started
    # afresh when full, where it stopped taking any
    assert preview("é\u2066".encode()) == "é\\xe2\\x81\\xa6"
    assert 0x2066 in table
