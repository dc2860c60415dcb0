// Bounded history of the live stream for time travel: events grouped into wait iterations, with
// checkpoints (snapshot frames of the model) so any kept iteration can be rebuilt quickly.
import { toNative } from './vocab.js';

const CHECKPOINT_EVERY = 4000;   // events between checkpoints (taken at a wait)
// A view of the past holds the events from its iteration on, up to this many times the cap:
// under a load past the page's budget (21,000 events/s) the cap is about a second of events,
// and a parked view was pushed forward four times a second.
const HOLD_FACTOR = 3;

/** A snapshot frame ({type, state, seq, started_at}) equivalent to the model's current state. */
export function snapshotOf(model) {
  const name = model.backend.name || 'epoll';
  const regs = [];
  for (const r of model.regs.values()) regs.push({ fd: r.fd, role: r.role, interest: toNative(r.bits, name) });
  const conns = [];
  for (const c of model.conns.values()) {
    const reg = model.regs.get(c.fd);
    conns.push({
      fd: c.fd, peer: c.peer, interest: reg ? toNative(reg.bits, name) : [], queue_depth: c.depth,
      pending_bytes: c.pending, bytes_in: c.bytesIn, bytes_out: c.bytesOut, reading_paused: c.paused,
      generated: c.generated, active_at: c.activeAt,
    });
  }
  let lastWait = null;
  if (model.lastWait) {
    // as a server's state would say it, plus what only the page knows: the interest the wait
    // was made with (before its handlers changed it), and the backend that made it
    // (`beforeOrder` is not kept: its places are the live model's numbering, which a view
    // rebuilt from here does not share; a registration closed since goes last there)
    const { before, beforeOrder, madeBy, interestKnown, ...rest } = model.lastWait;
    lastWait = { ...rest, ready_list: (rest.ready_list || []).slice(), made_by: madeBy || null };
    if (interestKnown) lastWait.interest_before = [...before].map(([fd, bits]) => [fd, bits ? [...bits] : null]);
  }
  return {
    type: 'snapshot', seq: model.seq, started_at: model.startedAt, state_seq: model.stateSeq,
    approximate: model.approximate,
    pre_state_regs: model.preState && model.preState.toPairs(),
    state: {
      backend: { ...model.backend }, available: model.available.slice(), loop: model.loop,
      delay_ms: model.delayMs, flaw: model.flaw, listeners: { tcp: model.tcp && { ...model.tcp }, udp: model.udp && { ...model.udp } },
      limits: { ...model.limits }, control_fd: model.controlFd, registrations: regs, connections: conns,
      last_wait: lastWait, stats: model.stats ? { ...model.stats } : undefined,
    },
  };
}

/** Whether events[i] is a Step's `loop step` event: the iteration its wait makes starts
 * there (listed with the iteration before, a view of that one showed the loop stepping). */
export function stepBefore(events, i) {
  const ev = i >= 0 ? events[i] : undefined;
  return !!ev && ev.kind === 'loop' && ev.state === 'step';
}

export class History {
  /** Follows `model` (the live one) through its subscription. */
  constructor(model, { cap = 20000 } = {}) {
    this.model = model;
    this.cap = cap;
    this.clear();
    model.subscribe((ev, m) => this.onEvent(ev, m));
  }

  clear() {
    this.events = [];      // events[i] has absolute position offset + i
    this.offset = 0;
    this.waits = [];       // absolute positions of the kept iterations' starts: each `wait`
                           // event, or the `loop step` event just before it (a Step's wait)
    this.iterOffset = 0;   // iterations trimmed from the front
    this.checkpoints = []; // [{pos, frame}]: the state after events before pos
    this.holdPos = null;   // the start of the iteration on view, while the past is viewed
    this.generation = (this.generation || 0) + 1;
  }

  get end() { return this.offset + this.events.length; }
  /** Absolute number of the first kept iteration (1-based) and the last one; 0 when none. */
  get first() { return this.waits.length ? this.iterOffset + 1 : 0; }
  get last() { return this.iterOffset + this.waits.length; }

  onEvent(ev, m) {
    if (ev.kind === 'reset') {
      this.clear();
      this.checkpoints.push({ pos: 0, frame: snapshotOf(m) });
      return;
    }
    const pos = this.end;
    this.events.push(ev);
    if (ev.kind !== 'wait') return;
    this.waits.push(stepBefore(this.events, pos - 1 - this.offset) ? pos - 1 : pos);
    const lastCp = this.checkpoints[this.checkpoints.length - 1];
    const every = Math.max(CHECKPOINT_EVERY, 2 * (m.conns.size + m.regs.size));
    if (!lastCp || pos + 1 - lastCp.pos >= every) {
      this.checkpoints.push({ pos: pos + 1, frame: snapshotOf(m) });
      this.trim();
    }
  }

