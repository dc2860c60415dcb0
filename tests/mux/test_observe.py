"""Observation: cheap when nobody watches, bounded when somebody does, never silent."""

from __future__ import annotations

import select
import socket
import time

import pytest

from mux import Engine, EngineConfig
from mux.backends import READABLE, WRITABLE
from mux.backends._epoll import EpollBackend
from mux.backends._select import SelectBackend
from mux.observe import Observers
from mux.tcp import TcpConnection

from .conftest import Recorder, SocketStandIn, running_engine, wait_until
from .traffic import check, start_clients


def test_nobody_listening_builds_and_numbers_nothing():
    with running_engine(observe=False) as (engine, _):
        results = start_clients(engine.tcp_port, 2, 100_000)
        check(results, 100_000)
        assert engine.observers.seq == 0
        # the echo itself was counted (the client can have the last bytes a moment before the
        # loop thread adds them up)
        wait_until(lambda: engine.counters()["bytes_out"] == 200_000,
                   what="bytes_out to reach 200,000")


def test_budget_bounds_what_is_shown_and_keeps_iterations_whole():
    with running_engine(backend="epoll", write="eager", observe_budget=2000) as (engine, rec):
        t0 = time.monotonic()
        results = start_clients(engine.tcp_port, 8, 2_000_000)
        check(results, 2_000_000)
        elapsed = time.monotonic() - t0
        seq_end = engine.observers.seq
    events = rec.events
    high_volume = [e for e in events if e["kind"] in ("wait", "ready", "recv", "send",
                                                        "queue", "interest")]
    assert len(events) < seq_end, "the budget never held anything back"
    # Within the budget, with one iteration of overshoot per 100 ms window.
    windows = elapsed / 0.1 + 1
    assert len(high_volume) <= 2000 * elapsed + windows * 300
    # Every wait that was shown comes with all of its ready events, numbered without gaps:
    # an observed iteration is shown whole.
    for i, wait in enumerate(events):
        if wait["kind"] != "wait":
            continue
        ready, expected_seq = 0, wait["seq"] + 1
        for event in events[i + 1:]:
            if event["kind"] == "wait" or event["seq"] != expected_seq:
                break
            ready += event["kind"] == "ready"
            expected_seq += 1
        assert ready == wait["ready"], wait
    # Accepts and closes are always shown, whatever the budget.
    assert len([e for e in events if e["kind"] == "accept"]) == 8


def _inq(sock: socket.socket) -> int:
    import fcntl
    import struct
    import termios

    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def _one_message(engine: Engine, recorder: Recorder, watched: bool,
                 scenario: str) -> tuple[int, list[tuple[str, int]]]:
    """Echo one message through a fresh connection, dispatched as the loop does (watched:
    `on_ready`; throttled: the batch dispatch, mux/hot.py); return (seq numbers taken, the
    events shown: kind and seq, counted from the message's start)."""
    server, peer = socket.socketpair()
    server.setblocking(False)
    conn = TcpConnection(engine, server, "socketpair")
    engine.loop.register(conn, READABLE)
    obs = engine.observers
    seq0, shown0 = obs.seq, len(recorder.events)
    obs.watched = watched
    if scenario == "kernel full":  # the echo must wait in the queue
        while True:
            try:
                server.send(b"f" * 65536)
            except BlockingIOError:
                break
    peer.sendall(b"m" * 100)
    wait_until(lambda: _inq(server) == 100, what="the message reached the server")
    if scenario == "peer gone":  # the echo's send fails (EPIPE): the connection closes
        peer.close()
    _dispatch(engine, conn, READABLE, watched)
    _check_backend_agrees(engine, conn.fd)
    if not engine.eager and not conn.closed:  # queued: the echo goes out on writable
        _dispatch(engine, conn, WRITABLE, watched)
        _check_backend_agrees(engine, conn.fd)
    taken = obs.seq - seq0
    shown = [(e["kind"], e["seq"] - seq0) for e in recorder.events[shown0:]]
    conn.close("user")
    peer.close()
    return taken, shown


def _dispatch(engine: Engine, conn: TcpConnection, mask: int, watched: bool) -> None:
    """The readiness `mask` of `conn`, handled as run_once hands it over."""
    if watched:
        conn.on_ready(mask)  # what _dispatch_instrumented calls
    else:
        backend = engine.loop.backend
        engine.loop.retired.clear()  # as a wait's return does (the fd may be a closed one's)
        engine.loop.dispatch_unwatched([(conn.fd, backend.native_interest(mask))], backend)


