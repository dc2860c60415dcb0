// Live charts (uPlot, vendored): events/s, bytes/s, and wait-call time vs registered fds per backend.
import uPlot from '../vendor/uPlot.esm.js';
import { BACKEND_COLORS, colors } from './canvas.js';

const WINDOW = 120;          // seconds of history
const GROUPED = new Intl.NumberFormat('en');   // 12,345
const HEIGHT = 230;          // the whole chart: title, plot, x axis and legend
const BACKENDS = ['select', 'poll', 'epoll'];
/** Wall time over CPU time beyond which a wait call is taken to have slept (µs). */
const SLEPT_US = 20;
/** The wait chart draws, per backend and fd count, the median of this many latest calls: the
 *  least seen was one lucky call (a review saw poll at 1,004 fds drawn at 60 µs when slept,
 *  its next-lowest 223 and its tenth percentile 820, below its calls that returned at once). */
const WAIT_SAMPLES = 31;

/** The median of a few numbers. */
function median(values) {
  const s = Float64Array.from(values).sort();
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Did this wait call block before it returned? It timed out with nothing ready, or its wall
 *  time ran past its CPU time. (Without `cpu_us`, an old recording: only a zero timeout is
 *  known not to have slept.) */
function sleptFirst(ev) {
  if (!ev.ready && ev.timeout_ms !== 0) return true;
  if (ev.cpu_us === undefined) return ev.timeout_ms !== 0;
  return (ev.duration_us ?? 0) - ev.cpu_us > SLEPT_US;
}

function bucket(n) {
  if (n < 64) return n;
  const p = 10 ** (Math.floor(Math.log10(n)) - 1);
  return Math.round(n / p) * p;
}

/** Seconds as the x axis shows them: "42 s", "3:05" (min:s), "1:02:03". */
export function fmtSeconds(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const t = Math.round(v);
  if (Math.abs(t) < 60) return `${t} s`;
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A tick value in few characters: 950, 1.5k, 20k, 3M (`decimals`: more, when asked). */
export function compact(v, decimals) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '';
  const a = Math.abs(v);
  for (const [unit, div] of [['G', 1e9], ['M', 1e6], ['k', 1e3]]) {
    if (a >= div) return `${+(v / div).toFixed(decimals ?? (a >= 10 * div ? 0 : 1))}${unit}`;
  }
  return String(+v.toFixed(decimals ?? (a < 10 ? 1 : 0)));
}

/** An axis's tick labels: compact, with as many decimals as it takes to tell them apart
 * (a steady 3,200 bytes/s made five ticks of "3.2k"). */
export function compactTicks(vals) {
  const distinct = (labels) => new Set(labels).size === labels.length;
  let out = vals.map((v) => compact(v));
  for (let d = 1; d <= 4 && !distinct(out); d++) out = vals.map((v) => compact(v, d));
  return out;
}

/** A rate's y range from 0: an axis from 1.16k to 1.2k drew a 3 % wobble as a fall. At
 *  least 0-10: an idle second's axis read "0.2 events/s". */
export function fromZero(u, min, max) {
  return [0, max > 0 ? Math.max(10, max * 1.1) : 10];
}

/** A log axis's range out to whole powers of ten, so that both ends have a labelled tick (a
 *  3 µs point sat under the lowest tick, 10); with no data yet, `empty` (an axis and a grid
 *  rather than a blank box). */
export function wholeDecades(empty) {
  return (u, min, max) => {
    if (!(min > 0) || !(max > 0)) return empty;
    const lo = 10 ** Math.floor(Math.log10(min));
    const hi = 10 ** Math.ceil(Math.log10(max));
    return [lo, hi > lo ? hi : lo * 10];
  };
}

/** Log-scale ticks at the powers of ten only: the 2..9 lines of every decade merge into a band. */
export function decades(u, axisIdx, min, max) {
  const out = [];
  for (let p = Math.floor(Math.log10(Math.max(min, 1e-9))); 10 ** p <= max * 1.001; p++) {
    if (10 ** p >= min * 0.999) out.push(10 ** p);
  }
  return out;
}

function axes(c, yLabel, xTime = true) {
  const style = { stroke: c.muted, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line, width: 1 } };
  // x: seconds since the engine started (a plain number scale: no calendar dates)
  const x = xTime
    ? { ...style, label: 'time since start', incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400],
      values: (u, vals) => vals.map(fmtSeconds) }
    : { ...style, label: 'registered fds', splits: decades, values: (u, vals) => compactTicks(vals) };
  const y = { ...style, label: yLabel, size: 52, space: 24, values: (u, vals) => compactTicks(vals) };
  return [x, xTime ? y : { ...y, splits: decades }];
}

const TIME_SERIES = { label: 'time', value: (u, v) => fmtSeconds(v) };

