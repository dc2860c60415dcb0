// Latency: per-backend histogram of recv -> send time per chunk (each recv paired with the send
// that carries its first byte back, FIFO per fd), and the per-iteration time budget: time inside
// the wait call vs time in the handlers (next wait's start - this wait's return; slow motion's
// iterations are not timed). Across events this page was not shown, nothing is paired.
import { BACKEND_COLORS, colors, fitCanvas, watchWidth } from '../canvas.js';

const BACKENDS = ['select', 'poll', 'epoll'];
const BINS_PER_DECADE = 4;
const MIN_EXP = 0;       // 1 µs
const MAX_EXP = 7;       // 10 s
const NBINS = (MAX_EXP - MIN_EXP) * BINS_PER_DECADE;
const BUDGET_N = 160;
const MAX_CHUNKS = 4096;
const MIN_INTERVAL_MS = 500;
const H = 170;

function binOf(us) {
  const e = Math.log10(Math.max(1, us));
  return Math.max(0, Math.min(NBINS - 1, Math.floor((e - MIN_EXP) * BINS_PER_DECADE)));
}

export function fmtUs(us) {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 10000 ? 1 : 0)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

/** An axis tick at a power of ten, in one format across the axis: 1 µs … 100 ms, 1 s, 10 s. */
export function fmtDecade(us) {
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${us / 1000} ms`;
  return `${us / 1e6} s`;
}

export class LatencyPanel {
  constructor(root, live) {
    this.live = live;
    this.histCanvas = root.querySelector('#latency-canvas');
    this.budgetCanvas = root.querySelector('#budget-canvas');
    this.histSummary = root.querySelector('#latency-summary');
    this.budgetSummary = root.querySelector('#budget-summary');
    this.histWidth = watchWidth(root.querySelector('#latency-wrap'), () => { this.dirty = true; });
    this.budgetWidth = watchWidth(root.querySelector('#budget-wrap'), () => { this.dirty = true; });
    root.querySelector('#latency-reset').addEventListener('click', () => this.clear());
    this.clear();
    live.subscribe((ev, m) => this.onEvent(ev, m));
  }

  clear() {
    this.hist = Object.fromEntries(BACKENDS.map((b) => [b, new Array(NBINS).fill(0)]));
    this.samples = Object.fromEntries(BACKENDS.map((b) => [b, []]));   // recent, for percentiles
    this.fds = new Map();
    this.budget = [];
    this.prevWait = null;
    this.interrupted = false;
    this.lastSeq = null;
    this.sawGap = false;
    this.slowMotion = false;
    this.dirty = true;
  }

  flow(fd) {
    let f = this.fds.get(fd);
    // first seen after a gap, its accept not shown: where its offsets stand is not known
    if (!f) { f = { inTotal: 0, outTotal: 0, chunks: [], lost: !!this.sawGap }; this.fds.set(fd, f); }
    return f;
  }

  /** Events this page was not shown (dropped, or iterations the engine did not show): the
   *  iteration before the gap did not end where the next shown wait began, and a fd's recv
   *  and send offsets no longer line up (paired across a gap, a chunk seemed to wait 86 ms
   *  that waited 0.1). Each fd pairs again from a moment its queue is known empty. */
  gap() {
    this.interrupted = true;
    this.sawGap = true;
    for (const f of this.fds.values()) { f.lost = true; f.chunks = []; f.held = null; }
  }

  onEvent(ev, m) {
    if (typeof ev.seq === 'number') {
      if (this.lastSeq !== null && ev.seq > this.lastSeq + 1) this.gap();
      this.lastSeq = ev.seq;
    }
    switch (ev.kind) {
      case 'reset':
        // bytes already queued at the snapshot were received before we watched: never paired
        this.fds.clear();
        for (const c of m.conns.values()) this.fds.set(c.fd, { inTotal: c.pending, outTotal: 0, chunks: [] });
        this.prevWait = null;
        this.lastSeq = m.seq;
        this.sawGap = false;
        break;
      case 'accept':   // always shown: a new connection's offsets start in step
        this.fds.set(ev.fd, { inTotal: 0, outTotal: 0, chunks: [] });
        break;
      case 'queue': {   // queued: an empty queue puts a fd's offsets back in step
        const f = this.fds.get(ev.fd);
        if (f && f.lost && !ev.pending_bytes) this.fds.set(ev.fd, { inTotal: 0, outTotal: 0, chunks: [] });
        break;
      }
      case 'recv': {
        if (!ev.bytes) break;   // the EOF's recv: no byte to time
        const f = this.flow(ev.fd);
        if (f.lost) { f.held = { seq: ev.seq, ts: ev.ts, bytes: ev.bytes || 0 }; break; }
        if (f.chunks.length < MAX_CHUNKS) f.chunks.push({ ts: ev.ts, start: f.inTotal });
        f.inTotal += ev.bytes || 0;
        break;
      }
      case 'send': {
        let f = this.flow(ev.fd);
        if (f.lost) {
          // eager sends at once only with nothing queued (else a queue event comes between):
          // a send right after its recv says the queue was empty at that recv
          const h = f.held;
          if (!h || ev.seq !== h.seq + 1) break;
          f = { inTotal: h.bytes, outTotal: 0, chunks: [{ ts: h.ts, start: 0 }] };
          this.fds.set(ev.fd, f);
        }
        f.outTotal += ev.bytes || 0;
        while (f.chunks.length && f.chunks[0].start < f.outTotal) {
          const c = f.chunks.shift();
          this.record(m.backend.name, (ev.ts - c.ts) * 1e6);
        }
        break;
      }
      case 'close': this.fds.delete(ev.fd); break;
      case 'loop': this.interrupted = true; break;     // paused / stepped: the gap is not handler time
      case 'backend': this.interrupted = true; break;
      case 'wait': {
        const p = this.prevWait;
        // in slow motion the loop sleeps between iterations, and commands run meanwhile:
        // those iterations are not timed (the sleep overshoots its nominal delay, and the
        // events of a close made during it are no handler's)
        this.slowMotion = !!m.delayMs;
        if (p && !this.interrupted && !this.slowMotion) {
          const start = ev.ts - (ev.duration_us || 0) / 1e6;
          const handlers = Math.max(0, (start - p.ts) * 1e6);
          this.budget.push({ wait: p.duration_us || 0, handlers, backend: p.backend });
          if (this.budget.length > BUDGET_N) this.budget.shift();
        }
        this.dirty = true;
        this.prevWait = ev;
        this.interrupted = false;
        break;
      }
      default: break;
    }
  }

  record(backend, us) {
    if (!this.hist[backend]) return;
    this.hist[backend][binOf(us)]++;
    const s = this.samples[backend];
    s.push(us);
    if (s.length > 2000) s.splice(0, 1000);
    this.dirty = true;
  }

  paint(now) {
    if (!this.dirty || now - (this.paintedAt || 0) < MIN_INTERVAL_MS) return;
    this.dirty = false;
    this.paintedAt = now;
    this.drawHist();
    this.drawBudget();
  }

  drawHist() {
    const c = colors();
    const width = Math.max(200, this.histWidth());
    const ctx = fitCanvas(this.histCanvas, width, H);
    const left = 34, bottom = 18, top = 8;
    const plotW = width - left - 4, plotH = H - top - bottom;
    let max = 1;
    for (const b of BACKENDS) for (const n of this.hist[b]) max = Math.max(max, n);
    const slot = plotW / NBINS;
    const bw = Math.max(1, (slot - 2) / BACKENDS.length);
    BACKENDS.forEach((b, k) => {
      ctx.fillStyle = BACKEND_COLORS[b];
      this.hist[b].forEach((n, i) => {
        if (!n) return;
        const h = Math.max(1, (n / max) * plotH);
        ctx.fillRect(left + i * slot + 1 + k * bw, top + plotH - h, bw, h);
      });
    });
    ctx.strokeStyle = c.line;
    ctx.beginPath(); ctx.moveTo(left, top + plotH + 0.5); ctx.lineTo(width, top + plotH + 0.5); ctx.stroke();
    ctx.fillStyle = c.muted; ctx.font = '11px ui-monospace, monospace'; ctx.textBaseline = 'top';
    let freeFrom = -Infinity;   // a label that would overlap the one before it is left out
    for (let e = MIN_EXP; e <= MAX_EXP; e++) {
      const x = left + (e - MIN_EXP) * BINS_PER_DECADE * slot;
      const label = fmtDecade(10 ** e);   // the last one ends at the right edge, not past it
      const w = ctx.measureText(label).width;
      const at = Math.min(x, width - w - 1);
      if (at < freeFrom) continue;
      ctx.fillText(label, at, top + plotH + 3);
      freeFrom = at + w + 4;
    }
    ctx.textBaseline = 'top';
    ctx.fillText(String(max), 2, top);
    ctx.fillText('0', 2, top + plotH - 11);
    const parts = [];
    for (const b of BACKENDS) {
      const s = this.samples[b];
      if (!s.length) continue;
      const sorted = s.slice().sort((x, y) => x - y);
      const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
      const total = this.hist[b].reduce((a, n) => a + n, 0);
      parts.push(`${b}: ${total} chunk${total === 1 ? '' : 's'}, median ${fmtUs(q(0.5))}, p99 ${fmtUs(q(0.99))}`);
    }
    this.histSummary.textContent = parts.length ? parts.join(' · ')
      : 'no echoed chunk yet: type into a connection, or add clients';
  }

  drawBudget() {
    const c = colors();
    const width = Math.max(200, this.budgetWidth());
    const ctx = fitCanvas(this.budgetCanvas, width, H);
    const mid = Math.round(H / 2) + 0.5;
    const span = H / 2 - 12;
    const y = (us) => (Math.log10(Math.max(1, us)) / MAX_EXP) * span;
    const n = this.budget.length;
    const slot = (width - 4) / BUDGET_N;
    const bw = Math.max(1, slot - 1);
    this.budget.forEach((it, i) => {
      const x = 2 + (BUDGET_N - n + i) * slot;
      ctx.fillStyle = c.read; const hw = y(it.wait); ctx.fillRect(x, mid - hw, bw, hw);
      ctx.fillStyle = c.write; const hh = y(it.handlers); ctx.fillRect(x, mid, bw, hh);
    });
    ctx.strokeStyle = c.line;
    ctx.beginPath(); ctx.moveTo(0, mid); ctx.lineTo(width, mid); ctx.stroke();
    ctx.font = '10px ui-monospace, monospace'; ctx.fillStyle = c.muted;
    ctx.textBaseline = 'top'; ctx.fillText('↑ in the wait call (log µs)', 4, 2);
    ctx.textBaseline = 'bottom'; ctx.fillText('↓ in handlers (log µs)', 4, H - 2);
    let w = 0, hsum = 0, worst = 0;
    for (const it of this.budget) { w += it.wait; hsum += it.handlers; worst = Math.max(worst, it.handlers); }
    const tot = w + hsum || 1;
    const slow = this.slowMotion ? '; slow motion is on: its iterations are not timed (the loop sleeps between them)' : '';
    this.budgetSummary.textContent = n
      ? `last ${n} iterations: ${fmtUs(w)} in wait calls (${((100 * w) / tot).toFixed(1)}%), ` +
        `${fmtUs(hsum)} in handlers (${((100 * hsum) / tot).toFixed(1)}%); slowest handler pass ${fmtUs(worst)}${slow}`
      : `no complete iteration yet (paused, stepped or interrupted iterations are left out)${slow}`;
  }
}
