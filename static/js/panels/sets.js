// The backend's own vocabulary as text: what the wait the syscall line shows was passed and
// what it returned, as select's three sets, poll's pollfd array, or epoll's interest and
// ready lists. The backend panel shows these [title, body] blocks under its fd grid.
import { READY_LIST_CAP } from '../apply.js';
import { backendText, flagText, sameBackend, selectSets, toNative } from '../vocab.js';

const TEXT_ROWS = 60;
const SET_FDS = 200;
const UNKNOWN_WHY = 'not known to this page (registered before the events it was shown, or closed since)';

/** Entries the shown wait was passed that this page has no registration for: a trace
 *  download starts after the control fd and the listeners were registered, and an fd closed
 *  since its wait may be gone. Counted from the wait's `registered`, so the list's size is
 *  the call's, as the syscall detail says. */
function unknownCount(shown, known) {
  return shown && shown.registered > known ? shown.registered - known : 0;
}

function fdCount(n) {
  return `${n} fd${n === 1 ? '' : 's'}`;
}

function capList(fds) {
  return fds.length > SET_FDS ? `[${fds.slice(0, SET_FDS).join(', ')}, … +${fds.length - SET_FDS}]` : `[${fds.join(', ')}]`;
}

function sortedFds(map) {
  return [...map.keys()].sort((a, b) => a - b);
}

/** The wait the syscall line shows (it is throttled), in the words of the backend that made
 *  it: paused or in the past, that can be the one before a switch (select's sets are not a
 *  pollfd array with revents). Both halves (what was passed in, what came back) describe
 *  that one wait, so the two panels agree; the grid and its tooltip are the live picture.
 *  Before the line shows a wait ("waiting for the first wait…"; a first wait whose ready
 *  events are still coming, or one within its 100 ms), `none`: the registrations now, and
 *  nothing returned (this text said "ready list …: 1 fd" beside that line, in CI). */
function shownWaitOf(model) {
  const shown = model.shownWait;
  const made = (shown && shown.made) || model.backend;
  const switched = !!model.backend.name && (!!made.replaced || !sameBackend(made, model.backend));
  const known = !shown || shown.interestKnown;
  return {
    model, shown, made, switched, known, none: !shown,
    regs: shown ? shown.regs : model.regsAtWait(),   // as passed to that wait
    ready: shown ? shown.ready : new Map(),          // and what it returned
    returned: shown ? Math.max(shown.returned, shown.ready.size) : 0,
    asNow: known ? '' : ' — as now: this page loaded after that wait, what it was passed is not known here',
  };
}

/** The title of what a wait returned, or, before the line shows one, that there is none yet. */
const NONE_YET = 'shown yet (the syscall line is waiting for the first wait)';

/** A line for the ready fds the wait returned that `ready` does not hold (or ''): their
 *  events had not come when the line was painted, or past the page's list cap. */
function notReceived(w, shownAs) {
  const missing = w.returned - w.ready.size;
  if (missing <= 0) return '';
  const why = w.ready.size >= READY_LIST_CAP ? `this page lists the first ${READY_LIST_CAP}`
    : 'not received by this page (yet, or dropped for it)';
  return `… and ${missing} more ready${shownAs}, not listed: ${why}`;
}

/** What changed since that wait, on the same backend (the handlers' epoll_ctl calls; the grid
 *  shows the registrations now). The state a page loads has no interest from before its last
 *  wait: an fd closed since is known only by its ready entry, or by the count. */
function sinceThen(w, fd, bits, backend) {
  if (w.switched || !w.known) return '';
  const live = w.model.regs.get(fd);
  if (!live) return '  (closed since)';
  const now = flagText(toNative(live.bits, backend));
  return now !== flagText(toNative(bits, backend)) ? `  → now ${now}` : '';
}

/** An fd closed while registered (the bug zoo's close_without_unregister): poll is still
 *  passed it (and answers POLLNVAL); epoll's kernel list dropped it at the close, and only
 *  the program's table has it. */
function staleNote(w, fd, backend) {
  const reg = w.model.regs.get(fd);
  if (!reg || !reg.closed) return '';
  return backend === 'epoll'
    ? "  (closed while registered: gone from the kernel's list, only in the program's table)"
    : '  (closed while registered: still in the array, poll answers POLLNVAL)';
}

function selectBlocks(w) {
  const ins = selectSets(w.regs);
  const out = { read: [], write: [], except: [] };
  for (const [fd, flags] of w.ready) for (const f of flags) if (out[f]) out[f].push(fd);
  for (const k of Object.keys(out)) out[k].sort((a, b) => a - b);
  const text = (sets) => `read:   ${capList(sets.read)}\nwrite:  ${capList(sets.write)}\nexcept: ${capList(sets.except)}`;
  const more = notReceived(w, '');
  if (w.none) return [['in: the sets select() is passed (interest, now)', text(ins)], [`out: no select() ${NONE_YET}`, '']];
  return [[`in: the sets passed to select() (interest)${w.asNow}`, text(ins)],
    ['out: the sets select() returned (ready)', more ? `${text(out)}\n${more}` : text(out)]];
}

