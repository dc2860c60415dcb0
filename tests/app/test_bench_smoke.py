"""Smoke test of ``muxscope bench --quick``: it runs to the end and prints its ratio table.

A benchmark, not a timed test: no speed is asserted, only that every part completes.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_bench_quick_completes_and_prints_ratio_table(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from app.bench import main; sys.exit(main(sys.argv[1:]))",
         "--quick", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    out = proc.stdout
    said = f"stdout:\n{out[-4000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, said
    assert "ratio vs asyncio" in out, said
    assert "load client:" in out, said
    reference = next(line for line in out.splitlines() if line.startswith("asyncio Protocol"))
    assert "1.00x" in reference, said
    bare = [line for line in out.splitlines() if line.startswith("bare epoll loop")]
    assert bare and all(re.search(r"\d\.\d\dx", line) for line in bare), said
    assert "Wait cost vs idle fds" in out
    assert "Event delivery" in out
    assert "Engine cost per 1 KiB message" in out
    assert out_json.exists() and '"echo"' in out_json.read_text()
    import json

    echo_rows = [row for rows in json.loads(out_json.read_text())["echo"].values()
                 for row in rows]
    assert echo_rows and all("note" in row for row in echo_rows)   # the table's note column
    # the targets of the wait and delivery parts are judged under their tables
    assert "epoll wait CPU at 100 idle fds against 10" in out and "not judged" in out, said
    assert "with 200 clients:" in out and "latency p99 at <= 2,000 events/s" in out, said
    # the echo part's start-up (every server started, then primed) is said, not silent
    assert "echo: starting" in proc.stderr and "servers up in" in proc.stderr
    assert "echo: priming" in proc.stderr


def test_a_part_without_windows_says_what_it_measures_not_reps_and_windows() -> None:
    """`--only micro` (and scale, instructions) printed "3 rep(s) x 2 s (+0.5 s warm-up) per
    window", and --json's plan said the same, for parts that have no such windows."""
    from app.bench import header, plan_record
    from app.bench_args import make_plan, parse_args

    class Client:
        name = "C (loadclient.c, gcc -O2)"

    info = {"nproc": 2, "cpu_model": "x", "python": "3", "kernel": "6", "pinning": True}
    for only, says in (("micro", "in-process timings"), ("instructions", "callgrind"),
                       ("scale", "one window of --scale-seconds")):
        args = parse_args(["--only", only])
        text = header(make_plan(args), Client(), info, only)  # type: ignore[arg-type]
        assert says in text and "rep(s)" not in text, text
        assert "reps" not in plan_record(args, make_plan(args))
    args = parse_args(["--only", "echo", "--reps", "2"])
    assert "2 rep(s) x 2 s (+0.5 s warm-up) per window" in header(
        make_plan(args), Client(), info, "echo")  # type: ignore[arg-type]
    assert plan_record(args, make_plan(args))["reps"] == 2


