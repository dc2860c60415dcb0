// Per-connection queue bars: fill on recv, drain on send; red while reading is paused (backpressure).
import { colors, fitCanvas, fmtBytes, watchWidth } from '../canvas.js';
import { peerColor, ui } from '../ui.js';

const HEIGHT = 190;
const TOP = 16;
const BOTTOM = 18;
const MAX_BARS = 64;
const PEAK_MS = 1500;
const DEFAULT_HIGH_WATER = 1 << 20;
const DEFAULT_LOW_WATER = 256 << 10;
const backpressure = (high, low) => ` Bars fill as bytes arrive and drain as they are sent. Above the high-water mark `
  + `(${fmtBytes(high)}) the server stops reading that connection (backpressure, drawn red) until it drains down `
  + `to the low-water mark (${fmtBytes(low)}).`;
/** What the queue holds depends on the write strategy (the Write control). */
const CAPTIONS = {
  queued: 'Queued writes: every received chunk waits in its connection\'s queue until the socket is writable and '
    + 'the bytes are sent back. (UDP replies are sent at once: a datagram is never sent in part.)',
  eager: 'Eager writes: a received chunk is sent back at once; only what the kernel did not take waits in the '
    + 'queue, until the socket is writable again. Mostly empty, then: it fills when a client reads slowly.',
};

export class QueuesPanel {
  constructor(root, { replay = false } = {}) {
    this.replay = replay;
    this.canvas = root.querySelector('#queue-canvas');
    this.summaryEl = root.querySelector('#queue-summary');
    this.captionEl = root.querySelector('#queue-caption');
    this.shownCaption = null;
    this.shown = new Map();   // fd -> displayed (eased) pending bytes
    this.forced = true;
    this.width = watchWidth(root.querySelector('#queue-canvas-wrap'), () => { this.forced = true; });
    this.pickedAt = 0;
    this.picked = [];
  }

  pick(model, now) {
    if (ui.spotlight !== null) {
      const c = model.conns.get(ui.spotlight);
      return c ? [c] : [];
    }
    if (model.conns.size <= MAX_BARS) return [...model.conns.values()].sort((a, b) => a.fd - b.fd);
    // busiest first: paused, then pending bytes, then recent activity; shown in fd order.
    // One pass keeping the best MAX_BARS (ties keep map order, as a stable sort would): with
    // thousands of idle connections almost none gets past the first comparison.
    const cmp = (a, b) => (b.paused - a.paused) || (b.pending - a.pending) || (b.activeAt - a.activeAt);
    const top = [];
    for (const c of model.conns.values()) {
      if (top.length === MAX_BARS) {
        if (cmp(c, top[MAX_BARS - 1]) >= 0) continue;   // not better than the worst kept
        top.pop();
      }
      let i = top.length;
      while (i > 0 && cmp(c, top[i - 1]) < 0) i--;
      top.splice(i, 0, c);
    }
    return top.sort((a, b) => a.fd - b.fd);
  }

