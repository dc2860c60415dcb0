// The connection list as text (capped), each row with a "Close fd N" button, where the peer comes
// from ("from this machine" for loopback), and a "Mark fd N as mine" toggle. Honours the spotlight.
import { fmtBytes } from '../canvas.js';
import { isLocalPeer, peerColor, ui } from '../ui.js';

// one formatter for every row (toLocaleString builds one a call: ~11 µs, 20x slower)
const GROUPED = new Intl.NumberFormat('en-US');

const MAX_ROWS = 200;
const MIN_INTERVAL_MS = 250;

const WILDCARD = new Set(['0.0.0.0', '::']);
// a wildcard bind reached through a name (localhost may be ::1 first): its own loopback, as the
// command line's banner says it
const LOOPBACK = { '0.0.0.0': '127.0.0.1', '::': '::1' };

/** How to connect, for an empty list: the address the engine really bound (the page's own
 *  host only for a wildcard bind: `localhost` may be ::1 first, where nc -u gets no echo from a
 *  server bound to 127.0.0.1). */
export function connectHint(model, pageHost = window.location.hostname) {
  const page = pageHost.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const bound = (listener) => (listener.host && !WILDCARD.has(listener.host) ? listener.host
    : (page === 'localhost' && LOOPBACK[listener.host]) || page);
  const host = bound(model.tcp);
  const udp = model.udp ? `; nc -u ${bound(model.udp)} ${model.udp.port} for UDP` : '';
  return `No connections yet: connect with nc ${host} ${model.tcp.port} (or telnet ${host} ${model.tcp.port}), ` +
    `type a line, and watch it go through${udp}.`;
}

export class ConnectionsPanel {
  constructor(root, { onClose, onMine, replay }) {
    this.tbody = root.querySelector('#connection-list');
    this.title = root.querySelector('#connections-title');   // focused when the last row goes
    this.moreEl = root.querySelector('#connection-more');
    this.countEl = root.querySelector('#connection-count');
    this.udpEl = root.querySelector('#udp-summary');
    this.replay = replay;
    this.rows = new Map();  // fd -> {tr, cells, button}
    this.paintedAt = -Infinity;
    this.sorted = [];       // fds of the model on view, ascending; re-sorted only when the set changed
    this.sortedOf = null;   // {model, version} the sorted list was built from
    this.order = '';        // the fds of the rows on the page, in order (no DOM moves when unchanged)
    this.texts = {};        // last text written to the count / more / udp elements
    this.tbody.addEventListener('click', (e) => {
      const mine = e.target.closest('button[data-mine]');
      if (mine) { onMine(Number(mine.dataset.mine), mine.dataset.peer || ''); return; }
      const btn = e.target.closest('button[data-fd]');
      if (btn && !btn.disabled && btn.getAttribute('aria-disabled') !== 'true') onClose(Number(btn.dataset.fd), btn);
    });
  }