def _check_backend_agrees(engine: Engine, fd: int) -> None:
    """The loop's interest table and what the backend passes to the kernel say the same
    (the write toggles of select and epoll change both without set_interest). A poll object
    cannot be read back, so poll's toggle is checked through the echo alone."""
    loop = engine.loop
    backend = loop.backend
    if fd not in loop.handlers:
        return
    mask = loop.interest[fd]
    if isinstance(backend, SelectBackend):
        assert (fd in backend.rlist, fd in backend.wlist) == (
            bool(mask & READABLE), bool(mask & WRITABLE)), (fd, mask)
    elif isinstance(backend, EpollBackend):
        always = select.EPOLLERR | select.EPOLLHUP  # the kernel adds these to every mask
        assert backend.interest[fd] & ~always == backend.native_interest(mask), (fd, mask)


ALWAYS_SHOWN = ("close", "backpressure")  # the rare kinds, built whenever somebody listens


def _check_numbering(write: str, scenarios: tuple[tuple[str, list[str]], ...],
                     backend: str = "epoll", **config: int) -> None:
    """Per scenario, one message watched then one throttled: the watched one shows `kinds`
    and takes one seq each; the throttled one builds only the always-shown kinds and
    takes exactly as many seq numbers, and each of those it shows has the seq it has when
    watched (what the batch counts but does not show is numbered before anything it hands on
    emits)."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend=backend, write=write, **config))
    recorder = Recorder()
    engine.observers.add(recorder)
    try:
        for scenario, kinds in scenarios:
            taken_watched, shown = _one_message(engine, recorder, True, scenario)
            taken_throttled, shown_throttled = _one_message(engine, recorder, False, scenario)
            assert [kind for kind, _ in shown] == kinds, scenario
            assert taken_watched == len(shown), scenario
            assert shown_throttled == [e for e in shown if e[0] in ALWAYS_SHOWN], scenario
            assert taken_throttled == taken_watched, scenario
    finally:
        engine.stop()  # never started: closes the listener and the backend at once


def test_throttled_fast_path_numbers_exactly_what_a_watched_iteration_shows():
    """The inline eager path counts the events it does not build: per message the seq must
    advance by exactly as many numbers as the same message takes when watched — recv and send;
    recv, queue and interest when the kernel takes nothing; recv, interest and close when the
    send fails."""
    _check_numbering("eager", (("full", ["recv", "send"]),
                               ("kernel full", ["recv", "queue", "interest"]),
                               ("peer gone", ["recv", "interest", "close"])))


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_throttled_queued_path_numbers_exactly_what_a_watched_iteration_shows(backend: str):
    """The same for the queued strategy's unwatched path (recv -> queue in one call, then the
    writable side): readable takes recv, queue and interest; writable takes send, queue and
    interest — or, when the send fails, the unregister and the close. On select the interest
    and epoll the interest changes go through the backend's write toggle, not set_interest: the
    table and the backend (select's sets, epoll's list in the kernel) must still agree after
    each half."""
    _check_numbering("queued", (
        ("full", ["recv", "queue", "interest", "send", "queue", "interest"]),
        ("peer gone", ["recv", "queue", "interest", "interest", "close"]),
    ), backend)


@pytest.mark.parametrize("backend", ["select", "epoll"])
def test_throttled_queued_path_numbers_backpressure_exactly(backend: str):
    """A message over the high-water mark on the queued path: reading pauses (the backpressure
    event, then the interest change it makes, come after the recv and queue events the
    unwatched path counts), then the send drains it and reading resumes."""
    _check_numbering("queued", (
        ("full", ["recv", "queue", "backpressure", "interest", "send", "queue", "backpressure",
                  "interest"]),
    ), backend, high_water=50, low_water=10)


def test_last_wait_and_its_ready_list_describe_the_same_wait_under_the_budget():
    """Most iterations are throttled here; the state's last wait must still be one wait: its
    `ready` count and its ready list come from the same (shown) iteration."""
    with running_engine(backend="epoll", write="eager", observe_budget=300) as (engine, _):
        results = start_clients(engine.tcp_port, 8, 4_000_000)
        checked = 0
        while not all(r.done.is_set() for r in results):
            last = engine.state().result(5)["last_wait"]
            if last is not None:
                assert last["ready"] == len(last["ready_list"]), last
                checked += 1
        check(results, 4_000_000)
    assert checked >= 5


def test_a_lone_sink_that_raises_is_detached():
    """emit's one-sink path (no loop) detaches a failing sink as the many-sink path does."""
    observers = Observers()
    calls: list[dict] = []

    def bad(event: dict) -> None:
        calls.append(event)
        raise RuntimeError("observer bug")

    observers.add(bad)
    observers.emit({"kind": "error", "message": "first"})
    assert len(calls) == 1 and calls[0]["seq"] == 1
    assert not observers.active and observers._sinks == () and observers._only_sink is None
    observers.emit({"kind": "error", "message": "second"})
    assert len(calls) == 1


