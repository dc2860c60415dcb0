// The page's resync (GET /api/state after dropped events) lands among events frames held while
// it was out (main.js): those up to the answer's seq go before it, the rest after it.

/** Held frames split at seq `upTo` (none: all before): those with the events at or before it,
 *  and those with the events after it. A frame cut in two gives its `dropped` to the later
 *  part: the events it counts may be after upTo, so not in that state. */
export function splitFrames(frames, upTo) {
  if (typeof upTo !== 'number') return [frames, []];
  const before = [];
  const after = [];
  for (const frame of frames) {
    const events = frame.events || [];
    const early = events.filter((ev) => ev.seq <= upTo);
    if (early.length === events.length) { before.push(frame); continue; }
    // its `dropped` goes with the later part: those events may be after upTo (not in the
    // state), and the rows must stay marked approximate until a state that has them
    if (early.length) before.push({ ...frame, events: early, dropped: 0 });
    after.push({ ...frame, events: events.filter((ev) => ev.seq > upTo) });
  }
  return [before, after];
}
