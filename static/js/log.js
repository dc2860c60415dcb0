// The event log: filter by fd and kind, capped rows, auto-scroll that stops when the user scrolls up.
// It shows the model on view: the live one, or a rebuilt past one (time travel), and the spotlight.
import { peerColor, ui } from './ui.js';

const MAX_ROWS = 500;
const PER_PAINT = 200;
const MIN_INTERVAL_MS = 100;
const KINDS = ['wait', 'ready', 'interest', 'accept', 'recv', 'send', 'queue', 'datagram',
  'backpressure', 'close', 'backend', 'loop', 'error', 'flaw'];
const SKIP = new Set(['seq', 'ts', 'kind', 'fd']);

export function formatEvent(ev) {
  const parts = [`#${ev.seq}`, `+${Number(ev.ts || 0).toFixed(3)}s`, String(ev.kind).padEnd(8)];
  if (ev.fd !== undefined && ev.fd !== null) parts.push(`fd=${ev.fd}`);
  for (const [k, v] of Object.entries(ev)) {
    if (SKIP.has(k)) continue;
    let text;
    if (Array.isArray(v)) text = v.length ? v.join('|') : '0';
    // previews come escaped by the engine already: quoted as they are, not escaped twice
    else if (typeof v === 'string') text = k === 'preview' || k === 'peer' || k === 'message' ? `"${v}"` : v;
    else text = String(v);
    parts.push(`${k}=${text}`);
  }
  return parts.join(' ');
}

export class EventLog {
  constructor(root, model) {
    this.model = model;
    this.source = model;      // the model on view (a rebuilt one while time travelling)
    this.sourceGen = undefined;
    this.uiVersion = ui.version;
    this.list = root.querySelector('#event-log');
    this.fdInput = root.querySelector('#log-filter-fd');
    this.kindSelect = root.querySelector('#log-filter-kind');
    this.jumpBtn = root.querySelector('#log-jump-btn');
    this.noticesEl = root.querySelector('#engine-notices');
    this.pending = [];
    this.paintedAt = -Infinity;
    this.stick = true;
    this.lastSeq = null;
    for (const k of KINDS) {
      const o = document.createElement('option');
      o.value = k;
      o.textContent = k;
      this.kindSelect.append(o);
    }
    this.filter = { fd: null, kind: '' };
    const refilter = () => this.setFilter();
    this.fdInput.addEventListener('input', refilter);
    this.kindSelect.addEventListener('change', refilter);
    this.list.addEventListener('scroll', () => {
      const atBottom = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
      if (atBottom && !this.stick) model.mark('log');  // resume: flush what arrived meanwhile
      this.stick = atBottom;
      this.jumpBtn.hidden = atBottom;
    });
    this.jumpBtn.addEventListener('click', () => { this.scrollToEnd(); model.mark('log'); });
    model.subscribe((ev) => this.onEvent(ev));
  }

  onEvent(ev) {
    if (this.source !== this.model) return;   // viewing the past: re-rendered on return
    if (ev.kind === 'reset') {
      this.pending.push({ marker: `— snapshot: state at seq ${this.model.seq} —` });
      this.lastSeq = this.model.seq;
    } else {
      if (this.lastSeq !== null && ev.seq > this.lastSeq + 1) {
        this.pending.push({ marker: `… ${ev.seq - this.lastSeq - 1} events not delivered to this page (dropped) …`, gap: true });
      }
      this.lastSeq = ev.seq;
      this.pending.push(ev);
    }
    if (this.pending.length > MAX_ROWS * 2) this.pending.splice(0, this.pending.length - MAX_ROWS);
    this.model.mark('log');
  }

  matches(ev) {
    if (ev.marker) return this.filter.fd === null && !this.filter.kind && ui.spotlight === null;
    if (ui.spotlight !== null && ev.fd !== ui.spotlight && ev.listener !== ui.spotlight) return false;
    if (this.filter.kind && ev.kind !== this.filter.kind) return false;
    if (this.filter.fd !== null && ev.fd !== this.filter.fd && ev.listener !== this.filter.fd) return false;
    return true;
  }

  setFilter() {
    const raw = this.fdInput.value.trim();
    const fd = raw === '' ? null : Number(raw);
    this.filter = { fd: Number.isFinite(fd) ? fd : null, kind: this.kindSelect.value };
    // re-render from the model's ring of recent events
    this.list.replaceChildren();
    this.pending = this.source.recent().filter((ev) => this.matches(ev)).slice(-MAX_ROWS);
    this.stick = true;
    this.jumpBtn.hidden = true;
    this.source.mark('log');
  }

  row(ev) {
    const li = document.createElement('li');
    if (ev.marker) {
      li.className = ev.gap ? 'k-gap' : 'k-marker';
      li.textContent = ev.marker;
    } else {
      li.className = `k-${ev.kind}`;
      li.dataset.seq = String(ev.seq);
      li.dataset.kind = String(ev.kind);
      if (ev.fd !== undefined && ev.fd !== null) {
        li.dataset.fd = String(ev.fd);
        const conn = this.source.conns.get(ev.fd);
        const peer = ev.peer || (conn && conn.peer);
        if (peer && ev.kind !== 'datagram') {
          li.style.borderLeftColor = peerColor(peer);
          li.classList.add('peer-mark');
          if (ui.isMine(peer)) li.classList.add('mine');
        }
      }
      li.textContent = formatEvent(ev);  // previews and peers are untrusted: text only
    }
    return li;
  }

  paint(model, now) {
    if (model !== this.source || model.viewGen !== this.sourceGen || ui.version !== this.uiVersion) {
      this.source = model;      // switched between live and a past iteration, or the spotlight moved
      this.sourceGen = model.viewGen;
      this.uiVersion = ui.version;
      this.lastSeq = model.seq;
      this.needRerender = true;
    }
    if (now - this.paintedAt < MIN_INTERVAL_MS) return;
    if (this.needRerender) { this.needRerender = false; this.setFilter(); }  // refilled in this same paint
    if (!model.dirty.log) return;
    model.take('log');
    this.paintedAt = now;
    this.paintNotices(model);
    // scrolled up: hold the view still (no appends, no trimming); pending stays bounded meanwhile
    if (!this.pending.length || !this.stick) return;
    const limit = this.list.children.length ? PER_PAINT : MAX_ROWS;
    const batch = this.pending.filter((ev) => this.matches(ev)).slice(-limit);
    this.pending = [];
    if (!batch.length) return;
    const frag = document.createDocumentFragment();
    for (const ev of batch) frag.append(this.row(ev));
    this.list.append(frag);
    let excess = this.list.children.length - MAX_ROWS;
    while (excess-- > 0) this.list.firstElementChild.remove();
    this.scrollToEnd();
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    this.stick = true;
    this.jumpBtn.hidden = true;
  }

  paintNotices(model) {
    const key = model.notices.map((ev) => ev.seq).join(',');
    if (key === this.noticesKey) return;
    this.noticesKey = key;
    const items = model.notices.map((ev) => {
      const li = document.createElement('li');
      const what = ev.kind === 'flaw' ? `flaw ${ev.name}` : 'engine error';
      li.textContent = `${what}${ev.fd !== undefined && ev.fd !== null ? ` (fd ${ev.fd})` : ''}: ${ev.message ?? ''}`;
      return li;
    });
    this.noticesEl.replaceChildren(...items);
  }
}
