// Keyboard: space pauses/resumes, `s` steps. Ignored while typing in a field; never fires twice.

// <input> types that take no typed text: space and `s` mean pause and step on them too
const NOT_TEXT = new Set(['checkbox', 'radio', 'range', 'button', 'submit', 'reset', 'color', 'file', 'image']);

/** Typing: a text field, a textarea, contenteditable. A checkbox, a slider or a closed <select>
 * is not: there space would toggle it or open it, and `s` would pick an option by type-ahead. */
function isTyping(el) {
  if (!el || el === document.body) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === 'TEXTAREA') return true;
  return tag === 'INPUT' && !NOT_TEXT.has((el.type || 'text').toLowerCase());
}

/** A focused checkbox (the One-shot box, the bug zoo's switches): space is the page's pause
 * key there (SPEC §5), so Enter toggles it; with neither, it could not be used from the
 * keyboard at all. */
function isCheckbox(el) {
  return !!el && el.tagName === 'INPUT' && el.type === 'checkbox' && !el.disabled;
}

export function installKeyboard({ onToggle, onStep }) {
  let swallowSpaceUp = false;
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (e.key === 'Enter' && isCheckbox(e.target)) {
      e.preventDefault();
      if (!e.repeat) e.target.click();
    } else if (e.key === ' ' || e.code === 'Space') {
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
