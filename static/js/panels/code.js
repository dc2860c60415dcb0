// The code behind the events: the real source of the handler chain for an event kind
// (GET /api/code, fetched once), highlighted line marked. Follows the iteration on view: its
// events are listed, and the last one's chain is shown (any other can be picked).
import { api } from '../api.js';
import { stepBefore } from '../history.js';
import { safeLabel } from '../ui.js';

const MIN_INTERVAL_MS = 250;
const MAX_STEPS = 40;   // listed events of a long iteration: its first 30 and its last 10
const TAIL_STEPS = 10;  // the last ones hold the default pick (the last handler's) and the loop's
const TAIL = 600;

/** The events of the newest iteration in the model's ring (from its last `wait`, or the
 * Step's `loop step` event before it). */
function currentIteration(model) {
  const recent = model.recent(TAIL);
  let i = recent.length - 1;
  while (i > 0 && recent[i].kind !== 'wait') i--;
  if (stepBefore(recent, i - 1)) i--;
  return recent.slice(Math.max(0, i));
}

function describe(ev) {
  const fd = ev.fd !== undefined && ev.fd !== null ? ` fd ${ev.fd}` : '';
  return `${ev.kind}${fd}`;
}

/** The bug-zoo flaw on at the iteration on view, or ''. The model follows it from the state
 * and `loop` events (so time travel and replay show the handler that ran then); a server or a
 * recording that does not say falls back to the zoo panel's switch. */
function flawOf(model) {
  if (model.flaw !== undefined) return model.flaw || '';
  return document.getElementById('zoo-panel')?.dataset.on || '';
}

/** A close's path follows its reason: the flaw's own code closed it (`flaw`), a user's close
 * that lingered (mux/linger.py) and ended with the peer's EOF or the deadline, the write half
 * once the queue left at EOF went out (`flushed`; a user's close keeps its own path), the
 * engine's close of a crashed or refused connection, and for a reset or error the call that
 * met it: the batch dispatch's (`inline`), the eager send in recv's handler (`eager`), on_ready's
 * recv or send (`call`); a recording made before close events said which: an eager send when
 * right after that fd's `recv`. */
function closeKey(events, i) {
  const ev = events[i];
  if (ev.flaw) return 'close@early';
  if (['eof', 'reset', 'deadline'].includes(ev.lingered)) return `close@linger-${ev.lingered}`;
  if (ev.flushed && ev.reason === 'eof') return 'close@flushed';
  // close() unregisters first: its `interest` unregister event comes between recv and close
  let k = i - 1;
  if (events[k] && events[k].kind === 'interest' && events[k].op === 'unregister'
      && events[k].fd === ev.fd) k--;
  // close_without_unregister's `flaw` event (it skipped the unregister) came there instead in
  // a recording made before it followed the close it describes
  if (events[k] && events[k].kind === 'flaw' && events[k].fd === ev.fd) k--;
  const before = events[k];
  // the engine's own close of a connection whose handler raised, or that it refused: right
  // after that fd's `error` event, which says which
  const cause = before && before.kind === 'error' && before.fd === ev.fd ? errorCause(before) : null;
  if (ev.reason === 'error' && (cause === 'crash' || cause === 'refused')) return `close@${cause}`;
  if (ev.reason === 'reset' || ev.reason === 'error') {
    // which call failed (`call`): the batch dispatch's, its close left to on_ready
    // (`inline`); the eager send in recv's handler (`eager`); on_ready's recv or send
    if (ev.inline) return `close@${ev.reason}-inline`;
    if (ev.eager) return `close@eager-${ev.reason}`;
    if (ev.call) return `close@${ev.reason}-${ev.call}`;
    // a recording made before close events said it: eager, right after the fd's `recv`
    if (before && before.kind === 'recv' && before.fd === ev.fd) return `close@eager-${ev.reason}`;
  }
  return ev.reason && ev.reason !== 'eof' ? `close@${ev.reason}` : 'close';
}

/** The path that found an error (`cause`; none: the listener out of fds). A recording made
 * before errors said it: read from the message, as mux/engine.py, listener.py, udp.py word it. */
