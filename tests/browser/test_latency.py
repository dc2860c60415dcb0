"""The latency panel's and the charts' figures against what happened (static/js/panels/latency.js,
static/js/charts.js)."""

from __future__ import annotations

import json
import socket

from playwright.sync_api import expect

from app.settings import Settings
from tests.conftest import wait_until

PANEL = """async () => {
    const { Model } = await import('/static/js/model.js');
    const { LatencyPanel } = await import('/static/js/panels/latency.js');
    const root = document.createElement('div');
    root.innerHTML = `<div id="latency-wrap"><canvas id="latency-canvas"></canvas></div>
        <div id="budget-wrap"><canvas id="budget-canvas"></canvas></div>
        <p id="latency-summary"></p><p id="budget-summary"></p><button id="latency-reset"></button>`;
    const m = new Model({ ringSize: 100 });
    m.applySnapshot({ type: 'snapshot', seq: 10, started_at: 1, state: {
        backend: { name: 'epoll' }, control_fd: 3,
        connections: [{ fd: 7, peer: 'p', interest: ['EPOLLIN'], queue_depth: 0,
                        pending_bytes: 0, bytes_in: 0, bytes_out: 0, reading_paused: false }] } });
    const panel = new LatencyPanel(root, { subscribe() {} });
    const feed = (ev) => { m.applyEvent(ev); panel.onEvent(ev, m); };
    const wait = (seq, ts, duration_us = 5) => ({ seq, ts, kind: 'wait', backend: 'epoll',
        registered: 3, timeout_ms: 250, ready: 1, duration_us });
    const io = (seq, ts, kind) => ({ seq, ts, kind, fd: 7, bytes: 64, preview: 'x', partial: false });
    const out = {};
    // a recv, then events not shown (dropped), then a send: not a chunk that waited 86 ms
    feed(wait(11, 1.0)); feed(io(12, 1.0, 'recv'));
    feed(io(20, 1.086, 'send'));
    out.acrossGap = panel.samples.epoll.slice();
    // eager: a send right after its recv says nothing was queued: pairs again from there
    feed(io(21, 2.0, 'recv')); feed(io(22, 2.0001, 'send'));
    out.after = panel.samples.epoll.map((us) => Math.round(us));
    // a connection first seen after a gap (its accept not shown): not paired until in step
    const io9 = (seq, ts, kind) => ({ ...io(seq, ts, kind), fd: 9 });
    feed(io9(30, 2.5, 'recv'));
    feed({ seq: 31, ts: 2.5, kind: 'queue', fd: 9, depth: 2, pending_bytes: 128 });
    feed(io9(32, 2.6, 'send'));
    out.unknownFd = panel.samples.epoll.length;
    // slow motion: the loop sleeps between iterations, which are not timed
    const timed = panel.budget.length;
    m.delayMs = 200;
    feed(wait(33, 3.0)); feed(io(34, 3.001, 'recv')); feed(io(35, 3.002, 'send'));
    feed(wait(36, 3.2006 + 5e-6));
    out.slowTimed = panel.budget.length - timed;
    panel.drawBudget();
    out.summary = root.querySelector('#budget-summary').textContent;
    return out;
}"""


def test_latency_pairs_no_chunk_across_dropped_events_and_leaves_out_slow_motion(bare_page):
    """An audit against clients' own clocks: with events dropped, recv and send were paired
    across the gap (p99 86 ms, where no chunk waited over 5 ms); in slow motion the sleep's
    overshoot was booked as handler time. A review: eager fds must pair again (a send right
    after its recv), and a fd first seen after a gap must not be paired."""
    got = bare_page.page.evaluate(PANEL)
    assert got["acrossGap"] == []
    assert got["after"] == [100]
    assert got["unknownFd"] == 1
    assert got["slowTimed"] == 0
    assert "slow motion is on: its iterations are not timed" in got["summary"]

