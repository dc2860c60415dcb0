// View preferences shared by every panel: the spotlight fd, "my" connections, a colour per peer.
// Nothing here touches the DOM; panels read it while painting.

const LOCAL_PREFIXES = ['127.', '::1', '[::1]', '::ffff:127.'];

export const ui = {
  spotlight: null,          // fd shown alone (others hidden or dimmed), or null for all
  mine: new Set(),          // peers ("ip:port") the user marked as theirs
  version: 0,               // bumped on every change: panels re-render when it moves

  setSpotlight(fd) {
    const v = fd === null || fd === undefined || fd === '' || !Number.isFinite(Number(fd)) ? null : Number(fd);
    if (v === this.spotlight) return;
    this.spotlight = v;
    this.version++;
  },

  toggleMine(peer) {
    if (!peer) return false;
    if (this.mine.has(peer)) this.mine.delete(peer); else this.mine.add(peer);
    this.version++;
    return this.mine.has(peer);
  },

  isMine(peer) { return !!peer && this.mine.has(peer); },

  /** True when fd passes the spotlight (no spotlight: everything passes). */
  shows(fd) { return this.spotlight === null || fd === this.spotlight; },
};

/** A peer on the loopback interface is "from this machine". */
export function isLocalPeer(peer) {
  const p = String(peer || '');
  return LOCAL_PREFIXES.some((pre) => p.startsWith(pre));
}

/** Peer -> colour, in the order the page first saw each peer (bounded: the oldest go first). */
const colours = new Map();
const REMEMBERED = 20000;
let coloured = 0;

/** The same colour for the same peer, in every panel. Hues go to peers in the order they are
 * first seen, each the golden ratio's fraction of the wheel on from the last: any few peers in a
 * row are far apart (the first five at least 43° apart). A hash of the address gave two of three
 * telnets hues within 15° of each other about one time in four. */
export function peerColor(peer) {
  const key = String(peer || '');
  let c = colours.get(key);
  if (c) return c;
  const turn = (0.567 + coloured++ * 0.6180339887) % 1;   // the first: blue (hue 200)
  c = `hsl(${Math.round(30 + 300 * turn)}, 75%, 62%)`;   // no reds: red marks backpressure
  if (colours.size >= REMEMBERED) colours.delete(colours.keys().next().value);
  colours.set(key, c);
  return c;
}

// Names of the page's main controls: a flaw's label must not contain them, or a search for
// "the control labelled Trigger" would find two. A word joiner (U+2060: invisible, not read
// aloud) breaks the word; name matching strips soft hyphens and zero-width spaces, so not those.
const RESERVED = ['backend', 'trigger', 'one-shot', 'write', 'pause', 'resume', 'step', 'slow motion',
  'close fd', 'clients', 'download trace'];

/** `text` for an aria-label, with the main controls' names broken up (see above). */
export function safeLabel(text) {
  let out = String(text);
  for (const word of RESERVED) {
    const i = out.toLowerCase().indexOf(word);
    if (i >= 0) out = `${out.slice(0, i + 1)}\u2060${out.slice(i + 1)}`;
  }
  return out;
}

/** Whether the page's websocket is open (the header's status): re-reads wait for it, or every
 * one would put a "network error" in the alert area while the server is down. */
export function serverConnected() {
  return document.getElementById('ws-status')?.dataset.state === 'open';
}

const REREAD_MS = 3000;

/** Run `read` every few seconds while the tab is visible and the server connected: for what
 * another client may change with no event to say so (breakpoints, the bug zoo). */
export function rereadWhileConnected(read) {
  setInterval(() => { if (!document.hidden && serverConnected()) read(); }, REREAD_MS);
}

/** Run `work` with `el` disabled (its request in flight), then enable it again unless
 * `enabledAfter` is false, and give it back the focus it had: disabling a focused control
 * drops the focus to the page's body, and a keyboard user lost their place at every press. */
export async function whileDisabled(el, work, enabledAfter = true) {
  const focused = document.activeElement === el;
  el.disabled = true;
  try {
    return await work();
  } finally {
    el.disabled = !enabledAfter;
    if (focused && !el.disabled) el.focus();
  }
}
