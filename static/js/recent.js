// The bounded ring of the events a model applied last, and the latest notices among them.

const MAX_NOTICES = 5;   // the latest error/flaw events, shown above the log
const MAX_SNAPSHOTS = 20;   // snapshot places kept (each reconnect makes one)

export class RecentEvents {
  constructor(size = 5000) {
    this.size = size;
    this.ring = new Array(size);
    this.clear();
  }

  clear() {
    this.length = 0;
    this.head = 0;
    this.count = 0;        // events ever kept (since the last clear)
    this.snapshots = [];   // {at: count then, seq}: where a snapshot came between two events
    this.notices = [];
  }

  /** A snapshot was applied after the events kept so far (a reconnect): a log listed from
   *  the ring says so there, as the live log did, and not that the events between were lost.
   *  `unknown`: a replayed file without a snapshot line (its state made up: say so). */
  markSnapshot(seq, unknown = false) {
    this.snapshots.push({ at: this.count, seq, unknown });
    const oldest = this.count - this.length;
    while (this.snapshots.length > MAX_SNAPSHOTS || (this.snapshots.length && this.snapshots[0].at < oldest)) {
      this.snapshots.shift();
    }
  }

  /** The snapshots among the last n events kept: {index in last(n), seq, unknown}. */
  snapshotsIn(n = this.length) {
    const first = this.count - Math.min(n, this.length);
    return this.snapshots.filter((s) => s.at >= first)
      .map((s) => ({ index: s.at - first, seq: s.seq, unknown: s.unknown }));
  }

  /** Keep `ev` in the ring, and among the notices if it is one. */
  remember(ev) {
    this.count++;
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