export class Charts {
  /** `replay`: the rates are drawn from the recorded events over their own `ts` (a replay's
   *  stats frame repeats the recording's totals each second: sampled, it drew flat zeros, on
   *  an axis of the wall-clock time since the recording). */
  constructor(root, model, { replay = false } = {}) {
    this.model = model;
    this.root = root;
    this.replay = replay;
    this.startedAt = undefined;
    this.clear();
    const c = colors();
    const mk = (id, opts, data) => {
      const el = root.querySelector(id);
      // the legend names the lines (live, it read "engine: --" until the mouse was over the plot)
      return new uPlot({ width: Math.max(200, el.clientWidth), height: HEIGHT, legend: { live: false }, ...opts },
        data, el);
    };
    this.events = mk('#chart-events', {
      title: 'events per second',
      series: [TIME_SERIES, { label: 'engine', stroke: c.read, width: 2 },
        { label: replay ? 'recorded' : 'to this page', stroke: c.ready, width: 1 }],
      axes: axes(c, 'events/s'),
      scales: { x: { time: false }, y: { range: fromZero } },
    }, [[], [], []]);
    this.bytes = mk('#chart-bytes', {
      title: 'TCP bytes per second',
      series: [TIME_SERIES, { label: 'in (recv)', stroke: c.read, width: 2 }, { label: 'out (send)', stroke: c.write, width: 2 }],
      axes: axes(c, 'bytes/s'),
      scales: { x: { time: false }, y: { range: fromZero } },
    }, [[], [], []]);
    this.wait = mk('#chart-wait', {
      title: 'wait duration vs registered fds (CPU µs of one call)',   // (medians of how many: the caption)
      // two lines a backend: a call that slept pays the wake-up on the CPU too (~15 µs here),
      // more than epoll's whole call; drawn on one line, a flood's waits (at once) at 200
      // fds looked 50 times cheaper than an idle page's at 3
      series: [{ label: 'fds' }, ...BACKENDS.map((b) => ({
        label: `${b}, returned at once`, stroke: BACKEND_COLORS[b], width: 1, spanGaps: true,
        points: { show: true, size: 5, fill: BACKEND_COLORS[b] },
      })), ...BACKENDS.map((b) => ({
        label: `${b}, slept first`, stroke: BACKEND_COLORS[b], width: 1, dash: [4, 4], spanGaps: true,
        points: { show: true, size: 4, fill: 'transparent' },
      }))],
      axes: axes(c, 'µs', false),
      scales: { x: { time: false, distr: 3, range: wholeDecades([1, 1000]) },
        y: { distr: 3, range: wholeDecades([1, 100]) } },
      // the two lines of a backend share its colour: in the legend, as on the plot, the
      // calls that slept are hollow (and dashed), those that returned at once filled
      legend: { live: false, markers: {
        dash: (u, i) => (u.series[i].dash ? 'dashed' : 'solid'),
        fill: (u, i) => (u.series[i].dash || i === 0 ? 'transparent' : u.series[i].stroke(u, i)),
      } },
    }, [[], [], [], [], [], [], []]);
    this.plots = [this.events, this.bytes, this.wait];
    // over the wait chart's empty plot (its title and legend alone read as a broken chart):
    // why there is no point yet. Laid over the plot, so the panel's height does not change
    this.waitEmpty = document.createElement('p');
    this.waitEmpty.className = 'chart-empty muted';
    this.waitEmpty.id = 'chart-wait-empty';
    this.wait.over.append(this.waitEmpty);
    this.waitPoints = 0;
    // the charts' figures as text, for those who cannot see the plots (a canvas says nothing);
    // each optional: a page without them still has the charts
    this.nowEl = root.querySelector('#chart-now');
    const samples = root.querySelector('#wait-samples');
    if (samples) samples.textContent = String(WAIT_SAMPLES);
    this.waitTable = root.querySelector('#chart-wait-table');
    this.waitRows = { x: [], ys: [] };
    this.waitTable?.closest('details').addEventListener('toggle', () => this.fillWaitTable());
    const ro = new ResizeObserver(() => {
      for (const u of this.plots) u.setSize({ width: Math.max(200, u.root.parentElement.clientWidth), height: HEIGHT });
    });
    ro.observe(root);
    model.subscribe((ev) => this.onEvent(ev));
    if (!replay) setInterval(() => this.sample(), 1000);
  }

  /** Forget every sample: the series are times since one engine's start, and its counters. */
  clear() {
    this.times = [];
    this.evEngine = [];
    this.evPage = [];
    this.bIn = [];
    this.bOut = [];
    // backend -> fd count (bucketed) -> the CPU time of its latest calls (µs, at most WAIT_SAMPLES)
    this.waitAtOnce = { select: new Map(), poll: new Map(), epoll: new Map() };   // returned at once
    this.waitSlept = { select: new Map(), poll: new Map(), epoll: new Map() };    // slept first
    this.sawCpu = false;   // a wait has carried cpu_us: the wall-time fallback is off
    this.local = { in: 0, out: 0 };
    this.second = null;   // replay: the recorded second being counted
    this.lastSeq = null;
    this.prev = null;
    this.dirty = true;
    this.waitDirty = true;
  }