def test_one_sink_then_two_then_one_all_receive():
    observers = Observers()
    first: list[int] = []
    second: list[int] = []
    observers.add(lambda e: first.append(e["seq"]))
    observers.emit({"kind": "error", "message": "a"})
    sink2 = second.append
    observers.add(lambda e: sink2(e["seq"]))
    observers.emit({"kind": "error", "message": "b"})
    observers.remove(observers._sinks[1])
    observers.emit({"kind": "error", "message": "c"})
    assert first == [1, 2, 3] and second == [2]


def test_watched_never_outlives_the_last_sink() -> None:
    """remove() on another thread can land between begin_iteration's test of `active` and its
    write of `watched`; the next iteration must undo that, not keep building events forever."""
    obs = Observers(budget=1000)
    sink = [].append
    obs.add(sink)
    obs.remove(sink)
    obs.watched = True  # what the race leaves behind
    obs.begin_iteration(0.0)
    assert obs.watched is False


def test_every_iteration_within_the_windows_budget_is_shown():
    """run_once decides a watched iteration itself while the budget's window lasts (calling
    begin_iteration only to open the next window): iterations after a window's first are
    shown too, until the window's budget is spent, and then none are."""
    from mux.backends import create
    from mux.loop import Loop
    from mux.observe import BUDGET_WINDOW

    events: list[dict] = []
    obs = Observers(budget=int(5 / BUDGET_WINDOW))  # 5 events a window: 5 empty waits
    obs.add(events.append)
    loop = Loop(create("epoll"), obs, wait_timeout=0)
    try:
        loop.run_once()  # opens the window: seq limit 5
        obs.window_end = float("inf")  # and it lasts, however slow the machine is
        for _ in range(7):
            loop.run_once()
    finally:
        loop.backend.close()
    shown = [e["seq"] for e in events if e["kind"] == "wait"]
    assert shown == [1, 2, 3, 4, 5] and obs.seq == 8, shown  # the last three counted


def test_what_quiet_windows_leave_unshown_carries_over_to_a_burst_up_to_three_windows():
    """300 load clients whose messages landed in the same few ms made ~2,400 events in one
    100 ms window at an average of 2,400/s: past that window's 2,100, so a page dropped them
    at an "interactive" rate. Quiet windows now pass on what they did not show, up to
    BURST_WINDOWS windows' worth; a steady load still spends each window."""
    from mux.backends import create
    from mux.loop import Loop
    from mux.observe import BUDGET_WINDOW, BURST_WINDOWS

    events: list[dict] = []
    obs = Observers(budget=int(5 / BUDGET_WINDOW))  # 5 events a window
    obs.add(events.append)
    loop = Loop(create("epoll"), obs, wait_timeout=0)
    try:
        for _ in range(6):  # quiet windows: one empty wait each, 4 of 5 unspent
            obs.window_end = 0.0  # each iteration opens a window
            loop.run_once()
        burst_from = obs.seq
        obs.window_end = 0.0
        loop.run_once()  # the burst's window: its own 5 and 15 carried
        obs.window_end = float("inf")
        for _ in range(40):
            loop.run_once()
        after_burst = obs.seq
        obs.window_end = 0.0
        loop.run_once()  # a window after a spent one: its own 5, nothing carried
        obs.window_end = float("inf")
        for _ in range(10):
            loop.run_once()
    finally:
        loop.backend.close()
    waits = [e["seq"] for e in events if e["kind"] == "wait"]
    assert len([s for s in waits if burst_from < s <= after_burst]) == 5 * (1 + BURST_WINDOWS)
    assert len([s for s in waits if s > after_burst]) == 5


