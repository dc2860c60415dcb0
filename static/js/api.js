// HTTP calls to the app. Every non-2xx answer is shown in the error area (role="alert").

const MAX_ERRORS = 4;
let token = '';
let errorArea = null;
let notice = null;        // {el, text}: the line that says errors wait at the top, off screen
let areaOnScreen = true;
let focusBefore = null;   // where the keyboard was when the first error came: Dismiss goes back
let lastFocus = null;     // the last element focused outside the error area and its notice

export function init({ token: t, errorEl }) {
  token = t || '';
  errorArea = errorEl;
  if (!errorEl) return;
  notice = makeNotice();
  // on screen: at least half of it (its bottom sliver alone is a Dismiss with no error in view)
  new IntersectionObserver((entries) => {
    areaOnScreen = entries[entries.length - 1].intersectionRatio >= 0.5;
    syncNotice();
  }, { threshold: [0, 0.5, 1] }).observe(errorEl);
  for (const el of [errorEl, notice.el]) {
    el.addEventListener('keydown', (e) => { if (e.key === 'Escape') clearErrors(); });
  }
  // a control is disabled while its request is out (whileDisabled): focus is on <body> when
  // the error comes, so the last control focused outside the error area is what is kept
  document.addEventListener('focusin', (e) => {
    if (!errorEl.contains(e.target) && !notice.el.contains(e.target)) lastFocus = e.target;
  });
}

function makeNotice() {
  const el = document.createElement('div');
  el.id = 'error-notice';
  el.className = 'error-notice';
  el.hidden = true;
  const text = document.createElement('span');
  const show = document.createElement('button');
  show.type = 'button';
  show.textContent = 'Show';
  show.addEventListener('click', () => {
    errorArea.scrollIntoView({ block: 'start' });
    const dismiss = errorArea.querySelector('.error-dismiss');
    if (dismiss) dismiss.focus({ preventScroll: true });
  });
  el.append(text, show);
  document.body.append(el);
  return { el, text };
}

/** The notice is shown while there are errors and their area is off screen; the page keeps
 *  keyboard focus clear of it (scroll-padding-bottom). */
function syncNotice() {
  if (!notice) return;
  const messages = errorArea.querySelectorAll('p.error-message');
  const show = messages.length > 0 && !areaOnScreen;
  if (show) {
    const n = messages.length;
    notice.text.textContent = `${messages[n - 1].textContent}` +
      (n > 1 ? ` (and ${n - 1} more)` : '') + ' — shown at the top of the page';
  }
  if (notice.el.hidden === show) {
    notice.el.hidden = !show;
    // room below the page's last row for it, and focus kept clear of it
    const room = show ? `${notice.el.offsetHeight + 16}px` : '';
    document.documentElement.style.scrollPaddingBottom = room;
    document.body.style.paddingBottom = room;
  }
}

export function getToken() { return token; }

/** Append ?token= (or &token=) to a same-origin URL when a token is set. */
export function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** The page's labels for the request fields its own controls fill in: a 422 names the field
 *  the person typed into ("Clients: Input should be ..."), not the API's name for it. ''
 *  for slow motion's: the message's own prefix names it ("Slow motion (422): ..."). */
const FIELD_LABELS = {
  delay_ms: '', connections: 'Clients', message_size: 'Message bytes',
  rate: 'Rate per client', depth: 'Depth', fd: 'Breakpoint fd',
};

function detailText(body, status, statusText) {
  if (body && body.detail !== undefined) {
    const d = body.detail;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) {
      return d.map((e) => {
        if (e && typeof e === 'object') {
          const loc = Array.isArray(e.loc)
            ? e.loc.filter((x) => x !== 'body').map((x) => FIELD_LABELS[x] ?? x).filter(Boolean).join('.') : '';
          return loc ? `${loc}: ${e.msg}` : String(e.msg ?? JSON.stringify(e));
        }
        return String(e);
      }).join('; ');
    }
    return JSON.stringify(d);
  }
  return `${status} ${statusText}`.trim();
}