function pollBlocks(w) {
  const fds = sortedFds(w.regs);
  const lines = fds.slice(0, TEXT_ROWS).map((fd) => {
    const rev = w.ready.get(fd);
    const bits = w.regs.get(fd).bits;
    const revents = w.none ? '' : `, revents=${rev ? flagText(rev) : '0'}`;
    return `{fd=${fd}, events=${flagText(toNative(bits, 'poll'))}${revents}}${sinceThen(w, fd, bits, 'poll')}${staleNote(w, fd, 'poll')}`;
  });
  if (fds.length > TEXT_ROWS) lines.push(`… and ${fds.length - TEXT_ROWS} more`);
  const unknown = unknownCount(w.shown, fds.length);
  if (unknown) lines.push(`… and ${unknown} more passed, ${UNKNOWN_WHY}`);
  const more = notReceived(w, ' (shown with revents=0 above)');
  if (more) lines.push(more);
  if (w.none) return [[`the pollfd array poll() is passed: ${fds.length + unknown} entries (fd, events; no poll() ${NONE_YET})`, lines.join('\n')]];
  return [[`the pollfd array passed to poll(): ${fds.length + unknown} entries (fd, events, revents)${w.asNow}`, lines.join('\n')]];
}

/** Not known and switched since: the registrations are the new backend's, whose trigger and
 *  one-shot bits are not those the wait was made with (the switch keeps the rest). */
function asMade(w, bits) {
  if (w.known || !w.switched) return bits;
  const b = new Set([...bits].filter((x) => x !== 'et' && x !== 'oneshot'));
  if (w.made.trigger === 'edge') b.add('et');
  if (w.made.oneshot) b.add('oneshot');
  return b;
}

/** The interest list as it was during the shown wait (a since-closed fd that its ready list
 *  names is still in it); "disarmed" is the live state of a one-shot registration. */
function epollBlocks(w) {
  const { regs, ready, made, known, switched } = w;
  const fds = sortedFds(regs);
  const lines = fds.slice(0, TEXT_ROWS).map((fd) => {
    const bits = asMade(w, regs.get(fd).bits);
    const live = w.model.regs.get(fd);
    const armed = bits.has('oneshot') && live && !live.armed && !switched ? '  (disarmed until re-armed)' : '';
    return `fd ${fd}: ${flagText(toNative(bits, 'epoll'))}${sinceThen(w, fd, bits, 'epoll')}${armed}${staleNote(w, fd, 'epoll')}`;
  });
  if (fds.length > TEXT_ROWS) lines.push(`… and ${fds.length - TEXT_ROWS} more`);
  const gone = [...ready.keys()].filter((fd) => !regs.has(fd)).sort((a, b) => a - b);
  for (const fd of gone.slice(0, TEXT_ROWS)) lines.push(`fd ${fd}: (closed since; its interest at that wait is not known to this page)`);
  const unknown = unknownCount(w.shown, fds.length + gone.length);
  if (unknown) lines.push(`… and ${unknown} more in it, ${UNKNOWN_WHY}`);
  const epfd = made.fd != null ? ` of epoll fd ${made.fd}` : '';
  if (w.none) {
    return [[`interest list${epfd} now (kept in the kernel, changed by epoll_ctl): ${fdCount(fds.length + unknown)}`, lines.join('\n')],
      [`ready list: no epoll_wait ${NONE_YET}`, '']];
  }
  const when = known ? 'at that epoll_wait'
    : switched ? 'at that epoll_wait: not known here (this page loaded after it and the switch; below, the registrations now, with its trigger and one-shot bits)'
      : 'now (this page loaded after that epoll_wait: the interest it was made with is not known here)';
  const back = [...ready].slice(0, TEXT_ROWS).map(([fd, flags]) => `fd ${fd}: ${flagText(flags)}`);
  const more = notReceived(w, '');
  if (more) back.push(more);
  return [
    [`interest list${epfd} ${when} (kept in the kernel, changed by epoll_ctl): ${fdCount(fds.length + gone.length + unknown)}`, lines.join('\n')],
    [`ready list (returned by that epoll_wait): ${fdCount(w.returned)}`, back.join('\n') || '(empty)'],
  ];
}

const BLOCKS = { select: selectBlocks, poll: pollBlocks, epoll: epollBlocks };

/** [title, body] blocks for the wait the syscall line shows, in its backend's words. */
export function setBlocks(model) {
  const w = shownWaitOf(model);
  const build = BLOCKS[w.made.name];
  const blocks = build ? build(w) : [];
  if (w.switched) {
    const before = ` — the last wait, made by ${backendText(w.made)} before the switch to ${backendText(model.backend)}`;
    for (const b of blocks) b[0] += before;
  }
  return blocks;
}