def test_the_bytes_chart_counts_tcp_bytes_only_and_says_so(dashboard):
    """UDP bytes showed only in the samples taken without a fresh stats frame (whose byte
    counts are TCP's): a UDP sender drew flat zeros with a blip now and then."""
    page, api = dashboard.page, dashboard.api
    expect(page.locator("#chart-bytes")).to_contain_text("TCP bytes per second", timeout=8000)
    port = api.get("/api/state").json()["listeners"]["udp"]["port"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        for _ in range(20):
            udp.sendto(b"u" * 200, ("127.0.0.1", port))
            assert udp.recvfrom(1024)[0] == b"u" * 200
    wait_until(lambda: page.evaluate("() => window.__muxscope.model.udp.received") >= 20,
               what="the datagrams on the page")
    assert page.evaluate("() => window.__muxscope.charts.local") == {"in": 0, "out": 0}


def test_a_replays_charts_draw_the_recording_over_its_own_time(open_dashboard, tmp_path):
    """A replay's stats frame repeats the recording's totals each second: sampled like a live
    one's, the rates were flat zeros, on an axis of the wall-clock time since the recording.
    They are counted from the recorded events, by their `ts`, now."""
    recording = tmp_path / "run.jsonl"
    recv, send = {"kind": "recv", "fd": 5, "preview": "x"}, {"kind": "send", "fd": 5, "partial": False}
    lines = [{"type": "snapshot", "seq": 0, "started_at": 1.0, "state": {"control_fd": 3}},
             {"seq": 1, "ts": 0.1, "kind": "accept", "fd": 5, "listener": 4,
              "peer": "127.0.0.1:5000"},
             {"seq": 2, "ts": 0.2, "bytes": 100, **recv},
             {"seq": 3, "ts": 0.5, "bytes": 100, **send},
             {"seq": 4, "ts": 1.5, "bytes": 50, **recv},
             {"seq": 14, "ts": 1.7, "bytes": 50, **send},  # 9 not recorded
             {"seq": 15, "ts": 5.3, "kind": "wait", "backend": "epoll", "registered": 2,
              "timeout_ms": 250, "ready": 0, "duration_us": 250}]
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = open_dashboard(Settings(http_port=0, replay_file=recording))
    page = replay.page
    page.wait_for_function("() => window.__muxscope.charts.events.data[0].length === 5",
                           timeout=8000)
    events = page.evaluate("() => window.__muxscope.charts.events.data")
    byte_rates = page.evaluate("() => window.__muxscope.charts.bytes.data")
    # seconds 0, 1 and 5 of the recording; 2 and 4 say that nothing happened in between
    assert events == [[0, 1, 2, 4, 5], [3, 11, 0, 0, 1], [3, 2, 0, 0, 1]]
    assert byte_rates == [[0, 1, 2, 4, 5], [100, 50, 0, 0, 0], [100, 50, 0, 0, 0]]
    expect(page.locator("#chart-events")).to_contain_text("recorded")
    expect(page.locator("#charts-title")).to_have_text("Charts of the recording")
    # a reconnect is sent the whole recording again: drawn once, not twice with time going back
    page.evaluate("() => window.__muxscope.socket.ws.close()")
    page.wait_for_function("() => window.__muxscope.frames.snapshot >= 2", timeout=8000)
    page.wait_for_function("() => window.__muxscope.lastSeq === 15", timeout=8000)
    # the charts draw what was counted at their next paint, after lastSeq (once in CI: 4 points)
    page.wait_for_function("(want) => JSON.stringify(window.__muxscope.charts.events.data) === want",
                           arg=json.dumps(events, separators=(",", ":")), timeout=8000)
    assert page.evaluate("() => window.__muxscope.charts.events.data") == events
    assert replay.console_errors == []


def test_a_replays_log_filter_finds_a_rare_kind_early_in_the_recording(open_dashboard, tmp_path):
    """A replay's log filter listed from the last 5,000 events: a recording's one `recv`, 8,000
    idle waits before its end, was not found (the timeline held all of them)."""
    recording = tmp_path / "run.jsonl"
    lines: list[dict] = [
        {"type": "snapshot", "seq": 0, "started_at": 1.0, "state": {"control_fd": 3}},
        {"seq": 1, "ts": 0.1, "kind": "accept", "fd": 5, "listener": 4, "peer": "127.0.0.1:5000"},
        {"seq": 2, "ts": 0.2, "kind": "recv", "fd": 5, "bytes": 3, "preview": "hi\\n"}]
    lines += [{"seq": seq, "ts": 0.2 + seq / 1000, "kind": "wait", "backend": "epoll",
               "registered": 3, "timeout_ms": 250, "ready": 0, "duration_us": 250}
              for seq in range(3, 8003)]
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replay = open_dashboard(Settings(http_port=0, replay_file=recording))
    page = replay.page
    page.wait_for_function("() => window.__muxscope.model.seq === 8002", timeout=8000)
    page.locator("#log-filter-kind").select_option("recv")
    expect(page.locator('#event-log li[data-kind="recv"]')).to_have_count(1, timeout=3000)
    expect(page.locator("#log-panel .caption")).to_contain_text("the last 20,000 events")
    assert replay.console_errors == []


def test_the_histograms_axis_says_each_decade_in_one_format(bare_page):
    """The ticks read "1.0 ms" beside "100 µs" and "10.00 s" (fmtUs's precision, made for
    measured times): a power of ten is written as one, in every unit."""
    ticks = bare_page.page.evaluate("""async () => {
        const { fmtDecade } = await import('/static/js/panels/latency.js');
        return [0, 1, 2, 3, 4, 5, 6, 7].map((e) => fmtDecade(10 ** e)); }""")
    assert ticks == ["1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"]