/** `offline`: a request that never reached the server; `clearOffline` takes it away when
 *  the page is connected again (a restarted server's snapshot). */
export function showError(message, topic = '', { offline = false } = {}) {
  if (!errorArea) { console.warn(message); return; }
  const p = document.createElement('p');
  p.className = 'error-message';
  p.textContent = message;
  if (topic) p.dataset.topic = topic;
  if (offline) p.dataset.offline = 'true';
  let list = errorArea.querySelector('.error-list');
  if (!list) {
    focusBefore = document.activeElement !== document.body ? document.activeElement : lastFocus;
    list = document.createElement('div');
    list.className = 'error-list';
    const dismiss = document.createElement('button');
    dismiss.type = 'button';
    dismiss.textContent = 'Dismiss';
    dismiss.className = 'error-dismiss';
    dismiss.addEventListener('click', clearErrors);
    errorArea.append(list, dismiss);
  }
  // the newest error of a kind replaces the older ones: three bad slow-motion values, or Step
  // pressed three times while running, are one line, not a pile
  const replaced = topic ? [...list.querySelectorAll('p.error-message')].filter((old) => old.dataset.topic === topic) : [];
  // the keyboard was on a replaced error's own button (its offer, pressed): it waits on
  // Dismiss, not on <body>, until the new error's offer (if any) takes it
  const keepFocus = replaced.some((old) => old.contains(document.activeElement));
  for (const old of replaced) old.remove();
  list.append(p);
  while (list.children.length > MAX_ERRORS) list.firstElementChild.remove();
  if (keepFocus) errorArea.querySelector('.error-dismiss').focus();
  syncNotice();
}

function shownError(topic) {
  if (!errorArea) return null;
  return [...errorArea.querySelectorAll('p.error-message')].find((el) => el.dataset.topic === topic) || null;
}

/** A button on the shown error of `topic`: what the page can do about it. `run(button)` may
 *  say its progress on the button; the error goes when its topic's next request succeeds.
 *  The button stays focusable while it runs (aria-disabled: a disabled one drops the focus);
 *  when the error has gone, the focus goes to the same topic's next offer, else `returnFocus`. */
export function addErrorAction(topic, label, run, returnFocus = null) {
  const p = shownError(topic);
  if (!p) return null;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'error-action';
  button.textContent = label;
  button.addEventListener('click', async () => {
    if (button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    const hadFocus = document.activeElement === button;
    try { await run(button); } finally { button.removeAttribute('aria-disabled'); }
    if (hadFocus && !button.isConnected) {
      const next = shownError(topic);
      const target = (next && next.querySelector('.error-action')) || returnFocus;
      if (target && target.isConnected) target.focus();
    }
  });
  p.append(' ', button);
  return button;
}

/** A sentence added to the shown error of `topic` (why the page offers nothing). */
export function addErrorNote(topic, text) {
  const p = shownError(topic);
  if (p) p.append(` ${text}`);
}

export function clearErrors() {
  if (!errorArea) return;
  const hadFocus = errorArea.contains(document.activeElement) || (notice && notice.el.contains(document.activeElement));
  errorArea.replaceChildren();
  syncNotice();
  // back to where the keyboard was (Dismiss, or Escape, far from the control that failed)
  if (hadFocus && focusBefore && focusBefore !== document.body) {
    // a panel may have drawn that control anew meanwhile (the zoo does): the one of its id
    const back = focusBefore.isConnected ? focusBefore : (focusBefore.id && document.getElementById(focusBefore.id));
    if (back) back.focus();
  }
  focusBefore = null;
}

/** A later success of the same kind of action takes its old errors away (a 422 for a slow
 *  motion value stayed on screen after a good one was applied; a 409 for a second flaw, through
 *  every later toggle). */
export function clearTopic(topic) {
  if (errorArea && topic) removeErrors((p) => p.dataset.topic === topic);
}

/** The page is connected again: a "network error" from while the server was away no longer
 *  says anything true (it stayed up, beside a working page, until dismissed). */
export function clearOffline() {
  if (errorArea) removeErrors((p) => p.dataset.offline === 'true');
}

function removeErrors(which) {
  for (const p of errorArea.querySelectorAll('p.error-message')) if (which(p)) p.remove();
  if (!errorArea.querySelector('p.error-message')) clearErrors();
  else syncNotice();
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * fetch JSON; on a non-2xx answer shows "<what>: <detail>" in the error area and throws ApiError.
 * `quietOffline`: a network error is thrown but not shown (a background read: the header
 * already says the server is gone, and a reconnect brings a fresh snapshot).
 */
export async function request(method, path, body, what,
  { quietOffline = false, topic = '', quietStatus = 0 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin', cache: 'no-store',
    });
  } catch (err) {
    const msg = `${what || `${method} ${path}`}: network error (${err.message})`;
    if (!quietOffline) showError(msg, topic, { offline: true });
    throw new ApiError(0, msg);
  }
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    const detail = detailText(data, res.status, res.statusText) || text;
    if (res.status !== quietStatus) showError(`${what || `${method} ${path}`} (${res.status}): ${detail}`, topic);
    throw new ApiError(res.status, detail);
  }
  clearTopic(topic);
  return data;
}

