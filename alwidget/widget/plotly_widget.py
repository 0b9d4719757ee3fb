"""``FigureWidget``: plotly's ``FigureWidget`` with a lock for edits from other threads and
one resend of the whole figure when the browser first answers.

Edits sent while the browser is still creating the widget's model (anywidget first imports
plotly's 5 MB bundle) can be lost on a busy machine: the first message the browser sends
back (plotly reports its layout after drawing), proof that the model is listening, is
answered by sending every trace and the layout again, once.

Opening the comm with the figure already in the first message was tried in this session and
reverted: the browser then logged ``[anywidget] Failed to initialize model.`` and drew
nothing (issue 12's browser benchmark and map test). See ``docs/notes/issue-12-map.md``.
"""

from __future__ import annotations

import threading

import plotly.graph_objects as go

__all__ = ["FigureWidget"]


class FigureWidget(go.FigureWidget):
    """A ``plotly.graph_objects.FigureWidget`` with :attr:`edit_lock` and one resend of the
    figure when the browser first answers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Held while the whole figure is resent; an owner that edits the figure from another
        # thread holds it too, so a resend never overtakes a newer edit with older data.
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
        """Run ``change_figure()`` (which edits this figure) under :attr:`edit_lock`.

        Queuing edits from a worker thread onto the kernel's event loop was tried and did
        not make them arrive either; the calling thread sends them, as plotly's own does.
        """
        with self.edit_lock:
            change_figure()

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
