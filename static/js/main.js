// Boot: model + websocket + one requestAnimationFrame paint loop.
import * as apiMod from './api.js';
import { Charts } from './charts.js';
import { Controls } from './controls.js';
import { installKeyboard } from './keyboard.js';
import { EventLog } from './log.js';
import { Model } from './model.js';
import { BackendPanel } from './panels/backend.js';
import { ConnectionsPanel } from './panels/connections.js';
import { QueuesPanel } from './panels/queues.js';
import { SyscallPanel } from './panels/syscall.js';
import { Socket } from './socket.js';

const body = document.body;
const token = body.dataset.token || '';
const replay = body.dataset.replay === '1' || body.dataset.replay === 'true';
if (replay) body.classList.add('replay');

apiMod.init({ token, errorEl: document.getElementById('error-area') });

const model = new Model({ ringSize: 5000 });
const $ = (id) => document.getElementById(id);

const controls = new Controls(document, model, { replay });
const syscall = new SyscallPanel($('syscall-panel'));
const backend = new BackendPanel($('backend-panel'));
const queues = new QueuesPanel($('queues-panel'));
const connections = new ConnectionsPanel($('connections-panel'), {
  replay,
  onClose: async (fd, btn) => {
    btn.disabled = true;
    try {
      await apiMod.api.closeConnection(fd);
    } catch {
      btn.disabled = false;  // error already shown in the alert area
    }
  },
});
const log = new EventLog($('log-panel'), model);
let charts = null;
try {
  charts = new Charts($('charts-panel'), model);
} catch (err) {
  apiMod.showError(`Charts unavailable: ${err.message}`);
}

// Test/debug hook: counters only, no behaviour.
const debug = {
  model,
  frames: model.frames,
  paints: 0,
  wsOpens: 0,
  get lastSeq() { return model.seq; },
  get dropped() { return model.dropped; },
  get eventsApplied() { return model.eventsApplied; },
};
window.__muxscope = debug;

const wsStatus = $('ws-status');
const eventsTotalEl = $('events-total');
const droppedEl = $('dropped-count');

function setStatus(state, info) {
  wsStatus.dataset.state = state;
  wsStatus.textContent = state === 'open' ? 'live' : state === 'connecting' ? 'connecting…' : `disconnected (${info || ''})`;
  if (state === 'open') debug.wsOpens++;
}

let resyncing = false;
async function resync() {
  if (resyncing || replay) return;
  resyncing = true;
  try {
    const state = await apiMod.request('GET', '/api/state', undefined, 'Reading state');
    model.applyState(state);
  } catch {
    /* shown in the alert area */
  } finally {
    resyncing = false;
  }
}

const socket = new Socket({
  token,
  onStatus: setStatus,
  onFrame(frame) {
    switch (frame.type) {
      case 'snapshot': model.applySnapshot(frame); break;
      case 'events':
        model.applyEventsFrame(frame);
        if (model.needResync) { model.needResync = false; resync(); }
        break;
      case 'stats': model.applyStats(frame); break;
      default: break;
    }
  },
});

if (!replay) {
  installKeyboard({ onToggle: () => controls.togglePause(), onStep: () => controls.step() });
}

function paintStatus() {
  if (!model.take('status')) return;
  const total = model.stats && model.stats.events_total !== undefined ? model.stats.events_total : model.seq;
  eventsTotalEl.textContent = Number(total).toLocaleString();
  droppedEl.textContent = model.dropped.toLocaleString();
  droppedEl.classList.toggle('nonzero', model.dropped > 0);
  droppedEl.dataset.value = String(model.dropped);
}

// Cumulative paint time per panel (ms), for profiling: window.__muxscope.paintMs
const paintMs = {};
debug.paintMs = paintMs;
function timed(name, fn) {
  const t0 = performance.now();
  fn();
  paintMs[name] = (paintMs[name] || 0) + performance.now() - t0;
}

function frame(now) {
  debug.paints++;
  try {
    timed('status', () => paintStatus());
    timed('controls', () => controls.paint(model));
    timed('syscall', () => syscall.paint(model));
    timed('backend', () => backend.paint(model, now));
    timed('queues', () => queues.paint(model, now));
    timed('connections', () => connections.paint(model, now));
    timed('log', () => log.paint(model, now));
    if (charts) timed('charts', () => charts.paint());
  } catch (err) {
    console.error('muxscope paint', err);
  }
  requestAnimationFrame(frame);
}

socket.connect();
requestAnimationFrame(frame);
