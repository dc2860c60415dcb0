"""Ground truth for the code view: the chain the page names for an event is the code that ran.

A real engine runs in this process with a sink that records, for every event, the real call
stack at `Observers.emit` (code_truth_*.py drive it over real sockets, on every
backend in both write modes). Each event stream is then fed to the page's own
`CodePanel.chainKey` and `chain` (static/js/panels/code.js, imported in a page of a real app,
with /api/code's sources), split into iterations as the panel splits them. The chain's
innermost function must be the one that called `emit` (the one that built the event, for a
`wait`), the chain's functions must be on the real stack in that order, and each caller's
highlighted lines must hold the line its frame was at: the call that ran, not another of the
function's calls of the same name (on_ready closes in three places).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.code_truth_faults import MODES, THROTTLED, run_mode
from tests.browser.code_truth_harness import Frame, TruthSink

# the heaviest on the CPU: on one worker (scripts/test: --dist loadgroup), never two at once
pytestmark = pytest.mark.xdist_group("heavy")

BUILDERS = {("mux.events", "wait_event")}  # return the event their caller emits: not on the stack
#: Known exception: emitted later than built. A pause the control fd's handler takes
#: mid-iteration is held and emitted after the batch (loop_control.py `_held_loop_events`):
#: the stack at emit time is the release's, so only the builder is checked for those.
DEFERRED = {("mux.loop_control", "LoopControl._release_held_loop_events"):
            ("mux.loop_control", "LoopControl._emit_loop")}


# -- the page's side -------------------------------------------------------------------------
CHAINS = """async ([write0, events]) => {
    const { CodePanel } = await import('/static/js/panels/code.js');
    // /api/code's chains, as the panel fetches them (once)
    window.__codeTruthSources ??= await (await fetch('/api/code')).json();
    const sources = window.__codeTruthSources;
    const { stepBefore } = await import('/static/js/history.js');
    // the panel's state as the page's model has it at each event (apply.js: a `backend`
    // event's write, a `loop` event's flaw)
    let write = write0, flaw = '';
    const at = events.map((ev) => {
      if (ev.kind === 'backend' && ev.write !== undefined) write = ev.write;
      if (ev.kind === 'loop' && ev.flaw !== undefined) flaw = ev.flaw || '';
      return [write, flaw];
    });
    // the iterations, as currentIteration cuts them: from a wait (or the step's loop event
    // before it) to the next one
    const starts = [];
    events.forEach((ev, i) => {
      if (ev.kind === 'wait') starts.push(stepBefore(events, i - 1) ? i - 1 : i);
    });
    if (!starts.length || starts[0] !== 0) starts.unshift(0);
    const out = [];
    starts.forEach((s, n) => {
      const end = n + 1 < starts.length ? starts[n + 1] : events.length;
      const iteration = events.slice(s, end);
      iteration.forEach((_, i) => {
        const [w, f] = at[s + i];
        const panel = Object.assign(Object.create(CodePanel.prototype),
                                    { write: w, flaw: f, sources });
        const chain = panel.chain(iteration, i);
        out.push({ key: panel.chainKey(iteration, i),
                   chain: chain.map((fn) => [fn.module, fn.qualname]),
                   highlights: chain.map((fn) => fn.highlight) });
      });
    });
    return out;
}"""


def is_subsequence(chain: list[Frame], stack: list[Frame]) -> bool:
    it = iter(stack)
    return all(fn in it for fn in chain)


def calls_not_highlighted(chain: list[Frame], highlights: list[list[int]], stack: list[Frame],
                          lines: list[int]) -> list[str]:
    """The chain's callers whose highlighted lines miss the line their real frame was at (the
    call in progress): `fn:line`. Each caller is matched to its frame in order, as in
    is_subsequence; the innermost function builds the event (its line is the emit's)."""
    missed, at = [], 0
    for fn, highlight in zip(chain[:-1], highlights, strict=False):
        at = stack.index(fn, at)
        if lines[at] not in highlight:
            missed.append(f"{fn[1]}:{lines[at]} (highlighted {highlight})")
        at += 1
    return missed


def mismatches(sink: TruthSink, answers: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    found = []
    for ev, stack, lines, label, ans in zip(sink.events, sink.stacks, sink.lines, sink.labels,
                                            answers, strict=True):
        chain = [tuple(fn) for fn in ans["chain"]]
        emitter = stack[-1] if stack else None
        judged = chain[:-1] if chain and chain[-1] in BUILDERS else chain
        problem = None
        if emitter in DEFERRED:
            if not chain or chain[-1] != DEFERRED[emitter]:
                problem = "innermost is not the builder of a held event"
        elif not judged:
            problem = "no chain"
        elif judged[-1] != emitter:
            problem = "innermost is not the emitter"
        elif not is_subsequence(judged, stack):
            problem = "chain not on the stack in order"
        elif missed := calls_not_highlighted(judged, ans["highlights"], stack, lines):
            problem = f"a call that ran is not highlighted: {'; '.join(missed)}"
        if problem:
            found.append({"mode": mode, "scenario": label, "problem": problem, "event": ev,
                          "key": ans["key"], "chain": [q for _, q in chain],
                          "stack": [q for _, q in stack]})
    return found


def summarize(found: list[dict[str, Any]]) -> str:
    """One line per (scenario, kind, key, chain, stack) met, with the modes and a count."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for m in found:
        ev = {k: v for k, v in m["event"].items() if k not in ("seq", "ts", "preview", "peer")}
        key = (m["scenario"], m["problem"], m["key"], " > ".join(m["chain"]),
               " > ".join(m["stack"]), ev["kind"])
        groups.setdefault(key, []).append(f"{m['mode']}: {ev}")
    lines = []
    for (scenario, problem, key, chain, stack, _), evs in groups.items():
        lines.append(f"[{scenario}] {problem}: key {key!r} x{len(evs)}\n    chain: {chain}\n"
                     f"    stack: {stack}\n    e.g. {evs[0]}\n    modes: "
                     f"{sorted({e.split(':')[0] for e in evs})}")
    return "\n".join(lines)


def check_mode(dashboard: Any, backend: str, trigger: str, oneshot: bool, write: str,
               keys: set[str] | None = None,
               throttled: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """Run every scenario in one mode; (events compared, mismatches). `keys` collects the
    /api/code keys the page named."""
    mode = f"{backend}-{trigger}{'-oneshot' if oneshot else ''}/{write}"
    if throttled:
        sink = run_mode(backend, trigger, oneshot, write, THROTTLED, throttled=True)
    else:
        sink = run_mode(backend, trigger, oneshot, write)
    answers = dashboard.page.evaluate(CHAINS, [write, sink.events])
    if keys is not None:
        keys.update(a["key"] for a in answers)
    return len(sink.events), mismatches(sink, answers, mode)


#: the paths every mode reaches (in one write mode or the other)
KEYS_EVERYWHERE = {
    "error@crash", "close@crash", "interest@crash", "error@refused", "close@refused",
    "error@accept", "error", "error@recovered", "close@eager-reset", "close@eager-error",
    "close@reset-recv", "close@reset-send", "close@error-recv", "close@error-send",
    "loop@breakpoint", "close@linger-reset", "close@linger-deadline"}


@pytest.mark.parametrize("backend,trigger,oneshot", MODES,
                         ids=[f"{b}-{t}{'-oneshot' if o else ''}" for b, t, o in MODES])
def test_the_code_view_names_the_code_that_ran(dashboard, backend, trigger, oneshot):
    """In both write modes: every event's chain ends in the function that emitted it, and its
    functions are on the real stack in order. (Found: a bug-zoo flaw switched by a command
    earlier in the same batch left the old handler running for the batch's other fds, after
    the `loop` event that said the switch, so the page named the handler that did not run.)"""
    # a quiet page of the same origin: the dashboard's own rendering slowed each call 3-fold
    dashboard.page.goto(dashboard.base + "/api/flaws")
    keys: set[str] = set()
    for write in ("eager", "queued"):
        compared, found = check_mode(dashboard, backend, trigger, oneshot, write, keys)
        assert compared > 500, compared  # the scenarios ran
        assert not found, f"{len(found)} of {compared} events:\n{summarize(found)}"
    print("keys named:", sorted(keys))
    assert KEYS_EVERYWHERE <= keys, sorted(KEYS_EVERYWHERE - keys)


def test_lone_events_of_unwatched_iterations(dashboard):
    """Over the observation budget whole iterations go unwatched, but the events always shown
    (accept, close, backpressure, error, loop...) still come, alone, and a breakpoint's hit
    shows its wait late: the chains the page names for them are the code that ran too. Every
    mode, both write modes, in one test (a few events each)."""
    dashboard.page.goto(dashboard.base + "/api/flaws")
    keys: set[str] = set()
    found_all: list[dict[str, Any]] = []
    compared_all = 0
    for backend, trigger, oneshot in MODES:
        for write in ("eager", "queued"):
            compared, found = check_mode(dashboard, backend, trigger, oneshot, write, keys,
                                         throttled=True)
            compared_all += compared
            found_all += found
    print("keys named:", sorted(keys))
    assert compared_all > 300, compared_all
    assert not found_all, f"{len(found_all)} of {compared_all} events:\n{summarize(found_all)}"
    assert {"backpressure@inline", "wait@late", "ready@late", "loop@breakpoint",
            "close@crash", "close@refused", "interest@crash", "close@reset-inline",
            "close@error-inline"} <= keys
