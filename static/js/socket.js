// The websocket: frames go straight into the model; reconnects with exponential back-off.

const MIN_DELAY = 500;
const MAX_DELAY = 10000;
// Acks ({type: 'ack', seq}) tell the server what the page has taken in: it sends at most
// 10,000 events past the last one (app/hub.py, ACK_WINDOW_EVENTS), so a page that falls behind
// skips events (counted as dropped) instead of showing ones seconds old. One ack per this many
// events, or this long after the last events frame when fewer came.
const ACK_EVERY_EVENTS = 1000;
const ACK_AFTER_MS = 100;

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
    this.acks = 0;
    this.unacked = 0;      // events taken in since the last ack
    this.takenSeq = null;  // the last event's seq taken in
    this.ackTimer = null;
    // the last close that gave a reason ("1001 muxscope is shutting down"), kept while the
    // reconnects fail with bare codes (1006), which would otherwise replace it on the page
    this.lastWords = '';
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
      this.lastWords = '';
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
      this.unacked = 0;
      this.takenSeq = null;
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
      if (frame && frame.type === 'events' && frame.events.length) this.taken(ws, frame.events);
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.reason) this.lastWords = `${ev.code} ${ev.reason}`;
      const why = ev.reason ? this.lastWords
        : this.lastWords ? `${this.lastWords}; reconnecting: code ${ev.code}` : `code ${ev.code}`;
      this.schedule(why);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  /** After a frame of events was applied: ack now or soon (ACK_EVERY_EVENTS, ACK_AFTER_MS). */
  taken(ws, events) {
    this.takenSeq = events[events.length - 1].seq;
    this.unacked += events.length;
    if (this.unacked >= ACK_EVERY_EVENTS) this.ack(ws);
    else if (this.ackTimer === null) this.ackTimer = setTimeout(() => this.ack(ws), ACK_AFTER_MS);
  }

  ack(ws) {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN || this.unacked === 0) return;
    ws.send(JSON.stringify({ type: 'ack', seq: this.takenSeq }));
    this.unacked = 0;
    this.acks++;
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