  onEvent(ev) {
    if (ev.kind === 'reset') {   // a snapshot: from another engine (a restarted server), start afresh
      // (a replay's every snapshot: a reconnect is sent the whole recording again, and its
      // seconds were drawn twice, the time axis going back)
      if (this.replay || (this.startedAt !== undefined && this.model.startedAt !== this.startedAt)) this.clear();
      this.startedAt = this.model.startedAt;
      this.lastSeq = this.model.seq ?? null;   // replay: events after it the recording lacks count
      return;
    }
    if (this.replay) this.tally(ev);
    switch (ev.kind) {
      case 'recv': this.local.in += ev.bytes || 0; break;
      case 'send': this.local.out += ev.bytes || 0; break;
      // (TCP only, as the stats frames' bytes: with datagrams here, UDP showed only in the
      // samples taken without a fresh stats frame)
      case 'wait': {
        // the call's CPU time (`cpu_us`): its wall time counts the time it slept too, so a wait
        // that slept 700 ms before one fd turned ready looked like the slowest of calls. A
        // recording made before there was `cpu_us`: the wall time of waits that did not time
        // out (still with their sleep). Once one wait has said
        // its CPU time, only those count (the engine samples them under load), and what the
        // fallback drew before goes
        if (!BACKENDS.includes(ev.backend) || ev.registered === undefined) break;
        if (ev.cpu_us !== undefined && !this.sawCpu) {
          this.sawCpu = true;
          for (const b of BACKENDS) { this.waitAtOnce[b].clear(); this.waitSlept[b].clear(); }
        }
        const cost = ev.cpu_us !== undefined ? Math.min(ev.cpu_us, ev.duration_us ?? Infinity)
          : (!this.sawCpu && (ev.ready || ev.timeout_ms === 0) ? ev.duration_us : undefined);
        if (cost === undefined) break;
        const m = (sleptFirst(ev) ? this.waitSlept : this.waitAtOnce)[ev.backend];
        const k = Math.max(1, bucket(ev.registered));
        let costs = m.get(k);
        if (!costs) m.set(k, costs = []);
        costs.push(Math.max(1, cost));
        if (costs.length > WAIT_SAMPLES) costs.shift();
        this.waitDirty = true;
        break;
      }
      default: break;
    }
  }

  /** Replay: count `ev` into its recorded second (a recording's `ts` only grows). Engine
   *  events are told by seq, with those the recording lacks; the rest by what it holds. */
  tally(ev) {
    const sec = Math.floor(Number(ev.ts) || 0);
    let c = this.second;
    if (c && sec !== c.sec) { this.closeSecond(sec); c = null; }
    if (!c) c = this.second = { sec, engine: 0, recorded: 0, bin: 0, bout: 0 };
    c.engine += this.lastSeq === null || !(ev.seq > this.lastSeq) ? 1 : ev.seq - this.lastSeq;
    this.lastSeq = ev.seq;
    c.recorded += 1;
    if (ev.kind === 'recv') c.bin += ev.bytes || 0;
    else if (ev.kind === 'send') c.bout += ev.bytes || 0;
    this.dirty = true;
  }

  /** Replay: the second counted goes into the series; the seconds without events up to
   *  `next` are drawn as 0 (two points at most), not as a line across them. */
  closeSecond(next) {
    const c = this.second;
    this.second = null;
    const push = (t, engine, recorded, bin, bout) => {
      this.times.push(t); this.evEngine.push(engine); this.evPage.push(recorded); this.bIn.push(bin); this.bOut.push(bout);
    };
    push(c.sec, c.engine, c.recorded, c.bin, c.bout);
    if (next > c.sec + 1) push(c.sec + 1, 0, 0, 0, 0);
    if (next > c.sec + 2) push(next - 1, 0, 0, 0, 0);
  }

