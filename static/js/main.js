// Boot: live model + history + websocket + one requestAnimationFrame paint loop. Panels paint
// the model on view: the live one, or (time travel) one rebuilt at a past iteration.
import * as apiMod from './api.js';
import { Charts } from './charts.js';
import { Controls } from './controls.js';
import { History } from './history.js';
import { installKeyboard } from './keyboard.js';
import { EventLog } from './log.js';
import { Model } from './model.js';
import { OnView } from './onview.js';
import { BackendPanel } from './panels/backend.js';
import { BreakpointsPanel } from './panels/breakpoints.js';
import { CodePanel } from './panels/code.js';
import { ConnectionsPanel } from './panels/connections.js';
import { KernelPanel } from './panels/kernel.js';
import { LatencyPanel } from './panels/latency.js';
import { QueuesPanel } from './panels/queues.js';
import { Spotlight } from './panels/spotlight.js';
import { SyscallPanel } from './panels/syscall.js';
import { ZooPanel } from './panels/zoo.js';
import { splitFrames } from './resync.js';
import { Socket } from './socket.js';
import { Timeline } from './timeline.js';
import { serverConnected, ui } from './ui.js';

const body = document.body;
const token = body.dataset.token || '';
const replay = body.dataset.replay === '1' || body.dataset.replay === 'true';
if (replay) body.classList.add('replay');

apiMod.init({ token, errorEl: document.getElementById('error-area') });

// the events a log filter lists from: a replay's, the last 20,000 (a rare kind was found in
// none of a recording's last 5,000; live, those are a quarter of a second under load)
const model = new Model({ ringSize: replay ? 20000 : 5000 });
const history = new History(model, { cap: replay ? 100000 : 20000 });
const $ = (id) => document.getElementById(id);

const controls = new Controls(document, model, { replay, applyState: applyStateNow });
const timeline = new Timeline($('timeline'), model, history, { replay });
const breakpoints = new BreakpointsPanel($('timeline'), model, history, { replay });
const syscall = new SyscallPanel($('syscall-panel'));
const backend = new BackendPanel($('backend-panel'));
const queues = new QueuesPanel($('queues-panel'), { replay });
const connections = new ConnectionsPanel($('connections-panel'), {
  replay,
  onClose: async (fd, btn) => {
    // aria-disabled, not disabled, while the request is out: a disabled button drops the
    // keyboard's focus to the top of the page (the row's going moves it on: connections.js)
    btn.setAttribute('aria-disabled', 'true');
    const peer = model.conns.get(fd)?.peer;
    try {
      const res = await apiMod.api.closeConnection(fd);
      if (res && res.lingering) model.markLingering(fd, peer);
    } catch {
      btn.removeAttribute('aria-disabled');  // error already shown in the alert area
    }
  },
  onMine: (fd, peer) => ui.toggleMine(peer),
});
const log = new EventLog($('log-panel'), model);
const spotlight = new Spotlight($('spotlight-select'), () => timeline.displayed.markAll());
const zoo = new ZooPanel($('zoo-panel'), model, { replay });
const kernel = new KernelPanel($('kernel-panel'), model, { replay });
const code = new CodePanel($('code-panel'));
let charts = null;
let latency = null;
try {
  charts = new Charts($('charts-panel'), model, { replay });
} catch (err) {
  apiMod.showError(`Charts unavailable: ${err.message}`);
}
try {
  latency = new LatencyPanel($('latency-panel'), model);
} catch (err) {
  apiMod.showError(`Latency charts unavailable: ${err.message}`);
}

