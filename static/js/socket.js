// The websocket: frames go straight into the model; reconnects with exponential back-off.

const MIN_DELAY = 500;
const MAX_DELAY = 10000;

export class Socket {
  /**
   * @param {object} opts
   * @param {string} opts.token       appended as ?token= when non-empty
   * @param {(frame: object) => void} opts.onFrame
   * @param {(state: string, info?: string) => void} opts.onStatus  'connecting' | 'open' | 'closed'
   */
  constructor({ token, onFrame, onStatus }) {
    this.token = token || '';
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.delay = MIN_DELAY;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.opens = 0;
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    return `${scheme}://${location.host}/ws${q}`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.onStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.schedule(String(err));
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.opens++;
      this.onStatus('open');
    });
    ws.addEventListener('message', (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch (err) {
        console.warn('muxscope: bad frame', err);
        return;
      }
      if (frame && frame.type === 'snapshot') this.delay = MIN_DELAY;  // a healthy link resets the back-off
      this.onFrame(frame);
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const why = ev.reason ? `${ev.code} ${ev.reason}` : `code ${ev.code}`;
      this.schedule(why);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  schedule(why) {
    if (this.stopped) return;
    const wait = Math.round(this.delay * (0.8 + Math.random() * 0.4));
    this.onStatus('closed', `${why}; retrying in ${(wait / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.connect(), wait);
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