/**
 * Download a same-origin URL (the token passed on as ?token=) as `filename`. Fetched first, so
 * a refusal is shown in the error area instead of a broken download. Resolves to true when the
 * file was handed to the browser.
 */
export async function downloadFile(path, filename, what) {
  let res;
  try {
    res = await fetch(withToken(path), { credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    showError(`${what}: network error (${err.message})`, '', { offline: true });
    return false;
  }
  if (!res.ok) {
    const text = await res.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = null; }
    showError(`${what} (${res.status}): ${detailText(data, res.status, res.statusText) || text}`);
    return false;
  }
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);  // the browser has read it by then
  return true;
}

/** The page's own reads (re-reads, panels): one caught by the server going away is not shown,
 *  as the header says so already (a user's action that fails still is). */
const QUIET_READ = { quietOffline: true };

export const api = {
  state: () => request('GET', '/api/state', undefined, 'Reading state', QUIET_READ),
  setBackend: (body) => request('POST', '/api/backend', body, 'Switching backend', { topic: 'backend' }),
  loop: (body) => request('POST', '/api/loop', body, body.action ? `Loop ${body.action}` : 'Slow motion',
    { topic: body.action ? 'loop' : 'slowmo' }),
  closeConnection: (fd) => request('POST', `/api/connections/${encodeURIComponent(fd)}/close`, undefined, `Closing fd ${fd}`,
    { topic: `close ${fd}` }),
  /** Many at once (the select refusal's offer): one that has closed meanwhile (404) is no error. */
  closeConnectionQuietly: (fd) => request('POST', `/api/connections/${encodeURIComponent(fd)}/close`, undefined, `Closing fd ${fd}`,
    { topic: `close ${fd}`, quietStatus: 404 }),
  addLoad: (body) => request('POST', '/api/load', body, 'Adding clients', { topic: 'load' }),
  removeLoad: () => request('DELETE', '/api/load', undefined, 'Removing clients', { topic: 'load' }),
  breakpoints: () => request('GET', '/api/breakpoints', undefined, 'Reading breakpoints', QUIET_READ),
  addBreakpoint: (body) => request('POST', '/api/breakpoints', body, 'Adding a breakpoint', { topic: 'breakpoint' }),
  deleteBreakpoint: (id) => request('DELETE', `/api/breakpoints/${encodeURIComponent(id)}`, undefined, `Deleting breakpoint ${id}`),
  flaws: () => request('GET', '/api/flaws', undefined, 'Reading the bug zoo', QUIET_READ),
  setFlaw: (name, on) => request('POST', `/api/flaws/${encodeURIComponent(name)}`, { on }, `Turning flaw ${name} ${on ? 'on' : 'off'}`,
    { topic: 'flaw' }),
  kernel: () => request('GET', '/api/kernel', undefined, 'Reading the kernel view', QUIET_READ),
  code: () => request('GET', '/api/code', undefined, 'Reading the handler source'),
};
