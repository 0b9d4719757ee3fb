"""Keyboard shortcuts for the labeling widget that work without hovering.

ipyannotations receives keys through ipyevents, which only sees them while the pointer is
over the widget. :class:`KeyCatcher` is a tiny anywidget placed inside the labeling widget;
its browser side listens for ``keydown``

* on the widget's root element (made focusable with ``tabindex``) — any click inside the widget
  gives it focus, and so do Tab and the "keys" badge; and
* on the whole page while the notebook cell holding the widget is the active cell in command
  mode (JupyterLab), so keys work right after running the cell.

Only keys in :attr:`KeyCatcher.watched_keys` are taken; for those the browser's and JupyterLab's own
shortcuts are suppressed (``data-lm-suppress-shortcuts`` and ``preventDefault``), every other key
passes through. Keys typed into text inputs are never taken. Each key press reaches Python as a
custom comm message, in order with button clicks.

A key in :attr:`KeyCatcher.advancing_keys` (a label or skip) takes the focused item out of the
queue, so the page need not wait for the kernel to show the next one: the key catcher numbers
each press and tells the page (a DOM event ``alwidget-advance`` on the widget's root, with the
press's number and the item's id), and the strip moves its focus on at once. Python answers
with :attr:`KeyCatcher.acknowledged`, the number of the last press it handled, once the strip's
own state for it has been sent (event ``alwidget-ack``); the strip then shows what Python
decided. On a loaded 2-core machine the kernel's answer took 300-800 ms in the browser with
the map attached; the page's own move takes a frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import anywidget
import traitlets

DEFAULT_LABEL_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
SKIP_KEY = "s"
UNDO_KEY = "u"
NEXT_KEY = "ArrowRight"
PREVIOUS_KEY = "ArrowLeft"
ROOT_CLASS = "alwidget-root"

_ESM = r"""
const EDITABLE = 'input, textarea, select, [contenteditable=""], [contenteditable="true"], '
  + '.cm-content';

function isEditable(node) {
  return !!(node && node.closest && node.closest(EDITABLE));
}

function render({ model, el }) {
  const badge = document.createElement('button');
  badge.className = 'alwidget-keys-badge';
  badge.type = 'button';
  el.appendChild(badge);
  let root = null;
  let disposed = false;
  let seq = 0;

  function keysActive() {
    if (!root) return false;
    if (root.contains(document.activeElement)) return true;
    return cellIsActive();
  }

  function cellIsActive() {
    const cell = root && root.closest('.jp-Cell');
    const notebook = cell && cell.closest('.jp-Notebook');
    if (!cell || !notebook) return false;
    return cell.classList.contains('jp-mod-active')
      && notebook.classList.contains('jp-mod-commandMode')
      && notebook.contains(document.activeElement)
      && !isEditable(document.activeElement);
  }

  function refreshBadge() {
    const active = keysActive();
    badge.textContent = active ? '\u2328 keys on' : '\u2328 click here for keys';
    badge.classList.toggle('alwidget-keys-on', active);
    if (root) root.classList.toggle('alwidget-keys-on', active);
  }

  function onWindowKey(event) {
    // Capture phase on window runs before JupyterLab's keybinding handler on document.
    if (!root || event.ctrlKey || event.metaKey || event.altKey) return;
    const inside = root.contains(document.activeElement);
    if (!inside && !cellIsActive()) return;
    if (isEditable(event.target)) return;
    if (model.get('watched_keys').includes(event.key)) {
      event.preventDefault();
      event.stopPropagation();
      // The item the user sees in focus travels with the key, so a label never lands on
      // another item when a refresh from the kernel is still on its way.
      const card = root.querySelector('.alwidget-card-focused');
      const itemId = card ? card.dataset.itemId : null;
      // Numbered after the last press the kernel handled (a reloaded page starts there).
      seq = Math.max(seq, model.get('acknowledged')) + 1;
      model.send({ event: 'key', key: event.key, focused: itemId, seq: seq });
      if (itemId !== null && model.get('advancing_keys').includes(event.key)) {
        root.dispatchEvent(new CustomEvent('alwidget-advance', { detail: { seq, itemId } }));
      }
      return;
    }
    // While focus is inside the widget, single-key notebook commands (x cuts, d d deletes,
    // m makes markdown...) must not act on the cell. Default actions (Space/Enter on a
    // button, Tab) still happen: stopPropagation does not cancel them.
    if (inside && event.key !== 'Tab' && event.key !== 'Escape') event.stopPropagation();
  }

  function attach() {
    if (disposed) return;
    root = el.closest('.' + model.get('root_class'));
    if (!root) {
      requestAnimationFrame(attach);
      return;
    }
    root.setAttribute('tabindex', '0');
    root.setAttribute('data-lm-suppress-shortcuts', 'true');
    refreshBadge();
  }

  badge.addEventListener('click', () => { if (root) root.focus(); refreshBadge(); });
  window.addEventListener('keydown', onWindowKey, true);
  document.addEventListener('focusin', refreshBadge);
  document.addEventListener('focusout', refreshBadge);
  document.addEventListener('click', refreshBadge);
  model.on('change:focus_request', () => { if (root) root.focus(); refreshBadge(); });
  model.on('change:acknowledged', () => {
    if (root) {
      root.dispatchEvent(new CustomEvent('alwidget-ack', {
        detail: { seq: model.get('acknowledged') },
      }));
    }
  });
  attach();

  return () => {
    disposed = true;
    window.removeEventListener('keydown', onWindowKey, true);
    document.removeEventListener('focusin', refreshBadge);
    document.removeEventListener('focusout', refreshBadge);
    document.removeEventListener('click', refreshBadge);
  };
}

