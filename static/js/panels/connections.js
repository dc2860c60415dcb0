// The connection list as text (capped), each row with a "Close fd N" button.
import { fmtBytes } from '../canvas.js';

const MAX_ROWS = 200;
const MIN_INTERVAL_MS = 250;

export class ConnectionsPanel {
  constructor(root, { onClose, replay }) {
    this.tbody = root.querySelector('#connection-list');
    this.moreEl = root.querySelector('#connection-more');
    this.countEl = root.querySelector('#connection-count');
    this.udpEl = root.querySelector('#udp-summary');
    this.replay = replay;
    this.rows = new Map();  // fd -> {tr, cells, button}
    this.paintedAt = -Infinity;
    this.tbody.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-fd]');
      if (btn && !btn.disabled) onClose(Number(btn.dataset.fd), btn);
    });
  }

  paint(model, now) {
    if (!model.dirty.conns || now - this.paintedAt < MIN_INTERVAL_MS) return;
    model.take('conns');
    this.paintedAt = now;
    const conns = [...model.conns.values()].sort((a, b) => a.fd - b.fd);
    const shown = conns.slice(0, MAX_ROWS);
    const keep = new Set(shown.map((c) => c.fd));
    for (const [fd, row] of this.rows) if (!keep.has(fd)) { row.tr.remove(); this.rows.delete(fd); }
    let prev = null;
    for (const c of shown) {
      let row = this.rows.get(c.fd);
      if (!row) { row = this.makeRow(c.fd); this.rows.set(c.fd, row); }
      this.fill(row, c);
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== row.tr) this.tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    this.countEl.textContent = String(conns.length);
    this.moreEl.textContent = conns.length > MAX_ROWS ? `and ${conns.length - MAX_ROWS} more` : '';
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
    cells.fd.textContent = String(fd);
    return { tr, cells, button, last: {} };
  }

  fill(row, c) {
    const set = (key, text) => {
      if (row.last[key] !== text) { row.last[key] = text; row.cells[key].textContent = text; }
    };
    set('peer', c.peer || '');          // untrusted: textContent only
    set('queue', `${c.depth} / ${fmtBytes(c.pending)}`);
    set('in', String(c.bytesIn));
    set('out', String(c.bytesOut));
    set('paused', c.paused ? 'paused' : '');
    row.tr.classList.toggle('paused', c.paused);
  }
}
