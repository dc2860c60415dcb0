"""The muxscope command line: parsing in-process, and ``python -m app`` as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from app.cli import build_parser, build_replay_parser, parse_dashboard
from app.run import banner_lines
from app.settings import Settings, epoll_available
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def run_cli(*args: str, timeout: float = 20,
            ulimit: int | None = None) -> subprocess.CompletedProcess[str]:
    """`ulimit`: run it with that open-file limit, soft and hard (set by `sh`)."""
    argv = [sys.executable, "-m", "app", *args]
    if ulimit is not None:
        argv = ["sh", "-c", f'ulimit -n {ulimit} && exec "$0" "$@"', *argv]
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


# ----------------------------------------------------------------- parsing, in-process


def test_defaults_match_spec() -> None:
    s = parse_dashboard([])
    assert (s.host, s.http_port, s.echo_port, s.udp_port, s.udp) == (
        "127.0.0.1",
        8000,
        9000,
        None,
        True,
    )
    assert s.backend == ("epoll" if epoll_available() else "poll")
    assert (s.trigger, s.oneshot, s.write) == ("level", False, "queued")
    assert (s.record, s.record_max_mb, s.max_connections, s.max_clients) == (None, 100, 10_000, 16)
    assert s.token is None and s.loopback and not s.open_browser


def test_non_loopback_host_gets_a_token() -> None:
    s = parse_dashboard(["--host", "0.0.0.0", "--http-port", "8123"])
    assert s.token and len(s.token) >= 16
    assert not s.loopback
    assert s.dashboard_url() == f"http://127.0.0.1:8123/?token={s.token}"
    assert parse_dashboard(["--host", "0.0.0.0"]).token != s.token


def test_a_wildcard_bind_says_how_to_reach_it_from_another_machine() -> None:
    """--host 0.0.0.0 printed only http://127.0.0.1:PORT/?token=...: this machine's URL."""
    wild = banner_lines(parse_dashboard(["--host", "0.0.0.0"]), None, 8123)
    assert wild[-1] == ("From another machine: the same URL with this machine's address in "
                        "place of 127.0.0.1."), wild
    lan = banner_lines(parse_dashboard(["--host", "10.0.0.1"]), None, 8123)
    assert not any(line.startswith("From another machine") for line in lan), lan
    assert lan[0].startswith("Dashboard: http://10.0.0.1:8123/?token="), lan


def test_explicit_token_kept() -> None:
    assert parse_dashboard(["--host", "10.0.0.1", "--token", "abc"]).token == "abc"
    assert parse_dashboard(["--token", "abc"]).token == "abc"


def test_dashboard_url_uses_real_port_and_brackets_ipv6() -> None:
    assert Settings(http_port=0).dashboard_url(4321) == "http://127.0.0.1:4321/"
    assert Settings(host="::1").dashboard_url(80) == "http://[::1]:80/"


def test_flags_parsed() -> None:
    argv = ["--echo-port", "0", "--udp-port", "9100", "--write", "eager", "--record", "x.jsonl"]
    s = parse_dashboard(argv)
    assert (s.echo_port, s.udp_port, s.write, str(s.record)) == (0, 9100, "eager", "x.jsonl")
    assert parse_dashboard(["--no-udp"]).udp is False


def test_edge_oneshot_with_epoll_accepted() -> None:
    assert epoll_available(), "muxscope targets Linux, where epoll exists"
    s = parse_dashboard(["--backend", "epoll", "--trigger", "edge", "--oneshot"])
    assert (s.backend, s.trigger, s.oneshot) == ("epoll", "edge", True)


def test_help_mentions_every_flag() -> None:
    text = build_parser().format_help()
    for flag in ("--host", "--http-port", "--echo-port", "--udp-port", "--no-udp", "--backend",
                 "--trigger", "--oneshot", "--write", "--token", "--open", "--record",
                 "--record-max-mb", "--max-connections", "--max-clients", "--version",
                 "bench", "replay"):  # fmt: skip
        assert flag in text, flag


def test_replay_help_describes_replay_not_the_echo_server() -> None:
    text = " ".join(build_replay_parser().format_help().split())
    host_help = text.split("--host HOST")[-1].split("--http-port", 1)[0]  # after the usage
    assert "dashboard" in host_help and "echo" not in host_help, host_help
    live_text = " ".join(build_parser().format_help().split())
    assert "echo server" in live_text.split("--host HOST")[-1].split("--http-port", 1)[0]
    for flag in ("--host", "--http-port", "--token", "--open", "--max-clients", "FILE"):
        assert flag in text, flag
    for live_only in ("--echo-port", "--backend", "--record"):
        assert live_only not in text.replace("written with --record", ""), live_only


# ----------------------------------------------------------------- subprocess: no server


