// The page model: websocket frames update it and mark panels dirty; nothing here touches the DOM.
import { APPLY } from './apply.js';
import { RecentEvents } from './recent.js';
import { sameBackend, toBits } from './vocab.js';
import {
  interestAtWait, regsAtWait, saveBefore, waitFromState,
} from './waitrecord.js';
import { PreState } from './prestate.js';

const PANELS = ['backend', 'syscall', 'queues', 'conns', 'controls', 'status', 'log'];

export class Model {
  constructor({ ringSize = 5000 } = {}) {
    this.recentEvents = new RecentEvents(ringSize);
    this.listeners = new Set();
    this.frames = { snapshot: 0, events: 0, stats: 0 };
    this.eventsApplied = 0;
    this.dirty = {};
    this.stateUnknown = false;   // the last snapshot was made up (applySnapshot)
    this.regSerial = 0;          // registrations made so far (setReg's `order`)
    this.reset();
  }

  reset() {
    this.backend = { name: null, trigger: 'level', oneshot: false, write: 'queued', fd: null, maxevents: null };
    this.available = [];
    this.loop = 'running';
    this.emptied = false;       // the last registration went (the engine's shutdown)
    this.delayMs = 0;
    this.pausedAt = null;       // the breakpoint hit the loop was paused at when the state was read
    this.flaw = undefined;      // the bug-zoo flaw on ('' none); undefined: the server does not say
    this.tcp = null;
    this.udp = null;
    this.udpFromStats = false;
    this.limits = {};
    this.controlFd = null;
    this.regs = new Map();      // fd -> {fd, role, bits: Set, armed}
    // fd -> {fd, peer, depth, pending, bytesIn, bytesOut, paused, lingering, generated, peak, peakAt, peakTs, activeAt}:
    // activeAt is the engine's ts of its last event (the queue panel's order among equals: a
    // page clock put a view of the past in another order than the page had live)
    this.conns = new Map();
    this.connsVersion = (this.connsVersion || 0) + 1;  // bumped when the set of conns (or a peer) changes
    this.lastWait = null;       // wait event + ready_list
    this.lastReady = new Map(); // fd -> native flags, for the latest wait
    this.shownWait = null;      // the wait the syscall line shows {backend, ready, regs} (set there)
    this.flashes = new Map();   // fd -> time of the last ready report (animation)
    this.seq = 0;
    this.startedAt = null;
    this.dropped = 0;
    this.gaps = 0;
    this.stats = null;
    this.load = null;       // {connections, cap, errors} of the generated clients (stats frames)
    this.loadKey = '';
    this.regsChanged = true;    // fd set changed: the grid re-lays out
    this.regsReplaced = false;  // ... and every registration was replaced (a state applied)
    this.touched = new Set();   // fds whose cell changed (interest, paused, armed): redrawn alone
    this.needResync = false;
    // Events the page was not shown (dropped) leave sums of recv/send bytes and interest
    // replayed from events wrong for good: `unsynced` asks for a GET /api/state, and events up
    // to that state's seq (`stateSeq`) are already in its figures, so they change nothing.
    this.unsynced = false;
    this.approximate = false;   // bytes in/out: events were dropped since the last state read
    this.stateSeq = 0;
    // the interest as of `seq` while a state read is ahead of the events (seq < stateSeq): the
    // events up to stateSeq replay there, so such a wait knows what it was passed (prestate.js)
    this.preState = null;
    this.markAll();
  }

  markAll() { for (const p of PANELS) this.dirty[p] = true; }
  mark(...panels) { for (const p of panels) this.dirty[p] = true; }

  /** The server answered a "Close fd N" with `lingering`: the row stays (the peer is still
   * sending, and its input is read away) until the close event. `peer`: the row's peer at the
   * click, so that a new connection given the same fd meanwhile is not marked. */
  markLingering(fd, peer) {
    const c = this.conns.get(fd);
    if (c && c.peer === peer && !c.lingering) { c.lingering = true; this.mark('conns'); }
  }
  take(panel) { const d = this.dirty[panel]; this.dirty[panel] = false; return d; }