def test_a_sink_added_while_run_once_clears_watched_is_shown_from_the_next_iteration():
    """The mirror race, found in a review (session 51): add() on another thread lands between
    run_once's read of `active` (False: nobody yet) and its `watched = False` (meant for a
    sink that left). That leaves active with watched off, and with no budget begin_iteration
    set nothing back: the new sink was never shown a wait or a recv again."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", write="eager"))
    recorder = Recorder()
    try:
        with socket.create_connection(("127.0.0.1", engine.tcp_port)) as client:
            engine.loop.run_once()  # the accept
            engine.observers.add(recorder)
            engine.observers.watched = False  # what the race leaves behind
            client.sendall(b"hello")
            engine.loop.run_once()
            assert client.recv(100) == b"hello"
        assert engine.observers.watched is True
        assert [e["kind"] for e in recorder.events] == ["wait", "ready", "recv", "send"]
    finally:
        engine.stop()  # never started: closes the listener and the backend at once


def test_the_loop_undoes_a_watched_left_by_the_last_sink_without_calling_the_observers():
    """run_once calls begin_iteration only while somebody listens (a frame less an iteration
    with nobody); the race above must still end at the next iteration, with no event built."""
    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    sink = events.append
    obs = Observers(budget=1000)
    obs.add(sink)
    obs.remove(sink)
    loop = Loop(create("epoll"), obs, wait_timeout=0)
    try:
        obs.watched = True  # what the race leaves behind
        loop.run_once()
    finally:
        loop.backend.close()
    assert obs.watched is False and obs.active is False
    assert events == [] and obs.seq == 0


def test_set_write_mode_keeps_a_switch_queued_before_it(make_engine) -> None:
    """set_write_mode reads the backend on the loop thread, after earlier commands ran."""
    engine, _ = make_engine(backend="epoll", write="queued")
    switched = engine.switch_backend("poll")
    changed = engine.set_write_mode("eager")
    switched.result(5)
    state = changed.result(5)
    assert (state["backend"]["name"], state["backend"]["write"]) == ("poll", "eager")


class _WatchedFromSecondSend(SocketStandIn):
    """The connection's socket, whose second `send` finds the iteration turned watched, as
    when another thread adds a second sink between two chunks of one send loop."""

    def __init__(self, sock: socket.socket, obs: Observers) -> None:
        super().__init__(sock)
        self._obs = obs
        self._sends = 0

    def send(self, data: bytes) -> int:
        self._sends += 1
        if self._sends == 2:
            self._obs.watched = True
        return self.real.send(data)


def test_chunks_sent_before_a_sink_arrives_are_numbered_before_the_ones_it_sees():
    """The throttled send loop adds its uncounted events to seq once, at its end; if the loop
    turns watched on its way, those must still take the numbers before the events shown."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend="epoll", write="queued"))
    recorder = Recorder()
    obs = engine.observers
    obs.add(recorder)
    server, peer = socket.socketpair()
    server.setblocking(False)
    try:
        conn = TcpConnection(engine, server, "socketpair")
        engine.loop.register(conn, READABLE)
        obs.watched = False  # throttled
        conn._put(b"one")
        conn._put(b"two")
        conn.sock = _WatchedFromSecondSend(server, obs)  # type: ignore[assignment]
        before, shown = obs.seq, len(recorder.events)
        conn.on_ready(WRITABLE)
        events = recorder.events[shown:]
        assert [e["kind"] for e in events] == ["send", "queue", "interest"]
        # the first chunk's send and queue events take before + 1 and before + 2
        assert [e["seq"] for e in events] == [before + 3, before + 4, before + 5]
    finally:
        peer.close()
        engine.stop()


@pytest.mark.parametrize("backend", ["select", "poll", "epoll"])
def test_wait_registered_counts_the_fds_the_wait_call_is_given(backend: str) -> None:
    """SPEC §3: `registered` is how many fds were passed. select is not given an fd that asks
    for nothing (the listener while accepts pause on EMFILE); poll's array and epoll's
    interest list still hold it."""
    # waits that time out: the wait after each change comes without traffic
    with running_engine(backend=backend, udp=False, wait_timeout=0.05) as (engine, rec):
        listener = engine.listener.fd

        def listener_interest(mask: int) -> tuple[int, int]:
            """Set it on the loop thread; then (the next wait's `registered`, the table size)."""
            def set_it() -> tuple[int, int]:
                engine.loop.set_interest(listener, mask)
                return engine.observers.seq, len(engine.loop.handlers)

            seq, table = engine.call(set_it).result(5)
            wait = wait_until(lambda: next((e for e in rec.of("wait") if e["seq"] > seq), None),
                              5, "a wait after the change")
            return wait["registered"], table

        registered, table = listener_interest(0)
        assert registered == (table - 1 if backend == "select" else table), (registered, table)
        registered, table = listener_interest(READABLE)
        assert registered == table