// Test/debug hook: counters only, no behaviour.
const debug = {
  model,
  frames: model.frames,
  paints: 0,
  snapshotPaint: null,   // `paints` when the last snapshot came (for tests: painted since?)
  wsOpens: 0,
  get lastSeq() { return model.seq; },
  get dropped() { return model.dropped; },
  get eventsApplied() { return model.eventsApplied; },
  // the frames held behind a resync's answer, and for how long (null: none held), for tests
  get held() { return held === null ? null : { frames: held.length, ms: Math.round(performance.now() - heldSince) }; },
  // ms since an events frame last arrived, held or not (null: none yet), for a test's failure
  get sinceEventsFrame() { return eventsFrameAt === null ? null : Math.round(performance.now() - eventsFrameAt); },
  get logPinPending() { return log.needPin; },   // rows appended, the pin to the end not yet done
  get logPaints() { return log.paints; },        // log paints that took new events
  get charts() { return charts; },               // the chart series, for tests
  get queueBars() { return queues.drawn; },      // the queue bars' last layout, for tests
  get kernelPoll() {                             // the kernel panel's reads, for tests
    return { visible: kernel.visible, busy: kernel.busy, painted: !!kernel.data, ...kernel.reads };
  },
  timeline: {
    history,
    get viewing() { return timeline.viewing; },
    get iteration() { return timeline.viewing ? timeline.iter : history.last; },
    get last() { return history.last; },
    get first() { return history.first; },
    iterationForSeq: (seq) => history.iterationForSeq(seq),
    events: (n) => history.iterationEvents(n),
  },
};
window.__muxscope = debug;

const wsStatus = $('ws-status');
const eventsTotalEl = $('events-total');
const droppedEl = $('dropped-count');

const staleNotice = $('stale-notice');

function setStatus(state, info) {
  wsStatus.dataset.state = state;
  // the link lost: the panels keep the last state the server sent, dimmed and said to be so
  // (they looked current: a connection list, a syscall line, of a server that had stopped)
  const stale = state === 'closed';
  document.body.classList.toggle('stale', stale);
  staleNotice.hidden = !stale;
  const open = replay ? 'replay' : 'live';
  wsStatus.textContent = state === 'open' ? open : state === 'connecting' ? 'connecting…' : `disconnected (${info || ''})`;
  if (state === 'open') debug.wsOpens++;
  model.mark('controls');   // the loop's state is unknown while disconnected
}

let resyncing = false;
let resyncAgain = false;   // asked for while one was under way: its answer may be too old
// While a resync's GET /api/state is out, events frames are held, not applied. Its answer is
// the state after some seq R, and every event the page had when it asked is at or before R;
// on arrival the held events up to R are applied, then the state, then the rest. Applied as
// they came, a stream faster than the answer (10,000 connections: a 2 MiB body, 0.1-0.4 s)
// had passed R by then: the answer was refused as older than the events, asked for again at
// once, and so on for as long as the load lasted (docs/BENCHMARKS-history.md, "What the numbers say", session 22).
const HELD_MAX = 500;       // frames (~30 ms of events each), and
const HELD_MAX_MS = 2000;  // ms (the answer takes 0.1-0.4 s at 10,000 connections): past
                           // either, the held frames are applied as they came
let held = null;           // the frames held for the resync under way, or null
let heldSince = 0;
let eventsFrameAt = null;  // performance.now() of the last events frame's arrival
/** The answer is very late: the held frames are applied, as they came. */
function releaseHeld() {
  const frames = held;
  held = null;
  for (const f of frames) applyEvents(f);
}
async function resync() {
  if (replay) return;
  if (resyncing) { resyncAgain = true; return; }
  resyncing = true;
  const mine = held = [];
  const t0 = heldSince = performance.now();
  // Also on a timer: a frame arriving past HELD_MAX_MS releases them, but when none comes (a
  // paused loop, a server too busy to send) they were held until the answer, however late.
  const release = setTimeout(() => { if (held === mine && mine.length) releaseHeld(); },
    HELD_MAX_MS);
  let state = null;
  try {
    state = await apiMod.api.state();
  } catch {
    /* an HTTP error is shown in the alert area; a network one, the header says */
  }
  clearTimeout(release);
  const frames = held === mine ? mine : [];   // [] once applied (too many, a new snapshot)
  if (held === mine) held = null;
  try {
    landState(state, frames, t0);
  } finally {
    resyncing = false;
    if (resyncAgain) { resyncAgain = false; resync(); }
  }
}

/** `state` (null: none came) among `frames`, held while it was out: those up to its seq go
 *  first, then the state (a time-travel checkpoint when applied); returns [applied, the
 *  frames after it]. */
function applyAmong(state, frames) {
  const reflects = state && state.stats ? state.stats.events_total : undefined;
  const [before, after] = splitFrames(frames, reflects);
  for (const frame of before) applyEvents(frame);
  const applied = state !== null && model.applyState(state);
  // time travel rebuilds from checkpoints, and no replay of the kept events can rebuild a
  // state read: without one here, views after it showed figures the live page never did
  if (applied) history.checkpoint();
  return [applied, after];
}

