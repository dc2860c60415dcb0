// Live controls: every change applies at once (no Apply button); errors go to the alert area.
import { api, clearTopic, downloadFile, showError, withToken } from './api.js';
import { offerToMakeRoomForSelect } from './selectlimit.js';
import { serverConnected, whileDisabled } from './ui.js';

const MAX_DELAY_MS = 5000;      // the slow-motion range the API accepts
const TYPING_PAUSE_MS = 400;    // a delay typed into the field is sent once the keys pause this long

/** A whole number of milliseconds the API accepts (partial input like "" or "1e" is not). */
function validDelay(text) {
  const raw = text.trim();
  const ms = Number(raw);
  return raw !== '' && Number.isInteger(ms) && ms >= 0 && ms <= MAX_DELAY_MS;
}

export class Controls {
  constructor(doc, model, { replay, applyState = (state) => model.applyState(state) }) {
    this.model = model;
    this.applyState = applyState;   // a state an answer carries (main.js: after held events)
    this.replay = replay;
    this.busy = 0;
    const $ = (id) => doc.getElementById(id);
    this.section = $('controls');
    this.backend = $('backend-select');
    this.trigger = $('trigger-select');
    this.oneshot = $('oneshot-check');
    this.write = $('write-select');
    this.pauseBtn = $('pause-btn');
    this.stepBtn = $('step-btn');
    this.slowmo = $('slowmo-input');
    this.loadN = $('load-connections');
    this.loadSize = $('load-size');
    this.loadRate = $('load-rate');
    this.addBtn = $('add-clients-btn');
    this.removeBtn = $('remove-clients-btn');
    this.loadStatus = $('load-status');
    this.loopStateEl = $('loop-state');
    const jsonl = $('download-jsonl');
    if (jsonl) jsonl.href = withToken(jsonl.getAttribute('href'));
    const traceBtn = $('download-trace');  // outside #controls: works in replay too
    if (traceBtn) traceBtn.addEventListener('click', () => this.downloadTrace(traceBtn));

    if (replay) {
      this.section.hidden = true;
      for (const el of this.section.querySelectorAll('button, input, select')) el.disabled = true;
      return;
    }
    // a new snapshot may come from a restarted server: what an add reported may not hold now
    model.subscribe((ev) => {
      if (ev.kind === 'reset') { this.loadStatus.textContent = ''; this.shownLoadKey = undefined; }
    });
    const onBackend = () => this.sendBackend();
    this.backend.addEventListener('change', onBackend);
    this.trigger.addEventListener('change', onBackend);
    this.oneshot.addEventListener('change', onBackend);
    this.write.addEventListener('change', onBackend);
    this.pauseBtn.addEventListener('click', () => this.togglePause());
    this.stepBtn.addEventListener('click', () => this.step());
    // A change applies at once (SPEC §5): while typing, a valid delay is sent once the keys
    // pause; Enter or leaving the field sends whatever is there (an invalid value: the error).
    this.slowmo.addEventListener('input', () => {
      clearTimeout(this.slowmoTimer);
      this.slowmoTimer = setTimeout(() => { if (validDelay(this.slowmo.value)) this.sendDelay(); }, TYPING_PAUSE_MS);
    });
    this.slowmo.addEventListener('change', () => { clearTimeout(this.slowmoTimer); this.sendDelay(); });
    // while focused the field is left alone (paint); on leaving it, it shows the server's delay
    this.slowmo.addEventListener('blur', () => this.model.mark('controls'));
    this.addBtn.addEventListener('click', () => this.addLoad());
    this.removeBtn.addEventListener('click', () => this.removeLoad());
  }

  async run(fn) {
    this.busy++;
    try {
      return await fn();
    } catch (err) {
      if (!(err && err.status !== undefined)) showError(String(err && err.message ? err.message : err));
      return undefined;
    } finally {
      this.busy--;
      this.model.mark('controls');
    }
  }

  async downloadTrace(button) {
    await whileDisabled(button,
      () => downloadFile(button.dataset.href, button.dataset.filename, 'Downloading the trace'));
  }

  async sendBackend() {
    const name = this.backend.value;
    const epoll = name === 'epoll';
    this.syncEpollOnly(name);
    const body = {
      name,
      trigger: epoll ? this.trigger.value : 'level',
      oneshot: epoll ? this.oneshot.checked : false,
      write: this.write.value,
    };
    await this.switchBackend(body);
  }

  async switchBackend(body) {
    let refusal = null;
    const state = await this.run(() => api.setBackend(body).catch((err) => { refusal = err; throw err; }));
    if (state && this.applyState(state)) this.model.needResync = false;
    if (refusal && body.name === 'select') {
      // sent again as it is then: the write mode left as the server has it (another client
      // may have changed it since), trigger and one-shot as select has them
      await offerToMakeRoomForSelect(refusal, () => this.switchBackend({ name: 'select' }),
        this.backend);
    }
  }

