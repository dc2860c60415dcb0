// The syscall line of the last wait, built from `wait` + the `ready` events that follow it.
import { syscallLine } from '../vocab.js';

export class SyscallPanel {
  constructor(root) {
    this.lineEl = root.querySelector('#syscall-line');
    this.detailEl = root.querySelector('#syscall-detail');
  }

  paint(model) {
    if (!model.take('syscall')) return;
    const w = model.lastWait;
    if (!w) {
      this.lineEl.textContent = model.paused ? 'loop paused: no wait yet' : 'waiting for the first wait…';
      this.lineEl.dataset.backend = '';
      this.detailEl.textContent = '';
      return;
    }
    const line = syscallLine(w, model, w.backend === model.backend.name ? model.backend : null);
    this.lineEl.textContent = line;
    this.lineEl.dataset.backend = w.backend || '';
    this.lineEl.dataset.seq = w.seq !== undefined ? String(w.seq) : '';
    const timeout = w.timeout_ms === null || w.timeout_ms === undefined ? 'no timeout' : `timeout ${w.timeout_ms} ms`;
    const took = w.duration_us !== undefined ? `took ${Number(w.duration_us).toLocaleString()} µs` : '';
    const ready = `${w.ready ?? w.ready_list.length} of ${w.registered ?? '?'} fds ready`;
    const paused = model.paused ? ' — loop paused, next wait not started' : '';
    this.detailEl.textContent = [took, ready, timeout].filter(Boolean).join(' · ') + paused;
  }
}
