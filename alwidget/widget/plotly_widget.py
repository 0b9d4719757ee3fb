"""``FigureWidget``: plotly's ``FigureWidget`` that draws in the browser however long plotly's
bundle takes to load, with a lock for edits from other threads and one resend of the whole
figure when the browser first answers.

Why a loader (issue 16, found with the race): anywidget 0.11 gives a widget's JavaScript
module 2 seconds to load and initialize (``AbortSignal.timeout(2000)`` in its ``Runtime``).
Past that it marks the model as failed and, from then on, its ``_handle_comm_msg`` drops
*every* message from the kernel without a console error. plotly 7's module is a 5 MB bundle,
imported again from a new Blob URL for every figure (anywidget caches nothing), which on a
busy page often takes 3-14 s. When the timer won that race the view still drew, but from the
state the comm opened with (no traces, no layout: plotly sets ``_widget_data`` and
``_widget_layout`` in a second message) and no later edit ever arrived: the race's empty
curves and maps, the map's "Failed to initialize model" of session 5. Forcing the timer to
1 ms in the browser reproduces it every time.

This class's module is a small loader instead: its ``initialize`` returns at once (so the
model is never marked failed) after listening to plotly's edit messages and queueing them;
it loads plotly's bundle (shipped in the ``_plotly_bundle`` trait) once per page, hands
plotly's own model the queued edits, and renders with plotly's own view.

Edits sent before the browser's view exists are also covered by one resend of the whole
figure when the browser first answers (plotly reports its traces after drawing).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import threading
from pathlib import Path

import plotly
import plotly.graph_objects as go
import traitlets

__all__ = ["FigureWidget"]


class _ImportedOnUse:
    """Stands for a module that is imported the first time one of its attributes is read.

    True when the module is installed, as a module would be, so a check such as plotly's
    ``if not nbformat`` still tells an installed module from a missing one.
    """

    def __init__(self, name: str):
        self._name = name

    def __bool__(self) -> bool:
        return importlib.util.find_spec(self._name) is not None

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


def _plotly_figure_widget_class() -> type:
    """plotly's ``FigureWidget`` class, imported without importing ``nbformat`` yet.

    ``FigureWidget`` imports ``plotly.io._renderers``, which imports ``nbformat`` only to
    check its version when a figure is shown as a mime bundle (``fig.show()``). Importing
    ``nbformat`` imports ``jsonschema``, whose format checks build ``rfc3987_syntax``'s
    grammar when that package is installed (it is wherever jupyter-events is): 2-4 s of a
    kernel's main thread in the map's cell, before the map could start. So the renderers
    module is imported with ``nbformat`` marked as missing, then given a stand-in that
    imports it on first use: ``fig.show()`` behaves as before and pays the import then.
    Anything unexpected (plotly's internals moved, ``nbformat`` already imported) falls back
    to the plain import.
    """
    if "nbformat" in sys.modules or "plotly.io._renderers" in sys.modules:
        return go.FigureWidget
    try:
        from _plotly_utils import optional_imports

        unimportable = optional_imports._not_importable
        already_marked = "nbformat" in unimportable
        unimportable.add("nbformat")
        try:
            renderers = importlib.import_module("plotly.io._renderers")
        finally:
            if not already_marked:
                unimportable.discard("nbformat")
        if getattr(renderers, "nbformat", True) is None:
            renderers.nbformat = _ImportedOnUse("nbformat")
    except (ImportError, AttributeError, TypeError):
        pass
    return go.FigureWidget


_PLOTLY_BUNDLE = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text()

# plotly's model reacts to these transient traits (set, then reset to null by Python).
_EDIT_TRAITS = (
    "_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
    "_py2js_relayout", "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps",
    "_py2js_removeTraceProps",
)  # fmt: skip

_LOADER_ESM = """
const BUNDLE = Symbol.for("alwidget.plotly-widget-bundle");
const EDIT_TRAITS = EDIT_TRAITS_JSON;

function plotlyBundle(source) {
  // One import per page: every figure shares the module.
  if (!globalThis[BUNDLE]) {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    globalThis[BUNDLE] = import(url).finally(() => URL.revokeObjectURL(url));
  }
  return globalThis[BUNDLE];
}

export default () => {
  let plotlyWidget = null;
  let loaded = null;
  return {
    initialize({ model }) {
      // Returns at once: anywidget drops every kernel message to a model whose initialize
      // takes over 2 s. Edits arriving meanwhile are queued and replayed below.
      const queued = [];
      const recorders = EDIT_TRAITS.map((name) => {
        const record = () => {
          const value = model.get(name);
          if (value !== null && value !== undefined) queued.push([name, value]);
        };
        model.on("change:" + name, record);
        return [name, record];
      });
      loaded = plotlyBundle(model.get("_plotly_bundle")).then((module) => {
        const replaying = new Map();
        const handlers = new Map();
        const proxy = Object.create(model);
        proxy.get = (name) => (replaying.has(name) ? replaying.get(name) : model.get(name));
        proxy.on = (event, handler) => {
          if (!handlers.has(event)) handlers.set(event, []);
          handlers.get(event).push(handler);
          return model.on(event, handler);
        };
        proxy.off = (...args) => model.off(...args);
        proxy.set = (...args) => model.set(...args);
        proxy.save_changes = () => model.save_changes();
        proxy.send = (...args) => model.send(...args);
        plotlyWidget = module.default();
        // In one synchronous turn: plotly's model starts listening, ours stops, the queue
        // is replayed in order; no message can fall between.
        plotlyWidget.initialize({ model: proxy });
        for (const [name, record] of recorders) model.off("change:" + name, record);
        for (const [name, value] of queued) {
          replaying.set(name, value);
          for (const handler of handlers.get("change:" + name) || []) handler();
          replaying.delete(name);
        }
        return plotlyWidget;
      });
    },
    async render({ model, el }) {
      const widget = await loaded;
      return widget.render({ model, el });
    },
  };
};
""".replace("EDIT_TRAITS_JSON", json.dumps(list(_EDIT_TRAITS)))


class FigureWidget(_plotly_figure_widget_class()):
    """A ``plotly.graph_objects.FigureWidget`` that loads plotly's bundle without tripping
    anywidget's 2-second limit, with :attr:`edit_lock` and one resend of the figure when
    the browser first answers."""

    _esm = _LOADER_ESM
    _plotly_bundle = traitlets.Unicode(_PLOTLY_BUNDLE).tag(sync=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Held while the whole figure is resent and while a message from the browser is
        # applied; an owner that edits the figure from another thread holds it too. While
        # ipywidgets applies a browser message it holds trait notifications and merges the
        # changes of each trait into one: an edit's "set, then reset to None" sent from
        # another thread in that window would reach the browser as None only.
        self._edit_lock = threading.RLock()
        self._resends = 0
        self._browser_listening = False
        self.observe(self._on_browser_message, names=["_js2py_layoutDelta", "_js2py_traceDeltas"])

    @property
    def edit_lock(self) -> threading.RLock:
        """Held while the whole figure is resent (hold it to edit from another thread)."""
        return self._edit_lock

    @property
    def resends(self) -> int:
        """How often the whole figure was sent again (once per figure, normally)."""
        return self._resends

    def edit(self, change_figure) -> None:
        """Run ``change_figure()`` (which edits this figure) under :attr:`edit_lock`."""
        with self.edit_lock:
            change_figure()

    def set_state(self, sync_data):
        # Browser messages arrive on the kernel's shell or a subshell thread: see edit_lock.
        with self.edit_lock:
            super().set_state(sync_data)

    def _on_browser_message(self, change) -> None:
        if change["new"] is None or self._browser_listening:
            return
        self._browser_listening = True
        self.resend()

    def resend(self) -> None:
        """Send every trace and the layout to the browser again (restyle, then relayout)."""
        with self.edit_lock:
            for index, trace in enumerate(self.data):
                properties = trace.to_plotly_json()
                properties.pop("type", None)
                properties.pop("uid", None)
                self._send_restyle_msg(
                    {key: [value] for key, value in properties.items()}, trace_indexes=[index]
                )
            self._send_relayout_msg(self.layout.to_plotly_json())
            self._resends += 1
