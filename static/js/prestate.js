// The interest of every fd as of the page's last applied event, kept while a state read
// (GET /api/state) is ahead of the events: the model's registrations are then that state's,
// changed already by handlers of waits whose events are still to come. Those waits take what
// they were passed from here, where it differs from the state's.

/** Whether a registration's bits (reg may be undefined) are exactly `bits`. */
function sameBits(bits, reg) {
  if (!reg || reg.bits.size !== bits.size) return false;
  for (const b of bits) if (!reg.bits.has(b)) return false;
  return true;
}

export class PreState {
  /** `regs`: fd -> {bits}, the model's registrations before the state read replaces them. */
  constructor(regs) {
    this.regs = new Map([...regs].map(([fd, r]) => [fd, new Set(r.bits)]));
    this.diff = new Set();   // the fds whose interest here differs from the state's
  }

  /** From a history checkpoint's `pre_state_regs` ([[fd, [bits]]...]). */
  static fromPairs(pairs) {
    const pre = new PreState(new Map());
    pre.regs = new Map(pairs.map(([fd, bits]) => [fd, new Set(bits)]));
    return pre;
  }

  toPairs() { return [...this.regs].map(([fd, bits]) => [fd, [...bits]]); }

  has(fd) { return this.regs.has(fd); }

  /** The fds that differ from `stateRegs` (a state read's registrations). */
  rediff(stateRegs) {
    this.diff = new Set();
    for (const [fd, bits] of this.regs) if (!sameBits(bits, stateRegs.get(fd))) this.diff.add(fd);
    for (const fd of stateRegs.keys()) if (!this.regs.has(fd)) this.diff.add(fd);
  }

  /** An event the state read holds set fd's interest (`bits`; null: unregistered). The fd is
   *  in the diff only while it differs from the state's (one whose write interest went on and
   *  off for a partial send is copied no more by the waits after it). */
  replay(fd, bits, stateRegs) {
    if (bits) this.regs.set(fd, bits); else this.regs.delete(fd);
    if (bits ? sameBits(bits, stateRegs.get(fd)) : !stateRegs.has(fd)) this.diff.delete(fd);
    else this.diff.add(fd);
  }

  /** A wait the state read holds: what it was passed, where that differs from the state's
   *  (`before`: fd -> bits, null for an fd not registered then). */
  fill(before) {
    for (const fd of this.diff) before.set(fd, this.regs.get(fd) ?? null);
  }
}
