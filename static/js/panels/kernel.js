// Kernel truth: what the kernel itself holds (GET /api/kernel: the epoll interest list from
// /proc/self/fdinfo, each socket's queues) beside the engine's own table, mismatches marked.
import { api } from '../api.js';
import { peerColor, serverConnected, ui } from '../ui.js';

const POLL_MS = 1000;
// A read takes the interest list, every socket's queues and the state: at 10,000 connections
// over 2 MiB of JSON, 200-400 ms of the page's main thread (and of the server's request thread),
// and a page scrolled down to the log beside it fell to 15 frames a second. So the next read
// waits READ_SHARE times as long as the last one took: reads take at most a tenth of the time.
const READ_SHARE = 10;
const MAX_ROWS = 200;

/** What a table cut at MAX_ROWS leaves out, said (nothing when it is whole). */
function cut(total, table) {
  return total > MAX_ROWS ? `The ${table} table shows the lowest ${MAX_ROWS} fds of ${total}. ` : '';
}

const BITS = [
  [0x1, 'EPOLLIN'], [0x2, 'EPOLLPRI'], [0x4, 'EPOLLOUT'], [0x8, 'EPOLLERR'], [0x10, 'EPOLLHUP'],
  [0x40, 'EPOLLRDNORM'], [0x80, 'EPOLLRDBAND'], [0x100, 'EPOLLWRNORM'], [0x200, 'EPOLLWRBAND'],
  [0x400, 'EPOLLMSG'], [0x2000, 'EPOLLRDHUP'], [2 ** 28, 'EPOLLEXCLUSIVE'], [2 ** 29, 'EPOLLWAKEUP'],
  [2 ** 30, 'EPOLLONESHOT'], [2 ** 31, 'EPOLLET'],
];
const IMPLICIT = new Set(['EPOLLERR', 'EPOLLHUP']);   // epoll_ctl always adds these
const EVENT_BITS = new Set(['EPOLLIN', 'EPOLLPRI', 'EPOLLOUT', 'EPOLLRDHUP']);

/** Raw epoll mask -> names (the sign bit too: masks come as unsigned integers). */
export function decodeMask(mask) {
  const m = Number(mask) >>> 0;
  const out = [];
  for (const [bit, name] of BITS) if (Math.floor(m / bit) % 2 === 1) out.push(name);
  return out;
}

/** Compare one fd: {state: 'ok'|'kernel-only'|'engine-only'|'differs'|'disarmed', note}. */
export function compare(kernelNames, engineNames) {
  if (!kernelNames) return { state: 'engine-only', note: 'in the engine table, not in the kernel: stale entry' };
  if (!engineNames) return { state: 'kernel-only', note: 'in the kernel, not in the engine table' };
  const k = new Set(kernelNames.filter((n) => !IMPLICIT.has(n) || engineNames.includes(n)));
  const e = new Set(engineNames);
  const same = k.size === e.size && [...k].every((n) => e.has(n));
  if (same) return { state: 'ok', note: '' };
  if (k.has('EPOLLONESHOT') && ![...k].some((n) => EVENT_BITS.has(n))) {
    return { state: 'disarmed', note: 'one-shot fired: disarmed in the kernel until re-armed' };
  }
  return { state: 'differs', note: 'masks differ' };
}


export class KernelPanel {
  constructor(root, live, { replay }) {
    this.root = root;
    this.live = live;
    this.replay = replay;
    this.summaryEl = root.querySelector('#kernel-summary');
    this.interestBody = root.querySelector('#kernel-interest');
    this.queuesBody = root.querySelector('#kernel-queues');
    this.visible = false;
    this.busy = false;
    this.reads = { started: 0, done: 0, failed: '', lastMs: 0 };   // for tests: what became of the polls
    this.nextAt = 0;      // performance.now() before which no read starts (READ_SHARE)
    this.data = null;
    this.prevBad = new Set();
    this.dirty = true;
    if (replay) {
      this.summaryEl.textContent = 'Replay: there is no live kernel to ask.';
      return;
    }
    new IntersectionObserver((entries) => {
      this.visible = entries[entries.length - 1].isIntersecting;
      if (this.visible) this.poll();
    }).observe(root);
    setInterval(() => this.poll(), POLL_MS);
  }