  /** A checkpoint here and now: after a resync, whose figures no replay of the kept events
   *  can rebuild (they are what the page was not shown). */
  checkpoint() {
    const cp = { pos: this.end, frame: snapshotOf(this.model), resync: true };
    const last = this.checkpoints[this.checkpoints.length - 1];
    if (last && last.pos === cp.pos) this.checkpoints[this.checkpoints.length - 1] = cp;
    else this.checkpoints.push(cp);
  }

  /** Drop old events down to the newest checkpoint that keeps at least `cap` events, and the
   *  iteration on view (`holdPos`), unless that would keep more than HOLD_FACTOR x cap. */
  trim() {
    if (this.events.length <= this.cap) return;
    let want = this.end - this.cap;
    if (this.holdPos !== null) want = Math.max(this.end - this.cap * HOLD_FACTOR, Math.min(want, this.holdPos));
    let k = -1;
    for (let i = 0; i < this.checkpoints.length; i++) if (this.checkpoints[i].pos <= want) k = i;
    if (k <= 0) return;
    const cut = this.checkpoints[k].pos;
    this.checkpoints.splice(0, k);
    this.events.splice(0, cut - this.offset);
    this.offset = cut;
    let w = 0;
    while (w < this.waits.length && this.waits[w] < cut) w++;
    this.waits.splice(0, w);
    this.iterOffset += w;
  }

  /** [start, end) absolute positions of iteration n (clamped to what is kept). */
  range(n) {
    const i = n - 1 - this.iterOffset;
    if (i < 0 || i >= this.waits.length) return null;
    return [this.waits[i], i + 1 < this.waits.length ? this.waits[i + 1] : this.end];
  }

  waitEvent(n) {
    const r = this.range(n);
    if (!r) return null;
    const first = this.events[r[0] - this.offset];
    return first.kind === 'wait' ? first : this.events[r[0] + 1 - this.offset] ?? null;
  }

  /** The iteration holding this seq (or the last one starting at or before it); 0 if none. */
  iterationForSeq(seq) {
    let lo = 0, hi = this.waits.length - 1, best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[this.waits[mid] - this.offset].seq <= seq) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best < 0 ? 0 : best + 1 + this.iterOffset;
  }

  /** The last iteration whose wait ts is <= ts (for timed playback). */
  iterationAtTs(ts, from) {
    let n = from;
    while (n < this.last) {
      const w = this.waitEvent(n + 1);
      if (!w || w.ts > ts) break;
      n++;
    }
    return n;
  }

  /**
   * Bring `view` (a Model) to the state at absolute position `end`.
   * `at` is where view stands now (same generation), or null: forward moves apply only the gap.
   */
  seek(view, end, at) {
    // a forward seek across a resync starts from its checkpoint (the events cannot rebuild
    // it); across an ordinary one it goes on from where it is (a checkpoint's UDP counts are
    // the last stats frame's, up to 0.5 s behind the events)
    const resynced = at && this.checkpoints.some((c) => c.resync && c.pos > at.pos && c.pos <= end);
    if (at && !resynced && at.generation === this.generation && at.pos <= end && at.pos >= this.offset) {
      for (let p = at.pos; p < end; p++) view.applyEvent(this.events[p - this.offset]);
      return { generation: this.generation, pos: end };
    }
    let cp = this.checkpoints[0];
    for (const c of this.checkpoints) if (c.pos <= end) cp = c;
    if (!cp) return null;
    // the model keeps references to the listener objects and counts datagrams into them
    const { tcp, udp } = cp.frame.state.listeners || {};
    const frame = { ...cp.frame, state: { ...cp.frame.state, listeners: { tcp: tcp && { ...tcp }, udp: udp && { ...udp } } } };
    const from = cp.pos - this.offset;
    view.rebuild(frame, this.events.slice(from, end - this.offset),
      this.events.slice(Math.max(0, from - view.recentEvents.size), from));
    return { generation: this.generation, pos: end };
  }

  /** Events of iteration n, for the code view and tests. */
  iterationEvents(n) {
    const r = this.range(n);
    return r ? this.events.slice(r[0] - this.offset, r[1] - this.offset) : [];
  }
}
