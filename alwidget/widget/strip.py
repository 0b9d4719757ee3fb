"""The batch strip: one card per queued item (thumbnail or snippet, rank, score, prediction).

An anywidget because ipywidgets has no clickable image. The browser builds every card with
``textContent``/``src`` only (never ``innerHTML``), so item text and class names cannot
inject markup. Clicking a card sets :attr:`BatchStrip.focused`, which Python observes.
"""

from __future__ import annotations

import anywidget
import traitlets

from .keys import ROOT_CLASS

_ESM = r"""
function card(data, index, focused, model) {
  const node = document.createElement('div');
  // Each kind styles its cards through its own class (errors: alwidget-kind-error).
  const kindClass = 'alwidget-kind-' + String(data.kind).replace(/[^a-z0-9_-]/g, '_');
  node.className = 'alwidget-card ' + kindClass
    + (index === focused ? ' alwidget-card-focused' : '')
    + (data.thumbnail ? '' : ' alwidget-card-text');
  // The queue position (the strip may show a window of a longer queue).
  const queueIndex = data.index === undefined ? index : data.index;
  node.dataset.index = String(queueIndex);
  node.dataset.itemId = data.key;
  node.title = 'item ' + data.key + ' \u00b7 #' + data.rank + ' in the queue'
    + (data.pool_rank ? ' \u00b7 pool rank ' + data.pool_rank : '')
    + ' \u00b7 score ' + data.score + ' \u00b7 predicted ' + data.predicted;
  if (data.thumbnail) {
    const img = document.createElement('img');
    img.src = data.thumbnail;
    img.alt = 'item ' + data.key;
    node.appendChild(img);
  } else {
    const snippet = document.createElement('div');
    snippet.className = 'alwidget-snippet';
    snippet.textContent = data.snippet;
    node.appendChild(snippet);
  }
  const meta = document.createElement('div');
  meta.className = 'alwidget-card-meta';
  meta.textContent = '#' + data.rank + ' \u00b7 ' + data.score;
  node.appendChild(meta);
  const predicted = document.createElement('div');
  predicted.className = 'alwidget-card-meta alwidget-card-predicted';
  predicted.textContent = '\u2192 ' + data.predicted;
  predicted.title = 'predicted: ' + data.predicted;
  node.appendChild(predicted);
  node.addEventListener('click', () => {
    // A custom message, not a state sync: ipywidgets may hold back state updates while
    // the kernel is busy, which would let a following key press overtake the click.
    for (const other of node.parentNode.querySelectorAll('.alwidget-card-focused')) {
      other.classList.remove('alwidget-card-focused');
    }
    node.classList.add('alwidget-card-focused');
    model.send({ event: 'focus', index: queueIndex, key: data.key });
  });
  return node;
}

function render({ model, el }) {
  el.classList.add('alwidget-strip');
  // Key presses the page acted on before the kernel answered (see keys.py): {seq, itemId}.
  let pending = [];
  let root = null;
  let preview = null;
  let disposed = false;

  function showPreview(node) {
    // The next item, from its card, over the large view while that view is the kernel's old one.
    const box = root && root.querySelector('.' + model.get('focus_box_class'));
    if (!box) return;
    if (!node) {
      if (preview) preview.remove();
      preview = null;
      return;
    }
    if (!preview) {
      preview = document.createElement('div');
      preview.className = 'alwidget-focus-preview';
    }
    if (preview.parentNode !== box) box.appendChild(preview);
    preview.dataset.itemId = node.dataset.itemId;
    const img = node.querySelector('img');
    const snippet = node.querySelector('.alwidget-snippet');
    const shown = img ? document.createElement('img') : document.createElement('div');
    if (img) {
      shown.src = img.src;
      shown.alt = img.alt;
    } else {
      shown.className = 'alwidget-text';
      shown.textContent = snippet ? snippet.textContent : '';
    }
    preview.replaceChildren(shown);
  }

  function applyPending() {
    if (root) root.classList.toggle('alwidget-pending', pending.length > 0);
    if (!pending.length) {
      // One frame later: the large view's own update, sent before the answer, lands first.
      requestAnimationFrame(() => { if (!pending.length) showPreview(null); });
      return;
    }
    const done = new Set(pending.map((press) => press.itemId));
    const nodes = [...el.querySelectorAll('.alwidget-card')];
    for (const node of nodes) node.classList.toggle('alwidget-card-done', done.has(node.dataset.itemId));
    const focused = el.querySelector('.alwidget-card-focused');
    if (focused && done.has(focused.dataset.itemId)) {
      // As the kernel does: the item after the one taken out, else the one before.
      const at = nodes.indexOf(focused);
      const open = (node) => !done.has(node.dataset.itemId);
      const next = nodes.slice(at + 1).find(open) || nodes.slice(0, at).reverse().find(open);
      focused.classList.remove('alwidget-card-focused');
      if (next) next.classList.add('alwidget-card-focused');
    }
    showPreview(el.querySelector('.alwidget-card-focused'));
  }

  function onAdvance(event) {
    pending.push(event.detail);
    applyPending();
  }

  function onAck(event) {
    pending = pending.filter((press) => press.seq > event.detail.seq);
    draw();
  }

  let tries = 0;
  function attach() {
    if (disposed) return;
    root = el.closest('.' + model.get('root_class'));
    if (!root) {
      // Not inside a labeling widget (a strip of its own): no key presses to follow.
      if (++tries < 600) requestAnimationFrame(attach);
      return;
    }
    root.addEventListener('alwidget-advance', onAdvance);
    root.addEventListener('alwidget-ack', onAck);
  }

  function draw() {
    const cards = model.get('cards');
    const focused = model.get('focused');
    el.replaceChildren(...cards.map((data, index) => card(data, index, focused, model)));
    const more = model.get('more');
    if (more > 0) {
      const tail = document.createElement('div');
      tail.className = 'alwidget-strip-more';
      tail.textContent = '+' + more + ' more queued';
      el.appendChild(tail);
    }
    if (!cards.length) {
      const empty = document.createElement('div');
      empty.className = 'alwidget-strip-empty';
      empty.textContent = model.get('empty_message');
      el.appendChild(empty);
    }
    applyPending();
  }
  model.on('change:cards', draw);
  model.on('change:focused', draw);
  model.on('change:empty_message', draw);
  model.on('change:more', draw);
  attach();
  draw();
  return () => {
    disposed = true;
    if (preview) preview.remove();
    if (root) {
      root.removeEventListener('alwidget-advance', onAdvance);
      root.removeEventListener('alwidget-ack', onAck);
    }
  };
}

export default { render };
"""

