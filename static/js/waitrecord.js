// The record of the last wait call a model applied: what it returned, and the interest each fd
// had while it ran (handlers change interest after the wait: the syscall line and the fd panel
// describe the wait, so they need the interest from before those changes).
import { toBits } from './vocab.js';

const ASKED = new Set(['in', 'out', 'pri']);   // readiness reported only when asked for

/** The record of a live `wait` event: its ready list fills from the `ready` events after it. */
export function waitFromEvent(ev) {
  return { ...ev, ready_list: [], before: new Map(), interestKnown: true, madeBy: null };
}

/** The record of a state body's `last_wait`. A server's state has no interest from before its
 *  last wait: the page shows the registrations as they are now, and says so (`interestKnown`).
 *  A history checkpoint (history.js) keeps the page's own record of it (`interest_before`). */
export function waitFromState(lastWait) {
  const saved = lastWait.interest_before;
  const record = {
    ...lastWait, ready_list: (lastWait.ready_list || []).slice(),
    before: new Map((saved || []).map(([fd, bits]) => [fd, bits ? new Set(bits) : null])),
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
}

/** Interest bits of fd as passed to the wait call (null: not registered then). */
export function interestAtWait(wait, regs, fd) {
  if (wait && wait.before && wait.before.has(fd)) return wait.before.get(fd);
  const reg = regs.get(fd);
  return reg ? reg.bits : null;
}

/** Map fd -> {bits}: every registration as it was during the wait. */
export function regsAtWait(wait, regs) {
  const out = new Map();
  for (const fd of regs.keys()) {
    const bits = interestAtWait(wait, regs, fd);
    if (bits) out.set(fd, { bits });
  }
  const before = wait && wait.before;
  if (before) for (const [fd, bits] of before) if (bits && !out.has(fd)) out.set(fd, { bits });
  // What a wait returned was asked for: the kernel reports in/out/pri only for an fd whose
  // interest had it. Where events were dropped the page's record can lack it: the wait's
  // own answer says better (select's write set must hold an fd returned writable).
  // (Not for a wait known only from a loaded state: its interest is shown as of now.)
  if (wait && wait.interestKnown !== false) {
    for (const r of wait.ready_list) addAskedBits(out, r.fd, r.flags);
  }
  return out;
}

/** In `regs` (as regsAtWait made it), give fd the bits its ready flags show it was asked for. */
export function addAskedBits(regs, fd, flags) {
  const reg = regs.get(fd);
  if (!reg) return;
  const missing = [...toBits(flags)].filter((b) => ASKED.has(b) && !reg.bits.has(b));
  if (missing.length) regs.set(fd, { bits: new Set([...reg.bits, ...missing]) });
}