def test_a_variant_that_dies_mid_run_is_a_failed_row_and_the_others_go_on() -> None:
    """A server (or its load client) dying in the middle of the run ended the whole bench with
    a traceback and no table: SPEC §7 wants a miss reported, never hidden."""
    from app.benchkit import echo
    from app.benchkit.loadgen import LoadResult

    class FakeServer:
        cpu = 0

        def __init__(self, port: int) -> None:
            self.port, self.closed = port, False

        def pause(self) -> None: ...
        def resume(self) -> None: ...
        def ask_to_quit(self) -> None: ...

        def close(self) -> None:
            self.closed = True

    class FakeClient:
        def run(self, port: int, *_: object) -> LoadResult:
            if port == 2 and calls.count(2) >= 1:  # dies after its priming window
                raise RuntimeError("loadclient: connect: Connection refused")
            calls.append(port)
            return LoadResult(rt=1000, seconds=1.0, p50_us=1, p99_us=2, dead=0,
                              probes=(0.0, 0.005))

    calls: list[int] = []
    servers = [FakeServer(1), FakeServer(2)]
    vs = [echo.Variant("asyncio Protocol (reference)", "asyncio", server=servers[0]),  # type: ignore[arg-type]
          echo.Variant("engine epoll eager, unobserved", "engine:eager:epoll", 1.2,
                       server=servers[1])]  # type: ignore[arg-type]
    logged: list[str] = []
    echo.measure(vs, FakeClient(), 1.0, 2, 0.0, (("1 x 64 B", 1, 64),), logged.append)  # type: ignore[arg-type]
    assert vs[1].error == "failed mid-run: loadclient: connect: Connection refused"
    assert servers[1].closed and vs[1].server is None
    assert len(vs[0].runs["1 x 64 B"]) == 2, "the reference went on"
    rows = echo.rows(vs, "1 x 64 B")
    assert rows[1]["error"].startswith("failed mid-run") and rows[1]["ratio_vs_asyncio"] is None
    assert any("failed mid-run" in line for line in logged)


def _stalling_run(stalls: int) -> tuple[list, list[str]]:
    """The reference and a bare loop measured over 2 reps; the bare loop's load client sees no
    round trip in `stalls` windows after its priming one."""
    from app.benchkit import echo
    from app.benchkit.loadgen import LoadResult

    class FakeServer:
        cpu, stderr_tail = 0, ["Traceback (most recent call last):", "OSError: boom"]

        def __init__(self, port: int) -> None:
            self.port = port

        def pause(self) -> None: ...
        def resume(self) -> None: ...
        def ask_to_quit(self) -> None: ...
        def close(self) -> None: ...

        def stacks(self) -> dict[str, str]:
            return {"bare-echo": "baseline.py:88 _bare_loop"}

    class FakeClient:
        def run(self, port: int, *_: object) -> LoadResult:
            calls.append(port)
            stalled = port == 2 and 1 < calls.count(2) <= 1 + stalls
            return LoadResult(rt=0 if stalled else 1000, seconds=1.0, p50_us=1, p99_us=2,
                              dead=0, probes=(0.0, 0.005))

    calls: list[int] = []
    vs = [echo.Variant("asyncio Protocol (reference)", "asyncio", server=FakeServer(1)),  # type: ignore[arg-type]
          echo.Variant("bare epoll loop, eager (no engine)", "bare", server=FakeServer(2))]  # type: ignore[arg-type]
    logged: list[str] = []
    echo.measure(vs, FakeClient(), 1.0, 2, 0.0, (("1 x 64 B", 1, 64),), logged.append)  # type: ignore[arg-type]
    return vs, logged


def test_a_window_without_round_trips_is_run_again_and_said() -> None:
    """The quick bench's bare epoll row failed in CI twice: no round trips in a 0.25 s window,
    its server alive and answering. Such a window is logged with where the server's threads
    were, and run once more."""
    vs, logged = _stalling_run(stalls=1)
    assert vs[1].error is None and len(vs[1].runs["1 x 64 B"]) == 2
    said = [line for line in logged if "no round trips" in line]
    assert len(said) == 1 and "try 1 of 2" in said[0], logged
    assert "bare-echo: baseline.py:88 _bare_loop" in said[0] and "server CPU 5.0 ms" in said[0]


def test_two_windows_without_round_trips_fail_the_row_with_the_servers_last_words() -> None:
    """A server whose loop had stopped but whose process lived on still accepted connections:
    its row printed a ratio of "-" with no reason (the smoke test's failure in CI on cc5426f)."""
    vs, logged = _stalling_run(stalls=10)
    assert vs[1].error and vs[1].error.startswith("failed mid-run: no round trips in two 1 s")
    assert any("OSError: boom" in line for line in logged), logged
    assert len(vs[0].runs["1 x 64 B"]) == 2, "the reference went on"


