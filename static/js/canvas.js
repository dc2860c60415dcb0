// Canvas helpers: size a canvas for devicePixelRatio and read theme colours from CSS.

/** Resize `canvas` to cssWidth x cssHeight CSS pixels at the device pixel ratio; returns a scaled 2D context. */
export function fitCanvas(canvas, cssWidth, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cssWidth * dpr));
  const h = Math.max(1, Math.round(cssHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    canvas.style.height = `${cssHeight}px`;  // CSSOM, allowed under style-src 'self'
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  return ctx;
}

/** One colour per backend, in every chart. */
export const BACKEND_COLORS = { select: '#ffab40', poll: '#c58cff', epoll: '#7cff9b' };

let palette = null;

/** Theme colours from the CSS custom properties (read once). */
export function colors() {
  if (palette) return palette;
  const cs = getComputedStyle(document.documentElement);
  const v = (name, dflt) => (cs.getPropertyValue(name) || '').trim() || dflt;
  palette = {
    bg: v('--bg', '#12151b'),
    panel: v('--panel-2', '#222835'),
    line: v('--line', '#2e3646'),
    text: v('--text', '#dfe5ee'),
    muted: v('--muted', '#8d97a8'),
    read: v('--read', '#4aa3ff'),
    write: v('--write', '#ffab40'),
    except: v('--except', '#c58cff'),
    ready: v('--ready', '#7cff9b'),
    danger: v('--danger', '#ff5d5d'),
    control: v('--control', '#ff79c6'),
    listener: v('--listener', '#2ed3b7'),
    conn: '#3b4456',
  };
  return palette;
}

/** Track an element's content width; calls onResize(width) and returns the current width getter. */
export function watchWidth(el, onResize) {
  let width = el.clientWidth;
  const ro = new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w !== width) { width = w; onResize(w); }
  });
  ro.observe(el);
  return () => width || el.clientWidth;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}