  async poll() {
    if (this.replay || this.busy || !this.visible || document.visibilityState === 'hidden'
        || !serverConnected()) return;   // else a "network error" a second while it is down
    const t0 = performance.now();
    if (t0 < this.nextAt) return;
    this.busy = true;
    this.reads.started++;
    try {
      const kernel = await api.kernel();
      const state = await api.state();
      this.data = { kernel, state, at: new Date(), confirmed: this.confirm(kernel, state) };
      this.dirty = true;
      this.reads.done++;
      this.reads.lastMs = performance.now() - t0;
      // (a read quicker than POLL_MS / READ_SHARE leaves the next 1 s tick free to read)
      this.nextAt = t0 + READ_SHARE * this.reads.lastMs;
    } catch (err) {   // shown in the alert area
      this.reads.failed = `${this.reads.failed ? `${this.reads.failed}; ` : ''}${err.message}`.slice(-500);
    } finally {
      this.busy = false;
    }
  }

  /** fds that mismatched in this read and the previous one (one read alone can be a race). */
  confirm(kernel, state) {
    const now = new Set();
    if (kernel.epoll) {
      const kfds = new Map(kernel.epoll.interest.map((i) => [i.fd, i.mask]));
      const regs = new Map((state.registrations || []).map((r) => [r.fd, r.interest]));
      for (const fd of new Set([...kfds.keys(), ...regs.keys()])) {
        const cmp = compare(kfds.has(fd) ? decodeMask(kfds.get(fd)) : null, regs.get(fd) || null);
        if (cmp.state === 'engine-only' || cmp.state === 'kernel-only' || cmp.state === 'differs') now.add(fd);
      }
    }
    const confirmed = new Set([...now].filter((fd) => this.prevBad.has(fd)));
    this.prevBad = now;
    return confirmed;
  }

  paint() {
    if (!this.data || (!this.dirty && this.uiVersion === ui.version)) return;
    this.dirty = false;
    this.uiVersion = ui.version;
    const { kernel, state } = this.data;
    const regs = new Map((state.registrations || []).map((r) => [r.fd, r]));
    const peers = new Map((state.connections || []).map((c) => [c.fd, c]));
    const rows = [];
    let bad = 0;
    let summary;
    if (kernel.epoll) {
      const kfds = new Map(kernel.epoll.interest.map((i) => [i.fd, i.mask]));
      const fds = [...new Set([...kfds.keys(), ...regs.keys()])].sort((a, b) => a - b);
      for (const fd of fds.slice(0, MAX_ROWS)) {
        const kn = kfds.has(fd) ? decodeMask(kfds.get(fd)) : null;
        const reg = regs.get(fd);
        const cmp = compare(kn, reg ? reg.interest : null);
        const mismatch = cmp.state === 'engine-only' || cmp.state === 'kernel-only' || cmp.state === 'differs';
        const confirmed = mismatch && this.data.confirmed.has(fd);
        if (confirmed) bad++;
        rows.push(this.interestRow(fd, kn, kfds.get(fd), reg, cmp, mismatch, confirmed, peers.get(fd)));
      }
      summary = `epoll fd ${kernel.epoll.fd}: the kernel holds ${kfds.size} fds, the engine's table ` +
        `${regs.size}. ${bad ? `${bad} mismatch${bad === 1 ? '' : 'es'}.` : 'They agree.'} ` +
        `(The kernel adds EPOLLERR and EPOLLHUP to every registration; a one-shot fd that has fired holds neither until it is re-armed.) ` +
        `${cut(fds.length, 'interest list')}Read at ${this.data.at.toLocaleTimeString()}.`;
    } else {
      summary = `The backend is ${state.backend ? state.backend.name : '?'}: the kernel keeps no interest list ` +
        'between calls (the whole list is passed on every call). Socket queues below.';
    }
    // by fd, as the interest list (the engine lists connections in accept order); a cut
    // table says so: a learner looked in vain for their own fd past the 200th row
    const conns = [...(kernel.connections || [])].sort((a, b) => a.fd - b.fd);
    this.summaryEl.textContent = `${summary} ${cut(conns.length, 'socket queues')}${this.spacing()}`.trimEnd();
    this.root.dataset.mismatches = String(bad);
    this.interestBody.replaceChildren(...rows);
    const qrows = conns.slice(0, MAX_ROWS).map((c) => this.queueRow(c, peers.get(c.fd)));
    const udp = state.listeners && state.listeners.udp;
    if (kernel.udp) qrows.unshift(this.udpRow(kernel.udp, udp));
    this.queuesBody.replaceChildren(...qrows);
  }