def test_a_benchmarked_server_whose_thread_dies_exits_saying_why() -> None:
    """Its listening socket closes with it, so the next window fails to connect (a failed
    row) instead of measuring a server that echoes nothing."""
    code = ("import threading; from app.benchkit.serve import die_with_the_thread;"
            "threading.excepthook = die_with_the_thread;"
            "threading.Thread(target=lambda: 1 / 0, name='bare-echo').start();"
            "threading.Event().wait(20)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=15, check=False)
    assert proc.returncode == 70, proc.stderr
    assert "ZeroDivisionError" in proc.stderr and "bare-echo died" in proc.stderr


def test_ratios_near_the_target_are_not_rounded_across_it_and_json_stays_strict(
        tmp_path: Path) -> None:
    """"1.20x" was printed beside ">=1.2x MISSED" (1.199876); a window without round trips
    wrote `Infinity` into --json, which is not JSON."""
    import json

    from app.bench import write_json
    from app.benchkit.echo import _shown_ratio

    assert _shown_ratio(1.199876, 1.2) == "1.1999x"
    assert _shown_ratio(1.25, 1.2) == "1.25x" and _shown_ratio(0.7, None) == "0.70x"
    path = tmp_path / "b.json"
    assert write_json(path, {"cpu_us_per_rt": float("inf"), "rows": [float("nan"), 1.5]})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "cpu_us_per_rt": None, "rows": [None, 1.5]}


