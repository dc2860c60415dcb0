// The bounded ring of the events a model applied last, and the latest notices among them.

const MAX_NOTICES = 5;   // the latest error/flaw events, shown above the log

export class RecentEvents {
  constructor(size = 5000) {
    this.size = size;
    this.ring = new Array(size);
    this.clear();
  }

  clear() {
    this.length = 0;
    this.head = 0;
    this.notices = [];
  }

  /** Keep `ev` in the ring, and among the notices if it is one. */
  remember(ev) {
    this.ring[this.head] = ev;
    this.head = (this.head + 1) % this.size;
    if (this.length < this.size) this.length++;
    if (ev.kind === 'error' || ev.kind === 'flaw') {
      this.notices.push(ev);
      if (this.notices.length > MAX_NOTICES) this.notices.shift();
    }
  }

  /** The last n events kept, oldest first. */
  last(n = this.length) {
    const count = Math.min(n, this.length);
    const out = new Array(count);
    let i = (this.head - count + this.size) % this.size;
    for (let k = 0; k < count; k++) { out[k] = this.ring[i]; i = (i + 1) % this.size; }
    return out;
  }
}
