// Backend vocabularies: native flag names <-> neutral bits, and the strace-style syscall line.

const NATIVE = {
  select: { read: 'in', write: 'out', except: 'pri' },
  poll: {
    POLLIN: 'in', POLLOUT: 'out', POLLPRI: 'pri', POLLERR: 'err', POLLHUP: 'hup',
    POLLNVAL: 'nval', POLLRDHUP: 'rdhup',
  },
  epoll: {
    EPOLLIN: 'in', EPOLLOUT: 'out', EPOLLPRI: 'pri', EPOLLERR: 'err', EPOLLHUP: 'hup',
    EPOLLRDHUP: 'rdhup', EPOLLET: 'et', EPOLLONESHOT: 'oneshot',
  },
};

const ORDER = ['in', 'pri', 'out', 'err', 'hup', 'nval', 'rdhup', 'et', 'oneshot'];

const REVERSE = {};
for (const [backend, table] of Object.entries(NATIVE)) {
  REVERSE[backend] = {};
  for (const [name, bit] of Object.entries(table)) REVERSE[backend][bit] = name;
}

/** Native flag list -> Set of neutral bits (unknown names are kept as-is, prefixed "?"). */
export function toBits(flags) {
  const bits = new Set();
  for (const f of flags || []) {
    const name = String(f);
    let bit = null;
    for (const table of Object.values(NATIVE)) if (name in table) { bit = table[name]; break; }
    bits.add(bit || `?${name}`);
  }
  return bits;
}

/** Neutral bits -> native names for `backend` (bits the backend cannot express are dropped). */
export function toNative(bits, backend) {
  const rev = REVERSE[backend] || REVERSE.epoll;
  const out = [];
  for (const bit of ORDER) if (bits.has(bit) && rev[bit]) out.push(rev[bit]);
  for (const bit of bits) if (bit.startsWith('?')) out.push(bit.slice(1));
  return out;
}

/** Whether two backend descriptions ({name, trigger, oneshot, fd}) are one instance: a new
 *  trigger or one-shot setting makes a new epoll (a new fd), as a new name does. */
export function sameBackend(a, b) {
  return a.name === b.name && a.trigger === b.trigger && !!a.oneshot === !!b.oneshot
    && (a.fd ?? null) === (b.fd ?? null);
}

/** "select", or "epoll (edge-triggered, one-shot, epoll fd 7)". */
export function backendText(b) {
  if (b.name !== 'epoll') return b.name || '?';
  return `epoll (${b.trigger || 'level'}-triggered${b.oneshot ? ', one-shot' : ''}, epoll fd ${b.fd ?? '?'})`;
}

export function flagText(flags) {
  return flags && flags.length ? flags.join('|') : '0';
}

/** An fd set as strace prints one: `[4 7 9]`; an empty set is passed as NULL (CPython does). */
function fdList(fds, cap = 24, empty = '[]') {
  if (!fds.length) return empty;
  const shown = fds.slice(0, cap).join(' ');
  return fds.length > cap ? `[${shown} … +${fds.length - cap}]` : `[${shown}]`;
}

/** select's timeout, a struct timeval (the event's microseconds; an older recording has
 *  only its milliseconds); NULL: block. */
function timeval(ms, us) {
  if (ms === null || ms === undefined) return 'NULL';
  const micros = typeof us === 'number' ? us : ms * 1000;
  return `{tv_sec=${Math.floor(micros / 1e6)}, tv_usec=${micros % 1e6}}`;
}

/** A wait's timeout in words: select's in the µs its struct timeval holds (a timer's 249.3 ms,
 *  not the event's rounded-up 250), poll's and epoll's in the whole ms the kernel was given. */
export function timeoutText(wait) {
  if (wait.timeout_ms === null || wait.timeout_ms === undefined) return 'no timeout';
  return `timeout ${typeof wait.timeout_us === 'number' ? wait.timeout_us / 1000 : wait.timeout_ms} ms`;
}

/** The first `cap` items as text, then "… +N" for the rest (only those `cap` are formatted). */
function capped(items, cap, text) {
  const shown = items.slice(0, cap).map(text);
  return items.length > cap ? [...shown, `… +${items.length - cap}`] : shown;
}

function timeoutMs(t) {
  return t === null || t === undefined ? -1 : t;
}

/**
 * The last wait as strace would print it.
 * wait: {backend, registered, timeout_ms, ready, ready_list: [{fd, flags}]}
 * model: interestAtWait(fd) -> bits|null and regsAtWait() -> Map fd -> {bits}; backendInfo: {fd, maxevents}
 */
