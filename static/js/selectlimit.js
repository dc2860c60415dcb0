// A switch to select refused (409) because a registered fd is FD_SETSIZE (1024) or more. The
// error's advice is to close those connections, but the connection list shows the lowest fds
// only (it is capped), so the error itself offers to close them and to switch again.
import { addErrorAction, addErrorNote, api } from './api.js';

const FD_SETSIZE = 1024;
const IN_FLIGHT = 8;  // close requests at a time
const STALE_FLAW = 'close_without_unregister';

/** How many registered fds of 1024 and up the refusal names ("fd N is not below FD_SETSIZE …
 *  (K more registered fds of 1024 and up too)"). */
function registeredHigh(detail) {
  const more = /(\d+) more registered fds? of/.exec(detail);
  return 1 + (more ? Number(more[1]) : 0);
}

async function highConnectionFds() {
  const state = await api.state();
  return state.connections.map((c) => c.fd).filter((fd) => fd >= FD_SETSIZE);
}

/** Close `fds`, IN_FLIGHT at a time; one in a lingering close (its peer still sending) is
 *  closed again, which closes it at once. */
async function closeAll(fds, onProgress) {
  const left = [...fds];
  const again = new Set();
  let done = 0;
  const closeNext = async () => {
    while (left.length) {
      const fd = left.shift();
      let answer = null;
      try { answer = await api.closeConnectionQuietly(fd); } catch { /* shown by the request */ }
      if (answer && answer.lingering && !again.has(fd)) {
        again.add(fd);
        left.push(fd);
        continue;
      }
      done += 1;
      onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, fds.length) }, closeNext));
}

/** `err`: the refusal's ApiError; `switchAgain`: a switch to select, sent again (with the write
 *  mode the server has then); `returnFocus`: where the keyboard goes once the error is gone. */
export async function offerToMakeRoomForSelect(err, switchAgain, returnFocus) {
  if (!(err && err.status === 409 && /FD_SETSIZE/.test(err.detail || ''))) return;
  let fds;
  let flaws;
  try { [fds, flaws] = await Promise.all([highConnectionFds(), api.flaws()]); } catch { return; }
  const stale = flaws.some((f) => f.name === STALE_FLAW && f.on);
  const blocking = registeredHigh(err.detail);
  if (stale && fds.length < blocking) {
    addErrorNote('backend', `${blocking - fds.length} of those ${blocking} fds are not open `
      + `connections: closed fds still registered, as the bug zoo's ${STALE_FLAW} leaves them. `
      + 'Closing connections cannot make room for select until that flaw is off.');
    return;
  }
  if (!fds.length) return;  // gone meanwhile: choosing select again will do
  const plural = fds.length === 1 ? 'connection' : `${fds.length} connections`;
  addErrorAction('backend', `Close the ${plural} of fd 1024 and up, then switch to select`,
    async (button) => {
      const now = await highConnectionFds();
      button.textContent = `Closing ${now.length} connections…`;
      await closeAll(now, (done) => { button.textContent = `Closed ${done} of ${now.length}…`; });
      button.textContent = 'Switching to select…';
      await switchAgain();  // a success takes this error away; a new refusal brings a new offer
    }, returnFocus);
}