  paint(model, now) {
    const uiChanged = this.uiVersion !== ui.version;
    if ((!model.dirty.conns && !uiChanged) || now - this.paintedAt < MIN_INTERVAL_MS) return;
    model.take('conns');
    this.uiVersion = ui.version;
    this.paintedAt = now;
    const fds = this.sortedFds(model);
    const total = fds.length;
    // only the rows on view are touched: at most MAX_ROWS of them, whatever the number of conns
    let shownFds;
    if (ui.spotlight === null) shownFds = total > MAX_ROWS ? fds.slice(0, MAX_ROWS) : fds;
    else shownFds = model.conns.has(ui.spotlight) ? [ui.spotlight] : [];
    const order = shownFds.join(',');
    let focus = null;   // where the keyboard's focus goes, when its row goes
    if (order !== this.order) {
      this.order = order;
      const keep = new Set(shownFds);
      focus = this.focusLeaving(keep);
      for (const [fd, row] of this.rows) if (!keep.has(fd)) { row.tr.remove(); this.rows.delete(fd); }
      let prev = null;
      for (const fd of shownFds) {
        let row = this.rows.get(fd);
        if (!row) { row = this.makeRow(fd); this.rows.set(fd, row); }
        const want = prev ? prev.nextSibling : this.tbody.firstChild;
        if (want !== row.tr) this.tbody.insertBefore(row.tr, want);
        prev = row.tr;
      }
    }
    // cells are written only when their text changed (fill compares with what it wrote last)
    const disabled = this.replay || !!model.isView;
    this.approximate = model.approximate;
    for (const fd of shownFds) this.fill(this.rows.get(fd), model.conns.get(fd), disabled);
    if (focus) this.refocus(focus, shownFds);   // once filled: a new row's buttons are set then
    this.setText('count', this.countEl, String(total));
    let more;
    if (ui.spotlight !== null) {
      more = `spotlight on fd ${ui.spotlight}: ${shownFds.length ? 'showing it alone' : 'not a connection (now)'}; ` +
        `${total} connection${total === 1 ? '' : 's'} in all`;
    } else if (total === 0 && !this.replay && !model.isView && model.tcp) {
      more = connectHint(model);   // what a newcomer needs first (the port may be a free one)
    } else {
      more = total > MAX_ROWS
        ? `and ${total - MAX_ROWS} more, not listed: the list shows the lowest ${MAX_ROWS} fds ("Spotlight fd" shows any one alone)`
        : '';
    }
    if (model.approximate && total) {
      more = [more, '≈ bytes: events were dropped for this page, their bytes are not counted yet (the server\'s counts are read again shortly)']
        .filter(Boolean).join(' · ');
    }
    this.setText('more', this.moreEl, more);
    const u = model.udp;
    this.setText('udp', this.udpEl, u
      ? `UDP socket fd ${u.fd} on port ${u.port}: ${u.received ?? 0} datagram${(u.received ?? 0) === 1 ? '' : 's'} received` +
        (u.from_self ? ` (${u.from_self} of them its own replies, sent to itself: not echoed)` : '') +
        `, ${u.echoed ?? 0} echoed, ` +
        `${u.dropped ?? 0} dropped by the kernel` +
        (u.reading_paused ? ` · not read (backpressure): ${u.pending ?? 'its'} replies wait for writability` : '') +
        (!u.reading_paused && u.pending ? ` · ${u.pending} replies wait for writability` : '')
      : '');
  }

  /** Focus in a row about to go ("Close fd N" closed its connection): its place and column,
   * so that it moves to the row that takes that place, not to the top of the page. */
  focusLeaving(keep) {
    const el = document.activeElement;
    const tr = el && el.closest ? el.closest('tr[data-fd]') : null;
    if (!tr || tr.parentNode !== this.tbody || keep.has(Number(tr.dataset.fd))) return null;
    return { index: Array.prototype.indexOf.call(this.tbody.children, tr), mine: 'mine' in el.dataset };
  }

  refocus({ index, mine }, shownFds) {
    const row = shownFds.length ? this.rows.get(shownFds[Math.min(index, shownFds.length - 1)]) : null;
    const target = row && (mine ? row.mine : row.button);
    if (target && !target.disabled) { target.focus(); return; }
    this.title.tabIndex = -1;   // no row left to go to: the panel's title, read out
    this.title.focus();
  }

  /** The model's connection fds in ascending order: sorted again only when the set changed. */
  sortedFds(model) {
    const of = this.sortedOf;
    if (!of || of.model !== model || of.version !== model.connsVersion) {
      this.sorted = Array.from(Int32Array.from(model.conns.keys()).sort());   // numeric sort, no comparator
      this.sortedOf = { model, version: model.connsVersion };
    }
    return this.sorted;
  }

  setText(key, el, text) {
    if (this.texts[key] !== text) { this.texts[key] = text; el.textContent = text; }
  }

  makeRow(fd) {
    const tr = document.createElement('tr');
    tr.dataset.fd = String(fd);
    const cells = {};
    for (const key of ['fd', 'peer', 'queue', 'in', 'out', 'paused']) {
      const td = document.createElement('td');
      td.className = key;
      cells[key] = td;
      tr.append(td);
    }
    const td = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Close';
    button.dataset.fd = String(fd);
    button.setAttribute('aria-label', `Close fd ${fd}`);
    button.disabled = this.replay;
    td.append(button);
    tr.append(td);
    cells.origin = document.createElement('td');
    cells.origin.className = 'origin';
    const swatch = document.createElement('span');
    swatch.className = 'peer-swatch';
    const originText = document.createElement('span');
    cells.origin.append(swatch, originText);
    const mineTd = document.createElement('td');
    mineTd.className = 'mine';
    const mine = document.createElement('button');
    mine.type = 'button';
    mine.dataset.mine = String(fd);
    mine.setAttribute('aria-label', `Mark fd ${fd} as mine`);
    mine.title = 'My connection: highlight it in every panel';
    mineTd.append(mine);
    tr.append(cells.origin, mineTd);
    cells.fd.textContent = String(fd);
    return { tr, cells, button, mine, swatch, originText, last: {} };
  }

