// The fd grid (canvas, one cell per registered fd) and the backend's own vocabulary as text.
import { colors, fitCanvas, watchWidth } from '../canvas.js';
import { ui } from '../ui.js';
import { CAPTIONS, flagText, toBits, toNative } from '../vocab.js';
import { cellKey, HANGUP_BITS, paintCell, STRIPES, stripeHeight } from './fdcell.js';
import { setBlocks } from './sets.js';

const FLASH_MS = 900;
const MAX_HEIGHT = 420;
const BIG_GRID_FDS = 1000;
const BIG_GRID_MS = 33;
const ROLE_NAMES = { control: 'control fd (wake-up socketpair)', tcp_listener: 'TCP listener', udp: 'UDP socket', connection: 'connection' };
const LEGEND = [
  ['control', 'control fd'], ['listener', 'listener / UDP'], ['conn', 'connection'],
  ['read', 'read interest (in)'], ['write', 'write interest (out)'], ['except', 'except / PRI'],
  ['ready', 'ready: came back from the last wait, drawn over the interest stripe of its side'],
  ['hangup', 'red slash: a hang-up or error came back (HUP, ERR, RDHUP, NVAL)'],
  ['flash', 'outline: came back ready within the last second (fades)'],
  ['et', 'edge-triggered (EPOLLET)'], ['oneshot', 'one-shot (dim: disarmed)'],
  ['paused', 'reading paused'],
  ['peer', "round corner dot: the peer's own colour (the same in every panel), for a connection not made by Add clients"],
];
/** Marks only epoll has: their legend entries are hidden under select and poll. */
const EPOLL_ONLY = new Set(['et', 'oneshot']);
/** Bits select cannot return (its three sets have no hang-up or error): not listed for it. */
const NOT_SELECT = new Set(['hangup']);