def test_help() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    assert "--backend" in r.stdout and "example" in r.stdout


def test_version() -> None:
    r = run_cli("--version")
    assert r.returncode == 0
    assert "0.1.0" in r.stdout


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--backend", "select", "--trigger", "edge"], "edge"),
        (["--backend", "poll", "--oneshot"], "oneshot"),
        (["--backend", "select", "--oneshot"], "oneshot"),
        (["--http-port", "70000"], "port"),
        (["--backend", "kqueue"], "backend"),
        (["--no-udp", "--udp-port", "9001"], "udp"),
        (["replay", "/nonexistent/trace.jsonl"], "nonexistent"),
        (["--record", "/nonexistent/dir/trace.jsonl"], "--record"),
        (["--record-max-mb", "150"], "1..100"),  # segments replay could not hold
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], word: str) -> None:
    r = run_cli(*args)
    assert r.returncode == 2
    assert word in one_line(r.stderr)
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("flag", ["--max-clients", "--record-max-mb", "--max-connections",
                                  "--load-cap"])
def test_an_out_of_range_number_names_its_flag_once(flag: str) -> None:
    """argparse says "argument --x:" itself: the message read "argument --load-cap: --load-cap
    must be >= 0, not -1"."""
    r = run_cli(flag, "-1")
    line = one_line(r.stderr)
    assert r.returncode == 2 and line.count(flag) == 1 and "not -1" in line, line


@pytest.fixture
def busy_tcp_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_busy_http_port(busy_tcp_port: int) -> None:
    r = run_cli("--http-port", str(busy_tcp_port), "--echo-port", "0")
    assert r.returncode != 0
    line = one_line(r.stderr)
    assert f"127.0.0.1:{busy_tcp_port}" in line and "in use" in line


def test_busy_echo_port(busy_tcp_port: int) -> None:
    r = run_cli("--http-port", "0", "--echo-port", str(busy_tcp_port))
    assert r.returncode != 0
    line = one_line(r.stderr)
    assert f"127.0.0.1:{busy_tcp_port}" in line and "TCP echo" in line


def test_busy_udp_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        r = run_cli("--http-port", "0", "--echo-port", "0", "--udp-port", str(port))
    assert r.returncode != 0
    line = one_line(r.stderr)
    assert f"127.0.0.1:{port}" in line and "UDP echo" in line


@pytest.mark.parametrize(("args", "names"), [
    (["--reps", "0"], "--reps"),
    (["--seconds", "nan"], "--seconds"),
    (["--seconds", "inf"], "--seconds"),
    (["--scale-conns", "50000"], "--scale-conns"),
    (["--json", "/nonexistent/dir/bench.json"], "--json"),  # refused now, not after the run
    (["--only", "nonsense"], "--only"),
    # flags the chosen part does not use were taken silently (the header even claimed them)
    (["--scale-seconds", "10"], "--scale-seconds applies to --only scale"),
    (["--scale-page-cpus", "1"], "--scale-page-cpus applies to --only scale"),
    # flags the part ignored were taken silently (a review, session 26)
    (["--only", "scale", "--quick"], "--quick does not apply to --only scale"),
    (["--only", "instructions", "--quick"], "--quick does not apply to --only instructions"),
    (["--only", "micro", "--client", "python"], "--client does not apply to --only micro"),
    (["--seconds", "1e9"], "at most 3600"),  # a window that never ends
    (["--json", ""], "--json: needs a file name"),
    (["--only", "scale", "--scale-page-cpus", "0"], "--scale-page-cpus"),
    (["--only", "micro", "--reps", "9"], "--reps does not apply to --only micro"),
])
def test_bench_bad_input_is_one_line_naming_the_flag(args: list[str], names: str) -> None:
    r = run_cli("bench", *args)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert line.startswith("muxscope bench: error:") and names in line, line
    assert r.stdout == ""  # no run started


def test_bench_help_explains_the_parts_and_gives_examples() -> None:
    text = run_cli("bench", "--help").stdout
    for part in ("echo", "wait", "events", "micro", "scale", "instructions"):
        assert f"\n  {part} " in text, part
    assert "about 9 minutes" in text and "examples:" in text and "muxscope bench --quick" in text


