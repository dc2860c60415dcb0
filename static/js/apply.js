// How each kind of event changes the page model: Model.applyEvent numbers the event, then
// calls the handler of its kind with (model, event, fd, inState, isConn, now).
// inState: the last state read (a resync, a snapshot) has this event's effect already, on the
// connection table and the registrations; isConn: fd is a connection's; now: the page's clock.
import { toBits } from './vocab.js';
import { addAskedBits, waitFromEvent } from './waitrecord.js';

export const READY_LIST_CAP = 4096;

/** kind -> handler; no prototype, so no kind can name an inherited method. */
export const APPLY = Object.assign(Object.create(null), {
  wait(m, ev, _fd, inState) {
    m.lastWait = waitFromEvent(ev);
    // a view of the past outlines what its own iteration returned: replayed, every ready
    // event of the iterations before it flashed as if just now
    if (m.isView) m.flashes.clear();
    // a wait the state read has already: its handlers' changes are in `regs`
    if (inState && m.preState) m.preState.fill(m.lastWait.before);
    m.lastReady.clear();
    m.mark('syscall', 'backend');
  },
  ready(m, ev, fd, inState, isConn, now) {
    // after a gap (model.js: `cut`), not the last wait's: an iteration's whose wait was not shown
    const ofLastWait = !(m.lastWait && m.lastWait.cut);
    if (ofLastWait && m.lastWait && m.lastWait.ready_list.length < READY_LIST_CAP) {
      m.lastWait.ready_list.push({ fd, flags: ev.flags || [] });
      // the syscall line painted this wait before all its ready fds came: the fd panel follows
      // (and its interest as passed: the wait's answer mends the record, as regsAtWait does)
      const shown = m.shownWait;
      if (shown && shown.source === m.lastWait) {
        shown.ready.set(fd, ev.flags || []);
        if (shown.interestKnown) addAskedBits(shown.regs, fd, ev.flags || []);
      }
    }
    if (ofLastWait) m.lastReady.set(fd, ev.flags || []);
    m.flashes.set(fd, now);
    // reported, so passed: an fd the replayed interest lacks (its accept not shown) had one
    if (inState && m.preState && m.lastWait && m.lastWait.before
        && m.lastWait.before.get(fd) === null) {
      const reg = m.regs.get(fd);
      m.lastWait.before.set(fd, new Set(reg ? reg.bits : []));
    }
    if (!inState) { const reg = m.regs.get(fd); if (reg && reg.bits.has('oneshot')) { reg.armed = false; m.touched.add(fd); } }
    m.mark('syscall', 'backend');
  },
  interest(m, ev, fd, inState) {
    if (inState) { m.preState?.replay(fd, ev.op === 'unregister' ? null : toBits(ev.flags), m.regs); return; }
    m.saveBefore(fd);
    if (ev.op === 'unregister') {
      m.regs.delete(fd); m.regsChanged = true;
      // the engine's shutdown unregisters its control fd last (a trace download has no
      // registrations before its first event: its last connection's close is no shutdown)
      if (!m.regs.size && fd === m.controlFd) { m.emptied = true; m.mark('controls'); }
    } else m.setReg(fd, null, ev.flags);
    m.mark('backend', 'syscall');
  },
  accept(m, ev, fd, inState) {
    // (adopted for reading: its register event, if shown, says the same)
    if (inState) { if (m.preState && !m.preState.has(fd)) m.preState.replay(fd, new Set(['in']), m.regs); return; }
    const c = m.conn(fd);
    if (c.peer !== (ev.peer ?? '')) { c.peer = ev.peer ?? ''; m.connsVersion++; m.touched.add(fd); }
    c.activeAt = ev.ts ?? 0;
    c.lingering = false;   // a new connection on the fd (a close this page missed)
    c.generated = !!ev.generated;   // one of "Add clients"'s, not a person's
    const reg = m.regs.get(fd);
    if (!reg) { m.saveBefore(fd); m.setReg(fd, 'connection', []); }
    else if (reg.closed) reg.closed = false;   // the number reused: a live connection again
    m.mark('conns', 'queues', 'backend');
  },
  recv(m, ev, fd, inState, isConn) {
    if (isConn && !inState) { const c = m.conn(fd); c.bytesIn += ev.bytes || 0; c.activeAt = ev.ts ?? 0; m.mark('conns'); }
  },
  send(m, ev, fd, inState, isConn) {
    if (isConn && !inState) { const c = m.conn(fd); c.bytesOut += ev.bytes || 0; c.activeAt = ev.ts ?? 0; m.mark('conns'); }
  },
  queue(m, ev, fd, inState, isConn, now) {
    if (!isConn || inState) return;
    const c = m.conn(fd);
    c.depth = ev.depth ?? 0;
    c.pending = ev.pending_bytes ?? 0;
    // the peak is kept for 1.5 s of the engine's time (a view replays a second of events
    // in one instant of the page's), and fades on the page's clock
    if (c.pending >= c.peak || (ev.ts ?? 0) - c.peakTs > 1.5) { c.peak = c.pending; c.peakTs = ev.ts ?? 0; c.peakAt = now; }
    c.activeAt = ev.ts ?? 0;
    m.mark('conns', 'queues');
  },
  backpressure(m, ev, fd, inState, isConn) {
    if (m.udp && fd === m.udp.fd && !inState) {
      m.udp.reading_paused = !!ev.paused;
      if (typeof ev.pending === 'number') m.udp.pending = ev.pending;
      m.mark('conns');
    }
    if (isConn && !inState) { m.conn(fd).paused = !!ev.paused; m.touched.add(fd); m.mark('conns', 'queues', 'backend'); }
  },
  datagram(m, ev, _fd, inState) {
    if (m.udp && !m.udpFromStats && !inState) {   // once stats carry the totals, they alone count
      if (ev.dir === 'in') {
        m.udp.received = (m.udp.received || 0) + 1;
        if (ev.from_self) m.udp.from_self = (m.udp.from_self || 0) + 1;
      }
      else if (ev.dir === 'out' && !ev.misdirected) m.udp.echoed = (m.udp.echoed || 0) + 1;
      m.mark('conns');
    }
  },
  close(m, ev, fd, inState) {
    if (inState) { if (!ev.registered) m.preState?.replay(fd, null, m.regs); return; }
    // (its cell loses the peer's dot and the paused bar: redrawn, if it stays registered)
    if (m.conns.delete(fd)) { m.connsVersion++; m.touched.add(fd); }
    // A close implies its unregister (SPEC §2), whose event a throttled iteration does not
    // show; but a close the bug zoo leaves registered says so, and the fd stays (poll
    // returns it as POLLNVAL, wait after wait: the lesson), marked closed: epoll's kernel
    // list dropped it, only the program's table has it (a new registration is a new entry)
    if (!ev.registered) {
      m.saveBefore(fd);
      if (m.regs.delete(fd)) m.regsChanged = true;
      m.flashes.delete(fd);
      m.lastReady.delete(fd);
    } else if (m.regs.has(fd)) {
      m.regs.get(fd).closed = true;
    }
    m.mark('conns', 'queues', 'backend');
  },
  backend(m, ev, _fd, inState) {
    // the last wait was made by the backend switched away from: it keeps its words and fd
    // (a change of write strategy alone keeps the backend: no new epoll, no note)
    if (m.lastWait && !m.lastWait.madeBy && m.backend.name && (ev.to !== m.backend.name
        || (ev.trigger ?? m.backend.trigger) !== m.backend.trigger
        || !!(ev.oneshot ?? m.backend.oneshot) !== !!m.backend.oneshot)) {
      m.lastWait.madeBy = { ...m.backend };
    }
    m.backend.name = ev.to;
    if (ev.trigger !== undefined) m.backend.trigger = ev.trigger;
    if (ev.oneshot !== undefined) m.backend.oneshot = ev.oneshot;
    if (ev.write !== undefined) m.backend.write = ev.write;
    if (ev.to !== 'epoll') { m.backend.fd = null; m.backend.maxevents = null; }
    if (ev.epoll_fd !== undefined) m.backend.fd = ev.epoll_fd;          // a replay has
    if (ev.maxevents !== undefined) m.backend.maxevents = ev.maxevents;  // no state to read
    // the moved registrations come with no event: read them, unless a state that has
    // them is applied already (the switch's own answer, come first)
    if (!inState) m.needResync = true;
    m.markAll();
  },
  loop(m, ev) {
    m.loop = ev.state;
    if (ev.delay_ms !== undefined) m.delayMs = ev.delay_ms;   // set here or by another client
    if (ev.flaw !== undefined) m.flaw = ev.flaw || '';        // time travel: which handler ran
    m.mark('controls', 'status', 'syscall');
  },
  error(m, ev, _fd, inState) {
    // the kernel's UDP drop total (no datagram event says it): a view of the past and a
    // replay take it from here (live, the stats frames carry it too)
    if (m.udp && typeof ev.udp_dropped === 'number' && !inState) {
      m.udp.dropped = Math.max(m.udp.dropped || 0, ev.udp_dropped);
      m.mark('conns');
    }
    m.mark('log');   // remember() keeps it among the notices
  },
  flaw(m) {
    m.mark('log');   // remember() keeps it among the notices
  },
});
