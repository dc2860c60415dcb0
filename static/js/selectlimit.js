// A switch to select refused (409) because a registered fd is FD_SETSIZE (1024) or more. The
// error's advice is to close those connections, but the connection list shows the lowest fds
// only (it is capped), so the error itself offers to close them and to switch again.
import { addErrorAction, api } from './api.js';

const FD_SETSIZE = 1024;
const IN_FLIGHT = 8;  // close requests at a time

/** `err`: the refusal's ApiError; `switchAgain`: the same switch, sent again. */
export function offerToMakeRoomForSelect(err, switchAgain) {
  if (!(err && err.status === 409 && /FD_SETSIZE/.test(err.detail || ''))) return;
  addErrorAction('backend', 'Close every connection of fd 1024 and up, then switch to select',
    async (button) => {
      const state = await api.state();
      const fds = state.connections.map((c) => c.fd).filter((fd) => fd >= FD_SETSIZE);
      const left = [...fds];
      let done = 0;
      button.textContent = `Closing ${fds.length} connections…`;
      const closeNext = async () => {
        while (left.length) {
          const fd = left.shift();
          try { await api.closeConnectionQuietly(fd); } catch { /* shown by the request */ }
          done += 1;
          button.textContent = `Closed ${done} of ${fds.length}…`;
        }
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, fds.length) }, closeNext));
      button.textContent = 'Switching to select…';
      await switchAgain();  // a success takes this error away; a new refusal brings a new offer
    });
}