@pytest.mark.parametrize(("content", "says"), [
    (b"hello not json\n", "not JSON"),
    # a file that fails at once may be no recording at all: say what is read
    (b"hello not json\n", "reads JSON lines: a file written by --record, or the page's trace"),
    (b"[1,2,3]\n", "not a JSON object; muxscope replay reads JSON lines"),
    (b"\xff\xfe\x00garbage\n", "not JSON"),
    (b"[1,2,3]\n", "not a JSON object"),
    (b"null\n", "not a JSON object"),
    (b'{"seq":"a","kind":"wait"}\n', "integer seq"),
    (b'{"type":"snapshot","state":[1]}\n', "state is not an object"),
    # each was a traceback (the stats' totals, the chrome export read fields never checked)
    (b'{"type":"snapshot","state":{"connections":[1]}}\n', "integer fd"),
    (b'{"type":"snapshot","state":{"connections":{"a":1}}}\n', "integer fd"),
    (b'{"type":"snapshot","state":{"listeners":5}}\n', "listeners is not an object"),
    (b'{"type":"snapshot","state":{"stats":[1]}}\n', "stats is not an object"),
    (b'{"type":"snapshot","state":{"backend":"epoll"}}\n', "backend is not an object"),
    (b'{"seq":1,"ts":0.0,"kind":"accept","listener":3,"peer":"p"}\n', "accept: no 'fd'"),
    (b'{"seq":1,"ts":0.0,"kind":"close","fd":[1],"reason":"eof"}\n', "fd=[1] is not int"),
    (b'{"seq":1,"ts":0.1,"kind":"wait","backend":"epoll"}\n', "no 'duration_us'"),
    (b'{"seq":1,"ts":0.2,"kind":"recv","fd":7,"preview":""}\n', "recv: no 'bytes'"),
    # served, it made /metrics count -5 bytes in: a counter gone negative
    (b'{"seq":1,"ts":0.2,"kind":"recv","fd":7,"bytes":-5,"preview":""}\n',
     "bytes=-5 is not int >= 0"),
    (b'{"seq":1,"kind":"someday"}\n', "is not a number"),
    (b"", "no snapshot and no events"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xfe\n", "gzip-compressed; decompress it"),
    # rotated files joined newest first: the page's seq accounting went wrong without a word
    (b'{"seq":7,"ts":0.1,"kind":"error","message":"a"}\n'
     b'{"type":"snapshot","state":{},"seq":2}\n', "seq 2 after seq 7"),
    (b'{"seq":7,"ts":0.1,"kind":"error","message":"a"}\n'
     b'{"seq":7,"ts":0.1,"kind":"error","message":"b"}\n', "goes back in time"),
    # files joined across a gap the recorder left: the second snapshot's state would be lost
    (b'{"type":"snapshot","state":{},"seq":0}\n{"seq":1,"ts":0.1,"kind":"error","message":"a"}\n'
     b'{"type":"snapshot","state":{},"seq":30000}\n', "left 29999 events out here"),
])
def test_replay_of_a_file_that_is_not_a_recording_is_one_line(tmp_path: Path, content: bytes,
                                                              says: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    r = run_cli("replay", str(bad), "--http-port", "0")
    assert r.returncode != 0
    line = one_line(r.stderr)
    assert says in line and str(bad) in line and "Traceback" not in r.stderr, line


def test_one_port_for_the_dashboard_and_the_echo_server_is_refused() -> None:
    """It said "cannot listen on 127.0.0.1:P (TCP echo): address already in use", with the
    port held by muxscope's own dashboard."""
    r = run_cli("--http-port", "8765", "--echo-port", "8765")
    assert r.returncode == 2, r.stderr
    assert "--http-port and --echo-port are both 8765" in one_line(r.stderr)


def test_an_empty_token_is_refused() -> None:
    r = run_cli("--token", "", "--http-port", "0")
    assert r.returncode == 2 and "--token" in one_line(r.stderr)


@pytest.mark.parametrize("token", ["密码", " abc ", "a b", "tab\there"])
def test_a_token_no_header_can_carry_is_refused(token: str) -> None:
    """The page sends the token as `Authorization: Bearer`: with a non-Latin-1 token fetch()
    threw on every control, and spaces at its ends were stripped from the header, so the page
    showed "live" and every button failed."""
    r = run_cli("--token", token, "--http-port", "0")
    line = one_line(r.stderr)
    assert r.returncode == 2 and "--token" in line and "printable ASCII" in line, line


def test_record_max_mb_without_record_is_refused() -> None:
    r = run_cli("--record-max-mb", "5", "--http-port", "0")
    assert r.returncode == 2 and "--record-max-mb needs --record" in one_line(r.stderr)


def test_replay_reads_a_pipe(tmp_path: Path) -> None:
    """`muxscope replay <(zcat run.jsonl.gz)` said "no such file": only regular files were
    taken."""
    fifo = tmp_path / "recording"
    os.mkfifo(fifo)
    lines = (b'{"type":"snapshot","state":{},"seq":0,"started_at":0.0}\n'
             b'{"seq":1,"ts":0.1,"kind":"error","message":"from a pipe"}\n')

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(lines)

    threading.Thread(target=feed, daemon=True).start()
    with launch("replay", str(fifo), "--http-port", "0") as run:
        dash = run.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")
        trace = httpx.get(dash[1] + "api/trace", params={"format": "jsonl"}, timeout=5)
        assert [json.loads(line)["message"] for line in trace.text.splitlines()] == [
            "from a pipe"]
        code, stderr = run.stop(signal.SIGTERM)
        assert code == 0, stderr


def test_replay_of_a_directory_says_so(tmp_path: Path) -> None:
    r = run_cli("replay", str(tmp_path), "--http-port", "0")
    assert r.returncode == 2 and "is a directory" in one_line(r.stderr)


# ----------------------------------------------------------------- subprocess: a real start


@dataclass
class Running:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    #: stderr, read as it comes (a pipe read only at the end fills up, and a process logging
    #: into it then blocks); `stderr_text()` once the process has ended
    errors: list[str] = field(default_factory=list)
    error_reader: threading.Thread | None = None

    def stderr_text(self) -> str:
        if self.error_reader is not None:
            self.error_reader.join(timeout=10)
        return "".join(self.errors)

    def read_until(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited before {pattern!r}; stdout: {self.seen!r}")
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def stop(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=15)
        return code, self.stderr_text()


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


@contextlib.contextmanager
def launch(*args: str, extra_env: dict[str, str] | None = None,
           nofile_soft: int | None = None, nofile: int | None = None) -> Iterator[Running]:
    """``python -m app ARGS`` with its stdout read line by line; killed if still running.

    `nofile_soft`: start it with that soft open-file limit (set by `sh`'s ulimit, not a
    preexec_fn, which is unsafe in this threaded process); `nofile`: soft and hard (the app
    raises its soft limit to the hard one)."""
    argv = [sys.executable, "-m", "app", *args]
    if nofile_soft is not None:
        argv = ["sh", "-c", f'ulimit -Sn {nofile_soft} && exec "$0" "$@"', *argv]
    if nofile is not None:
        argv = ["sh", "-c", f'ulimit -n {nofile} && exec "$0" "$@"', *argv]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**env(), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(proc)
    threading.Thread(target=_pump, args=(proc.stdout, running.lines), daemon=True).start()
    running.error_reader = threading.Thread(target=running.errors.extend, args=(proc.stderr,),
                                            daemon=True)
    running.error_reader.start()
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def started() -> Iterator[Running]:
    with launch("--http-port", "0", "--echo-port", "0") as running:
        yield running


def tcp_echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def udp_echo(port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(payload, ("127.0.0.1", port))
        data, _ = sock.recvfrom(65536)
    return data


def test_answers_on_a_kept_alive_connection_are_not_held_by_nagle(started: Running) -> None:
    """The dashboard's socket was made with protocol 0, so asyncio set no TCP_NODELAY on the
    connections it accepted: a response's body, written after its headers, waited for the
    client's delayed ACK, 40 ms or more for every request but the first on a connection (the
    page's fetches, scripts' calls). Each of five is timed: with Nagle's wait every one of them
    takes 40 ms, so the quickest one says which it is on a noisy machine."""
    url = started.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")[1]
    with httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/healthz").json() == {"ok": True}  # the connection, opened
        took = []
        for _ in range(5):
            t0 = time.perf_counter()
            assert client.get("/healthz").json() == {"ok": True}
            took.append(time.perf_counter() - t0)
    assert min(took) < 0.025, [f"{t * 1000:.1f} ms" for t in took]


def test_start_banner_echo_and_sigterm(started: Running) -> None:
    tcp = started.read_until(r"TCP echo on 127\.0\.0\.1:(\d+) — try: nc 127\.0\.0\.1 (\d+)")
    assert tcp[1] == tcp[2] and int(tcp[1]) != 0
    udp = started.read_until(r"UDP echo on 127\.0\.0\.1:(\d+) — try: nc -u 127\.0\.0\.1 \d+")
    assert udp[1] == tcp[1]  # --udp-port defaults to the TCP port actually bound
    dash = started.read_until(r"Dashboard: (http://127\.0\.0\.1:(\d+)/)$")
    assert int(dash[2]) != 0

    assert httpx.get(dash[1] + "healthz", timeout=5).json() == {"ok": True}
    assert tcp_echo(int(tcp[1]), b"hello muxscope\n") == b"hello muxscope\n"
    assert udp_echo(int(udp[1]), b"datagram") == b"datagram"

    code, stderr = started.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_ctrl_c_with_a_browser_connected_exits_cleanly(started: Running) -> None:
    dash = started.read_until(r"Dashboard: http://(\S+)/")
    with connect(f"ws://{dash[1]}/ws", proxy=None, open_timeout=5) as ws:
        assert '"snapshot"' in str(ws.recv(timeout=5))
        code, stderr = started.stop(signal.SIGINT)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_record_then_replay(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", "--record", str(trace)) as run:
        tcp = run.read_until(r"TCP echo on 127\.0\.0\.1:(\d+)")
        # it said nothing of the recording it was making
        run.read_until(rf"Recording every event to {re.escape(str(trace))}, rotated at 100 MiB "
                       rf"to {re.escape(str(trace))}\.1, \.2 \.\.\. "
                       rf"\(replay it: muxscope replay {re.escape(str(trace))}\)$")
        run.read_until(r"Dashboard: ")
        assert tcp_echo(int(tcp[1]), b"recorded\n") == b"recorded\n"
        code, stderr = run.stop(signal.SIGTERM)
        assert code == 0, stderr
    assert trace.stat().st_size > 0

    with launch("replay", str(trace), "--http-port", "0") as run:
        dash = run.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")
        assert not any(line.startswith(("TCP echo", "UDP echo")) for line in run.seen)
        assert httpx.get(dash[1] + "healthz", timeout=5).json() == {"ok": True}
        r = httpx.post(dash[1] + "api/loop", json={"action": "pause"}, timeout=5)
        assert r.status_code == 409
        code, stderr = run.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert "Traceback" not in stderr


def test_recording_through_a_symlink_names_the_files_that_appear(tmp_path: Path) -> None:
    """The recorder writes, and rotates, the file a link points to (`real_path`); the start-up
    line named `link.jsonl.1`, a file that never appeared, for what became `target.jsonl.1`."""
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text('{"old": 1}\n')
    link.symlink_to(target)
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", "--record", str(link)) as run:
        run.read_until(rf"Recording every event to {re.escape(str(link))} \(a link to "
                       rf"{re.escape(str(target))}\), rotated at 100 MiB to "
                       rf"{re.escape(str(target))}\.1, \.2 \.\.\. ")
        code, stderr = run.stop(signal.SIGTERM)
        assert code == 0, stderr
    assert (tmp_path / "target.jsonl.1").read_text() == '{"old": 1}\n'  # the existing file
    assert not list(tmp_path.glob("link.jsonl.*"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_recording_ends_with_the_shutdown(tmp_path: Path, sig: int) -> None:
    """The events of the shutdown itself (each open connection's `close` with reason
    `shutdown`) reach the recording: the engine stops before the pump does."""
    trace = tmp_path / "trace.jsonl"
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", "--record", str(trace)) as run:
        tcp = run.read_until(r"TCP echo on 127\.0\.0\.1:(\d+)")
        run.read_until(r"Dashboard: ")
        with socket.create_connection(("127.0.0.1", int(tcp[1])), timeout=10) as client:
            client.sendall(b"still open\n")
            assert client.recv(64) == b"still open\n"
            code, stderr = run.stop(sig)
            assert client.recv(64) == b"", "the server closed the connection on its way out"
        assert code == 0, stderr
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    events = [e for e in lines[1:] if "kind" in e]
    accepted = {e["fd"] for e in events if e["kind"] == "accept"}
    closes = {e["fd"]: e["reason"] for e in events if e["kind"] == "close"}
    assert accepted and all(closes.get(fd) == "shutdown" for fd in accepted), (accepted, closes)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in the recording"


def test_max_connections_beyond_the_fd_limit_is_said_at_start() -> None:
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp",
                "--max-connections", "1000000") as run:
        run.read_until(r"Dashboard: ")
        code, stderr = run.stop(signal.SIGTERM)
    assert code == 0
    note = [line for line in stderr.splitlines() if "open-file limit" in line]
    assert len(note) == 1 and "--max-connections 1,000,000" in note[0], stderr


def test_settle_heap_takes_start_up_objects_out_of_the_collectors_reach() -> None:
    """`muxscope` freezes what start-up built, so full collections stop walking it."""
    code = ("import gc, app.main; from app.run import settle_heap; "
            "before = len(gc.get_objects()); settle_heap(); "
            "print(before, gc.get_freeze_count(), len(gc.get_objects()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=60).stdout.split()
    before, frozen, after = map(int, out)
    assert frozen > 10_000, out
    assert after < before // 10, out


def test_open_starts_the_browser_on_the_dashboard_url(tmp_path: Path) -> None:
    """--open hands the printed dashboard URL to the default browser (webbrowser honours
    $BROWSER: here a script that writes down what it was given)."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    browser.chmod(0o755)
    with launch("--http-port", "0", "--echo-port", "0", "--open",
                extra_env={"BROWSER": str(browser)}) as running:
        url = running.read_until(r"Dashboard: (\S+)").group(1)
        wait_until(lambda: opened.exists() and opened.read_text().strip(), 10,
                   "the browser command to be run")
        assert opened.read_text().splitlines() == [url]


def test_open_without_a_browser_says_to_open_the_url_by_hand() -> None:
    """--open where no browser can be started (here $BROWSER is a command that fails) said
    nothing at all."""
    with launch("--http-port", "0", "--echo-port", "0", "--open",
                extra_env={"BROWSER": "/bin/false"}) as running:
        url = running.read_until(r"Dashboard: (\S+)").group(1)
        line = running.read_until(r"--open: no browser").string
        assert url in line, line


def test_start_raises_the_soft_open_file_limit_to_the_hard_one() -> None:
    """SPEC §1: so the echo server can hold 10,000 connections where the hard limit allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 64 if hard == resource.RLIM_INFINITY else max(64, hard // 2)
    with launch("--http-port", "0", "--echo-port", "0", nofile_soft=low) as running:
        running.read_until(r"Dashboard: ")
        limits = Path(f"/proc/{running.proc.pid}/limits").read_text().splitlines()
        soft_now, hard_now = next(line for line in limits
                                  if line.startswith("Max open files")).split()[3:5]
        assert hard_now == ("unlimited" if hard == resource.RLIM_INFINITY else str(hard))
        assert soft_now == hard_now, f"soft {soft_now} (started at {low}), hard {hard_now}"


@pytest.mark.parametrize("limit", [14, 31])
def test_an_open_file_limit_too_low_to_start_is_one_line(limit: int) -> None:
    """Under `ulimit -n 14` the start ended in a traceback (EMFILE importing uvicorn)."""
    r = run_cli("--http-port", "0", "--echo-port", "0", ulimit=limit)
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert f"open-file limit is {limit}" in line and "at least 32" in line, line
    assert "Traceback" not in r.stderr


def test_echo_clients_flooding_in_leave_the_dashboard_fds_to_answer() -> None:
    """Under a low open-file limit the echo connections took every fd: the dashboard (the same
    process) could not accept its page or any /api call, and uvicorn logged a traceback at
    each try. Connections given an fd among the last kept free are closed at once now."""
    limit = 100
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", nofile=limit) as running:
        port = int(running.read_until(r"TCP echo on 127\.0\.0\.1:(\d+)")[1])
        url = running.read_until(r"Dashboard: (\S+)")[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5)
                   for _ in range(limit + 20)]
        try:
            # the engine has seen them all once every client is either adopted or closed
            wait_until(lambda: httpx.get(url + "api/state", timeout=2).json()["stats"]["accepted"]
                       >= len(clients), timeout=10, what="every client accepted")
            state = httpx.get(url + "api/state", timeout=5).json()
            held = len(state["connections"])
            assert 0 < held < limit - limit // 4, held
            assert max(c["fd"] for c in state["connections"]) < limit - limit // 4
            kept = next(c for c in clients if c.getsockname()[1] in
                        {int(p["peer"].rsplit(":", 1)[1]) for p in state["connections"]})
            kept.sendall(b"still here")
            assert kept.recv(10) == b"still here"
            code, stderr = running.stop(signal.SIGTERM)
            assert code == 0 and "Traceback" not in stderr, stderr
            assert "kept for the dashboard" in stderr, stderr  # the start-up note says so
        finally:
            for sock in clients:
                sock.close()


def test_load_clients_are_refused_the_fds_kept_for_the_dashboard() -> None:
    """In-process load clients took the fds kept for the dashboard (each costs two: its end and
    the server's): past the reserve the page and /api could not connect, and a 202 said 150
    clients run where the engine held 23. A request needing more fds than are free below the
    reserve is a 409 now, and one that fits runs whole."""
    limit = 100
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", nofile=limit) as running:
        url = running.read_until(r"Dashboard: (\S+)")[1]
        with httpx.Client(base_url=url, timeout=5) as api:
            too_many = api.post("/api/load", json={"connections": 60, "message_size": 8,
                                                   "rate": 0})
            assert too_many.status_code == 409, too_many.text
            assert "not enough open files" in too_many.json()["detail"]
            fits = api.post("/api/load", json={"connections": 10, "message_size": 8, "rate": 5})
            assert fits.status_code == 202 and fits.json()["connections"] == 10, fits.text
            wait_until(lambda: len(api.get("/api/state").json()["connections"]) == 10,
                       what="the ten clients held by the engine")
            assert api.get("/healthz").json() == {"ok": True}
        code, stderr = running.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in stderr, stderr


def test_load_clients_not_yet_accepted_count_for_the_fds_they_will_take() -> None:
    """Paused, the server accepts nothing: its ends of the first request's clients had no fd
    yet, so a second request passed the check too (202, 140 clients) and 30 of them were then
    refused one by one. Each client waiting to be accepted counts for its server end now."""
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", nofile=300) as running:
        url = running.read_until(r"Dashboard: (\S+)")[1]
        with httpx.Client(base_url=url, timeout=5) as api:
            assert api.post("/api/loop", json={"action": "pause"}).status_code == 200
            body = {"message_size": 8, "rate": 0}
            assert api.post("/api/load", json={"connections": 80, **body}).status_code == 202
            second = api.post("/api/load", json={"connections": 60, **body})
            assert second.status_code == 409, second.text
            assert api.post("/api/loop", json={"action": "resume"}).status_code == 200
            wait_until(lambda: len(api.get("/api/state").json()["connections"]) == 80,
                       what="the first request's 80 clients held")
        code, stderr = running.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in stderr, stderr


def test_sigterm_with_every_fd_in_use_shuts_down_cleanly() -> None:
    """With the open-file limit reached (clients waiting that the server cannot accept),
    SIGTERM ended in "Application shutdown failed" and a traceback: the shutdown's first
    thread hop imported concurrent.futures.thread, and an import needs an fd. The engine was
    never stopped, so its connections got no orderly close."""
    limit = 64
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", nofile=limit) as running:
        port = int(running.read_until(r"TCP echo on 127\.0\.0\.1:(\d+)")[1])
        http_port = int(running.read_until(r"Dashboard: http://127\.0\.0\.1:(\d+)/")[1])
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        first.sendall(b"ping")
        assert first.recv(4) == b"ping"
        # idle connections to the dashboard take the fds that are left (echo clients cannot:
        # the engine keeps the last open-file slots free for the dashboard); no more than
        # that, or each accept that fails logs a traceback into a stderr read only at the end
        fds = Path(f"/proc/{running.proc.pid}/fd")
        clients = [socket.create_connection(("127.0.0.1", http_port), timeout=5)
                   for _ in range(limit - len(list(fds.iterdir())))]
        wait_until(lambda: len(list(fds.iterdir())) >= limit, what="every fd in use")
        try:
            code, stderr = running.stop(signal.SIGTERM)
            assert code == 0, stderr
            assert "Traceback" not in stderr and "shutdown failed" not in stderr, stderr
            first.settimeout(5)
            assert first.recv(1) == b""  # closed by the engine's shutdown, in order
        finally:
            for sock in (first, *clients):
                sock.close()


def test_the_dashboard_out_of_fds_retries_once_a_second_not_in_a_growing_storm() -> None:
    """Out of fds, asyncio's accept loop went on through the whole backlog after its first
    EMFILE, each try scheduling another retry a second later: the retries and their log lines
    multiplied every second (2,000 lines in the first, 57,000 a second after 12 s, with the
    CPU at 86 %). It retries once a second now, one line each time."""
    limit = 64
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp", nofile=limit) as running:
        http_port = int(running.read_until(r"Dashboard: http://127\.0\.0\.1:(\d+)/")[1])
        fds = Path(f"/proc/{running.proc.pid}/fd")
        held = [socket.create_connection(("127.0.0.1", http_port), timeout=5)
                for _ in range(limit - len(list(fds.iterdir())))]
        wait_until(lambda: len(list(fds.iterdir())) >= limit, what="every fd in use")
        waiting = [socket.create_connection(("127.0.0.1", http_port), timeout=5)
                   for _ in range(5)]  # in the backlog: accept fails with EMFILE
        try:
            # three tries, about two seconds apart at one a second (thousands, the storm)
            wait_until(lambda: "".join(running.errors).count("cannot accept") >= 3, 10,
                       "three accept tries out of fds")
            code, stderr = running.stop(signal.SIGTERM)
        finally:
            for sock in held + waiting:
                sock.close()
    tries = stderr.count("cannot accept a connection")
    assert 1 <= tries <= 8, (tries, stderr[-2000:])
    assert code == 0 and "Traceback" not in stderr, stderr[-2000:]


def test_select_refused_at_start_says_so_and_not_replay() -> None:
    """Started on select with fds up to 1023 already taken (inherited), the engine's own fds
    are past FD_SETSIZE: the one-line error said "muxscope replay:", though no replay ran."""
    holder = (
        "import os, resource, sys\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n"
        "fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]\n"
        "for fd in fds: os.set_inheritable(fd, True)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'app', *sys.argv[1:]])\n")
    r = subprocess.run([sys.executable, "-c", holder, "--backend", "select", "--http-port", "0",
                        "--echo-port", "0"], cwd=ROOT, env=env(), capture_output=True,
                       text=True, timeout=20)
    line = one_line(r.stderr)
    assert r.returncode != 0
    assert line.startswith("muxscope: --backend select:") and "1024" in line, line
    assert "replay" not in line


def test_record_to_stdout_sent_to_a_file_is_pure_jsonl_and_replays(tmp_path: Path) -> None:
    """`muxscope --record /dev/stdout > run.jsonl`: the banner went to the same file, over the
    snapshot's first bytes ("wb" from offset 0), and replay refused the file. Now the banner
    goes to stderr and the file holds only the recording."""
    out = tmp_path / "run.jsonl"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--http-port", "0", "--echo-port", "0", "--no-udp",
             "--record", "/dev/stdout"],
            cwd=ROOT, env=env(), stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        running = Running(proc)
        threading.Thread(target=_pump, args=(proc.stderr, running.lines), daemon=True).start()
        port = int(running.read_until(r"TCP echo on 127\.0\.0\.1:(\d+)")[1])
        # no rotation, and no file to replay, for /dev/stdout
        running.read_until(r"^Recording every event to /dev/stdout$")
        running.read_until(r"Dashboard: ")
        assert tcp_echo(port, b"to stdout\n") == b"to stdout\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    from app.recording import load_recording

    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[0]["type"] == "snapshot"
    snapshot, events = load_recording(out)
    assert any(e["kind"] == "recv" and e.get("preview") == "to stdout\\n" for e in events)
    assert not list(tmp_path.glob("run.jsonl.*")) and Path("/dev/stdout").is_symlink()


def _events_seen(base: str) -> float:
    text = httpx.get(base + "metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("muxscope_events_total{"))


def test_sigterm_with_a_trace_download_held_exits_cleanly() -> None:
    """A download whose client reads nothing outlasted uvicorn's wait for open connections
    (5 s) and was cancelled: "Exception in ASGI application" and a traceback per download.
    Downloads are now ended first."""
    with launch("--http-port", "0", "--echo-port", "0", "--no-udp") as running:
        base = running.read_until(r"Dashboard: (http://127\.0\.0\.1:\d+/)$")[1]
        load = {"connections": 20, "message_size": 64, "rate": 500}
        assert httpx.post(base + "api/load", json=load, timeout=5).status_code == 202
        wait_until(lambda: _events_seen(base) > 60_000, 30, "a trace of 60,000 events")
        host, port = base.removeprefix("http://").rstrip("/").rsplit(":", 1)
        held = socket.socket()
        held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        held.connect((host, int(port)))
        try:
            held.sendall(f"GET /api/trace?format=chrome HTTP/1.1\r\nHost: {host}:{port}"
                         "\r\n\r\n".encode())
            held.settimeout(5)
            assert held.recv(64).startswith(b"HTTP/1.1 200")  # under way; nothing more read
            started = time.monotonic()
            code, stderr = running.stop(signal.SIGTERM)
            assert code == 0, stderr
            assert "Traceback" not in stderr and "Exception in ASGI" not in stderr, stderr
            assert time.monotonic() - started < 5  # not held up to uvicorn's 5 s timeout
        finally:
            held.close()


def test_record_to_the_file_stderr_goes_to_is_refused(tmp_path: Path) -> None:
    """`--record /dev/stdout > f 2>&1`, or `--record /dev/stderr 2> f`: log lines would land
    in the recording, which replay then refuses."""
    out = tmp_path / "run.jsonl"
    with out.open("wb") as both:
        r = subprocess.run([sys.executable, "-m", "app", "--http-port", "0", "--echo-port", "0",
                            "--record", "/dev/stdout"], cwd=ROOT, env=env(), stdout=both,
                           stderr=subprocess.STDOUT, timeout=20)
    line = one_line(out.read_text())
    assert r.returncode == 2 and "--record /dev/stdout" in line and "stderr" in line, line


@pytest.mark.parametrize("stdout", ["/dev/full", "a closed pipe"])
def test_start_up_lines_that_cannot_be_written_do_not_stop_the_server(stdout: str) -> None:
    """`muxscope | true` or `> /dev/full`: the banner's write failed, and the server ended
    with a 74-line traceback, exit 1, before it served anything."""
    if stdout == "/dev/full":
        out: Any = open("/dev/full", "w")  # noqa: SIM115 - closed below
    else:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line
        out = os.fdopen(write_end, "w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--http-port", "0", "--echo-port", "0"],
                            cwd=ROOT, env=env(), stdout=out, stderr=subprocess.PIPE, text=True)
    out.close()
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "could not be written" in line and "serving anyway" in line, line
        url = line.rsplit("Dashboard: ", 1)[1].strip()
        assert httpx.get(url + "healthz", timeout=5).json() == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        rest = proc.stderr.read()
        assert "Traceback" not in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("flag,what", [("--http-port", "dashboard"), ("--echo-port", "TCP echo")])
def test_a_port_in_use_says_the_way_out(flag: str, what: str) -> None:
    """"address already in use" and nothing else: what a newcomer saw after starting it twice."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        other = "--echo-port" if flag == "--http-port" else "--http-port"
        r = run_cli(flag, str(port), other, "0", "--no-udp")
    line = one_line(r.stderr)
    assert r.returncode == 1, r.stderr
    assert f"({what}): address already in use" in line
    assert f"pick another with {flag} N, or {flag} 0 for any free port" in line
