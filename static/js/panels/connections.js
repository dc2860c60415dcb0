// The connection list as text (capped), each row with a "Close fd N" button, where the peer comes
// from ("from this machine" for loopback), and a "Mark fd N as mine" toggle. Honours the spotlight.
import { fmtBytes } from '../canvas.js';
import { isLocalPeer, peerColor, ui } from '../ui.js';

const MAX_ROWS = 200;
const MIN_INTERVAL_MS = 250;

export class ConnectionsPanel {
  constructor(root, { onClose, onMine, replay }) {
    this.tbody = root.querySelector('#connection-list');
    this.moreEl = root.querySelector('#connection-more');
    this.countEl = root.querySelector('#connection-count');
    this.udpEl = root.querySelector('#udp-summary');
    this.replay = replay;
    this.rows = new Map();  // fd -> {tr, cells, button}
    this.paintedAt = -Infinity;
    this.tbody.addEventListener('click', (e) => {
      const mine = e.target.closest('button[data-mine]');
      if (mine) { onMine(Number(mine.dataset.mine), mine.dataset.peer || ''); return; }
      const btn = e.target.closest('button[data-fd]');
      if (btn && !btn.disabled) onClose(Number(btn.dataset.fd), btn);
    });
  }

  paint(model, now) {
    const uiChanged = this.uiVersion !== ui.version;
    if ((!model.dirty.conns && !uiChanged) || now - this.paintedAt < MIN_INTERVAL_MS) return;
    model.take('conns');
    this.uiVersion = ui.version;
    this.paintedAt = now;
    const conns = [...model.conns.values()].sort((a, b) => a.fd - b.fd);
    const visible = ui.spotlight === null ? conns : conns.filter((c) => c.fd === ui.spotlight);
    const shown = visible.slice(0, MAX_ROWS);
    const keep = new Set(shown.map((c) => c.fd));
    for (const [fd, row] of this.rows) if (!keep.has(fd)) { row.tr.remove(); this.rows.delete(fd); }
    let prev = null;
    for (const c of shown) {
      let row = this.rows.get(c.fd);
      if (!row) { row = this.makeRow(c.fd); this.rows.set(c.fd, row); }
      this.fill(row, c, model);
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== row.tr) this.tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    this.countEl.textContent = String(conns.length);
    if (ui.spotlight !== null) {
      this.moreEl.textContent = `spotlight on fd ${ui.spotlight}: ${shown.length ? 'showing it alone' : 'not a connection (now)'}; ` +
        `${conns.length} connection${conns.length === 1 ? '' : 's'} in all`;
    } else {
      this.moreEl.textContent = conns.length > MAX_ROWS ? `and ${conns.length - MAX_ROWS} more` : '';
    }
    const u = model.udp;
    this.udpEl.textContent = u
      ? `UDP socket fd ${u.fd} on port ${u.port}: ${u.received ?? 0} datagrams received, ${u.echoed ?? 0} echoed, ` +
        `${u.dropped ?? 0} dropped by the kernel`
      : '';
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
    button.title = `Close fd ${fd} (the server closes this connection)`;
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

  fill(row, c, model) {
    const set = (key, text) => {
      if (row.last[key] !== text) { row.last[key] = text; row.cells[key].textContent = text; }
    };
    set('peer', c.peer || '');          // untrusted: textContent only
    set('queue', `${c.depth} / ${fmtBytes(c.pending)}`);
    set('in', String(c.bytesIn));
    set('out', String(c.bytesOut));
    set('paused', c.paused ? 'paused' : '');
    row.tr.classList.toggle('paused', c.paused);
    const origin = c.peer ? (isLocalPeer(c.peer) ? 'from this machine' : 'remote') : '';
    if (row.last.origin !== origin) { row.last.origin = origin; row.originText.textContent = origin; }
    if (row.last.color !== c.peer) {
      row.last.color = c.peer;
      const color = peerColor(c.peer);
      row.swatch.style.backgroundColor = color;
      row.cells.fd.style.borderLeftColor = color;
      row.cells.fd.classList.add('peer-mark');
    }
    const mine = ui.isMine(c.peer);
    row.mine.dataset.peer = c.peer || '';
    row.mine.setAttribute('aria-pressed', String(mine));
    row.mine.textContent = mine ? '★' : '☆';
    row.mine.disabled = !c.peer;
    row.tr.classList.toggle('mine', mine);
    row.button.disabled = this.replay || !!model.isView;
  }
}
