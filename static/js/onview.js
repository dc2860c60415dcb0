// Which panels are on the screen. A panel scrolled out of view is painted at most every
// OFF_VIEW_MS; on view, at its own rate. Painting what nobody can see
// cost the page a third of its main thread at 10,000 connections: a canvas redrawn and
// re-uploaded, log rows laid out, at every frame, below the fold (docs/BENCHMARKS-history.md, session 30).
// Off view it still follows (a screen reader reads it; a test reads it), only less often. No
// margin: at 1400 x 1000 the queues and charts start 90 px below the fold, and a margin that
// counted them on view kept most of the cost. Scrolled into view, a panel paints at the next
// frame after the observer says so (its content up to OFF_VIEW_MS old for a frame or two).

export const OFF_VIEW_MS = 500;

export class OnView {
  constructor() {
    this.off = new Set();          // panels (elements) out of view
    this.paintedAt = new Map();    // element -> when it last painted while out of view
    this.skipped = {};             // element id -> paints left out (for tests and the bench)
    this.observer = typeof IntersectionObserver === 'function'
      ? new IntersectionObserver((entries) => this.seen(entries))
      : null;
  }

  watch(el) {
    if (el && this.observer) this.observer.observe(el);
  }

  seen(entries) {
    for (const e of entries) {
      if (e.isIntersecting) this.off.delete(e.target);
      else this.off.add(e.target);
    }
  }

  /** Every panel out of view paints at the next frame: a snapshot's content shown everywhere
   *  at once, not up to OFF_VIEW_MS later, moving what is below a panel after a first click. */
  dueAll() {
    this.paintedAt.clear();
  }

  /** Whether the panel in `el` paints this frame (the answer true is its paint counted). */
  due(el, now) {
    if (!this.off.has(el)) return true;
    const at = this.paintedAt.get(el);
    if (at !== undefined && now - at < OFF_VIEW_MS) {
      this.skipped[el.id] = (this.skipped[el.id] || 0) + 1;
      return false;
    }
    this.paintedAt.set(el, now);
    return true;
  }
}