function sameList(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first position where two sorted fd lists differ (the shorter one's length if one is
 *  the other's start). */
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

export class BackendPanel {
  constructor(root) {
    this.canvas = root.querySelector('#fd-canvas');
    this.wrap = root.querySelector('#fd-canvas-wrap');
    this.tooltip = root.querySelector('#fd-tooltip');
    this.spoken = root.querySelector('#fd-grid-live');   // a live region from the start: read out
    this.nameEl = root.querySelector('#backend-name');
    this.captionEl = root.querySelector('#backend-caption');
    this.setsEl = root.querySelector('#backend-sets');
    this.fds = [];
    this.layout = { cell: 20, cols: 1, gap: 2 };
    this.index = new Map();
    this.keys = new Map();     // fd -> what its cell was drawn from (cellKey)
    this.recheck = false;      // the same fds, registrations replaced: redraw the cells that differ
    // fds came or went: the cells from this position on moved (the ones before kept their
    // place); `drawnLength` cells are on the layer now
    this.moveFrom = Infinity;
    this.drawnLength = 0;
    this.cellsDrawn = 0;       // (window.__muxscope.backendPanel, for tests)
    this.layer = null;
    this.shownBackend = null;
    this.textAt = 0;
    this.drawnAt = -Infinity;
    this.forced = true;
    this.width = watchWidth(this.wrap, () => { this.forced = true; });
    this.buildLegend(root.querySelector('#fd-legend'));
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => this.hideTip());
    // the keyboard's way to the tooltip: focus the grid, arrows move from fd to fd
    this.canvas.addEventListener('keydown', (e) => this.key(e));
    this.canvas.addEventListener('blur', () => this.hideTip());
  }

  buildLegend(ul) {
    this.legendItems = [];   // [li, its mark]: the marks some backends cannot show
    this.legendFor = null;
    for (const [cls, text] of LEGEND) {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = `sw ${cls}`;
      li.append(sw, document.createTextNode(text));
      ul.append(li);
      if (EPOLL_ONLY.has(cls) || NOT_SELECT.has(cls)) this.legendItems.push([li, cls]);
    }
  }

  /** The legend lists epoll's marks (EPOLLET, one-shot: the cells, registrations now) only
   *  while the grid is epoll's, and the hang-up mark (the overlay: the last wait's flags)
   *  unless select made that wait: after a switch to select, poll's or epoll's last wait, its
   *  hang-ups included, is still drawn until the next one (a paused loop: for good). */
  syncLegend(model) {
    const name = (model.backend && model.backend.name) || 'epoll';   // (none yet: the default)
    const made = model.lastWait && model.lastWait.madeBy;
    const waited = (made && made.name) || name;
    const key = `${name}/${waited}`;
    if (key === this.legendFor) return;
    this.legendFor = key;
    for (const [li, cls] of this.legendItems) {
      li.hidden = (EPOLL_ONLY.has(cls) && name !== 'epoll') || (NOT_SELECT.has(cls) && waited === 'select');
    }
  }

  /** Paint if dirty or still animating. */
  paint(model, now) {
    // thousands of cells: the grid (a large canvas, copied to the compositor on every redraw)
    // follows at most every BIG_GRID_MS; flags stay set meanwhile
    if (model === this.model && model.regs.size > BIG_GRID_FDS && now - this.drawnAt < BIG_GRID_MS) return;
    this.syncLegend(model);
    let dirty = model.take('backend');
    if (this.uiVersion !== ui.version) {      // spotlight or "mine" changed: every cell redraws
      this.uiVersion = ui.version;
      this.fdsChanged = true;
      dirty = true;
    }
    const animating = this.animating(model);
    if (!dirty && !animating && !this.forced) return;
    this.forced = false;
    const otherModel = model !== this.model;   // live <-> a view of the past
    this.model = model;
    this.drawnAt = now;
    if (model.regsChanged) {
      const fds = [...model.regs.keys()].sort((a, b) => a - b);
      // a resync (or a view of the past) replaces every registration, mostly with the same fds:
      // 10,000 cells redrawn took 60-110 ms a resync, and the page under its 30 frames/s. So
      // the cells whose look changed are redrawn (recheck), and only those.
      const replaced = model.regsReplaced || otherModel;
      model.regsChanged = model.regsReplaced = false;
      if (sameList(fds, this.fds)) this.recheck = true;
      else {
        // one connection more or less at 10,000 redrew every cell (25-43 ms, more on a busy
        // CPU): now only those from where the sorted lists part (and, if every registration
        // was replaced, those before whose look changed)
        this.moveFrom = Math.min(this.moveFrom, firstDifference(this.fds, fds));
        this.fds = fds;
        if (replaced) this.recheck = true;
      }
    }
    const name = model.backend.name || '–';
    if (name !== this.shownBackend) {
      this.shownBackend = name;
      this.nameEl.textContent = name;
      this.captionEl.textContent = CAPTIONS[name] || '';
    }
    this.draw(model, now);
    // the text follows the syscall line's wait whenever that line changes (it is throttled
    // itself), and other changes at most every 250 ms with many fds
    const newWait = model.shownWait !== this.textWait;
    if (dirty && (newWait || now - this.textAt > 250 || model.regs.size < 200)) {
      this.textAt = now;
      this.textWait = model.shownWait;
      this.renderSets(model);
    } else if (dirty) {
      model.mark('backend');  // text is throttled with many fds: come back for it
    }
  }

  animating(model) {
    return model.flashes.size > 0;  // drawOverlay drops flashes once they have faded
  }

  /** Lay out the grid; the static layer (roles, interest, marks) is cached and redrawn per changed cell. */
  draw(model, now) {
    const width = Math.max(100, this.width());
    const n = Math.max(1, this.fds.length);
    let cell = Math.floor(Math.sqrt((width * MAX_HEIGHT) / n));
    cell = Math.max(4, Math.min(46, cell));
    const cols = Math.max(1, Math.floor(width / cell));
    const rows = Math.ceil(this.fds.length / cols);
    const height = Math.max(cell + 4, rows * cell + 2);
    const L = this.layout;
    this.layout = { cell, cols, width, height, gap: cell >= 10 ? 2 : 1 };
    const ctx = fitCanvas(this.canvas, width, height);
    const dpr = window.devicePixelRatio || 1;
    if (!this.layer) this.layer = document.createElement('canvas');
    const relayout = this.fdsChanged || L.cell !== cell || L.cols !== cols ||
      this.layer.width !== this.canvas.width || this.layer.height !== this.canvas.height;
    if (relayout) {
      this.fdsChanged = false;
      this.moveFrom = Infinity;
      this.index = new Map(this.fds.map((fd, i) => [fd, i]));
      this.layer.width = this.canvas.width;
      this.layer.height = this.canvas.height;
      const lctx = this.layer.getContext('2d');
      lctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      lctx.clearRect(0, 0, width, height);
      for (let i = 0; i < this.fds.length; i++) this.drawCell(lctx, model, i, this.fds[i]);
      model.touched.clear();
    } else if (model.touched.size || this.recheck || this.moveFrom !== Infinity) {
      const lctx = this.layer.getContext('2d');
      lctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (this.moveFrom !== Infinity) {   // the same grid: redraw (or clear) the moved cells
        this.index = new Map(this.fds.map((fd, i) => [fd, i]));
        const end = Math.max(this.fds.length, this.drawnLength);
        for (let i = this.moveFrom; i < end; i++) {
          if (i < this.fds.length) this.drawCell(lctx, model, i, this.fds[i]);
          else { const { x, y } = this.cellBox(i); lctx.clearRect(x, y, cell, cell); }
        }
        this.moveFrom = Infinity;
      }
      if (this.recheck) {
        for (let i = 0; i < this.fds.length; i++) {
          const fd = this.fds[i];
          if (this.keys.get(fd) !== cellKey(model, fd)) this.drawCell(lctx, model, i, fd);
        }
      }
      for (const fd of model.touched) {
        const i = this.index.get(fd);
        if (i !== undefined) this.drawCell(lctx, model, i, fd);
      }
      model.touched.clear();
    }
    this.recheck = false;
    this.drawnLength = this.fds.length;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.layer, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.drawOverlay(ctx, model, now);
    if (!this.fds.length) {
      const c = colors();
      ctx.fillStyle = c.muted; ctx.font = '13px system-ui, sans-serif'; ctx.textBaseline = 'top';
      ctx.fillText(model.shutDown ? 'no fds registered: the engine shut down' : 'no fds registered yet', 4, 4);
    }
  }

  cellBox(i) {
    const { cell, cols, gap } = this.layout;
    return { x: (i % cols) * cell, y: Math.floor(i / cols) * cell, s: cell - gap };
  }

  /** One cell of the layer, redrawn (paintCell), and what it was drawn from kept. */
  drawCell(ctx, model, i, fd) {
    this.keys.set(fd, cellKey(model, fd));
    this.cellsDrawn++;
    paintCell(ctx, model, this.cellBox(i), this.layout.cell, fd);
  }

  /** What changes every wait: green stripes for what came back ready, and a fading outline. */
  drawOverlay(ctx, model, now) {
    const c = colors();
    for (const [fd, flags] of model.lastReady) {
      const i = this.index.get(fd);
      if (i === undefined) continue;
      const { x, y, s } = this.cellBox(i);
      const stripe = stripeHeight(s);
      const bits = toBits(flags);
      ctx.fillStyle = c.ready;
      // only the bits that came back: a reset of a fd watched for writing alone returns
      // POLLOUT|POLLERR|POLLHUP, which is no readable readiness
      STRIPES.forEach(([bit], k) => {
        if (bits.has(bit)) ctx.fillRect(x, y + s - stripe * (k + 1), s, stripe);
      });
      if (HANGUP_BITS.some((bit) => bits.has(bit))) {
        ctx.strokeStyle = c.danger; ctx.lineWidth = Math.max(1.5, s / 8);
        ctx.beginPath(); ctx.moveTo(x + 1, y + s - 1); ctx.lineTo(x + s - 1, y + 1); ctx.stroke();
      }
    }
    for (const [fd, t] of model.flashes) {
      const age = now - t;
      if (age >= FLASH_MS) { model.flashes.delete(fd); continue; }
      const i = this.index.get(fd);
      if (i === undefined) continue;
      const { x, y, s } = this.cellBox(i);
      ctx.globalAlpha = 1 - age / FLASH_MS;
      ctx.strokeStyle = c.ready; ctx.lineWidth = Math.max(1, Math.min(3, s / 8));
      ctx.strokeRect(x + 1, y + 1, s - 2, s - 2);
    }
    ctx.globalAlpha = 1;
  }

  renderSets(model) {
    const blocks = setBlocks(model);
    // the blocks are kept and only their changed texts rewritten (most waits change nothing here)
    if (!this.setNodes || this.setNodes.length !== blocks.length) {
      this.setNodes = blocks.map(() => {
        const div = document.createElement('div');
        div.className = 'set';
        const h = document.createElement('h3');
        const pre = document.createElement('pre');
        div.append(h, pre);
        return { div, h, pre, title: null, body: null };
      });
      this.setsEl.replaceChildren(...this.setNodes.map((n) => n.div));
    }
    blocks.forEach(([title, body], i) => {
      const n = this.setNodes[i];
      if (n.title !== title) { n.title = title; n.h.textContent = title; }
      if (n.body !== body) { n.body = body; n.pre.textContent = body; }
    });
  }

  hover(e) {
    if (!this.model) return;
    const rect = this.canvas.getBoundingClientRect();
    const { cell, cols } = this.layout;
    const col = Math.floor((e.clientX - rect.left) / cell);
    const row = Math.floor((e.clientY - rect.top) / cell);
    const fd = col < cols ? this.fds[row * cols + col] : undefined;
    this.showTip(fd, e.clientX - rect.left, e.clientY - rect.top, false);
  }

  /** Arrow keys, Home and End walk the registered fds in the grid's order. */
  key(e) {
    const { cols } = this.layout;
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, Home: -Infinity, End: Infinity };
    const step = steps[e.key];
    if (step === undefined || !this.model || !this.fds.length) return;
    e.preventDefault();
    // from none yet: Home, ArrowRight or ArrowDown go to the first fd, End or ArrowLeft the
    // last; an arrow with no cell that way stays put
    const last = this.fds.length - 1;
    const at = this.fds.indexOf(this.keyFd);
    let i;
    if (Math.abs(step) === Infinity) i = step > 0 ? last : 0;
    else if (at < 0) i = step > 0 ? 0 : last;
    else i = at + step >= 0 && at + step <= last ? at + step : at;
    this.keyFd = this.fds[i];
    const { cell } = this.layout;
    this.showTip(this.keyFd, (i % cols) * cell + cell / 2, Math.floor(i / cols) * cell + cell / 2, true);
  }

  hideTip() {
    this.tooltip.hidden = true;
  }

  /** The tooltip of one fd at (x, y) in the canvas; read aloud when the keyboard chose it. */
  showTip(fd, x, y, spoken) {
    const model = this.model;
    const reg = fd !== undefined ? model.regs.get(fd) : null;
    if (!reg) { this.hideTip(); return; }
    const conn = model.conns.get(fd);
    const ready = model.lastReady.get(fd);
    const lines = [`fd ${fd} — ${ROLE_NAMES[reg.role] || reg.role}`];
    if (conn && conn.peer) lines.push(`peer ${conn.peer}`);
    lines.push(`interest: ${flagText(toNative(reg.bits, model.backend.name || 'epoll'))}`);
    lines.push(`last wait: ${ready ? flagText(ready) : 'not ready'}`);
    if (conn) lines.push(`queue: ${conn.depth} chunk${conn.depth === 1 ? '' : 's'}, ${conn.pending} B${conn.paused ? ' — reading paused' : ''}`);
    if (spoken) this.spoken.textContent = lines.join('; ');
    this.tooltip.textContent = lines.join('\n');
    this.tooltip.hidden = false;
    const width = this.canvas.getBoundingClientRect().width;
    this.tooltip.style.left = `${Math.max(0, Math.min(x + 12, width - 200))}px`;
    this.tooltip.style.top = `${y + 14}px`;
  }
}
