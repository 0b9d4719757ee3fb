"""``FigureWidget``: plotly's ``FigureWidget`` whose first message to the browser already holds
the figure.

plotly 7's ``FigureWidget`` opens its comm (sending its state) first and only then sets the
traits holding the figure (``_widget_data``, ``_widget_layout``), which go out as a second,
separate message. The browser creates the widget's model asynchronously (anywidget first
imports plotly's 5 MB bundle), and JupyterLab drops comm messages that arrive before the
model has attached its handler. On a busy machine that second message is lost: the figure
stays empty for good, and every later edit from Python fails in the browser with
``Error setting state: Cannot read properties of undefined (reading 'length')`` (plotly's
model applies the edit to the ``_widget_data`` it never received). That was the learning
curve "no longer updating" once the map was attached, and empty maps.

Here the comm is opened only once the figure is in the state, so the first message carries
it. Edits sent while the browser is still creating the model are lost the same way (the map
starts fitting at once and may paint before), so the first message the browser sends back
(plotly reports its layout after drawing), proof that the model is listening, is answered
by sending the whole figure again once.

Third, under ipykernel 7 a FigureWidget edit made from a background thread never reaches
the browser (an ``HTML`` value set from the same thread does): plotly sets its message trait
and resets it to ``None`` at once. :meth:`FigureWidget.edit` runs an edit on the kernel's
main thread instead (queued on its event loop; at once when there is no kernel).
"""

from __future__ import annotations

import threading

import plotly.graph_objects as go

__all__ = ["FigureWidget"]


class FigureWidget(go.FigureWidget):
    """A ``plotly.graph_objects.FigureWidget`` that opens its comm with the figure in it."""

    def __init__(self, *args, **kwargs):
        self._open_deferred = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            self._open_deferred = False
        # Held while the whole figure is resent; an owner that edits the figure from another
        # thread can hold it too, so a resend never overtakes a newer edit with older data.
        self._edit_lock = threading.RLock()
        self._resends = 0
        self._browser_listening = False
        self.open()
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
        """Run ``change_figure()`` (which edits this figure) where its messages reach the
        browser: now on the kernel's main thread or outside a kernel, else queued on the
        kernel's event loop (in order, without waiting, so a busy cell cannot deadlock)."""
        loop = None
        if threading.current_thread() is not threading.main_thread():
            try:
                from IPython import get_ipython

                loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
            except ImportError:
                loop = None
        if loop is None:
            change_figure()
        else:
            loop.add_callback(change_figure)

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

    def open(self) -> None:
        if getattr(self, "_open_deferred", False):
            return  # opened at the end of __init__, with _widget_data and _widget_layout set
        super().open()
