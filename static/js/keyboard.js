// Keyboard: space pauses/resumes, `s` steps. Ignored while typing in a field; never fires twice.

function isTyping(el) {
  if (!el || el === document.body) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA';
}

export function installKeyboard({ onToggle, onStep }) {
  let swallowSpaceUp = false;
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (e.key === ' ' || e.code === 'Space') {
      // preventDefault stops a focused button from also "clicking" on this key (and the page scrolling)
      e.preventDefault();
      swallowSpaceUp = true;
      if (!e.repeat) onToggle();
    } else if (e.key === 's' || e.key === 'S') {
      e.preventDefault();
      if (!e.repeat) onStep();
    }
  });
  // A focused button activates on space *keyup*; cancel that too, so one press is one action.
  document.addEventListener('keyup', (e) => {
    if ((e.key === ' ' || e.code === 'Space') && swallowSpaceUp) {
      swallowSpaceUp = false;
      e.preventDefault();
    }
  });
}