  paint(model, now) {
    const write = model.backend.write || 'queued';
    const limits = model.limits || {};
    const high = limits.high_water ?? DEFAULT_HIGH_WATER, low = limits.low_water ?? DEFAULT_LOW_WATER;
    const captionKey = `${write}/${high}/${low}`;
    if (captionKey !== this.shownCaption) {
      this.shownCaption = captionKey;
      this.captionEl.textContent = (CAPTIONS[write] || CAPTIONS.queued) + backpressure(high, low);
    }
    let dirty = model.take('queues');
    if (this.uiVersion !== ui.version) { this.uiVersion = ui.version; dirty = true; }
    if (!dirty && !this.animating && !this.forced) return;
    this.forced = false;
    if (dirty) this.pendingPick = true;
    let picked = false;
    if (this.pendingPick && now - this.pickedAt > (model.conns.size > 200 ? 500 : 0)) {
      this.pendingPick = false;
      this.picked = this.pick(model, now);
      this.pickedAt = now;
      picked = true;
    } else if (this.pendingPick) {
      this.forced = true;  // come back to re-pick (and refresh the summary) once the interval has passed
    }
    const c = colors();
    const width = Math.max(100, this.width());
    const ctx = fitCanvas(this.canvas, width, HEIGHT);
    const top = Math.log2(1 + high * 2);
    const plotH = HEIGHT - TOP - BOTTOM;
    const yOf = (bytes) => HEIGHT - BOTTOM - (bytes > 0 ? Math.min(1, Math.log2(1 + bytes) / top) : 0) * plotH;
    const bars = this.picked;
    ctx.font = '10px ui-monospace, monospace';
    // the scale's labels keep a gutter of their own at the right: drawn over the last bars,
    // they hid a full bar's top
    const scale = [[1024, '1 KiB', c.line], [65536, '64 KiB', c.line], [high, `high-water ${fmtBytes(high)}`, c.danger]];
    const gutter = Math.ceil(Math.max(...scale.map(([, label]) => ctx.measureText(label).width))) + 6;
    const slot = bars.length ? Math.min(44, Math.max(6, Math.floor((width - gutter) / bars.length))) : 44;
    const barW = Math.max(3, slot - Math.max(1, Math.floor(slot / 5)));
    // fd labels: under every bar when there is room, else under every k-th one (none at all
    // left a narrow page's bars nameless)
    const labelEvery = Math.ceil(22 / slot);
    this.drawn = { width, gutter, slot, bars: bars.length, labelEvery };
    let animating = false;
    const seen = new Set();
    bars.forEach((conn, i) => {
      seen.add(conn.fd);
      const prev = this.shown.get(conn.fd) ?? 0;
      let val = prev + (conn.pending - prev) * 0.35;
      if (Math.abs(val - conn.pending) < 1) val = conn.pending; else animating = true;
      this.shown.set(conn.fd, val);
      const x = i * slot;
      const y = yOf(val);
      ctx.fillStyle = c.panel;
      ctx.fillRect(x, TOP, barW, plotH);
      ctx.fillStyle = conn.paused ? c.danger : c.write;
      ctx.fillRect(x, y, barW, HEIGHT - BOTTOM - y);
      const age = now - conn.peakAt;
      if (conn.peak > conn.pending && age < PEAK_MS) {
        animating = true;
        ctx.globalAlpha = 1 - age / PEAK_MS;
        ctx.fillStyle = c.text;
        ctx.fillRect(x, yOf(conn.peak) - 1, barW, 2);
        ctx.globalAlpha = 1;
      }
      ctx.fillStyle = peerColor(conn.peer);   // the peer's colour, the same in every panel
      ctx.fillRect(x, HEIGHT - BOTTOM, barW, 2);
      ctx.fillStyle = ui.isMine(conn.peer) ? c.text : c.muted;
      ctx.textBaseline = 'top';
      if (i % labelEvery === 0 || ui.isMine(conn.peer)) {
        ctx.fillText(ui.isMine(conn.peer) ? `${conn.fd}★` : String(conn.fd), x, HEIGHT - BOTTOM + 3);
      }
      ctx.textBaseline = 'bottom';
      if (slot >= 22 && conn.depth > 0) { ctx.fillStyle = c.text; ctx.fillText(String(conn.depth), x, Math.max(TOP + 10, y - 1)); }
      if (conn.paused && slot >= 30) { ctx.fillStyle = c.danger; ctx.fillText('paused', x, TOP); }
    });
    // scale lines (drawn over the bars): 1 KiB, 64 KiB, high-water
    ctx.font = '10px ui-monospace, monospace';
    ctx.textBaseline = 'bottom';
    for (const [bytes, label, color] of scale) {
      const y = Math.round(yOf(bytes)) + 0.5;
      ctx.strokeStyle = color; ctx.lineWidth = 1; ctx.setLineDash(color === c.danger ? [4, 3] : [2, 4]);
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = color === c.danger ? c.danger : c.muted;
      ctx.fillText(label, width - ctx.measureText(label).width - 2, y - 1);
    }
    for (const fd of this.shown.keys()) if (!seen.has(fd)) this.shown.delete(fd);
    if (!bars.length) {
      ctx.fillStyle = c.muted; ctx.font = '13px system-ui, sans-serif'; ctx.textBaseline = 'middle';
      // between the 64 KiB and the high-water lines, clear of both (it sat on the high-water one)
      const hint = this.replay ? 'no connections at this point of the recording'
        : 'no connections: connect with nc, or press "Add clients"';
      ctx.fillText(hint, 4, Math.round((yOf(65536) + yOf(high)) / 2));
    }
    this.animating = animating;
    if (picked) this.summary(model, bars.length);
  }

  summary(model, shown) {
    let pending = 0, chunks = 0, paused = 0;
    for (const c of model.conns.values()) { pending += c.pending; chunks += c.depth; if (c.paused) paused++; }
    const n = model.conns.size;
    const which = ui.spotlight !== null ? `spotlight on fd ${ui.spotlight} (${n} connections in all)` : n > shown ? `showing the ${shown} busiest of ${n} connections` : `${n} connection${n === 1 ? '' : 's'}`;
    this.summaryEl.textContent = `${which} · ${chunks} chunk${chunks === 1 ? '' : 's'}, ${fmtBytes(pending)} queued in all · ` +
      `${paused} paused by backpressure · bar height is log-scaled; the white tick is the recent peak, the number is the chunk count`;
  }
}
