// Breakpoints: a small form (Break when / Breakpoint fd / Depth), the list with a delete button
// each, and "Breakpoint N fired at iteration K (engine wait #W) on fd F" when a `loop` event
// names one. The list is re-read every few seconds: another page may add or delete one.
import { api } from '../api.js';
import { rereadWhileConnected, whileDisabled } from '../ui.js';

const MAX_HITS = 100;
const MAX_SEEN = 200;  // breakpoints remembered after they left the list (the engine caps the set)

const DESCRIBE = {
  readable: 'readable', writable: 'writable', hup: 'hang-up', queue_over: 'queue over', backpressure: 'backpressure',
};

export class BreakpointsPanel {
  constructor(root, live, history, { replay }) {
    this.live = live;
    this.history = history;
    this.replay = replay;
    const $ = (id) => root.querySelector(`#${id}`);
    this.form = $('breakpoint-form');
    this.when = $('breakpoint-when');
    this.fd = $('breakpoint-fd');
    this.depth = $('breakpoint-depth');
    this.addBtn = $('breakpoint-add');
    this.list = $('breakpoint-list');
    this.hitEl = $('breakpoint-hit');
    this.items = [];
    this.hits = [];        // the latest hits, oldest first: {id, iteration, wait, fd, resumedAt}
    this.shownView = null; // the iteration on view at the last paint (null: live)
    this.dirty = true;
    this.syncDepth();
    this.when.addEventListener('change', () => this.syncDepth());
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.add(); });
    this.list.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-id]');
      if (btn && !btn.disabled) this.remove(Number(btn.dataset.id), btn);
    });
    if (replay) for (const el of this.form.querySelectorAll('button, input, select')) el.disabled = true;
    this.epoch = 0;   // bumped by this page's own changes: an older read must not undo them
    this.seen = new Map();         // id -> the breakpoint as last listed (the last MAX_SEEN)
    this.deletedHere = new Set();  // ids this page deleted
    live.subscribe((ev) => this.onEvent(ev));
    this.refresh();
    if (!replay) rereadWhileConnected(() => this.refresh());
  }

  syncDepth() {
    const need = this.when.value === 'queue_over';
    this.depth.disabled = !need || this.replay;
    this.depth.required = need;
  }

  onEvent(ev) {
    // a new snapshot (a reconnect, perhaps to a restarted server): the server's list is the truth
    if (ev.kind === 'reset') { this.restart(); return; }
    // why a breakpoint left the list is read from the connections (goneText): the list's
    // answer can come before the close that removed it, and the hit line said "deleted"
    if (ev.kind === 'close') { if (this.hits.length) this.dirty = true; return; }
    if (ev.kind !== 'loop') return;
    const last = this.hits[this.hits.length - 1];
    if (ev.breakpoint !== undefined && ev.breakpoint !== null) {
      this.hits.push({ id: ev.breakpoint, iteration: this.history.last, seq: ev.seq,
        resumedAt: null, wait: ev.wait, fd: ev.fd, stepsAt: [] });
      if (this.hits.length > MAX_HITS) this.hits.shift();
      this.dirty = true;
      if (!this.replay) this.refresh();   // hits and last_wait changed
    } else if (ev.state === 'running' && last && last.resumedAt === null) {
      last.resumedAt = this.history.last + 1;   // resumed after that iteration: from the next on
      this.dirty = true;
    } else if (ev.state === 'step' && last && last.resumedAt === null && last.stepsAt) {
      last.stepsAt.push(this.history.last + 1);   // the step's wait is the next iteration
      this.dirty = true;
    }
  }

  /** A new snapshot (the page opened, reconnected, or a replay began): the hits seen before
   * are another history's. A loop paused at a breakpoint when the snapshot was taken (its
   * `loop` event is before the snapshot's seq) is shown as a hit from before the timeline. */
  restart() {
    this.hits = [];
    const at = this.live.pausedAt;
    if (at && this.live.loop === 'paused') {
      this.hits.push({ id: at.breakpoint, iteration: null, seq: this.live.seq, resumedAt: null,
        wait: at.wait, fd: at.fd, stepsBefore: at.steps || 0, stepsAt: [] });
    }
    this.dirty = true;
    if (!this.replay) this.refresh();
  }

  /** Why breakpoint `id` left the list: the engine removes one whose connection closed (no
   *  event says so), else someone deleted it (this page, or another). */
  goneText(id) {
    const bp = this.seen.get(id);
    if (bp && bp.onConn && !this.deletedHere.has(id) && !this.live.conns.has(bp.fd)) {
      return `; breakpoint removed since (its connection, fd ${bp.fd}, closed)`;
    }
    return '; breakpoint deleted since';
  }

  async refresh() {
    const epoch = this.epoch;
    try {
      const items = await api.breakpoints();
      if (epoch !== this.epoch) return;   // this page changed the list meanwhile: read again
      const list = Array.isArray(items) ? items : [];
      for (const bp of list) {
        this.seen.delete(bp.id);
        // the engine removes only a breakpoint whose *connection* closed (not one on the
        // UDP socket, a listener or the control fd, nor one waiting for a connection)
        const onConn = bp.fd !== null && bp.fd !== undefined && this.live.conns.has(bp.fd);
        this.seen.set(bp.id, { ...bp, onConn });
        if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.keys().next().value);
      }
      if (JSON.stringify(list) !== JSON.stringify(this.items)) { this.items = list; this.dirty = true; }
    } catch { /* shown in the alert area */ }
  }

  async add() {
    const body = { when: this.when.value };
    const fdRaw = this.fd.value.trim();
    if (fdRaw !== '') body.fd = Number(fdRaw);
    if (body.when === 'queue_over') body.depth = Number(this.depth.value);
    this.epoch++;
    await whileDisabled(this.addBtn, async () => {
      try {
        await api.addBreakpoint(body);
        this.epoch++;   // a read sent while the add was on its way answers from before it
        await this.refresh();
      } catch { /* shown in the alert area */ }
    }, !this.replay);
  }

  async remove(id, btn) {
    btn.disabled = true;
    this.epoch++;
    this.deletedHere.add(id);
    try {
      await api.deleteBreakpoint(id);
    } catch { /* shown (404: already gone) */ }
    this.epoch++;   // a read sent while the delete was on its way answers from before it
    await this.refresh();
  }

  /** The hit to show with iteration `view` on view (null: live): the latest one up to it. */
  hitAt(view) {
    for (let i = this.hits.length - 1; i >= 0; i--) {
      const h = this.hits[i];
      if (view === null || (h.iteration ?? 0) <= view) {   // null: before this page's timeline
        return {
          ...h, resumed: h.resumedAt !== null && (view === null || h.resumedAt <= view),
          steps: (h.stepsBefore || 0) + (h.stepsAt || []).filter((at) => view === null || at <= view).length,
        };
      }
    }
    return null;
  }

  paint(view = null) {
    if (view !== this.shownView) { this.shownView = view; this.dirty = true; }
    if (!this.dirty) return;
    this.dirty = false;
    const rows = this.items.map((bp) => {
      const li = document.createElement('li');
      li.dataset.id = String(bp.id);
      const where = bp.fd === null || bp.fd === undefined ? 'any fd' : `fd ${bp.fd}`;
      const depth = bp.when === 'queue_over' ? ` (depth > ${bp.depth})` : '';
      const lastFd = bp.last_fd !== null && bp.last_fd !== undefined ? ` on fd ${bp.last_fd}` : '';
      const wait = bp.last_wait !== null && bp.last_wait !== undefined ? `, last at engine wait #${bp.last_wait}${lastFd}` : '';
      const text = document.createElement('span');
      text.textContent = `Breakpoint ${bp.id}: ${DESCRIBE[bp.when] || bp.when}${depth} on ${where} — ${bp.hits} hit${bp.hits === 1 ? '' : 's'}${wait}`;
      const del = document.createElement('button');
      del.type = 'button';
      del.dataset.id = String(bp.id);
      del.textContent = 'Delete';
      del.setAttribute('aria-label', `Delete breakpoint ${bp.id}`);
      del.disabled = this.replay;
      li.append(text, del);
      return li;
    });
    if (!rows.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'no breakpoints';
      rows.push(li);
    }
    this.list.replaceChildren(...rows);
    const h = this.hitAt(view);
    this.hitEl.hidden = !h;
    if (h) {
      // the timeline counts the waits this page has seen, the engine every wait since it started
      const where = h.iteration === null ? " before this page's timeline began"
        : ` at iteration ${h.iteration} of this page's timeline`;
      const wait = h.wait !== undefined ? ` (the engine's wait #${h.wait})` : '';
      const fd = h.fd !== undefined && h.fd !== null ? ` on fd ${h.fd}` : '';
      // live, a breakpoint gone since is said (when, the page does not keep: not in the past)
      const gone = view === null && !this.replay && !this.items.some((bp) => bp.id === h.id)
        ? this.goneText(h.id) : '';
      const stepped = h.steps ? `, stepped ${h.steps} time${h.steps === 1 ? '' : 's'} since` : '';
      this.hitEl.textContent = `Breakpoint ${h.id} fired${where}${wait}${fd}` +
        (h.resumed ? ` (the loop has been resumed since${gone})`
          : ` — the loop is paused${stepped}${gone}: Step or Resume`);
      this.hitEl.dataset.id = String(h.id);
      this.hitEl.dataset.iteration = h.iteration === null ? '' : String(h.iteration);
    }
  }
}