/** A resync's answer among the frames held while it was out. */
function landState(state, frames, t0) {
  const t1 = performance.now();
  const [applied, after] = applyAmong(state, frames);
  for (const frame of after) applyEvents(frame);
  if (state !== null) {
    noteSync({ at: t0, fetchMs: t1 - t0, applyMs: performance.now() - t1, applied, held: frames.length });
  }
}

/** A state from another answer (a backend switch's): the events held for a resync up to its
 *  seq go first; those after it stay held for the resync's own answer. */
function applyStateNow(state) {
  const [applied, after] = applyAmong(state, held === null ? [] : held.splice(0));
  if (held !== null) held.push(...after);
  return applied;
}

function applyEvents(frame) {
  const t0 = performance.now();
  model.applyEventsFrame(frame);
  noteSlow(debug.slowMessages, { at: t0, ms: performance.now() - t0, events: (frame.events || []).length });
  if (model.needResync) { model.needResync = false; resync(); }
  if (model.unsynced) { model.unsynced = false; resyncAfterDrops(); }
}

// After events were dropped: the state is read again once drops have stopped for
// SYNC_QUIET_MS, or every SYNC_MAX_MS while they go on (a capture holds the engine for a few
// ms at 10,000 connections, so not at every frame of a sustained overload; with few
// connections it is cheap, and the rows' byte counts drift less for it).
const SYNC_QUIET_MS = 500;
const SYNC_MAX_MS = 5000;
const SYNC_MAX_FEW_MS = 1000;
const FEW_CONNECTIONS = 1000;
let syncTimer = null;
let unsyncedSince = null;
function resyncAfterDrops() {
  const now = performance.now();
  if (unsyncedSince === null) unsyncedSince = now;
  clearTimeout(syncTimer);
  const most = model.conns.size > FEW_CONNECTIONS ? SYNC_MAX_MS : SYNC_MAX_FEW_MS;
  const wait = Math.max(0, Math.min(SYNC_QUIET_MS, unsyncedSince + most - now));
  syncTimer = setTimeout(() => {
    syncTimer = null;
    unsyncedSince = null;
    if (serverConnected()) resync();
  }, wait);
}

/** A snapshot is painted everywhere at the next frame, past each panel's own rate and the
 *  rate of those out of view: a panel painted empty at load showed it up to 500 ms later, and
 *  grew then, moving what is below it under a first click. */
function showAllNext() {
  onView.dueAll();
  for (const p of [syscall, connections, spotlight, log, code, latency]) if (p) p.paintedAt = -Infinity;
  debug.snapshotPaint = debug.paints;   // the frame after it has painted every panel
}

const socket = new Socket({
  token,
  onStatus: setStatus,
  onFrame(frame) {
    switch (frame.type) {
      case 'snapshot':
        if (timeline.viewing) timeline.backToLive();   // a new snapshot starts a new history
        held = null;   // frames of the connection before: the snapshot is newer than them
        model.applySnapshot(frame);
        showAllNext();
        apiMod.clearOffline();   // connected again: "network error"s from the outage are past
        break;
      case 'events':
        eventsFrameAt = performance.now();
        if (held === null) {
          applyEvents(frame);
        } else {
          held.push(frame);
          if (held.length > HELD_MAX || performance.now() - heldSince > HELD_MAX_MS) {
            releaseHeld();
          }
        }
        break;
      case 'stats': model.applyStats(frame); break;
      default: break;
    }
  },
});
debug.socket = socket;   // tests close it to see a reconnect
debug.backendPanel = backend;   // tests count the fd grid's cells drawn

if (!replay) {
  installKeyboard({ onToggle: () => controls.togglePause(), onStep: () => controls.step() });
}

