// Time travel: a scrubber over the recorded wait iterations. Viewing a past iteration swaps the
// model every panel paints from for a rebuilt one (snapshot + events up to that iteration).
import { Model } from './model.js';

const SPEEDS = [0.25, 0.5, 1, 2, 4, 8];
const MAX_GAP_S = 1;   // playback skips recorded gaps longer than this (a paused loop)
const SCRUBBER_LIVE_MS = 250;   // live: the scrubber's end follows the waits at most this often

export class Timeline {
  constructor(root, live, history, { replay }) {
    this.root = root;
    this.live = live;
    this.history = history;
    this.replay = replay;
    this.view = null;        // the rebuilt model while viewing the past
    this.at = null;          // where the view stands: {generation, pos}
    this.iter = 0;           // the iteration on view (0: live)
    this.target = 0;         // requested iteration, applied on the next frame
    this.playing = false;
    this.playTs = 0;
    this.lastTick = 0;
    const $ = (id) => root.querySelector(`#${id}`);
    this.range = $('timeline-range');
    this.statusEl = $('timeline-status');
    this.playBtn = $('timeline-play');
    this.speedSel = $('timeline-speed');
    this.liveBtn = $('timeline-live');
    for (const s of SPEEDS) {
      const o = document.createElement('option');
      o.value = String(s);
      o.textContent = `${s}x`;
      if (s === 1) o.selected = true;
      this.speedSel.append(o);
    }
    if (replay) this.liveBtn.hidden = true;
    this.range.addEventListener('input', () => this.goTo(Number(this.range.value)));
    this.playBtn.addEventListener('click', () => this.togglePlay());
    this.liveBtn.addEventListener('click', () => {
      const hadFocus = document.activeElement === this.liveBtn;
      this.backToLive();   // (disables the button)
      if (hadFocus) this.range.focus();   // not the page's top: the timeline, now at live
    });
    this.shown = {};
  }

  get viewing() { return this.view !== null; }
  /** The model the panels paint. */
  get displayed() { return this.view || this.live; }

  goTo(n) {
    const h = this.history;
    if (!h.last) return;
    n = Math.max(h.first, Math.min(h.last, Math.round(n)));
    if (!this.replay && !this.playing && n === h.last && !this.viewing) return;  // already live
    this.target = n;
    if (this.playing) this.playTs = (h.waitEvent(n) || {}).ts || 0;
  }

  togglePlay() {
    if (this.playing) { this.playing = false; this.paintButtons(); return; }
    const h = this.history;
    if (!h.last) return;
    let n = this.target || this.iter || h.last;
    if (!this.viewing || n >= h.last) n = h.first;   // from live or the end: play from the start
    this.target = n;
    this.playTs = (h.waitEvent(n) || {}).ts || 0;
    this.playing = true;
    this.lastTick = 0;
    this.paintButtons();
  }

  backToLive() {
    this.playing = false;
    this.view = null;
    this.at = null;
    this.iter = 0;
    this.target = 0;
    this.live.markAll();
    this.live.regsChanged = true;
    this.paintButtons();
  }

  /** Once per animation frame: playback, apply the requested iteration, refresh the scrubber. */
  tick(now) {
    const h = this.history;
    if (this.playing) {
      const dt = this.lastTick ? Math.min(250, now - this.lastTick) : 0;
      this.playTs += (dt / 1000) * Number(this.speedSel.value || 1);
      const from = this.target || this.iter || h.first;
      let n = h.iterationAtTs(this.playTs, from);
      const next = h.waitEvent(n + 1);
      if (next && next.ts - this.playTs > MAX_GAP_S && n === from) { n += 1; this.playTs = next.ts; }
      if (n !== from || !this.viewing) this.target = n;
      if (n >= h.last) { this.playing = false; this.paintButtons(); }
    }
    this.lastTick = now;
    if (this.target) this.apply();
    // fallen off the front (the hold's limit): on to the iteration a page's cap from the end,
    // not the first kept, which the next trim would take again (pushed forward 4 times a second)
    if (this.viewing && this.iter < h.first) {
      const capFromEnd = h.events[Math.max(0, h.events.length - h.cap)];
      this.target = Math.max(h.first, h.iterationForSeq(capFromEnd ? capFromEnd.seq : 0) || 0);
      this.apply();
    }
    // the events from the iteration on view are kept (up to a limit) while it is viewed
    const held = this.viewing ? h.range(this.iter) : null;
    h.holdPos = held ? held[0] : null;
    this.paintScrubber(now);
  }

