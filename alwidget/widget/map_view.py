"""``MapView``: the embedding map beside the labeling panel.

One plotly ``FigureWidget``, created once and never replaced, holds the pool's UMAP layout
(two WebGL traces, so the page keeps one WebGL context for the map), the current batch, the
least covered items and one small SVG trace per class with its labeled items (see
:mod:`alwidget.embedding.figure`). A label only resends the class trace that gained a point
and the batch; a retrain resends the big traces once. Click a point to focus the item; lasso
or box-select points to queue them next or to label them all with one class. Fitting (first
on a sample, drawn at once, then the rest placed), refreshing after a retrain and refits run
in one background thread, with a status line that says how far they are; errors appear in
the view's own error box.

The view talks to the outside only through callables (``on_focus``, ``on_queue``,
``on_bulk_label``) and the session's public methods, so it works beside any panel.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable
from concurrent.futures import Future

import ipywidgets as widgets
import numpy as np

from ..embedding.figure import (
    COLOR_MODES,
    FIRST_CLASS_TRACE,
    TRACE_ORDER,
    base_trace_updates,
    choose_drawn_rows,
    class_trace,
    class_trace_update,
    drawn_title,
    empty_map_traces,
    map_layout,
    overlay_updates,
)
from ..embedding.session_map import SessionMap
from .guard import ErrorGuard
from .jobs import JobRunner, Throttle
from .map_pane import SELECTION_HINT, item_html, selection_html
from .pace import LabelingPace
from .plotly_widget import FigureWidget
from .preload import import_pending_now
from .width_probe import WidthProbe

__all__ = ["MapView"]

_COLOR_OPTIONS = (
    ("assigned label", "label"),
    ("predicted class", "predicted"),
    ("acquisition score", "score"),
)


_COLOR_OPTIONS = (
    ("assigned label", "label"),
    ("predicted class", "predicted"),
    ("acquisition score", "score"),
)

# The status line while rows are placed changes at most this often (each change is a message).
_PROGRESS_EVERY_S = 0.5


def _as_wire(update: dict) -> dict:
    """Trace properties with arrays in types plotly.js reads as typed arrays (rows as int32,
    positions as float32): plotly.py sends them as binary, and it cannot encode an empty
    int64 array."""
    wire = dict(update)
    if "customdata" in wire:
        wire["customdata"] = np.asarray(wire["customdata"], dtype=np.int32)
    for axis in ("x", "y"):
        if axis in wire:
            wire[axis] = np.asarray(wire[axis], dtype=np.float32)
    return wire


class MapView(widgets.VBox):
    """Interactive embedding map of a session's pool.

    Parameters
    ----------
    session : alwidget.Session
    color_by : {"label", "predicted", "score"}
        Colour of the small points; labeled items are always drawn in their class's colour.
    max_points : int or None
        Points drawn at most (labeled, batch and least covered items always drawn).
    height : int, optional
        Height of the plot area in pixels; by default it follows the width the map gets in
        the page (about 3/4 of it, between 300 and 620 px). The legend gets its own room
        below.
    start : bool
        Fit the first layout in the background right away.
    on_focus : callable, optional
        ``on_focus(item_id)`` when a point is clicked (e.g. the panel's focus method).
    on_queue : callable, optional
        ``on_queue(ids)`` for "Label these next"; default ``session.prioritize``.
    on_bulk_label : callable, optional
        ``on_bulk_label(ids, class_name)``; default labels each id through ``session.label``.
    pace : LabelingPace, optional
        When redraws wait for a pause in labeling (see :mod:`alwidget.widget.pace`): during a
        burst of labels each redraw would hold the next key press in the browser.
    **map_options
        Passed to :class:`alwidget.embedding.session_map.SessionMap`: ``projector`` (a
        :class:`MapProjector`: fit sample size, UMAP parameters, seed), ``feature_fn``,
        ``coverage_radius``, ``n_farthest``, ``prediction_sample_size``.

    Attributes
    ----------
    paint_counts : dict
        How often each part of the figure was sent to the browser (``"base"``: the big WebGL
        traces; ``"overlays"``: class, batch or coverage traces), for tests and benchmarks.
    """

    def __init__(
        self,
        session,
        *,
        color_by: str = "label",
        max_points: int | None = 30_000,
        height: int | None = None,
        start: bool = True,
        on_focus: Callable | None = None,
        on_queue: Callable | None = None,
        on_bulk_label: Callable | None = None,
        pace: LabelingPace | None = None,
        **map_options,
    ):
        if color_by not in COLOR_MODES:
            raise ValueError(
                f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}"
            )
        if height is not None and (int(height) != height or height < 100):
            raise ValueError(f"height must be None (follow the width) or >= 100 px, got {height!r}")
        known = set(inspect.signature(SessionMap).parameters) - {"session"}
        unknown = sorted(set(map_options) - known)
        if unknown:
            raise TypeError(
                f"MapView got unknown option(s) {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(known))}"
            )
        # Beside the panel when there is room for both (the panel's row wraps, see MapLink),
        # else on a line of its own below it, taking the whole width.
        super().__init__(layout=widgets.Layout(flex="1 1 420px", min_width="380px"))
        self.add_class("alwidget-map")
        self.session = session
        self.map = SessionMap(session, **map_options)
        self.on_focus = on_focus
        self.on_queue = on_queue or session.prioritize
        self.on_bulk_label = on_bulk_label or (
            lambda ids, name: session.label(list(ids), [name] * len(ids))
        )
        self.max_points = max_points
        self.height = None if height is None else int(height)
        self.last_error = ""
        self.last_outcome = ""
        self.selected_rows = np.zeros(0, dtype=np.int64)
        self.paint_counts = {"base": 0, "overlays": 0}
        self._selection_by_trace: dict[int, np.ndarray] = {}
        self._sent_rows: dict[int, np.ndarray] = {}  # trace index -> rows the browser has
        self._drawn_rows = np.zeros(0, dtype=np.int64)
        self._n_placed = 0
        self._overlay_coordinates = None
        self._title = "fitting the map…"
        self._placing_throttle = Throttle(_PROGRESS_EVERY_S)
        self.pace = pace or LabelingPace()
        self._guard = ErrorGuard(
            self._show_error, log_class="alwidget-map-errors", max_height="140px"
        )
        # One worker thread for fits and redraws; a burst of the same job costs one run.
        self._jobs = JobRunner(
            ("map",),
            name="alwidget-map",
            on_error=lambda error, kind: self._guard.report(error, f"{kind} failed: "),
        )
        self._build(color_by)
        # A panel built in this cell left training's imports for after it: do them before this
        # view's worker starts importing umap-learn (see preload.py).
        import_pending_now()
        if start:
            self.update()

    # ------------------------------------------------------------------------ layout
    def _build(self, color_by: str) -> None:
        classes = list(self.session.classes)
        # The title (coverage and how many points are drawn) is an HTML line above the
        # figure, not plotly's title: plotly cut its first line at the top, and changing it
        # after each label cost a relayout (a full redraw) in the browser.
        self.summary = widgets.HTML(self._summary_html())
        self.summary.add_class("alwidget-map-summary")
        self.figure = FigureWidget(
            data=empty_map_traces(classes),
            layout=map_layout(
                "",
                width=None,
                n_legend_entries=FIRST_CLASS_TRACE + len(classes),
                plot_height=self.height,
            ),
        )
        # Painting and resending the figure to a browser that just created it exclude each
        # other (see FigureWidget.resend).
        self._draw_lock = self.figure.edit_lock
        for trace in self.figure.data:
            self._listen(trace)
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
        self.selection_info.add_class("alwidget-map-selection")
        self.queue_button = widgets.Button(
            description="Label these next",
            icon="arrow-up",
            disabled=True,
            tooltip="put the selected unlabeled items at the front of the queue",
        )
        self.queue_button.on_click(lambda _b: self._guard.run(self.queue_selection))
        self.bulk_class = widgets.Dropdown(options=classes, layout=widgets.Layout(width="110px"))
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
        # The plot takes the map's full width (half a notebook beside the panel, all of it
        # below); the item and the selection actions sit below it, never over the points.
        # plotly's widget does not autosize to its box, so the probe measures the box and
        # we size the figure (and the room its legend needs) from that.
        self.width_probe = WidthProbe()
        self.width_probe.observe(lambda change: self._fit_width(change["new"]), "width")
        plot = widgets.Box(
            [self.width_probe, self.figure],
            layout=widgets.Layout(display="block", width="100%"),
        )
        below = widgets.HBox([self.item_pane, actions], layout=widgets.Layout(flex_flow="row wrap"))
        self.children = [controls, self.status, self.summary, plot, below, self.errors]

    def _listen(self, trace) -> None:
        trace.on_click(self._on_trace_click)
        trace.on_hover(self._on_trace_hover)
        trace.on_selection(self._on_trace_selection)
        trace.on_deselect(self._on_trace_deselect)

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

    def _on_stage(self, stage: str, info: dict) -> None:
        """Say what the layout job is doing; draw the fitted sample as soon as it exists."""
        if stage == "features":
            self._set_status(f"computing the features of {info['n_items']:,} items…")
        elif stage == "fitting":
            self._set_status(f"fitting UMAP on {info['n_fit']:,} of {info['n_items']:,} items…")
        elif stage == "sample":
            layers = self.map.layers("label", coordinates_N_2=info["coordinates_N_2"])
            self.figure.edit(
                lambda: (self._paint_base(layers, "label"), self._paint_overlays(layers))
            )
            self._set_status("placing the rest…")
        elif stage == "placing":
            if self._placing_throttle.lets_through(last=info["done"] == info["total"]):
                self._set_status(
                    f"placing the rest: {info['done']:,} of {info['total']:,} items…"
                    if info["done"]
                    else f"placing {info['total']:,} items on the map…"
                )
        elif stage == "coverage":
            self._set_status("measuring how well the labels cover the pool…")

    def _layout_job(self, refit: bool) -> str:
        outcome = self.map.update(refit=refit, on_stage=self._on_stage)
        self.last_outcome = outcome
        if outcome != "unchanged" or not self._drawn_rows.size:
            self._redraw_job()
        else:
            self._overlay_job()
        hint = ""
        r2 = self.map.projector.alignment_r2
        if outcome == "refreshed" and r2 is not None and r2 < 0.5:
            hint = (
                " · the model's features changed a lot since the layout was fitted"
                f" (R² {r2:.2f}): <b>Refit layout</b> for a faithful map"
            )
        self._set_status(f"layout {outcome} for model v{self.map.layout_model_version}{hint}")
        return outcome

    def _wait_for_labeling_pause(self) -> bool:
        """Hold a redraw while labels arrive in a burst (see :mod:`alwidget.widget.pace`);
        True if it waited for the end of a burst."""
        change_at = self.pace.now()
        delay = self.pace.delay_s(change_at)
        if delay <= 0:
            return False
        burst = self.pace.in_burst()
        before = self.status.value
        waiting = "labels are coming fast: the map catches up at your next pause…"
        if burst:
            self._set_status(waiting)
        while delay > 0:
            if self._jobs.sleep(min(delay, 0.25)):
                break
            delay = self.pace.delay_s(change_at)
        if self.status.value == waiting:
            self._set_status(before)
        return burst

    def _redraw_job(self) -> None:
        """Send everything: the layout moved or the colour mode changed."""
        if not self.map.projector.is_fitted:
            return
        self._wait_for_labeling_pause()
        color_by = self.color_by
        layers = self.map.layers(color_by)
        self.figure.edit(
            lambda: (
                self._paint_base(layers, color_by),
                self._paint_overlays(layers),
                self._clear_selection(),
            )
        )

    def _overlay_job(self) -> None:
        """After labels or a new batch: resend the class and batch traces that changed,
        then coverage (the rings and the title). No point moves."""
        if not self.map.projector.is_fitted:
            return
        if not self._wait_for_labeling_pause():
            # Labels first, at once; after a burst they wait for coverage: one redraw, not two.
            layers = self.map.layers("label")
            self.figure.edit(lambda: self._paint_overlays(layers, coverage=False))
        self.map.refresh_coverage()
        layers = self.map.layers("label")
        self.figure.edit(lambda: self._paint_overlays(layers))

    def _fit_width(self, width: int) -> None:
        if width > 0:
            with self._draw_lock, self.figure.batch_update():
                self._relayout(width)

    # ---------------------------------------------------------------------- painting
    def _relayout(self, width: int | None = None) -> None:
        """Title and size (the legend's room depends on the width); call under the lock."""
        width = width or self.width_probe.width or None
        layout = map_layout(
            "",
            width=width,
            n_legend_entries=len(self.figure.data),
            plot_height=self.height,
        )
        self.figure.layout.height = layout["height"]
        self.figure.layout.margin.b = layout["margin"]["b"]
        if width:
            self.figure.layout.width = width

    def _paint_base(self, layers, color_by: str) -> None:
        rows = choose_drawn_rows(layers, self.max_points, getattr(self.session, "seed", 0) or 0)
        updates = base_trace_updates(layers, rows, color_by)
        placed = int(np.isfinite(layers.coordinates_N_2[rows]).all(axis=1).sum())
        with self._draw_lock:
            self._drawn_rows = rows
            self._n_placed = placed
            self._title = drawn_title(layers.title, placed, layers.n_items)
            with self.figure.batch_update():
                for index, update in enumerate(updates):
                    self.figure.data[index].update(_as_wire(update))
                    self._sent_rows[index] = np.asarray(update["customdata"])
                self._relayout()
            self.paint_counts["base"] += 1
        self._show_summary()

    def _paint_overlays(self, layers, *, coverage: bool = True) -> None:
        """Resend the overlay traces whose points changed (all of them after the layout
        moved, since their positions did)."""
        self._add_missing_class_traces(layers.class_names)
        updates = {
            TRACE_ORDER.index("batch"): overlay_updates(layers)["batch"],
        }
        if coverage:
            updates[TRACE_ORDER.index("uncovered")] = overlay_updates(layers)["uncovered"]
        for class_index in range(len(layers.class_names)):
            updates[FIRST_CLASS_TRACE + class_index] = class_trace_update(layers, class_index)
        moved = self._sent_positions_changed(layers)
        with self._draw_lock:
            changed = {
                index: update
                for index, update in updates.items()
                if moved or not np.array_equal(self._sent_rows.get(index, ()), update["customdata"])
            }
            if coverage and self._drawn_rows.size:
                self._title = drawn_title(layers.title, self._n_placed, layers.n_items)
            if changed:
                with self.figure.batch_update():
                    for index, update in changed.items():
                        self.figure.data[index].update(_as_wire(update))
                        self._sent_rows[index] = np.asarray(update["customdata"])
                self.paint_counts["overlays"] += 1
        if coverage:
            self._show_summary()

    def _sent_positions_changed(self, layers) -> bool:
        """Whether the layout moved since the overlays were last sent."""
        coordinates = layers.coordinates_N_2
        if coordinates is self._overlay_coordinates:
            return False
        self._overlay_coordinates = coordinates
        return True

    def _add_missing_class_traces(self, class_names) -> None:
        """A class added while labeling gets its trace (and a place in the bulk-label list)."""
        with self._draw_lock:
            n_shown = len(self.figure.data) - FIRST_CLASS_TRACE
            if len(class_names) <= n_shown:
                return
            self.figure.add_traces(
                [
                    class_trace(index, class_names[index])
                    for index in range(n_shown, len(class_names))
                ]
            )
            for trace in self.figure.data[FIRST_CLASS_TRACE + n_shown :]:
                self._listen(trace)
        self.bulk_class.options = list(class_names)

    def _clear_selection(self) -> None:
        """Drop a lasso/box selection the browser still shows (its outline and the dimming
        of the other points): after the points moved it no longer means anything."""
        with self._draw_lock:
            n_traces = len(self.figure.data)
            # The browser sets these itself while selecting, so the Python side still holds
            # None and would not send None again; the message is sent directly.
            self.figure._send_update_msg(
                {"selectedpoints": [None] * n_traces}, {"selections": []}, list(range(n_traces))
            )
            self.figure.layout.selections = ()
        self._selection_by_trace = {}
        self.handle_selection([])

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
        self._clear_selection()  # done with it: the outline would only invite a second go
        self.refresh_overlays()
        return ids

    def refresh_overlays(self) -> Future:
        """Redraw labels and the batch, then recompute coverage, without moving any point
        (only the traces that changed are sent)."""
        return self._submit("overlays", self._overlay_job)

    def set_batch(self, ids) -> Future:
        """Mark the current batch (drawn as diamonds) and redraw the overlays in the
        background."""
        self.map.set_batch(ids)
        return self._submit("overlays", self._overlay_job)

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

            def labels_changed(_change):
                self.pace.note_label()
                self.refresh_overlays()

            panel.observe(labels_changed, "n_labels")
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
    @property
    def title(self) -> str:
        """The map's summary (coverage, how many points are drawn) as the line above it shows."""
        return self._title

    def _summary_html(self) -> str:
        return (
            '<div class="alwidget-map-title" style="font-size: 13px; line-height: 1.35">'
            f"{self._title}</div>"
        )

    def _show_summary(self) -> None:
        summary = self._summary_html()
        if self.summary.value != summary:
            self.summary.value = summary

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _show_error(self, message: str) -> None:
        self.last_error = message
        if message:
            self._set_status(f'<span style="color:#b00020">{html.escape(message)}</span>')