@pytest.mark.parametrize("name", ["select", "poll", "epoll"])
def test_a_wait_events_timeout_is_the_one_the_kernel_got(name):
    """A fractional timeout (a timer's) was shown rounded to nearest, 1 ms below what poll's
    backend and CPython's epoll.poll pass the kernel (both round up): "timeout 133 ms" beside
    "took 134,402 us", where strace showed epoll_wait(..., 134)."""
    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    obs = Observers()
    obs.add(events.append)
    loop = Loop(create(name), obs, wait_timeout=0.0334)
    try:
        loop.run_once()
    finally:
        loop.backend.close()
    wait = next(e for e in events if e["kind"] == "wait")
    assert wait["timeout_ms"] == 34
    assert wait["duration_us"] >= 33_000  # it really waited that long: nothing was ready


@pytest.mark.parametrize("name", ["select", "poll", "epoll"])
def test_a_shown_wait_says_its_cpu_time_apart_from_its_sleep(name, monkeypatch):
    """The page's "wait call by registered fds" chart drew `duration_us`, which counts the
    time the call slept: a wait that slept 100 ms before one fd turned ready was charted as
    the costliest call of all, and the curve fell as fds were added. A shown wait says its
    CPU time too (sampled: CPU_SAMPLES_PER_S in bursts); an unshown one makes no syscall for
    it."""
    from mux.backends import create
    from mux.loop import Loop

    calls = []
    clock = time.thread_time_ns
    monkeypatch.setattr("mux.loop.thread_time_ns", lambda: calls.append(1) or clock())
    monkeypatch.setattr("mux.loop.CPU_SAMPLES_PER_S", 0.0)   # no refill: the burst only
    events: list[dict] = []
    obs = Observers()
    sink = events.append
    obs.add(sink)
    loop = Loop(create(name), obs, wait_timeout=0.1)
    loop._cpu_tokens = 1.0
    try:
        loop.run_once()                 # nothing ready: it sleeps the whole timeout
        assert len(calls) == 2
        loop.wait_timeout = 0
        loop.run_once()                 # shown, but no token left
        assert len(calls) == 2
        obs.remove(sink)
        loop._cpu_tokens = 5.0
        loop.run_once()                 # nobody watching
        assert len(calls) == 2
    finally:
        loop.backend.close()
    slept, quick = [e for e in events if e["kind"] == "wait"]
    assert type(slept["cpu_us"]) is int
    assert slept["duration_us"] >= 99_000
    assert 0 <= slept["cpu_us"] < 20_000, slept     # a few µs of work, not 100 ms
    assert "cpu_us" not in quick


def test_a_typists_waits_all_say_their_cpu_time():
    """Sampled once a millisecond by start time, the wait that slept until the next key came
    had started within a millisecond of the quick one before it: half the waits of a person
    typing had no CPU time, and the chart drew their sleep instead."""
    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    obs = Observers()
    obs.add(events.append)
    loop = Loop(create("epoll"), obs, wait_timeout=0)
    try:
        for _ in range(15):         # quick waits back to back, as an echo's read and write are
            loop.run_once()
    finally:
        loop.backend.close()
    waits = [e for e in events if e["kind"] == "wait"]
    assert len(waits) == 15 and all("cpu_us" in w for w in waits), waits


def test_a_wait_never_says_more_cpu_time_than_it_took():
    """The CPU clock's reads bracket the wall clock's: a quick wait read "took 4 µs, 5 µs of
    it on the CPU" on the page's syscall panel."""
    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    obs = Observers()
    obs.add(events.append)
    loop = Loop(create("epoll"), obs, wait_timeout=0)
    try:
        for _ in range(20):  # the sampling's burst: every one of them is measured
            loop.run_once()
    finally:
        loop.backend.close()
    waits = [e for e in events if e["kind"] == "wait" and "cpu_us" in e]
    assert len(waits) == 20, events
    over = [w for w in waits if w["cpu_us"] > w["duration_us"]]
    assert not over, over


