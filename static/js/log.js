// The event log: filter by fd and kind, capped rows, auto-scroll that stops when the user scrolls up.
// It shows the model on view: the live one, or a rebuilt past one (time travel), and the spotlight.
import { peerColor, ui } from './ui.js';

const MAX_ROWS = 500;
const PER_PAINT = 200;        // rows written per paint (every >= 150 ms), at most
const FLOOD_AT = PER_PAINT;   // more matching events than that since the last paint (~1,300/s)...
const FLOOD_PER_PAINT = 50;   // ...and only the newest are written: nobody reads them, and every
                              // row written costs the frame layout (scale run: 29 -> 11 ms/s;
                              // from 600 events a paint, the page shown 5,000 events/s wrote 200
                              // rows a paint, its log 103 ms/s against 51 shown 21,000)
const MIN_INTERVAL_MS = 150;
const PREVIEW_BYTES = 64;   // the engine's previews: the first 64 bytes (mux/events.py)
// right-to-left letters (Hebrew, Arabic...): such a preview is set apart (U+2068 first strong
// isolate ... U+2069), or the bidi algorithm mixes it with the row: "שלום 123" read "123 שלום"
const RTL = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]/;
const isolated = (text) => (RTL.test(text) ? `\u2068${text}\u2069` : text);
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
    // previews come escaped by the engine already (a backslash is \\): only their quotes are
    // escaped here, and "…" says the bytes went on past the preview
    else if (k === 'preview') text = `"${isolated(String(v).replaceAll('"', '\\"'))}"${(ev.bytes ?? 0) > PREVIEW_BYTES ? '…' : ''}`;
    else if (typeof v === 'string') text = k === 'peer' || k === 'message' ? `"${v}"` : v;
    else text = String(v);
    parts.push(`${k}=${text}`);
  }
  return parts.join(' ');
}

/** What the log has not listed since its last gap marker: events, dropped ones, a snapshot. */
function noneUnlisted() { return { events: 0, dropped: 0, snapshotSeq: null }; }

/** `events` with the markers the live log had: a snapshot's where one came (`snapshots`:
 *  [{index, seq}], a reconnect), and a gap's wherever seq numbers skip after it. A view of the
 *  past and a change of filter list them from the model's ring, which holds events only (time
 *  travel showed the events either side of a gap as adjacent). */
export function withGapMarkers(events, snapshots = []) {
  const out = [];
  let last = null;
  let next = 0;
  events.forEach((ev, i) => {
    while (next < snapshots.length && snapshots[next].index <= i) {
      out.push(EventLog.snapshotMarker(snapshots[next].seq, snapshots[next].unknown));
      last = snapshots[next].seq;   // what the snapshot holds is no gap
      next++;
    }
    if (last !== null && ev.seq > last + 1) out.push(EventLog.gapMarker(ev.seq - last - 1));
    last = ev.seq;
    out.push(ev);
  });
  return out;
}

/** The kind filter's "all but idle waits": a wait that returned nothing ready is hidden (an
 *  idle loop's timeouts, four a second, scrolled a learner's own recv out of the box). */
export const BUSY_ONLY = '-idle';

