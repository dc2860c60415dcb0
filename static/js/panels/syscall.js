// The syscall line of the last wait, built from `wait` + the `ready` events that follow it.
import { READY_LIST_CAP } from '../apply.js';
import { syscallLine, timeoutText } from '../vocab.js';

const MIN_INTERVAL_MS = 100;
// A wait's ready events can come a frame after the wait itself (the server batches by time):
// its line waits for them, this long at most (some may have been dropped for this page).
const INCOMPLETE_MAX_MS = 250;

/** Whole µs as the engine counts them (truncated): 0 is a call shorter than 1 µs, not one
 *  that took no time ("took 0 µs" beside "= 1"). */
function micros(us) {
  return Number(us) === 0 ? 'under 1 µs' : `${Number(us).toLocaleString()} µs`;
}

export class SyscallPanel {
  constructor(root) {
    this.lineEl = root.querySelector('#syscall-line');
    this.detailEl = root.querySelector('#syscall-detail');
    this.paintedAt = -Infinity;
    this.shown = {};
  }

  /** Text and attributes are written only when they changed (a rewritten text node is a relayout). */
  set(key, value, write) {
    if (this.shown[key] !== value) { this.shown[key] = value; write(value); }
  }

  paint(model, now = performance.now()) {
    if (!model.dirty.syscall) return;
    // a busy loop waits thousands of times a second: the line follows at most every MIN_INTERVAL_MS
    if (model === this.model && now - this.paintedAt < MIN_INTERVAL_MS) return;
    const w0 = model.lastWait;
    if (w0 && w0.ready_list.length < Math.min(w0.ready ?? 0, READY_LIST_CAP)) {
      if (this.incomplete !== w0) { this.incomplete = w0; this.incompleteAt = now; }
      if (now - this.incompleteAt < INCOMPLETE_MAX_MS) return;   // still dirty: next frame
    }
    model.take('syscall');
    this.model = model;
    this.paintedAt = now;
    const w = model.lastWait;
    if (!w) {
      model.shownWait = null;
      this.set('line', model.paused ? 'loop paused: no wait yet' : 'waiting for the first wait…', (v) => { this.lineEl.textContent = v; });
      this.set('backend', '', (v) => { this.lineEl.dataset.backend = v; });
      this.set('detail', '', (v) => { this.detailEl.textContent = v; });
      return;
    }
    const made = w.madeBy || model.backend;   // the backend that made it (a switch since: the old one)
    const line = syscallLine(w, model, w.backend === made.name ? made : null);
    // the fd panel's text shows this same wait, what was passed in and what came back, not the
    // newest one (this line is throttled, that panel was not: "= 18" beside "ready list: 19 fds")
    model.shownWait = {
      // replaced: an epoll can come back with the same fd number (level, edge, level again)
      made: { ...made, name: w.backend || made.name, replaced: !!w.madeBy },
      interestKnown: w.interestKnown !== false,
      registered: w.registered,
      ready: new Map(w.ready_list.map((r) => [r.fd, r.flags])),
      // how many it returned: on a starved page the rest of the iteration's `ready` events can
      // come after the line gave up waiting for them (INCOMPLETE_MAX_MS); they are added to
      // `ready` as they come (apply.js), and until then the fd panel says how many are missing
      returned: w.ready ?? w.ready_list.length,
      source: w,
      regs: model.regsAtWait(),
    };
    model.mark('backend');
    this.set('line', line, (v) => { this.lineEl.textContent = v; });
    this.set('backend', w.backend || '', (v) => { this.lineEl.dataset.backend = v; });
    this.set('seq', w.seq !== undefined ? String(w.seq) : '', (v) => { this.lineEl.dataset.seq = v; });
    const timeout = timeoutText(w);
    // at most the wall time (a recording made before the engine capped it said "took 1 µs, 2 µs of it")
    const cpuUs = w.duration_us !== undefined ? Math.min(w.cpu_us, w.duration_us) : w.cpu_us;
    const cpu = w.cpu_us !== undefined ? `, ${micros(cpuUs)} of it on the CPU` : '';
    const took = w.duration_us !== undefined ? `took ${micros(w.duration_us)}${cpu}` : '';
    const ready = `${w.ready ?? w.ready_list.length} of ${w.registered ?? '?'} fds ready`;
    const paused = model.paused ? ' — loop paused, next wait not started' : '';
    // a state read after this wait (the page loaded) holds the interest of now, not of then
    const asNow = w.interestKnown === false && w.backend !== 'epoll' ? 'interest as of now (this page loaded after this wait)' : '';
    this.set('detail', [took, ready, timeout, asNow].filter(Boolean).join(' · ') + paused, (v) => { this.detailEl.textContent = v; });
  }
}
