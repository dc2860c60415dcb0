// The bug zoo: one switch per flaw (one on at a time: the server says 409 otherwise), with the
// detections count and the latest detector message, live from `flaw` events.
import { api } from '../api.js';
import { rereadWhileConnected, safeLabel, whileDisabled } from '../ui.js';

/** Detections kept by seq until the server's count covers them (a re-read comes 1.5 s after
 *  one; detections are at most one per fd a second) */
const MAX_SEEN = 1000;

export class ZooPanel {
  constructor(root, live, { replay }) {
    this.root = root;
    this.replay = replay;
    this.list = root.querySelector('#zoo-list');
    this.statusEl = root.querySelector('#zoo-status');
    this.flaws = new Map();   // name -> {name, title, caption, on, detections, message, rows}
    this.dirty = true;
    this.refreshTimer = null;
    this.epoch = 0;   // bumped by this page's own switches: an older read must not undo them
    /** Flaws whose switch this page has sent and not yet heard back about: a paint meanwhile
     *  (a detection, a re-read) must not flip the box back under the user's click. */
    this.switching = new Set();
    live.subscribe((ev) => this.onEvent(ev));
    this.list.addEventListener('change', (e) => {
      const box = e.target.closest('input[data-flaw]');
      if (box) this.toggle(box.dataset.flaw, box.checked, box);
    });
    if (replay) {
      this.statusEl.textContent = 'Replay: the detections are the whole recording\'s, and no flaw can be switched here (the code panel shows the handler of the flaw that was on at the iteration on view).';
    } else {
      rereadWhileConnected(() => this.load());   // another page may switch a flaw
    }
    this.load();   // in replay: the catalogue's titles and captions, all off
  }

  async load() {
    const epoch = this.epoch;
    try {
      const list = await api.flaws();
      if (epoch === this.epoch) this.merge(list);
    } catch { /* shown in the alert area */ }
  }

  /** The server's list. Its count holds the detections up to `detections_seq`; the ones
   *  this page saw after that (an answer older than the websocket) are added on, and one
   *  seen before it (an answer newer than the websocket) is not counted twice when it comes. */
  merge(list) {
    if (!Array.isArray(list)) return;
    for (const f of list) {
      const old = this.flaws.get(f.name) || { message: '', seen: [] };
      const counted = f.detections ?? 0;
      if (typeof f.detections_seq !== 'number') {   // no seq (replay's catalogue): keep the most
        this.flaws.set(f.name, { ...old, ...f, detections: Math.max(counted, old.detections ?? 0) });
        continue;
      }
      const seen = (old.seen || []).filter((seq) => seq > f.detections_seq);
      this.flaws.set(f.name, { ...old, ...f, countedTo: f.detections_seq, seen, detections: counted + seen.length });
    }
    this.dirty = true;
  }

  onEvent(ev) {
    if (ev.kind === 'reset') {   // a new snapshot (a reconnect, a restarted server): re-read
      if (!this.replay) {
        for (const f of this.flaws.values()) { f.seen = []; f.countedTo = undefined; }
        this.statusEl.textContent = '';
        this.load();
      }
      return;
    }
    // which flaws can show depends on the backend (`inert`): read again after a switch
    if (ev.kind === 'backend' && !this.replay) { this.load(); return; }
    if (ev.kind === 'loop' && ev.flaw !== undefined && !this.replay) {   // switched here or elsewhere
      for (const f of this.flaws.values()) f.on = f.name === ev.flaw;
      this.epoch++;   // a read sent before this switch answers from before it
      this.dirty = true;
      return;
    }
    if (ev.kind !== 'flaw') return;
    let f = this.flaws.get(ev.name);
    if (!f) {   // before the catalogue arrived; live, a detection means it is on
      f = { name: ev.name, title: ev.name, caption: '', on: !this.replay, detections: 0, seen: [] };
      this.flaws.set(ev.name, f);
    }
    if (!(typeof ev.seq === 'number' && ev.seq <= f.countedTo)) {   // else the server's count has it
      f.detections = (f.detections || 0) + 1;
      f.seen = f.seen || [];
      if (typeof ev.seq === 'number') f.seen.push(ev.seq);
      if (f.seen.length > MAX_SEEN) f.seen.splice(0, f.seen.length - MAX_SEEN);
    }
    f.message = String(ev.message ?? '');
    f.messageSeq = ev.seq;
    this.dirty = true;
    if (!this.replay && !this.refreshTimer) {   // the server's count is the truth: re-read it soon
      this.refreshTimer = setTimeout(() => { this.refreshTimer = null; this.load(); }, 1500);
    }
  }

  async toggle(name, on, box) {
    this.epoch++;
    this.switching.add(name);
    await whileDisabled(box, async () => {
      try {
        const list = await api.setFlaw(name, on);
        this.epoch++;   // a read sent while the switch was on its way answers from before it
        this.merge(list);
        this.statusEl.textContent = on ? `${this.flaws.get(name).title}: on` : 'all flaws off: the correct code runs';
      } catch (err) {
        box.checked = !on;   // the 409 ("another flaw is on") is in the alert area; say it here too
        if (err && err.detail) this.statusEl.textContent = `Not switched: ${err.detail}`;
        await this.load();   // another page may have switched one: show what the server has
      } finally {
        this.switching.delete(name);
      }
    }, !this.replay);
    this.dirty = true;
  }

  paint() {
    if (!this.dirty) return;
    this.dirty = false;
    for (const f of this.flaws.values()) {
      if (!f.rows) f.rows = this.makeItem(f);
      const r = f.rows;
      if (!this.switching.has(f.name)) r.box.checked = !!f.on;
      r.li.classList.toggle('on', !!f.on);
      r.title.textContent = f.title;
      // made before the catalogue came (a replay's events first, on a slow page): its name too
      const label = safeLabel(`Flaw: ${f.title}`);
      if (r.box.getAttribute('aria-label') !== label) r.box.setAttribute('aria-label', label);
      r.caption.textContent = f.caption || '';
      r.count.textContent = `${f.detections || 0} detection${f.detections === 1 ? '' : 's'}`;
      r.count.dataset.value = String(f.detections || 0);
      r.message.textContent = f.message || '';
      r.message.hidden = !f.message;
      r.inert.textContent = f.inert ? `No effect now: ${f.inert}.` : '';
      r.inert.hidden = !f.inert;
      if (!r.li.isConnected) this.list.append(r.li);
    }
    const on = [...this.flaws.values()].find((f) => f.on);
    this.root.dataset.on = on ? on.name : '';
  }

  makeItem(f) {
    const li = document.createElement('li');
    li.className = 'flaw';
    li.dataset.flaw = f.name;
    const head = document.createElement('div');
    head.className = 'flaw-head';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.id = `flaw-${f.name}`;
    box.dataset.flaw = f.name;
    box.setAttribute('role', 'switch');
    box.setAttribute('aria-label', safeLabel(`Flaw: ${f.title}`));
    box.disabled = this.replay;
    // a span, not a <label>: the switch carries its (safe) name in aria-label; clicking the title toggles
    const title = document.createElement('span');
    title.className = 'flaw-title';
    title.addEventListener('click', () => { if (!box.disabled) box.click(); });
    const count = document.createElement('span');
    count.className = 'flaw-count';
    head.append(box, title, count);
    const caption = document.createElement('p');
    caption.className = 'caption';
    const message = document.createElement('p');
    message.className = 'flaw-message';   // no live region: a busy flaw rewrites it every second
    const inert = document.createElement('p');
    inert.className = 'flaw-inert muted';
    li.append(head, caption, inert, message);
    return { li, box, title, caption, count, message, inert };
  }
}
