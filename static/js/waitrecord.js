// The record of the last wait call a model applied: what it returned, and the interest each fd
// had while it ran (handlers change interest after the wait: the syscall line and the fd panel
// describe the wait, so they need the interest from before those changes).
import { toBits } from './vocab.js';

const ASKED = new Set(['in', 'out', 'pri']);   // readiness reported only when asked for

/** The record of a live `wait` event: its ready list fills from the `ready` events after it. */
export function waitFromEvent(ev) {
  return { ...ev, ready_list: [], before: new Map(), beforeOrder: new Map(), interestKnown: true, madeBy: null };
}

/** The record of a state body's `last_wait`. A server's state has no interest from before its
 *  last wait: the page shows the registrations as they are now, and says so (`interestKnown`).
 *  A history checkpoint (history.js) keeps the page's own record of it (`interest_before`). */
export function waitFromState(lastWait) {
  const saved = lastWait.interest_before;
  const record = {
    ...lastWait, ready_list: (lastWait.ready_list || []).slice(),
    before: new Map((saved || []).map(([fd, bits]) => [fd, bits ? new Set(bits) : null])),
    beforeOrder: new Map(),   // this model's own places (saveBefore), never another's
    interestKnown: !!saved,
    madeBy: lastWait.made_by || null,   // set when a switch came after that wait
  };
  delete record.interest_before;
  delete record.made_by;
  return record;
}

/** Remember an fd's interest as it was during the wait, before a handler changes it. */
export function saveBefore(wait, regs, fd) {
  if (!wait || !wait.before || wait.before.has(fd)) return;
  const reg = regs.get(fd);
  wait.before.set(fd, reg ? new Set(reg.bits) : null);
  // and its place among the registrations (poll's array: a registration closed since keeps
  // the place it had in the call)
  if (reg && wait.beforeOrder) wait.beforeOrder.set(fd, reg.order);
}

/** Interest bits of fd as passed to the wait call (null: not registered then). */
export function interestAtWait(wait, regs, fd) {
  if (wait && wait.before && wait.before.has(fd)) return wait.before.get(fd);
  const reg = regs.get(fd);
  return reg ? reg.bits : null;
}

/** Every registration as it was during the wait: a WaitRegs over the live `regs`. */
export function regsAtWait(wait, regs) {
  const out = new WaitRegs(regs);
  const before = wait && wait.before;
  if (before) {
    const order = wait.beforeOrder;
    // a place saved when the fd changed, else its live registration's (the same one, unless
    // the number was closed and reused since: then the place is not known, and goes last)
    for (const [fd, bits] of before) {
      out.since.set(fd, bits ? { bits, order: order?.get(fd) ?? regs.get(fd)?.order } : null);
    }
  }
  // What a wait returned was asked for: the kernel reports in/out/pri only for an fd whose
  // interest had it. Where events were dropped the page's record can lack it: the wait's
  // own answer says better (select's write set must hold an fd returned writable).
  // (Not for a wait known only from a loaded state: its interest is shown as of now.)
  if (wait && wait.interestKnown !== false) {
    for (const r of wait.ready_list) addAskedBits(out, r.fd, r.flags);
  }
  return out;
}

/**
 * Map-like fd -> {bits} (get, has, set, keys, entries, iteration, size): the live `regs`
 * seen through `since`, fd -> {bits} or null (not registered) for the fds whose registration
 * differs from the live one. Made in O(changes): a copy of 10,000 registrations at each paint
 * of the syscall line cost 1.8 ms a paint, and the syscall panel 27-42 ms a second, against
 * 4.5-6.2 with this view (session 30, docs/BENCHMARKS-history.md). Kept after
 * the live map changes, it stays right only if told of each change first (`note`: the
 * model's saveBefore does it for the wait its syscall line shows).
 */
export class WaitRegs {
  constructor(live) {
    this.live = live;
    this.since = new Map();
  }

  /** Before the live registration of fd changes: keep the one the wait had. */
  note(fd) {
    if (this.since.has(fd)) return;
    const reg = this.live.get(fd);
    this.since.set(fd, reg ? { bits: reg.bits } : null);
  }

  get(fd) {
    if (this.since.has(fd)) return this.since.get(fd) || undefined;
    return this.live.get(fd);
  }

  has(fd) { return this.get(fd) !== undefined; }

  set(fd, reg) {
    this.since.set(fd, reg);
    return this;
  }

  get size() {
    let n = this.live.size;
    for (const [fd, reg] of this.since) n += (reg ? 1 : 0) - (this.live.has(fd) ? 1 : 0);
    return n;
  }

  // keys() and entries() return iterables (Map's iterators, or arrays), for spreading and
  // for...of: a generator over 10,000 took longer than the copy this replaces, and a spread
  // array's .values() ten times as long as the array. In the live map's order (fd order,
  // mostly: its readers sort, and a sort of a shuffled 10,000 took ten times as long)
  keys() {
    if (!this.since.size) return this.live.keys();
    // the live keys (a native copy), less those not registered then, plus those gone since
    const gone = new Set();
    const back = [];
    for (const [fd, reg] of this.since) {
      if (!reg && this.live.has(fd)) gone.add(fd);
      else if (reg && !this.live.has(fd)) back.push(fd);
    }
    const out = gone.size ? [...this.live.keys()].filter((fd) => !gone.has(fd)) : [...this.live.keys()];
    out.push(...back);
    return out;
  }

  entries() {
    if (!this.since.size) return this.live.entries();
    const out = [];
    for (const [fd, reg] of this.live) {
      const then = this.since.has(fd) ? this.since.get(fd) : reg;
      if (then) out.push([fd, then]);
    }
    for (const [fd, reg] of this.since) if (reg && !this.live.has(fd)) out.push([fd, reg]);
    return out;
  }

  [Symbol.iterator]() { return this.entries()[Symbol.iterator](); }
}

/** In `regs` (as regsAtWait made it), give fd the bits its ready flags show it was asked for. */
export function addAskedBits(regs, fd, flags) {
  const reg = regs.get(fd);
  if (!reg) return;
  const missing = [...toBits(flags)].filter((b) => ASKED.has(b) && !reg.bits.has(b));
  if (missing.length) regs.set(fd, { bits: new Set([...reg.bits, ...missing]), order: reg.order });
}