// The status line changes with every frame of events: written at most every STATUS_MS, and only
// the parts that changed (a text node replaced is a relayout of the top bar).
const STATUS_MS = 200;
const numberFormat = new Intl.NumberFormat();   // toLocaleString() builds one per call
const shownStatus = { total: null, dropped: null, at: -Infinity };
function paintStatus(now) {
  if (!model.dirty.status) return;
  const dropped = model.dropped;
  if (dropped === shownStatus.dropped && now - shownStatus.at < STATUS_MS) return;  // come back later
  model.take('status');
  shownStatus.at = now;
  // the stats frame's total is up to a second old: never below the events already here (nor
  // below the dropped count, in an event storm)
  const total = Math.max(model.seq, model.stats && model.stats.events_total !== undefined ? model.stats.events_total : 0);
  if (total !== shownStatus.total) {
    shownStatus.total = total;
    eventsTotalEl.textContent = numberFormat.format(Number(total));
  }
  if (dropped !== shownStatus.dropped) {
    shownStatus.dropped = dropped;
    droppedEl.textContent = numberFormat.format(dropped);
    droppedEl.classList.toggle('nonzero', dropped > 0);
    droppedEl.dataset.value = String(dropped);
  }
}

// Cumulative paint time per panel (ms), for profiling: window.__muxscope.paintMs; and the
// frames and event frames that took longer than SLOW_MS, with each panel's share (bounded).
const paintMs = {};
debug.paintMs = paintMs;
const SLOW_MS = 30;
const SLOW_KEPT = 50;
debug.slowFrames = [];
debug.slowMessages = [];
// Every resync's cost, the last SYNCS_KEPT: fetch (request + JSON parse) and apply (model +
// history checkpoint), ms. At 10,000 connections the state is ~2 MiB (docs/BENCHMARKS.md, Scale).
const SYNCS_KEPT = 50;
debug.syncs = [];
function noteSync(entry) {
  debug.syncs.push(entry);
  if (debug.syncs.length > SYNCS_KEPT) debug.syncs.shift();
}
let framePanels = {};
const onView = new OnView();
debug.onView = onView;
// The panels in the order they paint, each with its section (null: small, painted every frame)
const PANELS = [
  ['syscall', $('syscall-panel'), (shown, now) => syscall.paint(shown, now)],
  ['backend', $('backend-panel'), (shown, now) => backend.paint(shown, now)],
  ['queues', $('queues-panel'), (shown, now) => queues.paint(shown, now)],
  ['connections', $('connections-panel'), (shown, now) => connections.paint(shown, now)],
  ['spotlight', null, (shown, now) => spotlight.paint(shown, now)],
  ['log', $('log-panel'), (shown, now) => log.paint(shown, now)],
  ['code', $('code-panel'), (shown, now) => code.paint(shown, now)],
  ['zoo', $('zoo-panel'), () => zoo.paint()],
  ['kernel', null, () => kernel.paint()],   // reads the server only while on view (kernel.js)
  ['charts', $('charts-panel'), () => charts && charts.paint()],
  ['latency', $('latency-panel'), (shown, now) => latency && latency.paint(now)],
];
for (const [, el] of PANELS) onView.watch(el);
/** A panel's paint, timed; one out of view only when due (onview.js). */
function panel(name, el, fn, now) {
  if (el === null || onView.due(el, now)) timed(name, fn);
}
function timed(name, fn) {
  const t0 = performance.now();
  fn();
  const ms = performance.now() - t0;
  paintMs[name] = (paintMs[name] || 0) + ms;
  framePanels[name] = ms;
}
function noteSlow(list, entry) {
  if (entry.ms > SLOW_MS && list.length < SLOW_KEPT) list.push(entry);
}

function frame(now) {
  debug.paints++;
  framePanels = {};
  const started = performance.now();
  try {
    timed('pin', () => log.pin());   // first, while layout is still clean from the last frame
    timed('timeline', () => timeline.tick(now));
    const shown = timeline.displayed;   // live, or the iteration on view
    timed('status', () => paintStatus(now));
    // a replay has no loop to control: its header tells the loop's state at the iteration on view
    timed('controls', () => controls.paint(replay ? shown : model));
    timed('breakpoints', () => breakpoints.paint(timeline.viewing ? timeline.iter : null));
    for (const [name, el, paint] of PANELS) panel(name, el, () => paint(shown, now), now);
  } catch (err) {
    console.error('muxscope paint', err);
  }
  noteSlow(debug.slowFrames, { at: now, ms: performance.now() - started, panels: framePanels });
  requestAnimationFrame(frame);
}

socket.connect();
requestAnimationFrame(frame);