export class EventLog {
  constructor(root, model) {
    this.model = model;
    this.source = model;      // the model on view (a rebuilt one while time travelling)
    this.sourceGen = undefined;
    this.uiVersion = ui.version;
    this.list = root.querySelector('#event-log');
    this.noMatch = root.querySelector('#log-no-match');
    this.fdInput = root.querySelector('#log-filter-fd');
    this.kindSelect = root.querySelector('#log-filter-kind');
    this.jumpBtn = root.querySelector('#log-jump-btn');
    this.noticesEl = root.querySelector('#engine-notices');
    this.pending = [];
    this.unlisted = noneUnlisted();   // not listed since the last gap marker
    this.paintedAt = -Infinity;
    this.paints = 0;          // paints that took new events (window.__muxscope.logPaints)
    this.stick = true;
    this.needPin = false;     // rows were appended while stuck: scroll to the end on the next frame
    this.lastTop = 0;         // scrollTop at the last scroll event (direction of the user's scroll)
    this.userUp = false;      // a wheel/key up came before the scroll event it causes
    this.dragging = false;    // a pointer is down on the log (its scrollbar, or a text selection)
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
    // Layout is only read here, in scroll events (dispatched before the frame's paint, with layout
    // clean), never right after the log's DOM changed. Scrolling up unsticks the log; reaching the
    // bottom sticks it again; content growing below a stuck log (scrollTop unchanged) keeps it stuck.
    // The page's own scrolling (rows trimmed at the top, the pin to the end) also moves scrollTop,
    // so the user's intent is taken from the input itself: a wheel or key up, or a drag of the
    // scrollbar, unsticks at once, even in the frame right after new rows came in.
    this.list.addEventListener('scroll', () => {
      const top = this.list.scrollTop;
      const atBottom = top + this.list.clientHeight >= this.list.scrollHeight - 4;
      const movedUp = top < this.lastTop - 1;
      this.lastTop = top;
      if (atBottom && !this.userUp) {
        if (!this.stick) model.mark('log');  // resume: flush what arrived meanwhile
        this.stick = true;
      } else if (movedUp && (this.dragging || !this.needPin)) {
        this.stick = false;
      }
      this.userUp = false;
      this.jumpBtn.hidden = this.stick;
    });
    const unstick = () => {
      if (this.list.scrollTop <= 0) return;   // nothing above: this input scrolls nothing
      this.userUp = true;   // the scroll event this input causes must not stick the log again
      this.stick = false;
      this.needPin = false;
      this.jumpBtn.hidden = false;
    };
    this.list.addEventListener('wheel', (e) => { if (e.deltaY < 0) unstick(); }, { passive: true });
    this.list.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' || e.key === 'PageUp' || e.key === 'Home') unstick();
    });
    this.list.addEventListener('pointerdown', () => { this.dragging = true; });
    for (const end of ['pointerup', 'pointercancel']) {   // a touch scroll ends in pointercancel
      window.addEventListener(end, () => { this.dragging = false; });
    }
    this.jumpBtn.addEventListener('click', () => {
      const hadFocus = document.activeElement === this.jumpBtn;
      this.scrollToEnd();   // (hides the button)
      model.mark('log');
      if (hadFocus) this.list.focus();   // not the page's top: the log the button scrolled
    });
    model.subscribe((ev) => this.onEvent(ev));
  }

  /** The markers onEvent makes live, and withGapMarkers when a log is listed again. */
  static snapshotMarker(seq, unknown = false) {
    const marker = unknown ? `— the file starts here: it has no snapshot, the state before seq ${seq + 1} is not known —`
      : `— snapshot: state at seq ${seq} —`;
    return { marker, snapshotSeq: seq };
  }

  static gapMarker(dropped) {
    return { marker: `… ${dropped} events not delivered to this page (dropped) …`, gap: true, dropped };
  }

  onEvent(ev) {
    if (this.source !== this.model) return;   // viewing the past: re-rendered on return
    if (ev.kind === 'reset') {
      this.pending.push(EventLog.snapshotMarker(this.model.seq, this.model.stateUnknown));
      this.lastSeq = this.model.seq;
    } else {
      if (this.lastSeq !== null && ev.seq > this.lastSeq + 1) {
        this.pending.push(EventLog.gapMarker(ev.seq - this.lastSeq - 1));
      }
      this.lastSeq = ev.seq;
      this.pending.push(ev);
    }
    if (this.pending.length > MAX_ROWS * 2) {   // bounded while held: what falls off is counted
      this.addUnlisted(this.pending.splice(0, this.pending.length - MAX_ROWS));
    }
    this.model.mark('log');
  }

  /** Count `items` (events and markers) the log will not list, for the next gap marker. */
  addUnlisted(items) {
    for (const item of items) {
      if (!this.matches(item)) continue;
      if (!item.marker) this.unlisted.events++;
      else if (item.dropped) this.unlisted.dropped += item.dropped;
      else if (item.snapshotSeq !== undefined) this.unlisted.snapshotSeq = item.snapshotSeq;  // a re-sync
    }
  }

  /** The marker for what was not listed since the last paint (null if nothing was). */
  takeUnlistedMarker() {
    const { events, dropped, snapshotSeq } = this.unlisted;
    this.unlisted = noneUnlisted();
    if (!events && !dropped && snapshotSeq === null) return null;
    let why = dropped ? `too many to list; ${dropped} of them never reached this page` : 'too many to list';
    // a snapshot fell off too: say so, the seq numbers around it do not follow each other
    if (snapshotSeq !== null) why += `; among them a snapshot: the page re-synced at seq ${snapshotSeq}`;
    return { marker: `… ${events + dropped} events not shown in the log (${why}) …`, gap: true };
  }

  matches(ev) {
    // hiding idle waits hides no dropped events or resyncs: their markers stay
    if (ev.marker) {
      return this.filter.fd === null && (!this.filter.kind || this.filter.kind === BUSY_ONLY) && ui.spotlight === null;
    }
    if (ui.spotlight !== null && ev.fd !== ui.spotlight && ev.listener !== ui.spotlight) return false;
    if (this.filter.kind === BUSY_ONLY) {
      if (ev.kind === 'wait' && ev.ready === 0) return false;   // an idle loop's 4 a second
    } else if (this.filter.kind && ev.kind !== this.filter.kind) return false;
    if (this.filter.fd !== null && ev.fd !== this.filter.fd && ev.listener !== this.filter.fd) return false;
    return true;
  }

  setFilter() {
    const raw = this.fdInput.value.trim();
    const fd = raw === '' ? null : Number(raw);
    this.filter = { fd: Number.isFinite(fd) ? fd : null, kind: this.kindSelect.value };
    // re-render from the model's ring of recent events
    this.list.replaceChildren();
    const listed = withGapMarkers(this.source.recent(), this.source.recentSnapshots());
    this.pending = listed.filter((ev) => this.matches(ev)).slice(-MAX_ROWS);
    this.unlisted = noneUnlisted();
    this.stick = true;
    this.jumpBtn.hidden = true;
    this.source.mark('log');
    this.sayIfNothingMatches();
  }

  /** A filter that finds nothing says so: an empty black box read as a broken log. */
  sayIfNothingMatches() {
    const filtering = this.filter.fd !== null || !!this.filter.kind || ui.spotlight !== null;
    const none = filtering && !this.pending.length && !this.list.childElementCount;
    if (this.noMatch.hidden === none) this.noMatch.hidden = !none;
  }

  /** Fill `li` (new, or a recycled row trimmed from the top) for `ev`. */
  row(ev, li = document.createElement('li')) {
    const ds = li.dataset;
    if (ev.marker) {
      li.className = ev.gap ? 'k-gap' : 'k-marker';
      delete ds.seq; delete ds.kind; delete ds.fd;
      if (li.style.borderLeftColor) li.style.borderLeftColor = '';
      li.textContent = ev.marker;
      return li;
    }
    let cls = `k-${ev.kind}`;
    let color = '';
    ds.seq = String(ev.seq);
    ds.kind = String(ev.kind);
    if (ev.fd !== undefined && ev.fd !== null) {
      ds.fd = String(ev.fd);
      const conn = this.source.conns.get(ev.fd);
      const peer = ev.peer || (conn && conn.peer);
      if (peer && ev.kind !== 'datagram') {
        color = peerColor(peer);
        cls += ui.isMine(peer) ? ' peer-mark mine' : ' peer-mark';
      }
    } else {
      delete ds.fd;
    }
    li.className = cls;
    if (li.style.borderLeftColor !== color) li.style.borderLeftColor = color;
    li.textContent = formatEvent(ev);  // previews and peers are untrusted: text only
    return li;
  }

  /** At the start of a frame, before any panel writes to the DOM (layout is clean: no forced layout). */
  pin() {
    if (!this.needPin) return;
    this.needPin = false;
    if (this.stick) this.list.scrollTop = 1e9;   // written, never read: the browser clamps it
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
    this.paintNotices(model);   // (keyed: cheap when nothing changed; the live model's recording
    if (!model.dirty.log) return;   // losses show while a past iteration is on view too)
    model.take('log');
    this.paintedAt = now;
    this.paints++;
    // scrolled up: hold the view still (no appends, no trimming); pending stays bounded meanwhile
    if (!this.pending.length || !this.stick) return;
    const matching = [];
    for (const ev of this.pending) if (this.matches(ev)) matching.push(ev);
    this.pending = [];
    if (!matching.length) return;
    const limit = !this.list.childElementCount ? MAX_ROWS
      : matching.length > FLOOD_AT ? FLOOD_PER_PAINT : PER_PAINT;
    const batch = matching.slice(-limit);   // the newest, oldest first
    this.addUnlisted(matching.slice(0, matching.length - batch.length));
    const gap = this.takeUnlistedMarker();
    if (gap) batch.unshift(gap);   // said, not silent: the seq numbers in the log jump here
    // rows trimmed from the top are recycled for the new ones at the bottom
    const list = this.list;
    let excess = list.childElementCount + batch.length - MAX_ROWS;
    const frag = document.createDocumentFragment();
    for (const ev of batch) {
      let li;
      if (excess > 0) { li = list.firstElementChild; excess--; }
      frag.append(this.row(ev, li || undefined));
    }
    while (excess-- > 0) list.firstElementChild.remove();
    list.append(frag);
    this.sayIfNothingMatches();
    this.needPin = true;      // scrolled to the end at the start of the next frame (layout clean by then)
  }

  scrollToEnd() {
    this.list.scrollTop = 1e9;
    this.stick = true;
    this.jumpBtn.hidden = true;
  }

  paintNotices(model) {
    const lost = this.model.recordLost || 0;   // the live model's, whichever iteration is on view
    const key = `${model.notices.map((ev) => ev.seq).join(',')}/${lost}`;
    if (key === this.noticesKey) return;
    this.noticesKey = key;
    const items = model.notices.map((ev) => {
      const li = document.createElement('li');
      const what = ev.kind === 'flaw' ? `flaw ${ev.name}` : 'engine error';
      li.textContent = `${what}${ev.fd !== undefined && ev.fd !== null ? ` (fd ${ev.fd})` : ''}: ${ev.message ?? ''}`;
      return li;
    });
    if (lost) {
      const li = document.createElement('li');
      li.className = 'record-lost';
      li.textContent = `recording: ${lost.toLocaleString()} events could not be written to the --record file `
        + '(a full disk?): they are a gap in it, which replay counts as dropped. The server\'s log says why.';
      items.push(li);
    }
    this.noticesEl.replaceChildren(...items);
  }
}