function errorCause(ev) {
  if (ev.cause) return ev.cause;
  const m = ev.message || '';
  if (m.startsWith('the handler of fd ')) return 'crash';
  if (m.includes('closed the new connection')) return 'refused';
  if (m.startsWith('accept failed:')) return m.includes('pausing accepts') ? null : 'accept';  // out of fds: none
  if (m.startsWith('accepting again')) return 'recovered';
  return m.startsWith('udp ') ? 'udp' : null;
}

/** A recording made before send and queue events said `closing`: a flush with no readiness
 * of its fd in the iteration, ended by that fd's user or shutdown close in it. */
function legacyClosing(events, i) {
  const fd = events[i].fd;
  if (events.some((e) => e.kind === 'ready' && e.fd === fd)) return null;
  const end = events.slice(i + 1).find((e) => e.kind === 'close' && e.fd === fd);
  return end && (end.reason === 'user' || end.reason === 'shutdown') ? end.reason : null;
}

/** A re-registration by a backend switch (`moved`), a change no handler asked for (`cause`:
 * a one-shot re-arm, a stale fd dropped, a flaw's hang-up bit added or taken off), or a
 * handler's register / modify / unregister. */
function interestKey(ev) {
  if (ev.moved) return 'interest@moved';
  if (ev.cause === 'flaw') {
    return (ev.flags || []).some((f) => f.endsWith('RDHUP')) ? 'interest@flaw' : 'interest@flaw-off';
  }
  if (ev.cause === 'rearm' && ev.early) return 'interest@rearm-early';  // /api/kernel's read
  if (ev.cause) return `interest@${ev.cause}`;
  return ev.op === 'register' || ev.op === 'unregister' ? `interest@${ev.op}` : 'interest';
}

/** A modify right after a close's flush (its `queue` event says `closing`), or null. Read
 * interest only: the queue emptied, on_ready's own end drops write interest; or a queue was
 * left, shut_down gave it up and reads away as the close lingers (linger.py). Anything else
 * (write interest kept, or reading paused) is _after_write's. */
function closingInterestKey(events, i) {
  const ev = events[i], before = events[i - 1];
  if (ev.op !== 'modify' || ev.cause || ev.moved || !before || before.kind !== 'queue'
      || before.fd !== ev.fd || !before.closing) return null;
  const flags = ev.flags || [];
  const writing = flags.some((f) => f === 'write' || f.endsWith('OUT'));
  const reading = flags.some((f) => f === 'read' || f.endsWith('IN'));
  if (!reading || writing) return `interest@${before.closing}`;
  return before.depth === 0 ? `interest@${before.closing}-emptied` : 'interest@linger';
}

/** A datagram out right after the one in (a udp_wrong_address flaw event may come between)
 * is the echo; any other is a reply the kernel could not take at once, sent later. */
function datagramKey(events, i) {
  if (events[i].dir !== 'out') return 'datagram';
  const before = events[i - 1]?.kind === 'flaw' ? events[i - 2] : events[i - 1];
  return before && before.kind === 'datagram' && before.dir === 'in' ? 'datagram@out' : 'datagram@flush';
}