  apply() {
    const n = this.target;
    this.target = 0;
    const r = this.history.range(n);
    if (!r) return;
    if (!this.view) {
      this.view = new Model({ ringSize: this.live.recentEvents.size });
      this.view.isView = true;
      this.view.viewGen = 0;
      this.at = null;
    }
    const at = this.history.seek(this.view, r[1], this.at);
    if (!at) return;
    this.at = at;
    this.iter = n;
    this.view.viewGen++;
    this.view.markAll();
    this.view.regsChanged = true;
    this.paintButtons();
  }

  paintScrubber(now = performance.now()) {
    const h = this.history;
    const first = h.first, last = h.last;
    const value = this.viewing ? this.iter : last;
    const key = `${first}/${last}/${value}/${this.viewing}`;
    if (key === this.shown.key) return;
    // live, the end of the scrubber moves with every wait: follow it a few times a second only
    const mode = `${this.viewing}/${this.iter}/${this.replay}/${last ? 1 : 0}`;
    if (!this.viewing && mode === this.shown.mode && now - (this.shown.at || 0) < SCRUBBER_LIVE_MS) return;
    this.shown.key = key;
    this.shown.mode = mode;
    this.shown.at = now;
    const set = (k, v, write) => { if (this.shown[k] !== v) { this.shown[k] = v; write(v); } };
    set('disabled', last === 0, (v) => { this.range.disabled = v; });
    if (this.range.min !== String(first || 0)) this.range.min = String(first || 0);
    if (this.range.max !== String(last)) this.range.max = String(last);
    if (document.activeElement !== this.range || !this.viewing) {
      if (this.range.value !== String(value)) this.range.value = String(value);
    }
    let text;
    if (!last) text = this.replay ? 'no iterations in this recording yet' : 'live (no wait iteration recorded yet)';
    else if (this.viewing) text = `viewing iteration ${this.iter} of ${last}`;
    else if (this.replay) text = `viewing iteration ${last} of ${last} (end of the recording)`;
    else text = 'live';
    // the page keeps the last N events: say what is out of reach, not just start the range later
    if (last && first > 1 && (this.viewing || this.replay)) {
      text += `; iterations 1–${first - 1} are no longer held (the page keeps the last ${this.history.cap.toLocaleString('en')} events` +
        (this.replay ? ': record with --record-max-mb 8 to scrub through whole files)' : ')');
    }
    set('text', text, (v) => { this.statusEl.textContent = v; this.range.setAttribute('aria-valuetext', v); });
    const w = value ? h.waitEvent(value) : null;
    const ds = this.root.dataset;
    const dsSet = (k, v) => { if (ds[k] !== v) ds[k] = v; };
    dsSet('mode', this.viewing ? 'view' : 'live');
    dsSet('iteration', String(value));
    dsSet('last', String(last));
    dsSet('seq', w ? String(w.seq) : '');
    set('viewing', this.viewing, (v) => {
      this.root.classList.toggle('viewing', v);
      document.body.classList.toggle('time-travel', v);
    });
  }

  paintButtons() {
    const label = this.playing ? 'Pause replay' : 'Play';
    if (this.playBtn.textContent !== label) this.playBtn.textContent = label;
    this.playBtn.setAttribute('aria-pressed', String(this.playing));
    this.liveBtn.disabled = !this.viewing && !this.playing;
    this.shown.key = null;
  }
}