export default { render };
"""

_CSS = """
.alwidget-keys-badge {
  font-size: 11px; padding: 1px 8px; border-radius: 10px; cursor: pointer;
  border: 1px solid var(--jp-border-color1, #bbb); background: var(--jp-layout-color2, #eee);
  color: var(--jp-ui-font-color1, #333);
}
.alwidget-keys-badge.alwidget-keys-on {
  background: var(--jp-brand-color1, #1976d2); color: white; border-color: transparent;
}
.alwidget-root:focus { outline: none; }
.alwidget-root.alwidget-keys-on { box-shadow: 0 0 0 2px var(--jp-brand-color2, #64b5f6); }
"""


class KeyCatcher(anywidget.AnyWidget):
    """Sends chosen key presses from the browser to Python; see the module docstring.

    Parameters
    ----------
    keys : sequence of str
        ``KeyboardEvent.key`` values to take (e.g. ``"1"``, ``"s"``, ``"ArrowRight"``).
    root_class : str
        CSS class of the enclosing widget whose element gets focus and keyboard listeners.
    """

    _esm = _ESM
    _css = _CSS
    # Not ``keys``: ipywidgets already uses that name for the list of synced traits.
    watched_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    root_class = traitlets.Unicode(ROOT_CLASS).tag(sync=True)
    # Incremented to ask the browser to focus the root element (e.g. after a rerender).
    focus_request = traitlets.Int(0).tag(sync=True)
    # Keys that take the focused item out of the queue (labels, skip): the page moves on
    # before the kernel answers. The number of the last press handled answers it.
    advancing_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    acknowledged = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        keys: Sequence[str] = (),
        root_class: str = ROOT_CLASS,
        advancing_keys: Sequence[str] = (),
        **kwargs,
    ):
        super().__init__(
            watched_keys=list(keys),
            root_class=root_class,
            advancing_keys=list(advancing_keys),
            **kwargs,
        )
        self._key_handlers: list[Callable[[str, str | None], None]] = []
        self.on_msg(self._receive)

    def on_key(self, handler: Callable[[str, str | None], None]) -> None:
        """Call ``handler(key, focused_key)`` for every key press taken in the browser.

        ``focused_key`` is the id (as text) of the item the browser showed in focus, or ``None``.
        """
        self._key_handlers.append(handler)

    def press(self, key: str, focused_key: str | None = None) -> None:
        """Handle ``key`` exactly as if it had been pressed in the browser."""
        if key not in self.watched_keys:
            return
        for handler in list(self._key_handlers):
            handler(key, focused_key)

    def request_focus(self) -> None:
        """Ask the browser to move keyboard focus to the widget's root element."""
        self.focus_request += 1

    def _receive(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "key":
            focused = content.get("focused")
            try:
                self.press(str(content.get("key", "")), None if focused is None else str(focused))
            finally:
                # After the handlers' own updates were sent, label refused or not: the page
                # then shows the kernel's queue and focus instead of its own guess.
                seq = content.get("seq")
                if isinstance(seq, int) and seq > self.acknowledged:
                    self.acknowledged = seq


def build_key_map(
    classes: Sequence[str], key_map: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map keys to class names.

    Parameters
    ----------
    classes : sequence of str
        Class names in display order.
    key_map : mapping of str to str, optional
        ``{key: class_name}``. When omitted: if every class name is a single character that
        is not reserved (digits ``"0"``–``"9"``, letters other than ``s``/``u``), each class
        has its own name as key; otherwise keys 1–9 then 0 go to the first ten classes.

    Returns
    -------
    dict
        ``{key: class_name}``.

    Raises
    ------
    ValueError
        If a key is empty, reserved for skip/undo/navigation, or maps to an unknown class.
    """
    reserved = {SKIP_KEY, UNDO_KEY, NEXT_KEY, PREVIOUS_KEY}
    if key_map is None:
        if all(len(name) == 1 and name not in reserved and not name.isspace() for name in classes):
            return {name: name for name in classes}
        return dict(zip(DEFAULT_LABEL_KEYS, classes))
    known = set(classes)
    result: dict[str, str] = {}
    for key, class_name in key_map.items():
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"key_map keys must be non-empty strings (KeyboardEvent.key values), got {key!r}"
            )
        if key in reserved:
            raise ValueError(
                f"key {key!r} is reserved for skip/undo/navigation; "
                f"choose another key for {class_name!r}"
            )
        if class_name not in known:
            raise ValueError(
                f"key_map maps {key!r} to unknown class {class_name!r}; "
                f"known classes: {sorted(known)}"
            )
        result[key] = class_name
    return result