_CSS = """
.alwidget-strip { display: flex; gap: 6px; overflow-x: auto; padding: 4px 2px; min-height: 96px; }
.alwidget-card {
  flex: 0 0 auto; width: 88px; border: 2px solid var(--jp-border-color2, #ddd); border-radius: 4px;
  padding: 3px; cursor: pointer; background: var(--jp-layout-color1, white);
  display: flex; flex-direction: column; align-items: center; gap: 2px;
}
.alwidget-card:hover { border-color: var(--jp-brand-color2, #90caf9); }
.alwidget-card-focused {
  border-color: var(--jp-brand-color1, #1976d2);
  box-shadow: 0 0 0 1px var(--jp-brand-color1, #1976d2);
}
.alwidget-kind-error { border-color: var(--jp-error-color1, #d32f2f); }
.alwidget-card img { width: 72px; height: 72px; object-fit: contain; image-rendering: pixelated; }
.alwidget-snippet {
  width: 80px; height: 72px; overflow: hidden; font-size: 10px; line-height: 1.2;
  word-break: break-word; color: var(--jp-ui-font-color1, #222);
}
.alwidget-card-meta {
  font-size: 10px; color: var(--jp-ui-font-color2, #555); white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; max-width: 100%;
}
.alwidget-card-text { width: 150px; }
.alwidget-card-text .alwidget-snippet { width: 142px; height: 56px; font-size: 11px; }
.alwidget-strip-empty { color: var(--jp-ui-font-color2, #555); padding: 8px; }
.alwidget-strip-more { flex: 0 0 auto; align-self: center; font-size: 11px; padding: 0 8px;
  color: var(--jp-ui-font-color2, #555); }
.alwidget-card-predicted { font-weight: 600; color: var(--jp-ui-font-color1, #222); }
.alwidget-card-done { display: none; }
.alwidget-focus-box { position: relative; }
.alwidget-focus-preview {
  position: absolute; inset: 0; z-index: 1; display: flex; align-items: center;
  justify-content: center; background: var(--jp-layout-color1, white);
}
.alwidget-focus-preview img { width: 240px; height: 240px; object-fit: contain;
  image-rendering: pixelated; }
.alwidget-pending .alwidget-why-box { opacity: 0.4; }
"""

FOCUS_BOX_CLASS = "alwidget-focus-box"
WHY_CLASS = "alwidget-why-box"


class BatchStrip(anywidget.AnyWidget):
    """Cards for the queued items; ``focused`` is the index of the large item.

    ``cards`` holds dicts with ``key`` (the item id as text), ``index`` (its queue position;
    the cards may be a window of the queue, and ``focused`` indexes the cards), ``rank``
    (position + 1), ``pool_rank`` (text), ``score`` (formatted),
    ``predicted``, ``kind`` (the item kind's name, or ``"error"``; the card gets the CSS class
    ``alwidget-kind-<kind>``) and either ``thumbnail`` (a PNG data URL) or ``snippet`` (plain
    text).
    """

    _esm = _ESM
    _css = _CSS
    cards = traitlets.List(traitlets.Dict()).tag(sync=True)
    focused = traitlets.Int(0).tag(sync=True)
    more = traitlets.Int(0, help="queued items after the last card shown").tag(sync=True)
    empty_message = traitlets.Unicode("No items queued.").tag(sync=True)
    # Where the page finds the widget's root and large view (see keys.py, pending presses).
    root_class = traitlets.Unicode(ROOT_CLASS).tag(sync=True)
    focus_box_class = traitlets.Unicode(FOCUS_BOX_CLASS).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._focus_handlers: list = []
        self.on_msg(self._receive)

    def on_focus(self, handler) -> None:
        """Call ``handler(index, key)`` when the user clicks card ``index`` (item id ``key``)."""
        self._focus_handlers.append(handler)

    def click(self, index: int) -> None:
        """Act as if card ``index`` (of the cards shown) had been clicked in the browser."""
        card = self.cards[index]
        self._receive(
            self, {"event": "focus", "index": card.get("index", index), "key": card["key"]}, []
        )

    def _receive(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "focus":
            for handler in list(self._focus_handlers):
                handler(int(content.get("index", 0)), content.get("key"))