  fill(row, c, disabled) {
    const last = row.last;
    const set = (key, text) => {
      if (last[key] !== text) { last[key] = text; row.cells[key].textContent = text; }
    };
    // the same, for a text laid out in parts (its textContent still `text`; untrusted parts
    // are strings, text nodes only): where a narrow page may break it
    const setParts = (key, text, parts) => {
      if (last[key] !== text) { last[key] = text; row.cells[key].replaceChildren(...parts()); }
    };
    const nowrap = (text) => { const span = document.createElement('span'); span.textContent = text; return span; };
    const peer = c.peer || '';          // a break point after the port's colon
    const cut = peer.lastIndexOf(':') + 1;
    setParts('peer', peer, () => [peer.slice(0, cut), document.createElement('wbr'), peer.slice(cut)]);
    // "chunks /" and "bytes" each whole: broken between them, not inside "0 B"
    const bytes = fmtBytes(c.pending);
    setParts('queue', `${c.depth} / ${bytes}`, () => [nowrap(`${c.depth} /`), ' ', nowrap(bytes)]);
    // whole byte counts, digits grouped (12,582,912): an echo's in and out compare at a glance
    // events dropped for this page: the sums lack their bytes until the state is read again.
    // A narrow page may break a count of 8 digits or more once, after its middle comma (they
    // overflowed the box at 600 px; a break at every comma made 3 lines of 30,000,036, and a
    // table too wide for its box breaks whatever may break: 7 digits fit whole, so they do not).
    const about = this.approximate ? '≈' : '';
    const count = (text) => () => {
      const groups = text.split(',');
      if (text.replace(/\D/g, '').length < 8) return [text];
      const head = Math.ceil(groups.length / 2);
      return [`${groups.slice(0, head).join(',')},`, document.createElement('wbr'), groups.slice(head).join(',')];
    };
    const bytesIn = about + GROUPED.format(c.bytesIn);
    const bytesOut = about + GROUPED.format(c.bytesOut);
    setParts('in', bytesIn, count(bytesIn));
    setParts('out', bytesOut, count(bytesOut));
    set('paused', c.lingering ? 'lingering' : c.paused ? 'paused' : '');
    if (last.lingering !== c.lingering) {
      last.lingering = c.lingering;
      row.cells.paused.title = c.lingering
        ? 'Closed on request: the peer is still sending, so its input is read away and thrown away until its EOF ' +
          '(5 s at most, counted while the loop runs), then the close'
        : '';
    }
    const fd = row.tr.dataset.fd;
    let title = c.lingering
      ? `Close fd ${fd} now, without waiting for the peer's EOF (an RST if it is still sending)`
      : `Close fd ${fd} (the server closes this connection)`;
    if (disabled) title = this.replay ? 'A replay: nothing to close' : 'Viewing the past: "Back to live" to close connections';
    if (last.title !== title) { last.title = title; row.button.title = title; }
    const pausedClass = c.paused && !c.lingering;
    if (last.pausedClass !== pausedClass) { last.pausedClass = pausedClass; row.tr.classList.toggle('paused', pausedClass); }
    const origin = c.generated ? 'a load client ("Add clients")'
      : c.peer ? (isLocalPeer(c.peer) ? 'from this machine' : 'remote') : '';
    if (last.origin !== origin) { last.origin = origin; row.originText.textContent = origin; }
    if (last.color !== c.peer) {
      last.color = c.peer;
      const color = peerColor(c.peer);
      row.swatch.style.backgroundColor = color;
      row.cells.fd.style.borderLeftColor = color;
      row.cells.fd.classList.add('peer-mark');
    }
    const mine = ui.isMine(c.peer);
    if (last.minePeer !== c.peer) { last.minePeer = c.peer; row.mine.dataset.peer = c.peer || ''; row.mine.disabled = !c.peer; }
    if (last.mine !== mine) {
      last.mine = mine;
      row.mine.setAttribute('aria-pressed', String(mine));
      row.mine.textContent = mine ? '★' : '☆';
      row.tr.classList.toggle('mine', mine);
    }
    if (row.button.disabled !== disabled) row.button.disabled = disabled;
    if (row.button.hasAttribute('aria-disabled')) row.button.removeAttribute('aria-disabled');   // a close in flight, as before
  }
}