export function syscallLine(wait, model, backendInfo, cap = 24) {
  if (!wait) return '';
  const ready = wait.ready_list || [];
  const n = wait.ready ?? ready.length;
  const backend = wait.backend;
  if (backend === 'epoll') {
    // SPEC §5's form: `fd=` is the entry's `data` as registered (CPython stores the fd there)
    const items = ready.slice(0, cap).map((r) => `{${flagText(r.flags)}, fd=${r.fd}}`);
    if (ready.length > cap) items.push(`… +${ready.length - cap}`);
    const epfd = backendInfo && backendInfo.fd != null ? backendInfo.fd : '?';
    const maxev = backendInfo && backendInfo.maxevents != null ? backendInfo.maxevents : '?';
    return `epoll_wait(${epfd}, [${items.join(', ')}], ${maxev}, ${timeoutMs(wait.timeout_ms)}) = ${n}`;
  }
  if (backend === 'poll') {
    // As strace prints it: the whole array passed in (fd, events), then the entries the
    // kernel filled in (revents) after the result. CPython's poll object passes its fds in
    // the order they were registered (a dict's), not by number: an fd number reused by a new
    // connection comes last. (Nearly sorted already: the sort is close to linear.)
    const regs = [...model.regsAtWait()].sort((a, b) => regRank(a[1]) - regRank(b[1]) || a[0] - b[0]);
    const passed = capped(regs, cap, ([fd, reg]) => `{fd=${fd}, events=${flagText(toNative(reg.bits, 'poll'))}}`);
    const out = capped(ready, cap, (r) => `{fd=${r.fd}, revents=${flagText(r.flags)}}`);
    const filled = ready.length ? ` ([${out.join(', ')}])` : '';
    return `poll([${passed.join(', ')}], ${wait.registered}, ${timeoutMs(wait.timeout_ms)}) = ${n}${filled}`;
  }
  if (backend === 'select') {
    const sets = selectSets(model.regsAtWait());
    const all = [...sets.read, ...sets.write, ...sets.except];
    const nfds = all.length ? Math.max(...all) + 1 : 0;
    // As strace prints it: select returns the bits set in the three sets it hands back (an fd
    // both readable and writable counts twice; `ready` counts fds), then the sets themselves.
    const back = selectReturned(ready);
    const complete = ready.length === n;
    const ret = complete ? back.read.length + back.write.length + back.except.length : n;
    const filled = complete && ret ? ` (${['read', 'write', 'except'].filter((k) => back[k].length)
      .map((k) => `${SELECT_SET_NAMES[k]} ${fdList(back[k], cap)}`).join(', ')})` : '';
    const passed = ['read', 'write', 'except'].map((k) => fdList(sets[k], cap, 'NULL')).join(', ');
    return `select(${nfds}, ${passed}, ${timeval(wait.timeout_ms, wait.timeout_us)}) = ${ret}${filled}`;
  }
  return `${backend}(…) = ${n}`;
}

const SELECT_SET_NAMES = { read: 'in', write: 'out', except: 'except' };

/** A registration's place in poll's array; one of unknown place (a time-travel checkpoint
 *  keeps no places for the fds closed since its wait) goes last, by fd. */
function regRank(reg) { return reg.order ?? Number.MAX_SAFE_INTEGER; }

/** The three sets select() handed back, from a wait's ready list (flags read/write/except). */
function selectReturned(ready) {
  const back = { read: [], write: [], except: [] };
  for (const r of ready) for (const f of r.flags || []) if (back[f]) back[f].push(r.fd);
  const num = (a, b) => a - b;
  for (const k of Object.keys(back)) back[k].sort(num);
  return back;
}

/** select's three "in" sets from the registrations (sorted fds). */
export function selectSets(regs) {
  const read = [], write = [], except = [];
  for (const [fd, reg] of regs) {
    if (reg.bits.has('in')) read.push(fd);
    if (reg.bits.has('out')) write.push(fd);
    if (reg.bits.has('pri')) except.push(fd);
  }
  const num = (a, b) => a - b;
  return { read: read.sort(num), write: write.sort(num), except: except.sort(num) };
}

export const CAPTIONS = {
  select: 'select() takes three sets of fds — those to watch for reading, writing and exceptional conditions — ' +
    'and overwrites them with the subset that is ready. Every call copies all the sets in and out again, and it ' +
    'cannot watch fd 1024 or above. In the grid, blue/orange/purple stripes are the interest now (read/write/except), ' +
    'after the handlers of the last wait changed it; green is what that wait returned (ready). The sets below ' +
    'are what that wait was passed.',
  poll: 'poll() takes an array of (fd, events) pairs and fills in revents for each. No limit on fd numbers (select stops at 1024), but the whole ' +
    'array is still copied to the kernel and scanned on every call. In the grid, coloured stripes are the events asked for now, ' +
    'after the handlers of the last wait changed them; green is the revents that wait filled in. The array below ' +
    'is what that wait was passed.',
  epoll: 'epoll keeps the interest list inside the kernel (epoll_ctl adds or changes an fd once); epoll_wait only ' +
    'returns the ready list, so its cost follows the number of ready fds, not registered ones. Edge-triggered (ET) ' +
    'fds are reported only when something new happens (bytes arrive, send space frees up) or an epoll_ctl MOD ' +
    'checks them again, each report with every bit ready then, so the loop must drain them; one-shot fds are ' +
    'disarmed after one report ' +
    'until re-armed. In the grid, a white corner marks EPOLLET, a dashed border EPOLLONESHOT, green what epoll_wait returned.',
};
