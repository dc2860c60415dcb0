// "Spotlight fd": one select that narrows every panel to one fd (connection list, log, queues;
// the fd grid dims the others). Options follow the connections of the model on view.
import { ui } from '../ui.js';

const MIN_INTERVAL_MS = 500;
const MAX_OPTIONS = 500;

export class Spotlight {
  constructor(select, onChange) {
    this.select = select;
    this.key = null;
    this.paintedAt = -Infinity;
    select.addEventListener('change', () => {
      ui.setSpotlight(select.value === '' ? null : Number(select.value));
      onChange(ui.spotlight);
    });
  }

  paint(model, now) {
    if (now - this.paintedAt < MIN_INTERVAL_MS || document.activeElement === this.select) return;
    this.paintedAt = now;
    // the options depend on the set of connections (and their peers) and the spotlight only
    const of = this.of;
    if (of && of.model === model && of.version === model.connsVersion && of.spotlight === ui.spotlight) return;
    this.of = { model, version: model.connsVersion, spotlight: ui.spotlight };
    const fds = Array.from(Int32Array.from(model.conns.keys()).sort().subarray(0, MAX_OPTIONS));
    if (ui.spotlight !== null && !fds.includes(ui.spotlight)) fds.push(ui.spotlight);
    const key = fds.join(',') + `|${ui.spotlight}`;
    if (key === this.key) return;
    this.key = key;
    const opts = [new Option('all', '')];
    for (const fd of fds) {
      const c = model.conns.get(fd);
      const label = c ? `fd ${fd}${c.peer ? ` (${c.peer})` : ''}` : `fd ${fd} (not open here)`;
      opts.push(new Option(label, String(fd)));   // Option(text): text, never HTML
    }
    this.select.replaceChildren(...opts);
    this.select.value = ui.spotlight === null ? '' : String(ui.spotlight);
  }
}