  sample() {
    const m = this.model;
    const now = performance.now();
    const stats = m.stats;
    const cur = {
      t: now, applied: m.eventsApplied, localIn: this.local.in, localOut: this.local.out,
      total: stats ? stats.events_total : null, bin: stats ? stats.bytes_in : null, bout: stats ? stats.bytes_out : null,
      statsFrames: m.frames.stats,
    };
    const prev = this.prev;
    this.prev = cur;
    if (!prev) return;
    const dt = (cur.t - prev.t) / 1000;
    if (dt <= 0) return;
    const fresh = cur.statsFrames > prev.statsFrames && cur.total !== null && prev.total !== null && cur.total >= prev.total;
    const page = (cur.applied - prev.applied) / dt;
    const engine = fresh ? (cur.total - prev.total) / dt : page;
    const bin = fresh && cur.bin >= prev.bin ? (cur.bin - prev.bin) / dt : (cur.localIn - prev.localIn) / dt;
    const bout = fresh && cur.bout >= prev.bout ? (cur.bout - prev.bout) / dt : (cur.localOut - prev.localOut) / dt;
    // seconds since the engine started (ts 0 is started_at, Unix seconds, from the snapshot)
    const t = m.startedAt ? Date.now() / 1000 - m.startedAt : performance.now() / 1000;
    this.times.push(Math.round(t * 10) / 10);
    this.evEngine.push(Math.round(engine));
    this.evPage.push(Math.round(page));
    this.bIn.push(Math.round(bin));
    this.bOut.push(Math.round(bout));
    for (const a of [this.times, this.evEngine, this.evPage, this.bIn, this.bOut]) if (a.length > WINDOW) a.shift();
    this.dirty = true;
  }

  /** The latest second's rates, in words. */
  sayNow(t, engine, page, bin, bout) {
    let text = '–';
    if (t !== undefined) {
      const n = (v) => GROUPED.format(v ?? 0);
      const when = this.replay ? `At ${fmtSeconds(t)} of the recording` : 'In the last second';
      text = `${when}: ${n(engine)} events/s from the engine (${n(page)} ${this.replay ? 'in the file' : 'shown on this page'}); ` +
        `TCP ${n(bin)} bytes/s in, ${n(bout)} bytes/s out`;
    }
    if (this.nowEl && this.nowEl.textContent !== text) this.nowEl.textContent = text;
  }

  /** The wait chart's points as table rows (only while the table is open). Rows are kept and
   *  a cell written only when its text changed: rebuilt twice a second under load, the table
   *  threw a screen reader's place in it away. */
  fillWaitTable() {
    if (!this.waitTable?.closest('details').open) return;
    const { x, ys } = this.waitRows;
    const order = [0, 3, 1, 4, 2, 5];   // each backend's at-once then slept (ys: at once x3, slept x3)
    const cell = (v) => (v === null ? '–' : v < 10 ? v.toFixed(1) : GROUPED.format(Math.round(v)));
    const body = this.waitTable.tBodies[0];
    x.forEach((fds, i) => {
      let tr = body.rows[i];
      if (!tr) {
        tr = body.insertRow();
        for (let k = 0; k < 7; k++) tr.insertCell();
      }
      [GROUPED.format(fds), ...order.map((j) => cell(ys[j][i]))].forEach((text, k) => {
        if (tr.cells[k].textContent !== text) tr.cells[k].textContent = text;
      });
    });
    while (body.rows.length > x.length) body.deleteRow(-1);
  }

  paint() {
    if (this.dirty) {
      this.dirty = false;
      const c = this.second;   // replay: the last second too, counted so far
      const s = c ? (a, v) => a.concat([v]) : (a) => a;
      const t = s(this.times, c?.sec);
      const series = [s(this.evEngine, c?.engine), s(this.evPage, c?.recorded), s(this.bIn, c?.bin), s(this.bOut, c?.bout)];
      this.events.setData([t, series[0], series[1]]);
      this.bytes.setData([t, series[2], series[3]]);
      this.sayNow(t.at(-1), ...series.map((a) => a.at(-1)));
    }
    const now = performance.now();
    if (this.waitDirty && !(now - (this.waitAt || 0) < 500)) {
      this.waitDirty = false;
      this.waitAt = now;
      const xs = new Set();
      const maps = [...BACKENDS.map((b) => this.waitAtOnce[b]), ...BACKENDS.map((b) => this.waitSlept[b])];
      for (const m of maps) for (const k of m.keys()) xs.add(k);
      const x = [...xs].sort((a, b) => a - b);
      const ys = maps.map((m) => x.map((k) => (m.has(k) ? median(m.get(k)) : null)));
      this.wait.setData([x, ...ys]);
      this.waitRows = { x, ys };
      this.waitPoints = x.length;
      this.fillWaitTable();
    }
    this.sayWhyNoWait();
  }

  /** The empty wait chart says why it is empty (a paused loop makes no wait call). */
  sayWhyNoWait() {
    let text = '';
    if (!this.waitPoints) {
      text = this.replay ? 'No wait call with its CPU time in the recording so far.'
        : this.model.paused ? 'No wait call seen yet: the loop is paused (Resume it, or Step for one wait).'
          : 'No wait call seen yet.';
    }
    if (this.waitEmpty.textContent !== text) this.waitEmpty.textContent = text;
    if (this.waitEmpty.hidden !== !text) this.waitEmpty.hidden = !text;
  }
}