  /** What a slow read does to the reads' pace (READ_SHARE), said; '' at one a second. */
  spacing() {
    const ms = this.reads.lastMs;
    if (READ_SHARE * ms < 1.5 * POLL_MS) return '';
    return `A read took ${Math.round(ms)} ms, so the next waits ${(READ_SHARE * ms / 1000).toFixed(1)} s (reads take at most a tenth of the time).`;
  }

  interestRow(fd, kn, mask, reg, cmp, mismatch, confirmed, conn) {
    const tr = document.createElement('tr');
    tr.dataset.fd = String(fd);
    tr.dataset.state = cmp.state;
    if (ui.spotlight !== null && fd !== ui.spotlight) tr.classList.add('dim');
    const td = (text, cls) => { const el = document.createElement('td'); el.textContent = text; if (cls) el.className = cls; tr.append(el); return el; };
    // a line may break after each '|' (<wbr>, not a character: a copied mask stays clean):
    // long one-shot masks pushed the other columns out of the panel
    const masks = (names, tail) => {
      const el = td('');
      names.forEach((n, i) => { el.append(n + (i < names.length - 1 ? '|' : '')); if (i < names.length - 1) el.append(document.createElement('wbr')); });
      el.append(`${names.length ? '' : '0'} ${tail}`);
      return el;
    };
    const fdCell = td(String(fd), 'fd');
    if (conn) { fdCell.style.borderLeftColor = peerColor(conn.peer); fdCell.classList.add('peer-mark'); }
    if (kn) masks(kn, `(0x${(Number(mask) >>> 0).toString(16)})`); else td('—');
    if (reg) masks(reg.interest, `(${reg.role})`); else td('—');
    const st = td(cmp.state === 'ok' ? 'same' : cmp.note);
    if (mismatch) {
      tr.classList.add(confirmed ? 'mismatch' : 'changing');
      if (confirmed) { tr.dataset.mismatch = '1'; st.textContent = `MISMATCH: ${cmp.note}`; }
    }
    return tr;
  }

  /** The UDP socket: its receive queue is datagrams (SIOCINQ would be the next one's size
   *  alone), so the memory they take, overhead included, against the buffer, and the drops. */
  udpRow(k, listener) {
    const tr = document.createElement('tr');
    tr.dataset.fd = String(k.fd);
    tr.dataset.role = 'udp';
    if (ui.spotlight !== null && k.fd !== ui.spotlight) tr.classList.add('dim');
    const waiting = k.next_datagram > 0 ? `, next datagram ${k.next_datagram} B` : '';
    const dropped = k.drops ? `; ${k.drops.toLocaleString('en')} dropped by the kernel` : '';
    const pending = listener && listener.pending_bytes !== undefined ? String(listener.pending_bytes) : '';
    for (const [text, cls] of [[String(k.fd), 'fd'], [`UDP socket, port ${listener ? listener.port : '?'}`, 'peer'],
      [`${k.recv_queue} of ${k.rcvbuf} (memory, overhead included${waiting})${dropped}`, ''],
      [String(k.send_queue), ''], [pending, '']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }

  queueRow(c, conn) {
    const tr = document.createElement('tr');
    tr.dataset.fd = String(c.fd);
    if (ui.spotlight !== null && c.fd !== ui.spotlight) tr.classList.add('dim');
    for (const [text, cls] of [[String(c.fd), 'fd'], [conn ? conn.peer : '', 'peer'], [String(c.recv_queue), ''],
      [String(c.send_queue), ''], [conn ? String(conn.pending_bytes) : '', '']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    if (conn) { tr.firstChild.style.borderLeftColor = peerColor(conn.peer); tr.firstChild.classList.add('peer-mark'); }
    return tr;
  }
}