@pytest.mark.timeout(60)
def test_a_reader_that_goes_away_and_a_bad_json_path(tmp_path: Path) -> None:
    """`bench ... | head -1` ended in a BrokenPipeError traceback and no --json file; a --json
    path root may not create (/proc) was found only after the whole run."""
    out_json = tmp_path / "m.json"
    run = subprocess.run(
        f"{sys.executable} -m app bench --only micro --quick --json {out_json} | head -1",
        shell=True, cwd=ROOT, capture_output=True, text=True, timeout=50, check=False)
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert out_json.exists() and '"micro"' in out_json.read_text()
    bad = subprocess.run([sys.executable, "-m", "app", "bench", "--quick", "--json",
                          "/proc/no-such.json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=20, check=False)
    assert bad.returncode == 2 and "cannot write --json" in bad.stderr, bad.stderr


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.timeout(30)
def test_a_stopped_bench_server_dies_with_a_bench_killed_outright() -> None:
    """The echo part stops idle servers (SIGSTOP); a bench killed with SIGKILL left them
    stopped for good (a stopped process never sees its input end)."""
    import os
    import signal

    from tests.conftest import wait_until

    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, subprocess, sys\n"
         "p = subprocess.Popen([sys.executable, '-m', 'app.benchkit.serve', 'asyncio', '0'],"
         " stdout=subprocess.PIPE, stdin=subprocess.PIPE)\n"
         "print(p.pid, p.stdout.readline().decode().strip(), flush=True)\n"
         "signal.pause()  # until killed\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid_text, port_line = parent.stdout.readline().split(" ", 1)
        child = int(pid_text)
        assert port_line.startswith("PORT"), port_line
        os.kill(child, signal.SIGSTOP)  # as the bench leaves a server between its windows
        parent.kill()
        parent.wait(5)
        wait_until(lambda: _gone(child), 10, "the stopped server to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_wait_levels_an_open_file_limit_cut_short_are_said_not_mislabelled() -> None:
    """Under `ulimit -n 400` the 600 and 1,000 idle-fd rows held ~392 and were shown as
    600 and 1,000 (select's blamed on FD_SETSIZE), and the table then failed with a
    TypeError on a level never grown."""
    from app.benchkit import waitcost

    lanes = []
    for backend in ("select", "epoll"):
        lane = waitcost.Lane(backend, None, None)  # type: ignore[arg-type]
        lane.held = {10: 10, 600: 392}
        lane.refused_at, lane.refused_why = 600, "the open-file limit, ulimit -n"
        lane.samples = {10: [{"wait_us": 60.0, "wait_cpu_us": 16.0, "iter_cpu_us": 40.0,
                              "work_us": 24.0, "waits_per_s": 1e4, "rt_per_s": 1e4}]}
        lanes.append(lane)
    text = waitcost.render(waitcost.results(lanes, (10, 600, 1000)))
    assert text.count("not measured: held only 392 (the open-file limit, ulimit -n)") == 4
    assert "FD_SETSIZE" not in text


def test_a_floor_is_paired_rep_by_rep_like_the_ratios() -> None:
    """The floor was a ratio of medians, the ratio column a median of per-rep ratios: when the
    machine's speed drifted between reps (asyncio 35.7, 37.2, 28.2 us/rt), an unobserved row's
    floor read 1.32x beside its own bare loop's row at 1.18x, in one table."""
    from app.benchkit import echo
    from app.benchkit.loadgen import LoadResult

    def runs(*us_per_rt: float) -> dict[str, list[tuple[LoadResult, None]]]:
        return {"x": [(LoadResult(rt=1000, seconds=1.0, p50_us=1, p99_us=2, dead=0,
                                  probes=(0.0, us / 1000)), None) for us in us_per_rt]}

    vs = [echo.Variant("asyncio", "asyncio", runs=runs(35.7, 37.2, 28.2)),
          echo.Variant("bare", "bare", runs=runs(30.2, 26.9, 24.3)),
          echo.Variant("engine", "engine", 1.2, runs=runs(31.3, 27.4, 26.8), floor="bare"),
          echo.Variant("app", "app", 1.0, observed=True, runs=runs(33.3, 30.4, 26.8),
                       floor="bare", unobserved="engine")]
    ratios, floors = echo._ratios(vs, "x"), echo._floors(vs, "x")
    assert floors["engine"] == pytest.approx(ratios["bare"]) == pytest.approx(35.7 / 30.2)
    # observed: each rep's bare loop plus that rep's cost of watching (none when negative)
    assert floors["app"] == pytest.approx(statistics.median(
        [35.7 / (30.2 + 2.0), 37.2 / (26.9 + 3.0), 28.2 / 24.3]))
    assert floors["asyncio"] is None and floors["bare"] is None
    # each row shows its per-rep ratios' range beside the median
    engine_row = next(r for r in echo.rows(vs, "x") if r["variant"] == "engine")
    assert engine_row["rep_ratios"] == pytest.approx([35.7 / 31.3, 37.2 / 27.4, 28.2 / 26.8])
    assert "1.05-1.36" in echo.render("x", echo.rows(vs, "x"), "C")


def test_a_latency_at_the_histograms_cap_and_a_negative_cost_say_what_they_are() -> None:
    """A p99 printed as 200,000 us was the C client's last histogram bucket, a floor; a micro
    cost printed as -496 ns was noise, and nothing said so."""
    from app.benchkit.echo import LATENCY_CAP_US, _latency
    from app.benchkit.micro import render_messages

    assert _latency(LATENCY_CAP_US) == ">=200,000" and _latency(1234) == 1234
    assert _latency(None) is None
    rows = [{"case": "eager, unobserved", "ns": 120, "messages": 2000},
            {"case": "eager, throttled", "ns": -496, "messages": 2000}]
    assert "a negative cost" in render_messages(rows)
    assert "a negative cost" not in render_messages(rows[:1])


def _interrupt_micro_bench(*extra: str, sigint_ignored: bool = False,
                           sig: int | None = None) -> tuple[int, str]:
    """Start `bench --only micro`, send it SIGINT (or `sig`) once it has started (the micro
    part runs then), and return its exit status and stderr."""
    import signal

    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen([sys.executable, "-m", "app", "bench", "--only", "micro", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("muxscope bench")  # started: micro runs now
        proc.send_signal(signal.SIGINT if sig is None else sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.timeout(60)
def test_an_interrupt_before_any_part_finished_promises_no_results(tmp_path: Path) -> None:
    """Ctrl-C during the first part said "partial results in F.json" of a file that then held
    only the machine and the plan."""
    import json

    out_json = tmp_path / "b.json"
    status, err = _interrupt_micro_bench("--json", str(out_json))
    assert status == 130, err
    assert "interrupted; finished: nothing" in err
    assert "holds the machine and the plan, no figures" in err and "partial results" not in err
    data = json.loads(out_json.read_text())
    assert data["interrupted"] is True and data["parts_done"] == []


@pytest.mark.timeout(90)
def test_an_interrupted_echo_part_keeps_the_windows_it_measured(tmp_path: Path) -> None:
    """Ctrl-C in the echo part (about 8 of a full run's 9 minutes) threw away every window it
    had measured: "finished: nothing", and the JSON held the plan alone."""
    import json
    import signal

    out_json = tmp_path / "b.json"
    proc = subprocess.Popen([sys.executable, "-m", "app", "bench", "--only", "echo", "--quick",
                             "--reps", "3", "--seconds", "0.2", "--json", str(out_json)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:   # rep 1 measured: every server had its window
            if "rep 2/3" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; finished: echo (the windows measured); partial results in" in err, err
    assert "(interrupted: 50 conns x 1 KiB from the windows measured before it" in out, out
    assert "asyncio Protocol (reference)" in out and "engine epoll-level eager" in out, out
    data = json.loads(out_json.read_text())
    assert data["interrupted"] is True and data["echo_interrupted"] is True
    rows = data["echo"]["50 conns x 1 KiB"]
    assert rows[0]["reps"] >= 1 and rows[0]["cpu_us_per_rt"] > 0, rows[0]
    assert all(r["ratio_vs_asyncio"] for r in rows if r["reps"]), rows


@pytest.mark.timeout(60)
def test_an_interrupt_ends_a_bench_started_with_sigint_ignored() -> None:
    """A shell without job control starts `cmd &` with SIGINT ignored, and Python keeps an
    inherited SIG_IGN: such a bench (a script's, a CI runner's) ran on through `kill -INT`
    to its end with status 0, where the dashboard stops."""
    status, err = _interrupt_micro_bench(sigint_ignored=True)
    assert status == 130, err
    assert "interrupted; finished: nothing" in err


@pytest.mark.timeout(60)
def test_sigterm_ends_a_bench_saying_so_with_its_own_status() -> None:
    """SIGTERM said "interrupted" and ended with 130, Ctrl-C's status (a review's finding)."""
    import signal

    status, err = _interrupt_micro_bench(sig=signal.SIGTERM)
    assert status == 143, err
    assert "terminated (SIGTERM); finished: nothing" in err


def _bench_args_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from app.bench_args import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_windows_too_short_to_measure_and_an_option_given_twice_are_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--seconds 0.0001` ran, and its rows of a few round trips each read `>=1.2x ok`;
    `--only echo --only micro` ran micro alone (a review's findings)."""
    assert "seconds must be at least 0.1" in _bench_args_error(capsys, "--seconds", "0.0001")
    assert "scale seconds must be at least 1" in _bench_args_error(
        capsys, "--only", "scale", "--scale-seconds", "0.5")
    assert "--only given twice (the second: micro)" in _bench_args_error(
        capsys, "--only", "echo", "--only", "micro")
    assert "--reps given twice" in _bench_args_error(capsys, "--reps", "2", "--reps", "3")
    from app.bench_args import parse_args

    args = parse_args(["--only", "echo", "--seconds", "0.1", "--reps", "1"])   # the least
    assert (args.only, args.seconds, args.reps) == ("echo", 0.1, 1)
    assert not hasattr(args, "_given")


@pytest.mark.timeout(30)
def test_a_scale_run_the_open_file_limit_cannot_hold_is_refused_before_it_starts() -> None:
    """Under `ulimit -n 1024`, `--only scale --scale-conns 2000` ran its 70 s and more, waiting
    for connections that could not open."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    run = subprocess.run([sys.executable, "-m", "app", "bench", "--only", "scale",
                          "--scale-conns", "2000", "--scale-seconds", "5"], cwd=ROOT,
                         capture_output=True, text=True, timeout=25, check=False,
                         preexec_fn=limit)
    assert run.returncode == 2, run.stderr
    assert ("--scale-conns 2,000 needs about 2,100 open files in the server, and the hard "
            "limit here is 1,024") in run.stderr
    assert run.stdout == ""   # nothing started


def test_a_run_says_about_how_long_it_will_take() -> None:
    """The header gave reps x seconds per window, and no total: the default run takes ~9 min
    (521.8 s in run BY)."""
    from app.bench import estimate_s
    from app.bench_args import make_plan, parse_args

    def estimate(*argv: str) -> float | None:
        args = parse_args(list(argv))
        return estimate_s(make_plan(args), args.only)

    default = estimate()
    assert default is not None and 480 < default < 600, default
    echo_only = estimate("--only", "echo")
    assert echo_only is not None and 300 < echo_only < default
    assert estimate("--quick") is None and estimate("--only", "micro") is None


def test_a_floor_near_the_target_is_shown_as_the_ratio_is() -> None:
    """The ratio printed `0.7951x` and its floor `0.80x` beside "floor below target" (the floor
    was 0.7954): both now keep the digits that tell the side of the target."""
    from app.benchkit.echo import render

    row = {"variant": "app epoll-level queued, observed", "error": None,
           "ratio_vs_asyncio": 0.7951, "target": 0.8, "floor_ratio": 0.7954, "rt_per_s": 1e5,
           "cpu_us_per_rt": 6.0, "user_us_per_rt": 2.0, "rep_ratios": [0.79, 0.80],
           "verdict": ">=0.8x MISSED", "p99_us": 500, "page_events_per_s": 22000.0, "dead": 0}
    table = render("50 conns x 1 KiB", [row], "C")
    assert "0.7951x" in table and "0.7954x" in table and "floor below target" in table, table


def test_the_wait_and_delivery_tables_say_their_targets_verdicts() -> None:
    """The echo tables judged their targets; the wait and delivery tables gave raw figures, and
    the reader divided 18.8 by 13.5 by hand (a review's finding)."""
    from app.benchkit import delivery, waitcost

    def wait(idle: int, cpu: float, backend: str = "epoll") -> dict[str, object]:
        return {"backend": backend, "idle": idle, "refused": False, "wait_us": cpu + 40,
                "wait_cpu_us": cpu, "iter_cpu_us": cpu + 20, "work_us": 20.0,
                "waits_per_s": 1e4}

    flat = waitcost.verdict([wait(10, 17.8), wait(1000, 20.0), wait(10_000, 18.1),
                             wait(10_000, 2796.1, "poll")])
    assert "18.1 / 17.8 us = 1.02x (target <= 1.5x at 10,000 against 10: ok)" in flat, flat
    assert "MISSED" in waitcost.verdict([wait(10, 10.0), wait(10_000, 16.0)])
    assert "not judged" in waitcost.verdict([wait(10, 10.0), wait(100, 11.0)])   # --quick's

    def window(clients: int, events: float, p99: float, gaps: bool = True) -> dict[str, object]:
        return {"write": "eager", "load": {"connections": clients, "rate": 50},
                "events_per_s": events, "p99_ms": p99, "gaps_match_dropped": gaps}

    good = delivery.verdict([window(200, 22_250.1, 32.7), window(20, 1_484.3, 30.9)])
    assert "22,250 (eager) (target >= 20,000 with seq gaps = dropped: ok)" in good, good
    assert "30.9 ms at 1,484 events/s (target < 100 ms: ok)" in good, good
    assert delivery.verdict([window(200, 22_000, 30, gaps=False)]).count("MISSED") == 1
    assert "no load that light" in delivery.verdict([window(200, 22_000, 30)])


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.timeout(90)
def test_an_interrupt_while_the_servers_start_ends_them_at_once() -> None:
    """A Ctrl-C sent to the bench alone (`kill -INT`, not the terminal's whole group) while
    its 23 echo servers were starting took 20-28 s: each was asked to quit, which it reads
    only once started. They are terminated now, and none is left behind."""
    import signal

    from tests.conftest import wait_until

    proc = subprocess.Popen([sys.executable, "-m", "app", "bench", "--only", "echo"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # (a bench that ends first fails below: no children)
            if "echo: starting" in line:
                break
        children = wait_until(lambda: _children(proc.pid), timeout=10, what="the servers")
        proc.send_signal(signal.SIGINT)
        # (0.2-0.3 s now; a polite quit took 20-28 s on a busy machine)
        err = proc.communicate(timeout=5)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; finished: nothing" in err
    assert all(_gone(pid) for pid in children)  # terminated, not left to the orphan watch


@pytest.mark.timeout(30)
def test_a_benchmarked_server_says_where_its_threads_are() -> None:
    """What a window without round trips logs: the bare loop's thread, waiting in its loop."""
    from app.benchkit.procs import ServerProc, close_all

    server = ServerProc("bare", cpu=-1).ready(20)
    try:
        stacks = server.stacks()
    finally:
        close_all([server])
    assert "_bare_loop" in stacks.get("bare-echo", ""), stacks
    assert "command_loop" in stacks.get("MainThread", ""), stacks


def test_the_full_echo_table_has_the_c_loops_and_says_when_gcc_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.benchkit import echo

    specs = {v.spec: v for v in echo.variants(True, True, quick=False)}
    assert specs["c"].error is None and specs["c:edge"].error is None
    assert "c" not in {v.spec for v in echo.variants(True, True, quick=True)}
    monkeypatch.setattr(echo.shutil, "which", lambda name: None)
    without = {v.spec: v for v in echo.variants(True, True, quick=False)}
    assert without["c"].error == without["c:edge"].error == "n/a (gcc not found)"


@pytest.mark.timeout(30)
def test_a_cpu_sample_carries_its_user_part_and_a_window_its_user_us_per_rt() -> None:
    """The echo table's user column, the interpreter's share of a round trip: each `cpu` reply
    of a server gives its user CPU beside the total, and a window turns two into µs/rt."""
    from app.benchkit import echo
    from app.benchkit.loadgen import LoadResult
    from app.benchkit.procs import CpuSeconds, ServerProc, close_all

    server = ServerProc("bare", cpu=-1).ready(20)
    try:
        sample = server.cpu()
    finally:
        close_all([server])
    assert 0 < sample.user <= float(sample), "its imports alone took user CPU"
    window = LoadResult(rt=1000, seconds=1.0, p50_us=1, p99_us=2, dead=0,
                        probes=(CpuSeconds(1.0, 0.4), CpuSeconds(1.005, 0.402)))
    assert window.cpu_us_per_rt == pytest.approx(5.0)
    assert window.user_us_per_rt == pytest.approx(2.0)
    untold = LoadResult(rt=1000, seconds=1.0, p50_us=1, p99_us=2, dead=0, probes=(1.0, 1.005))
    v = echo.Variant("asyncio Protocol (reference)", "asyncio",
                     runs={"x": [(window, None), (untold, None)]})
    (row,) = echo.rows([v], "x")
    assert row["user_us_per_rt"] == pytest.approx(2.0) and row["raw"][1]["user_us_per_rt"] is None
    assert " 2.00 " in echo.render("x", [row], "C")
