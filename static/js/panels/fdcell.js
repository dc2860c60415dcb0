// One cell of the fd grid, drawn on canvas: what it is drawn from (`cellKey`: equal keys, the
// same pixels) and the drawing itself. The grid (backend.js) places the cells and redraws the
// ones whose key changed.
import { colors } from '../canvas.js';
import { peerColor, ui } from '../ui.js';

export const STRIPES = [['in', 'read'], ['out', 'write'], ['pri', 'except']];
const MONO_WIDTH = 0.62;   // a monospace digit's advance, in font sizes (ui-monospace, DejaVu Sans Mono: 0.60)
export const LABEL_FONT = 'ui-monospace, monospace';

/** Returned bits that are neither readable nor writable: the kernel's hang-up and errors. */
export const HANGUP_BITS = ['hup', 'err', 'rdhup', 'nval'];

/** Where a grid cell of `s` px writes its fd `label`, and in what font size: clear of the
 *  EPOLLET corner (a triangle over the top-left third, `et`) and of the peer's dot (`dot`),
 *  the font shrunk to fit between them (cut at the cell's edge, fd 140 read as 146). */
export function labelFit(s, label, et, dot) {
  const left = et ? Math.ceil(s / 3) : 3;
  const right = dot ? 2 * Math.max(2, Math.floor(s / 8)) + 4 : 2;
  const fits = Math.floor((s - left - right) / (MONO_WIDTH * label.length));
  return { left, right, px: Math.max(6, Math.min(12, Math.floor(s / 3), fits)) };
}

/** Everything paintCell draws a cell from (the layout aside): equal keys, the same pixels. */
export function cellKey(model, fd) {
  const reg = model.regs.get(fd);
  if (!reg) return '';
  const conn = model.conns.get(fd);
  const dim = ui.spotlight !== null && fd !== ui.spotlight;
  let bits = '';
  for (const b of reg.bits) bits += `${b},`;
  return `${reg.role}|${bits}|${reg.armed}|${dim}|${conn ? `${conn.paused}|${conn.peer}|${conn.generated}|${ui.isMine(conn.peer)}` : ''}`;
}

/** The height of one interest stripe in a cell of `s` px. */
export function stripeHeight(s) { return Math.max(1, Math.floor(s / (s >= 24 ? 5 : 3))); }

/** The static part of one cell, at `box` ({x, y, s}: its corner and drawn size) in a grid of
 *  `pitch` px: role colour, interest stripes, EPOLLET corner, one-shot border, paused bar,
 *  the peer's dot and the fd's label. */
export function paintCell(ctx, model, box, pitch, fd) {
  const c = colors();
  const { x, y, s } = box;
  const reg = model.regs.get(fd);
  ctx.clearRect(x, y, pitch, pitch);
  if (!reg) return;
  const dim = ui.spotlight !== null && fd !== ui.spotlight ? 0.18 : 1;
  ctx.globalAlpha = (reg.bits.has('oneshot') && !reg.armed ? 0.35 : 1) * dim;
  ctx.fillStyle = reg.role === 'control' ? c.control
    : reg.role === 'tcp_listener' || reg.role === 'udp' ? c.listener : c.conn;
  ctx.fillRect(x, y, s, s);
  const stripe = stripeHeight(s);
  STRIPES.forEach(([bit, key], k) => {
    if (reg.bits.has(bit)) { ctx.fillStyle = c[key]; ctx.fillRect(x, y + s - stripe * (k + 1), s, stripe); }
  });
  if (reg.bits.has('et') && s >= 6) {
    ctx.fillStyle = '#ffffff';
    ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + s / 3, y); ctx.lineTo(x, y + s / 3); ctx.fill();
  }
  if (reg.bits.has('oneshot') && s >= 8) {
    ctx.strokeStyle = '#ffffff'; ctx.setLineDash([2, 2]); ctx.lineWidth = 1;
    ctx.strokeRect(x + 0.5, y + 0.5, s - 1, s - 1); ctx.setLineDash([]);
  }
  const conn = model.conns.get(fd);
  if (conn && conn.paused) { ctx.fillStyle = c.danger; ctx.fillRect(x, y, s, Math.max(2, stripe)); }
  // the peer's colour: a round dot in the top-right corner, ringed in the page's dark (its
  // hues include the ready, interest and except colours, which are drawn square: stripes).
  // Not for the load generator's clients: a thousand idle ones in every hue read as a
  // thousand fds ready; the connection list tells them apart
  if (conn && conn.peer && !conn.generated && s >= 8) {
    const r = Math.max(2, Math.floor(s / 8));
    const cx = x + s - r - 2;
    const cy = y + r + 2;
    ctx.fillStyle = '#0b0d11';
    ctx.beginPath(); ctx.arc(cx, cy, r + 1, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = peerColor(conn.peer);
    ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.fill();
  }
  if (conn && conn.peer && s >= 8) {
    if (ui.isMine(conn.peer)) {
      ctx.strokeStyle = peerColor(conn.peer); ctx.lineWidth = 2;
      ctx.strokeRect(x + 1, y + 1, s - 2, s - 2);
    }
  }
  ctx.globalAlpha = 1;
  if (s >= 24) {
    const label = String(fd);
    const { left, px } = labelFit(s, label, reg.bits.has('et'), !!(conn && conn.peer && !conn.generated));
    ctx.font = `${px}px ${LABEL_FONT}`;
    ctx.textBaseline = 'top';
    ctx.fillStyle = reg.role === 'connection' ? c.text : '#0b0d11';
    ctx.globalAlpha = dim;
    ctx.fillText(label, x + left, y + 3);
    ctx.globalAlpha = 1;
  }
}
