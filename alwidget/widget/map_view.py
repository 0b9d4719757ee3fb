"""``MapView``: the embedding map beside the labeling panel.

A plotly ``FigureWidget`` (WebGL) of the pool's UMAP layout with labels, the current batch and
the least covered items. Click a point to focus the item; lasso or box-select points to queue
them next or to label them all with one class. Fitting, refreshing after a retrain and refits
run in one background thread; errors appear in the view's own error box.

The view talks to the outside only through callables (``on_focus``, ``on_queue``,
``on_bulk_label``) and the session's public methods, so it works beside any panel.
"""

from __future__ import annotations

import html
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..embedding.figure import COLOR_MODES
from ..embedding.session_map import SessionMap
from .guard import ErrorGuard
from .jobs import JobRunner
from .map_pane import SELECTION_HINT, item_html, selection_html
from .width_probe import WidthProbe

__all__ = ["MapView"]

_COLOR_OPTIONS = (
    ("assigned label", "label"),
    ("predicted class", "predicted"),
    ("acquisition score", "score"),
)


class MapView(widgets.VBox):
    """Interactive embedding map of a session's pool.

    Parameters
    ----------
    session : alwidget.Session
    color_by : {"label", "predicted", "score"}
    max_points : int or None
        Points drawn at most (labeled, batch and least covered items always drawn).
    height : int
        Figure height in pixels.
    start : bool
        Fit the first layout in the background right away.
    on_focus : callable, optional
        ``on_focus(item_id)`` when a point is clicked (e.g. the panel's focus method).
    on_queue : callable, optional
        ``on_queue(ids)`` for "Label these next"; default ``session.prioritize``.
    on_bulk_label : callable, optional
        ``on_bulk_label(ids, class_name)``; default labels each id through ``session.label``.
    **map_options
        Passed to :class:`alwidget.embedding.session_map.SessionMap`: ``projector`` (a
        :class:`MapProjector`: fit sample size, UMAP parameters, seed), ``feature_fn``,
        ``coverage_radius``, ``n_farthest``, ``prediction_sample_size``.
    """

    def __init__(
        self,
        session,
        *,
        color_by: str = "label",
        max_points: int | None = 30_000,
        height: int = 560,
        start: bool = True,
        on_focus: Callable | None = None,
        on_queue: Callable | None = None,
        on_bulk_label: Callable | None = None,
        **map_options,
    ):
        if color_by not in COLOR_MODES:
            raise ValueError(
                f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}"
            )
        known = set(inspect.signature(SessionMap).parameters) - {"session"}
        unknown = sorted(set(map_options) - known)
        if unknown:
            raise TypeError(
                f"MapView got unknown option(s) {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(known))}"
            )
        # Beside a panel, take the width that is left (and let the plot autosize to it)
        # rather than the figure's default width, which would overflow the notebook.
        super().__init__(layout=widgets.Layout(flex="1 1 40%", min_width="380px"))
        self.add_class("alwidget-map")
        self.session = session
        self.map = SessionMap(session, **map_options)
        self.on_focus = on_focus
        self.on_queue = on_queue or session.prioritize
        self.on_bulk_label = on_bulk_label or (
            lambda ids, name: session.label(list(ids), [name] * len(ids))
        )
        self.max_points = max_points
        self.height = int(height)
        self.last_error = ""
        self.last_outcome = ""
        self.selected_rows = np.zeros(0, dtype=np.int64)
        self._selection_by_trace: dict[int, np.ndarray] = {}
        self._guard = ErrorGuard(
            self._show_error, log_class="alwidget-map-errors", max_height="140px"
        )
        # One worker thread for fits and redraws; a burst of the same job costs one run.
        self._jobs = JobRunner(
            ("map",),
            name="alwidget-map",
            on_error=lambda error, kind: self._guard.report(error, f"{kind} failed: "),
        )
        self._draw_lock = threading.Lock()
        self._build(color_by)
        if start:
            self.update()

    # ------------------------------------------------------------------------ layout
    def _build(self, color_by: str) -> None:
        self.figure = go.FigureWidget(
            layout={"height": self.height, "title": {"text": "fitting the map…"}}
        )
        self.color_dropdown = widgets.Dropdown(
            options=_COLOR_OPTIONS, value=color_by, description="Colour by"
        )
        self.color_dropdown.observe(
            lambda _change: self._submit("redraw", self._redraw_job), "value"
        )
        self.update_button = widgets.Button(
            description="Update map",
            icon="refresh",
            tooltip="re-place points for the current model (layout kept)",
        )
        self.update_button.on_click(lambda _b: self._guard.run(self.update))
        self.refit_button = widgets.Button(
            description="Refit layout",
            icon="random",
            tooltip="fit UMAP afresh on the current features (slower)",
        )
        self.refit_button.on_click(lambda _b: self._guard.run(self.refit))
        self.status = widgets.HTML("")
        self.status.add_class("alwidget-map-status")
        self.item_pane = widgets.HTML(
            "<i>hover or click a point to see the item</i>",
            layout=widgets.Layout(width="220px", min_height="60px"),
        )
        self.item_pane.add_class("alwidget-map-item")
        self.selection_info = widgets.HTML(SELECTION_HINT)
        self.queue_button = widgets.Button(
            description="Label these next",
            icon="arrow-up",
            disabled=True,
            tooltip="put the selected unlabeled items at the front of the queue",
        )
        self.queue_button.on_click(lambda _b: self._guard.run(self.queue_selection))
        self.bulk_class = widgets.Dropdown(
            options=list(self.session.classes), layout=widgets.Layout(width="110px")
        )
        self.bulk_button = widgets.Button(
            description="Label all as",
            icon="tags",
            disabled=True,
            tooltip="give every selected unlabeled item the chosen class",
        )
        self.bulk_button.on_click(
            lambda _b: self._guard.run(self.label_selection, self.bulk_class.value)
        )
        self.errors = self._guard.log
        actions = widgets.VBox(
            [
                self.selection_info,
                self.queue_button,
                widgets.HBox([self.bulk_button, self.bulk_class]),
            ],
            layout=widgets.Layout(min_width="240px"),
        )
        controls = widgets.HBox(
            [self.color_dropdown, self.update_button, self.refit_button],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
        )
        # The plot takes the map's full width (often half a notebook beside the panel); the
        # item and the selection actions sit below it, never over the points. plotly's widget
        # does not autosize to its box, so the probe measures the box and we set the width.
        self.width_probe = WidthProbe()
        self.width_probe.observe(lambda change: self._fit_width(change["new"]), "width")
        plot = widgets.Box(
            [self.width_probe, self.figure],
            layout=widgets.Layout(display="block", width="100%"),
        )
        below = widgets.HBox([self.item_pane, actions], layout=widgets.Layout(flex_flow="row wrap"))
        self.children = [controls, self.status, plot, below, self.errors]

    @property
    def color_by(self) -> str:
        return self.color_dropdown.value

    # ----------------------------------------------------------------- background work
    def _submit(self, kind: str, job) -> Future:
        return self._jobs.submit(kind, job)

    def update(self) -> Future:
        """Bring the map up to date in the background: first fit, or re-place the points
        for a retrained model keeping the layout (no refit), then redraw."""
        return self._submit("update", lambda: self._layout_job(refit=False))

    def refit(self) -> Future:
        """Fit the layout afresh in the background (oriented like the old one), then redraw."""
        return self._submit("refit", lambda: self._layout_job(refit=True))

    def wait(self, timeout: float | None = None) -> None:
        """Block until every background job has finished (for scripts and tests).

        Raises
        ------
        TimeoutError
            If a job is still running after ``timeout`` seconds.
        """
        self._jobs.wait(timeout)

    def _layout_job(self, refit: bool) -> str:
        self._set_status(
            "fitting the layout…"
            if refit or not self.map.projector.is_fitted
            else "updating the map…"
        )
        outcome = self.map.update(refit=refit)
        self.last_outcome = outcome
        self._redraw_job()
        hint = ""
        r2 = self.map.projector.alignment_r2
        if outcome == "refreshed" and r2 is not None and r2 < 0.5:
            hint = (
                " · the model's features changed a lot since the layout was fitted"
                f" (R² {r2:.2f}): <b>Refit layout</b> for a faithful map"
            )
        self._set_status(f"layout {outcome} for model v{self.map.layout_model_version}{hint}")
        return outcome

    def _redraw_job(self) -> None:
        if not self.map.projector.is_fitted:
            return
        new = self.map.figure(self.color_by, max_points=self.max_points, height=self.height)
        if self.width_probe.width > 0:
            new.update_layout(width=self.width_probe.width)
        with self._draw_lock:
            self._selection_by_trace = {}
            self.figure.data = []
            self.figure.layout = new.layout
            self.figure.add_traces(list(new.data))
            for trace in self.figure.data:
                trace.on_click(self._on_trace_click)
                trace.on_hover(self._on_trace_hover)
                trace.on_selection(self._on_trace_selection)
                trace.on_deselect(self._on_trace_deselect)
        self.handle_selection([])

    def _fit_width(self, width: int) -> None:
        if width > 0:
            with self._draw_lock:
                self.figure.layout.width = width

    # ----------------------------------------------------------------- plotly events
    @staticmethod
    def _rows_of(trace, points) -> np.ndarray:
        return np.asarray(trace.customdata, dtype=np.int64)[list(points.point_inds)]

    def _on_trace_click(self, trace, points, _state) -> None:
        if points.point_inds:
            self._guard.run(self.handle_click, self._rows_of(trace, points))

    def _on_trace_hover(self, trace, points, _state) -> None:
        if points.point_inds:
            self._guard.run(self.show_item, self.map.ids_at(self._rows_of(trace, points)[:1])[0])

    def _on_trace_selection(self, trace, points, _selector) -> None:
        # plotly calls this once per trace for one lasso; the selection is their union.
        self._selection_by_trace[points.trace_index] = self._rows_of(trace, points)
        union = np.unique(np.concatenate(list(self._selection_by_trace.values())))
        self._guard.run(self.handle_selection, union)

    def _on_trace_deselect(self, _trace, _points) -> None:
        self._selection_by_trace = {}
        self._guard.run(self.handle_selection, [])

    # ------------------------------------------------------------------- public actions
    def handle_click(self, rows) -> None:
        """A click on points at these pool positions: show the first and focus it."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return
        item_id = self.map.ids_at(rows[:1])[0]
        self.show_item(item_id)
        if self.on_focus is not None:
            self.on_focus(item_id)

    def handle_selection(self, rows) -> None:
        """A lasso/box selection of these pool positions (empty = cleared)."""
        self.selected_rows = np.unique(np.asarray(rows, dtype=np.int64).reshape(-1))
        unlabeled = self.selected_unlabeled_ids()
        n_labeled = self.selected_rows.size - len(unlabeled)
        self.selection_info.value = selection_html(self.selected_rows.size, n_labeled)
        self.queue_button.disabled = self.bulk_button.disabled = not unlabeled

    @property
    def selected_ids(self) -> list:
        """Ids of the selected items."""
        return self.map.ids_at(self.selected_rows)

    def selected_unlabeled_ids(self) -> list:
        labeled = set(self.session.labeled_ids)
        return [item_id for item_id in self.selected_ids if item_id not in labeled]

    def queue_selection(self) -> list:
        """Send the selected unlabeled items to ``on_queue`` ("label these next")."""
        ids = self.selected_unlabeled_ids()
        if not ids:
            raise ValueError("select unlabeled points first (lasso or box select on the map)")
        self.on_queue(ids)
        self._set_status(f"{len(ids)} selected item(s) will be asked next")
        return ids

    def label_selection(self, class_name: str) -> list:
        """Give every selected unlabeled item ``class_name`` through ``on_bulk_label``,
        then recompute coverage and redraw in the background."""
        ids = self.selected_unlabeled_ids()
        if not ids:
            raise ValueError("select unlabeled points first (lasso or box select on the map)")
        self.on_bulk_label(ids, class_name)
        self._set_status(f"labeled {len(ids)} item(s) as {html.escape(str(class_name))}")
        self.refresh_overlays()
        return ids

    def refresh_overlays(self) -> Future:
        """Recompute coverage and redraw labels/batch without moving any point."""
        return self._submit("overlays", lambda: (self.map.refresh_coverage(), self._redraw_job()))

    def set_batch(self, ids) -> Future:
        """Mark the current batch (drawn as diamonds) and redraw in the background."""
        self.map.set_batch(ids)
        return self._submit("redraw", self._redraw_job)

    def show_item(self, item_id) -> None:
        """Show one item (image or escaped text), its label and coverage in the side pane."""
        label = self.session.labels.get(item_id)
        self.item_pane.value = item_html(self.session.pool, item_id, label, self.map.coverage)

    def follow(self, panel) -> None:
        """Keep the map in step with a labeling panel such as :class:`alwidget.Widget`:
        update after each retrain (``model_version``), refresh coverage after labels
        (``n_labels``) and mark its queued items as the batch (``queue``)."""
        traits = panel.trait_names() if hasattr(panel, "trait_names") else []
        if "model_version" in traits:
            panel.observe(lambda _change: self.update(), "model_version")
        if "n_labels" in traits:
            panel.observe(lambda _change: self.refresh_overlays(), "n_labels")
        if "queue" in traits:
            panel.observe(
                lambda change: self.set_batch([item.id for item in change["new"]]),
                "queue",
            )
            self.set_batch([item.id for item in panel.queue])

    def close(self) -> None:
        """Stop background work and close the child widgets."""
        self._jobs.shutdown()
        for child in (self.figure, *self.children):
            child.close()
        super().close()

    # ------------------------------------------------------------------------ internals
    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _show_error(self, message: str) -> None:
        self.last_error = message
        if message:
            self._set_status(f'<span style="color:#b00020">{html.escape(message)}</span>')