  /** fn(event, model) for every applied event; fn({kind: 'reset'}) on a snapshot. */
  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }
  emit(ev) { for (const fn of this.listeners) fn(ev, this); }

  // --- frames -------------------------------------------------------------------------------

  applySnapshot(frame) {
    this.frames.snapshot++;
    this.reset();
    this.seq = frame.seq ?? 0;
    this.startedAt = frame.started_at ?? null;
    // a replayed file with no snapshot line (a trace download): its state is made up
    this.stateUnknown = frame.unknown_before != null;
    this.recentEvents.markSnapshot(this.seq, this.stateUnknown);   // (a rebuild's clears it: no reconnect there)
    this.applyState(frame.state || {}, true);
    this.stateSeq = frame.state_seq ?? 0;   // a history checkpoint taken after a resync
    if (frame.pre_state_regs) {
      this.preState = PreState.fromPairs(frame.pre_state_regs);
      this.preState.rediff(this.regs);
    }
    if (frame.approximate) this.approximate = true;   // a checkpoint taken after drops
    this.emit({ kind: 'reset' });
  }

  applyEventsFrame(frame) {
    this.frames.events++;
    const dropped = frame.dropped || 0;
    this.dropped += dropped;
    if (dropped > 0) {
      this.unsynced = true;
      // events the page was not shown may be in a state read's range: the interest as of the
      // page's last event is no longer known (the waits to come fall back to the state's)
      this.preState = null;
      // the rows' byte sums miss the dropped events' bytes until the state is read again
      if (!this.approximate) { this.approximate = true; this.mark('conns'); }
    }
    const events = frame.events || [];
    let sorted = true;
    for (let i = 1; i < events.length; i++) if (events[i].seq < events[i - 1].seq) { sorted = false; break; }
    const list = sorted ? events : events.slice().sort((a, b) => a.seq - b.seq);
    const now = performance.now();   // one clock read per frame, not per event
    for (const ev of list) this.applyEvent(ev, now);
    this.mark('status');
  }

  applyStats(frame) {
    this.frames.stats++;
    this.stats = frame;
    this.mark('status');
    // events --record could not write (a full disk): said in the log panel's notices
    const recordLost = frame.record_lost || 0;
    if (recordLost !== this.recordLost) { this.recordLost = recordLost; this.mark('log'); }
    // the load generator's clients now (another page may add or remove them; a server-side
    // close drops one): null when there are none
    const load = frame.load || null;
    const loadKey = load
      ? `${load.connections}/${load.cap}/${load.errors}/${load.wrong}/${load.closed}` : '';
    if (loadKey !== this.loadKey) { this.loadKey = loadKey; this.load = load; this.mark('controls'); }
    // connections in a lingering close: no event says when one begins (its close event ends
    // it), so every page learns it here, within a second
    for (const fd of frame.lingering || []) {
      const c = this.conns.get(fd);
      if (c && !c.lingering) { c.lingering = true; this.mark('conns'); }
    }
    // UDP totals: what the kernel dropped comes with no event, and shown datagram events are
    // a sample under load; the stats frame has the engine's own counts
    if (frame.udp && this.udp) {
      const { received, echoed, dropped, pending, reading_paused: readingPaused } = frame.udp;
      Object.assign(this.udp, { received, echoed, dropped });
      if (frame.udp.from_self !== undefined) this.udp.from_self = frame.udp.from_self;
      if (pending !== undefined) Object.assign(this.udp, { pending, reading_paused: !!readingPaused });
      this.udpFromStats = true;   // datagram events still in flight are in these totals already
      this.mark('conns');
    }
  }

  /** A GET /api/state body (full = from a snapshot: registrations and connections replaced).
   *  Returns false, and asks for another resync, when the body is older than events already
   *  applied or than a state body applied before: an answer captured before a backend switch
   *  must not undo it. */
  applyState(state, full = false) {
    const reflects = state.stats ? state.stats.events_total : undefined;
    // older than the events applied, or than a state applied already: two switches' answers
    // can arrive in either order (two HTTP connections), and the first one's registrations,
    // applied last, undid the second switch's for good (its events were then "in the state")
    if (!full && typeof reflects === 'number' && reflects < Math.max(this.seq, this.stateSeq)) {
      this.needResync = true;
      return false;
    }
    if (state.backend) {
      // a switch's own HTTP answer can come before its `backend` event: the last wait the
      // page has was made by the backend switched away from, as that event would have noted
      const next = { ...this.backend, ...state.backend };
      if (this.lastWait && !this.lastWait.madeBy && this.backend.name && !sameBackend(this.backend, next)) {
        this.lastWait.madeBy = { ...this.backend };
      }
      Object.assign(this.backend, state.backend);
    }
    if (state.available) this.available = state.available.slice();
    if (state.loop) this.loop = state.loop;
    if (state.delay_ms !== undefined) this.delayMs = state.delay_ms;
    if (state.flaw !== undefined) this.flaw = state.flaw || '';
    if (state.listeners) { this.tcp = state.listeners.tcp || null; this.udp = state.listeners.udp || null; }
    if (state.limits) this.limits = state.limits;
    if (state.control_fd !== undefined) this.controlFd = state.control_fd;
    // (not after drops: the page's own registrations are what this state read mends)
    if (!full && state.registrations && typeof reflects === 'number' && reflects > this.seq
        && !this.preState && !this.approximate) {
      this.preState = new PreState(this.regs);
    }
    if (full || state.registrations) this.applyRegistrations(state);
    if (!full && state.registrations && this.preState) this.preState.rediff(this.regs);
    if (!full && typeof reflects === 'number') this.stateSeq = Math.max(this.stateSeq, reflects);
    if (!full && state.connections) this.syncConnections(state.connections);
    if (state.connections && this.approximate) { this.approximate = false; this.mark('conns'); }
    if (full && state.connections) {
      this.conns.clear();
      this.connsVersion++;
      for (const c of state.connections) {
        this.conns.set(c.fd, {
          fd: c.fd, peer: c.peer ?? '', depth: c.queue_depth ?? 0, pending: c.pending_bytes ?? 0,
          bytesIn: c.bytes_in ?? 0, bytesOut: c.bytes_out ?? 0, paused: !!c.reading_paused,
          lingering: !!c.lingering, generated: !!c.generated, peak: c.pending_bytes ?? 0, peakAt: 0, peakTs: 0, activeAt: c.active_at ?? 0,
        });
        if (!this.regs.has(c.fd)) this.setReg(c.fd, 'connection', c.interest || []);
      }
    }
    if (full && state.last_wait) {
      this.lastWait = waitFromState(state.last_wait);
      for (const r of this.lastWait.ready_list) this.lastReady.set(r.fd, r.flags);
    }
    if (full) this.pausedAt = state.paused_at ?? null;
    if (full && state.stats) this.stats = { ...state.stats, dropped_total: 0 };
    this.markAll();
    return true;
  }

  /** A resync's figures for each connection: the engine's own counts, not sums of events. */
  syncConnections(rows) {
    const listed = new Set();
    for (const row of rows) {
      listed.add(row.fd);
      const c = this.conn(row.fd);
      if (c.peer !== (row.peer ?? '')) { c.peer = row.peer ?? ''; this.connsVersion++; }
      c.depth = row.queue_depth ?? 0;
      c.pending = row.pending_bytes ?? 0;
      c.bytesIn = row.bytes_in ?? 0;
      c.bytesOut = row.bytes_out ?? 0;
      if (c.paused !== !!row.reading_paused) { c.paused = !!row.reading_paused; this.touched.add(row.fd); }
      c.lingering = !!row.lingering;
      if (c.generated !== !!row.generated) { c.generated = !!row.generated; this.connsVersion++; }
    }
    // every event this model applied is in the state (it is refused otherwise): a row it does
    // not list was closed, though the close may not have reached this page
    for (const fd of [...this.conns.keys()]) {
      if (!listed.has(fd)) { this.conns.delete(fd); this.connsVersion++; }
    }
  }

  applyRegistrations(state) {
    if (!state.registrations) return;
    // the state is newer than the last wait the page shows: that wait keeps the interest it
    // was made with (the syscall line and the fd panel describe it), as an event would (and
    // the wait the line shows, by the same calls: see saveBefore)
    if (this.lastWait && this.lastWait.before) {
      for (const fd of this.regs.keys()) this.saveBefore(fd);
      for (const r of state.registrations) this.saveBefore(r.fd);
    }
    this.regs.clear();
    for (const r of state.registrations) this.setReg(r.fd, r.role, r.interest);
    // a connection's registration with no connection behind it: closed while registered
    if (state.connections) {
      const open = new Set(state.connections.map((c) => c.fd));
      for (const reg of this.regs.values()) if (reg.role === 'connection' && !open.has(reg.fd)) reg.closed = true;
    }
    this.regsChanged = true;
    this.regsReplaced = true;   // every cell may differ, not only where the fd set changed
  }

  setReg(fd, role, flags) {
    this.emptied = false;
    const bits = toBits(flags);
    const old = this.regs.get(fd);
    // `order`: when it was registered, among the others (poll passes its array in that order)
    const order = old ? old.order : ++this.regSerial;
    this.regs.set(fd, { fd, role: role || (old && old.role) || this.roleOf(fd), bits, armed: true, order });
    if (old) this.touched.add(fd); else this.regsChanged = true;
  }

  roleOf(fd) {
    if (fd === this.controlFd) return 'control';
    if (this.tcp && fd === this.tcp.fd) return 'tcp_listener';
    if (this.udp && fd === this.udp.fd) return 'udp';
    return 'connection';
  }

  conn(fd) {
    let c = this.conns.get(fd);
    if (!c) {
      c = { fd, peer: '', depth: 0, pending: 0, bytesIn: 0, bytesOut: 0, paused: false, lingering: false, generated: false, peak: 0, peakAt: 0, peakTs: 0, activeAt: 0 };
      this.conns.set(fd, c);
      this.connsVersion++;
    }
    return c;
  }

  // --- events -------------------------------------------------------------------------------

  applyEvent(ev, now = performance.now()) {
    if (typeof ev.seq === 'number') {
      if (ev.seq <= this.seq) return;            // already reflected in the snapshot
      if ((this.seq || this.frames.snapshot) && ev.seq > this.seq + 1) {   // (a snapshot at seq 0 too)
        this.gaps += ev.seq - this.seq - 1;
        // the ready events to come may be an iteration's whose wait was among those not shown
        // (a queue dropping its oldest batch cuts between a wait and its ready events): they
        // are not the last wait's
        if (this.lastWait) this.lastWait.cut = true;
        // a view of the past: events dropped after its state was read leave its byte sums
        // short, as live (where the frame's `dropped` says so)
        if (this.isView && ev.seq - 1 > this.stateSeq && !this.approximate) { this.approximate = true; this.mark('conns'); }
      }
      this.seq = ev.seq;
    }
    this.eventsApplied++;
    this.remember(ev);
    const fd = ev.fd;
    const isConn = fd !== undefined && fd !== null && this.roleOf(fd) === 'connection';
    // In the last resync's figures already: the connection table and the registrations (a
    // replay of only some of these events, say a close and an accept of a reused fd without
    // the recv that followed, would leave them wrong; all of them, bytes counted twice).
    const inState = ev.seq <= this.stateSeq;
    const apply = APPLY[ev.kind];
    if (apply) apply(this, ev, fd, inState, isConn, now);
    if (this.preState && this.seq >= this.stateSeq) this.preState = null;   // caught up
    this.emit(ev);
  }

  /** Remember an fd's interest as it was during the last wait, before a handler changes it
   *  (and during the wait the syscall line shows, which may be an older one). */
  saveBefore(fd) {
    saveBefore(this.lastWait, this.regs, fd);
    if (this.shownWait) this.shownWait.regs.note(fd);
  }

  /** Interest bits of fd as passed to the last wait call (null: not registered then). */
  interestAtWait(fd) { return interestAtWait(this.lastWait, this.regs, fd); }

  /** Map-like fd -> {bits}: every registration as it was during the last wait (a view of
   *  `regs`: read it at once, or keep it up to date as `saveBefore` does the shown wait's). */
  regsAtWait() { return regsAtWait(this.lastWait, this.regs); }

  /** The last n events applied (all the ring holds by default), oldest first. */
  recent(n) { return this.recentEvents.last(n); }

  /** Where snapshots came among `recent(n)`: [{index, seq}] (reconnects, for the log). */
  recentSnapshots(n) { return this.recentEvents.snapshotsIn(n); }

  /** The latest error/flaw events, shown above the log. */
  get notices() { return this.recentEvents.notices; }

  /**
   * Rebuild from a snapshot frame plus a list of past events (replay / scrubbing). `before`:
   * the events that came before the snapshot, as far as they are known: the recent-events
   * ring and the notices are what a live model would hold at that point, never events of a
   * later position this model showed earlier (the log and the code view read them).
   */
  rebuild(snapshotFrame, events, before = []) {
    this.applySnapshot(snapshotFrame);
    this.recentEvents.clear();
    for (const ev of before.slice(-this.recentEvents.size)) this.remember(ev);
    for (const ev of events) this.applyEvent(ev);
  }

  /** Keep `ev` among the recent events (and the notices, if it is one). */
  remember(ev) { this.recentEvents.remember(ev); }

  get paused() { return this.loop !== 'running'; }

  /** The last registration has gone: the engine has shut down (a live one always has its
   *  control fd registered), as at the end of a recording. */
  get shutDown() { return this.emptied && this.regs.size === 0; }
}