export class CodePanel {
  constructor(root) {
    this.root = root;
    this.stepsEl = root.querySelector('#code-steps');
    this.viewEl = root.querySelector('#code-view');
    this.titleEl = root.querySelector('#code-current');
    this.sources = null;
    this.paintedAt = -Infinity;
    this.key = null;
    this.iterKey = null;
    this.pinned = null;      // seq the user picked in this iteration
    this.shownKind = null;
    this.flaw = '';
    this.events = [];
    this.scrollPending = false;  // a centring of the highlighted lines is asked for the next frame
    api.code().then((s) => { this.sources = s || {}; this.key = null; }).catch(() => { this.sources = {}; });
    this.stepsEl.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-seq]');
      if (!btn) return;
      this.pinned = Number(btn.dataset.seq);
      this.key = null;
      this.render();
    });
  }

  /** The /api/code key for `events[i]`: its kind, or `kind@variant` where one kind has
   * several paths (mux/codeview.py). An eager send right after its recv happens inside the
   * recv handler (any other send is on_ready's write half); a queue event right after a
   * write-half send (depth going down) comes from that write half, one after an eager
   * partial send from `_put`; a backpressure release from the write half too. */
  chainKey(events, i) {
    const ev = events[i];
    const sameFd = (e, kind) => e && e.kind === kind && e.fd === ev.fd;
    const eagerSend = (k) => this.write === 'eager' && sameFd(events[k], 'send')
      && sameFd(events[k - 1], 'recv') && !events[k - 1].eof;   // (the EOF's recv sends nothing)
    // the write half of on_ready, run by a readiness, or by shut_down: the event's `closing`
    // says for which close (`user`: "Close fd N"; `shutdown`: the engine's stop)
    const writeHalf = (key) => {
      const closing = ev.closing ?? legacyClosing(events, i);
      return closing ? `${ev.kind}@${closing}` : key;
    };
    switch (ev.kind) {
      case 'send': return !ev.closing && eagerSend(i) ? 'send@eager' : writeHalf('send');
      case 'queue': return sameFd(events[i - 1], 'send') && !eagerSend(i - 1) ? writeHalf('queue@send') : 'queue';
      // a release comes from a readiness's write half only (never a close's: see _after_write);
      // a pause from _put, or (`inline`: queued, its iteration unwatched) the batch dispatch's read
      case 'backpressure':
        if (ev.udp) return ev.paused === false ? 'backpressure@udp-release' : 'backpressure@udp';
        if (ev.paused === false) return 'backpressure@release';
        return ev.inline ? 'backpressure@inline' : 'backpressure';
      case 'close': return closeKey(events, i);
      case 'interest': return closingInterestKey(events, i) ?? interestKey(ev);
      case 'datagram': return datagramKey(events, i);
      case 'error': { const cause = errorCause(ev); return cause ? `error@${cause}` : 'error'; }
      case 'loop':   // who emitted it: a client's pause/resume, a step, a breakpoint, a setting
        return ev.cause && ev.cause !== 'command' ? `loop@${ev.cause}` : 'loop';
      case 'recv': return ev.eof ? 'recv@eof' : 'recv';   // recv() returned 0 bytes
      case 'wait': case 'ready': return ev.late ? `${ev.kind}@late` : ev.kind;  // a breakpoint's hit
      default: return ev.kind;
    }
  }

  chain(events, i) {
    const ev = events[i];
    const key = this.chainKey(events, i);
    if (!this.sources) return [];
    // a bug-zoo flaw on: its own handler ran instead of TcpConnection.on_ready (`kind@flaw`)
    const flaw = ev.flaw || this.flaw;
    return (flaw && this.sources[`${key}@${flaw}`]) || this.sources[key] || this.sources[ev.kind] || [];
  }

  paint(model, now) {
    if (!this.sources || now - this.paintedAt < MIN_INTERVAL_MS) return;
    this.write = model.backend.write;
    this.flaw = flawOf(model);
    const key = `${model.seq}/${model.viewGen ?? 'live'}/${this.flaw}`;
    if (key === this.key) return;
    this.key = key;
    this.paintedAt = now;
    this.events = currentIteration(model);
    const first = this.events[0];
    const iterKey = first ? `${first.seq}/${model.viewGen ?? 'live'}` : '';
    if (iterKey !== this.iterKey) { this.iterKey = iterKey; this.pinned = null; }
    this.render();
  }

  selected() {
    const evs = this.events;
    if (this.pinned !== null) { const p = evs.find((e) => e.seq === this.pinned); if (p) return p; }
    for (let i = evs.length - 1; i >= 0; i--) if (evs[i].kind !== 'loop') return evs[i];
    return evs[evs.length - 1] || null;
  }

  render() {
    const sel = this.selected();
    const indexOf = new Map();   // event -> its place in this iteration (chains look back)
    this.events.forEach((ev, i) => indexOf.set(ev, i));
    const evs = this.events;
    const long = evs.length > MAX_STEPS;
    const listed = long ? [...evs.slice(0, MAX_STEPS - TAIL_STEPS), ...evs.slice(-TAIL_STEPS)] : evs;
    const items = listed.map((ev) => {
      const li = document.createElement('li');
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.dataset.seq = String(ev.seq);
      btn.dataset.kind = String(ev.kind);
      const names = this.chain(this.events, indexOf.get(ev)).map((f) => f.qualname).join(' › ');
      btn.textContent = `${describe(ev)}${names ? ` — ${names}` : ''}`;
      btn.setAttribute('aria-pressed', String(ev === sel));
      btn.setAttribute('aria-label', safeLabel(`Show code: ${describe(ev)}`));
      li.append(btn);
      return li;
    });
    if (long) {   // between the first ones and the last ones
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = `… ${evs.length - MAX_STEPS} more events of this iteration …`;
      items.splice(MAX_STEPS - TAIL_STEPS, 0, li);
    }
    // the list is rebuilt: a focused step keeps the focus (it fell to the page's body on
    // every live iteration, so the list could not be walked with the keyboard)
    const focused = this.stepsEl.contains(document.activeElement) ? document.activeElement.dataset.seq : null;
    this.stepsEl.replaceChildren(...items);
    if (focused) {   // the same event, or the first of a new iteration
      const again = this.stepsEl.querySelector(`button[data-seq="${focused}"]`) || this.stepsEl.querySelector('button');
      again?.focus();
    }
    if (!sel) { this.titleEl.textContent = 'no event yet'; this.viewEl.replaceChildren(); return; }
    this.titleEl.textContent = `${describe(sel)} (#${sel.seq}) comes from:`;
    this.root.dataset.kind = String(sel.kind);
    const key = `${this.chainKey(this.events, indexOf.get(sel))}|${this.flaw}`;
    if (key === this.shownKind) return;
    this.shownKind = key;
    const chain = this.chain(this.events, indexOf.get(sel));
    const blocks = chain.map((fn, depth) => this.block(fn, depth, chain.length));
    if (!blocks.length) {
      const p = document.createElement('p');
      p.className = 'muted';
      p.textContent = `no handler source for "${sel.kind}" events`;
      blocks.push(p);
    }
    this.viewEl.replaceChildren(...blocks);
    this.scrollToHighlight();
  }

  /** Centre each block's highlighted line. Read in the next animation frame, before the page
   *  writes anything: the layout the browser made for this frame is clean then. Read here,
   *  right after the blocks were inserted (and the other panels' writes of this frame), it
   *  forced a synchronous layout of the whole page (up to 1,800 objects, 45 ms). */
  scrollToHighlight() {
    if (this.scrollPending) return;
    this.scrollPending = true;
    requestAnimationFrame(() => {
      this.scrollPending = false;
      for (const pre of this.viewEl.querySelectorAll('pre')) {
        const hl = pre.querySelector('.hl');
        if (hl) pre.scrollTop = Math.max(0, hl.offsetTop - pre.offsetTop - pre.clientHeight / 2);
      }
    });
  }

  block(fn, depth, n) {
    const div = document.createElement('div');
    div.className = 'code-fn';
    div.dataset.qualname = fn.qualname;
    const h = document.createElement('h3');
    h.textContent = `${depth + 1}/${n} ${fn.qualname}  (${fn.module || fn.file}:${fn.first_line})`;
    const pre = document.createElement('pre');
    pre.className = 'code';
    const hl = new Set(fn.highlight || []);
    (fn.lines || []).forEach((text, i) => {
      const no = fn.first_line + i;
      const line = document.createElement('span');
      line.className = hl.has(no) ? 'line hl' : 'line';
      line.dataset.line = String(no);
      const ln = document.createElement('span');
      ln.className = 'ln';
      ln.textContent = String(no).padStart(4);
      line.append(ln, document.createTextNode(` ${text}`));
      pre.append(line);
    });
    div.append(h, pre);
    return div;
  }
}