@pytest.mark.parametrize("backend", ["select", "epoll"])
def test_a_pause_by_the_unwatched_inline_read_says_so(backend: str):
    """A backpressure event is shown even when its iteration is not; the code panel put a pause
    that the unwatched inline read made (now the batch dispatch's, mux/hot.py) down to `_put`,
    which had not run."""
    engine = Engine(EngineConfig(tcp_port=0, udp=False, backend=backend, write="queued",
                                 high_water=50, low_water=10))
    recorder = Recorder()
    engine.observers.add(recorder)
    try:
        _one_message(engine, recorder, True, "full")
        _one_message(engine, recorder, False, "full")
    finally:
        engine.stop()
    pauses = [e for e in recorder.events if e["kind"] == "backpressure" and e["paused"]]
    assert [p.get("inline") for p in pauses] == [None, True], pauses


@pytest.mark.parametrize("name", ["select", "poll", "epoll"])
def test_a_read_tried_again_goes_through_a_flaws_handler(name):
    """After a backpressure release, edge-triggered mode reads again without an edge
    (`readable_soon`): that read skipped the bug zoo's dispatch hook, so with a flaw on the
    correct handler ran for it, and the code panel named the flaw's."""
    import socket as socket_module

    from mux.backends import create
    from mux.loop import Loop

    class Reader:
        role = "connection"

        def __init__(self, fd: int) -> None:
            self.fd = fd
            self.masks: list[int] = []

        def on_ready(self, mask: int) -> None:
            self.masks.append(mask)

    hooked: list[tuple[object, int]] = []
    a, b = socket_module.socketpair()
    loop = Loop(create(name), Observers(), wait_timeout=0)
    try:
        reader = Reader(a.fileno())
        loop.register(reader, READABLE)
        loop.readable_soon(reader)
        loop.run_once()
        assert reader.masks == [READABLE]          # no hook: the handler itself
        loop.dispatch_hook = lambda handler, native: hooked.append((handler, native))
        loop.readable_soon(reader)
        loop.run_once()
        assert reader.masks == [READABLE]
        assert hooked == [(reader, loop.backend.readable_report())]
        assert loop.backend.generic(hooked[0][1]) == READABLE
    finally:
        loop.backend.close()
        a.close()
        b.close()


def test_a_late_wait_names_the_backend_that_made_the_call():
    """A breakpoint's hit shows an unshown wait late; a backend switch handled in that same
    batch made it an epoll wait with poll's flags."""
    import select

    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    obs = Observers()
    obs.add(events.append)
    loop, poll = Loop(create("epoll"), obs, wait_timeout=0), create("poll")
    try:
        loop.unshown_wait = (0.25, [(5, select.POLLIN)], 7.0, poll, 3)  # then the switch
        loop.show_unshown_wait()
    finally:
        loop.backend.close()
        poll.close()
    wait, ready = events
    assert (wait["backend"], wait["registered"], wait["late"]) == ("poll", 3, True)
    assert (ready["fd"], ready["flags"], ready["late"]) == (5, ["POLLIN"], True)


def test_a_late_ready_entry_of_an_fd_closed_since_its_wait_is_marked_stale():
    """A late ready list is shown after its batch ran: an fd a handler closed meanwhile
    (`retired`) is marked as a watched batch marks it; the others are not."""
    import select

    from mux.backends import create
    from mux.loop import Loop

    events: list[dict] = []
    obs = Observers()
    obs.add(events.append)
    loop = Loop(create("poll"), obs, wait_timeout=0)
    try:
        loop.unshown_wait = (0.25, [(5, select.POLLIN), (6, select.POLLIN)], 7.0,
                             loop.backend, 4)
        loop.retired.add(6)  # closed by the batch's first handler, its number free again
        loop.show_unshown_wait()
    finally:
        loop.backend.close()
    ready = [e for e in events if e["kind"] == "ready"]
    assert [(e["fd"], e.get("stale", False), e["late"]) for e in ready] == [
        (5, False, True), (6, True, True)]

def test_throttled_eager_path_numbers_a_partial_echos_backpressure_exactly():
    """An eager echo the kernel does not take, over the high-water mark: the batch counts the
    recv, then hands the rest to the queue, which pauses reading with an event shown even
    when throttled; it must carry the seq it carries when watched."""
    _check_numbering("eager", (
        ("kernel full", ["recv", "queue", "backpressure", "interest"]),
    ), "epoll", high_water=50, low_water=10)
