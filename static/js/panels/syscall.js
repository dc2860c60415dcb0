// The syscall line of the last wait, built from `wait` + the `ready` events that follow it.
import { syscallLine } from '../vocab.js';

const MIN_INTERVAL_MS = 100;

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
    model.take('syscall');
    this.model = model;
    this.paintedAt = now;
    const w = model.lastWait;
    if (!w) {
      this.set('line', model.paused ? 'loop paused: no wait yet' : 'waiting for the first wait…', (v) => { this.lineEl.textContent = v; });
      this.set('backend', '', (v) => { this.lineEl.dataset.backend = v; });
      this.set('detail', '', (v) => { this.detailEl.textContent = v; });
      return;
    }
    const line = syscallLine(w, model, w.backend === model.backend.name ? model.backend : null);
    this.set('line', line, (v) => { this.lineEl.textContent = v; });
    this.set('backend', w.backend || '', (v) => { this.lineEl.dataset.backend = v; });
    this.set('seq', w.seq !== undefined ? String(w.seq) : '', (v) => { this.lineEl.dataset.seq = v; });
    const timeout = w.timeout_ms === null || w.timeout_ms === undefined ? 'no timeout' : `timeout ${w.timeout_ms} ms`;
    const took = w.duration_us !== undefined ? `took ${Number(w.duration_us).toLocaleString()} µs` : '';
    const ready = `${w.ready ?? w.ready_list.length} of ${w.registered ?? '?'} fds ready`;
    const paused = model.paused ? ' — loop paused, next wait not started' : '';
    this.set('detail', [took, ready, timeout].filter(Boolean).join(' · ') + paused, (v) => { this.detailEl.textContent = v; });
  }
}