  async togglePause() {
    const action = this.model.paused ? 'resume' : 'pause';
    const res = await this.run(() => api.loop({ action }));
    if (res && res.loop) { this.model.loop = res.loop; this.model.mark('status', 'syscall'); }
  }

  async step() {
    const res = await this.run(() => api.loop({ action: 'step' }));
    if (res && res.loop) { this.model.loop = res.loop; this.model.mark('status', 'syscall'); }
  }

  async sendDelay() {
    const raw = this.slowmo.value.trim();
    const ms = Number(raw);
    if (raw === '' || !Number.isFinite(ms)) {
      showError('Slow motion: enter a delay in milliseconds, 0 to 5000', 'slowmo');
      return;
    }
    if (ms === this.model.delayMs) { clearTopic('slowmo'); return; }   // already so (sent while typing)
    const res = await this.run(() => api.loop({ delay_ms: ms }));
    if (res && res.delay_ms !== undefined) this.model.delayMs = res.delay_ms;
  }

  async addLoad() {
    const body = {
      connections: Number(this.loadN.value),
      message_size: Number(this.loadSize.value),
      rate: Number(this.loadRate.value),
    };
    const res = await this.run(() => api.addLoad(body));
    if (res) this.loadStatus.textContent = `${res.connections} generated clients (cap ${res.cap})`;
  }

  async removeLoad() {
    const res = await this.run(() => api.removeLoad());
    if (res !== undefined) this.loadStatus.textContent = 'generated clients removed';
  }

  syncEpollOnly(name) {
    const epoll = name === 'epoll';
    this.trigger.disabled = !epoll;
    this.oneshot.disabled = !epoll;
    if (!epoll) { this.trigger.value = 'level'; this.oneshot.checked = false; }
    // greyed out with no reason, a learner wondered what they had broken
    const why = epoll ? '' : `Only epoll has edge-triggered and one-shot modes: ${name} is always level-triggered.`;
    for (const el of [this.trigger, this.oneshot]) el.title = why;
  }

  /** The generated clients as the server counts them, when a stats frame changed the count:
   * repainted on every paint, it hid the answer to this page's own Add or Remove behind the
   * count of the frame before it. */
  paintLoad(model) {
    if (model.loadKey === this.shownLoadKey) return;
    this.shownLoadKey = model.loadKey;
    const load = model.load;
    if (load) {
      const failed = load.errors ? `; ${load.errors} failed` : '';
      // a client whose echo differed from what it sent (older servers do not say: undefined)
      const wrong = load.wrong ? `; ${load.wrong} got a wrong echo` : '';
      // ended by the server: a "Close fd N", or a connection it would not keep
      const closed = load.closed ? `; ${load.closed} closed by the server` : '';
      this.loadStatus.textContent =
        `${load.connections} generated clients (cap ${load.cap})${failed}${wrong}${closed}`;
      this.hadLoad = true;
    } else if (this.hadLoad) {
      this.loadStatus.textContent = 'no generated clients';
      this.hadLoad = false;
    }
  }

  paint(model) {
    if (!model.take('controls')) return;
    // disconnected, the last state known is no longer news: the server may be gone
    // a replay's is the recorded loop's, at the point on view: nothing runs behind the page
    // (a live region: written only when it changes, so a screen reader says each change once)
    const loopState = !this.replay && !serverConnected() ? 'unknown (not connected)'
      : this.replay && model.shutDown ? 'stopped (the engine shut down)'
        : model.loop + (model.delayMs ? ` (+${model.delayMs} ms)` : '') + (this.replay ? ' (as recorded)' : '');
    if (this.loopStateEl.textContent !== loopState) this.loopStateEl.textContent = loopState;
    // paused (or stepping) in the Pause button's colour, not the colour of a running loop
    const stateName = !this.replay && !serverConnected() ? 'unknown' : model.loop;
    if (this.loopStateEl.dataset.state !== stateName) this.loopStateEl.dataset.state = stateName;
    if (this.replay) return;
    this.paintLoad(model);
    const paused = model.paused;
    const label = paused ? 'Resume' : 'Pause';
    if (this.pauseBtn.textContent !== label) this.pauseBtn.textContent = label;
    this.pauseBtn.classList.toggle('paused', paused);
    this.pauseBtn.title = paused ? 'Resume the loop (space)' : 'Pause the loop (space)';
    this.stepBtn.title = paused ? 'Run exactly one wait and its handling (s)' : 'Step works while paused (s)';
    if (this.busy) return;  // do not fight a request in flight
    const b = model.backend;
    for (const opt of this.backend.options) {
      opt.disabled = model.available.length > 0 && !model.available.includes(opt.value);
    }
    if (b.name) this.backend.value = b.name;
    this.trigger.value = b.trigger || 'level';
    this.oneshot.checked = !!b.oneshot;
    if (b.write) this.write.value = b.write;
    this.syncEpollOnly(b.name);
    if (document.activeElement !== this.slowmo) this.slowmo.value = String(model.delayMs ?? 0);
  }
}
