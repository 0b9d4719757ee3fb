"""``ToyView``: a 2-D pool with the model's decision boundary and uncertainty drawn under it.

For the toys of :mod:`alwidget.datasets` (``two_moons``, ``blobs``, ``spiral``) the picture
makes the ideas visible: entropy is high wherever the classes meet (ambiguity), BALD only
where the MC-dropout models disagree, far from any label (what a label would teach); the next
batch is ringed on top. One plotly figure whose traces are updated in place after each
retrain (SVG heatmap, contour and scatter; no WebGL).
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from .. import strategies
from ..embedding.figure import class_colour
from ..errors import InvalidArgumentError, InvalidArgumentTypeError
from ..experiments.oracle import oracle_labels
from ..kinds.base import per_feature_scaling
from ..session import Session
from ..session.checks import check_count
from ..widget.plotly_widget import FigureWidget

__all__ = ["FIELDS", "ToyView", "uncertainty_field"]

# field name -> (key of strategies.explain, title of the colour bar)
FIELDS = {
    "bald": ("bald_N", "BALD (models disagree)"),
    "entropy": ("entropy_of_mean_N", "entropy (prediction unsure)"),
    "mean_entropy": ("mean_entropy_N", "mean entropy (each model unsure)"),
}


def _scaled_grid(session: Session, grid_x, grid_y) -> torch.Tensor:
    """The grid's points as model inputs, standardised exactly as the pool's items are."""
    pool = session.pool
    raw = np.stack([np.asarray(pool.item(i), dtype=np.float32) for i in pool.ids])
    mean, scale = per_feature_scaling(raw)
    probe = np.arange(min(len(pool), 8))
    expected = pool.inputs(probe).numpy()
    if not np.allclose((raw[probe] - mean) / scale, expected, atol=1e-4):
        raise InvalidArgumentError(
            f"session.pool {pool.name!r} does not feed its points to the model as plain "
            "standardised coordinates (given features=?), so the toy view cannot place a grid "
            "in the model's input space; build the pool from the N×2 points alone"
        )
    xx, yy = np.meshgrid(grid_x, grid_y)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    return torch.from_numpy(((points - mean) / scale).astype(np.float32))


def uncertainty_field(session: Session, grid_x, grid_y, mc_samples: int = 20) -> dict:
    """The current model's predictions on a grid of the plane, as 2-D arrays.

    Returns ``{"predicted", "bald", "entropy", "mean_entropy"}``, each of shape
    ``(len(grid_y), len(grid_x))`` (rows follow y), from ``mc_samples`` MC-dropout samples
    (one deterministic pass for a model without dropout; an ensemble's members add samples).
    """
    inputs = _scaled_grid(session, grid_x, grid_y)
    samples = mc_samples if session.model.has_dropout else 1
    prediction = session.model.predict(
        np.arange(len(inputs)), mc_samples=samples, embeddings=False,
        inputs=lambda rows: inputs[np.asarray(rows)],
    )  # fmt: skip
    parts = strategies.explain(prediction.log_probs_N_K_C)
    shape = (len(grid_y), len(grid_x))
    field = {name: parts[key].reshape(shape) for name, (key, _) in FIELDS.items()}
    field["predicted"] = parts["predicted_N"].reshape(shape)
    return field


class ToyView:
    """The plane of a 2-D pool: uncertainty as a background, the boundary, labels, next batch.

    Parameters
    ----------
    session : Session
        On a pool of 2-D points (:func:`alwidget.datasets.two_moons`, ``blobs``, ``spiral``
        or your own ``N×2`` array).
    field : {"bald", "entropy", "mean_entropy"}
        The background first shown (a toggle switches it).
    grid_size : int
        Grid points per axis (``grid_size²`` predictions per redraw).
    mc_samples : int
        MC-dropout samples for the background (the session's own count when larger).
    batch_size : int, optional
        Size of the next batch drawn (default: the session's).

    Notes
    -----
    The buttons run in a background thread, so the kernel stays free. *Label batch &
    retrain* answers the ringed batch from the pool's ground truth (a simulated oracle),
    retrains and shows the new model; after your own ``session.retrain()`` call
    :meth:`refresh`.
    """

    def __init__(
        self,
        session: Session,
        *,
        field: str = "bald",
        grid_size: int = 60,
        mc_samples: int = 20,
        batch_size: int | None = None,
    ):
        if not isinstance(session, Session):
            raise InvalidArgumentTypeError(
                f"session must be an alwidget.Session, got {type(session).__name__}"
            )
        pool = session.pool
        if pool.kind != "tabular" or pool.input_shape != (2,):
            raise InvalidArgumentError(
                f"ToyView draws pools of 2-D points; session.pool {pool.name!r} is "
                f"{pool.kind} with inputs of shape {pool.input_shape}: use "
                "al.datasets.two_moons() / blobs() / spiral(), or ComparePicks for other pools"
            )
        self._check_field(field)
        self.session = session
        self.grid_size = check_count(grid_size, "grid_size", 5, "grid points per axis", 400)
        self.mc_samples = max(check_count(mc_samples, "mc_samples", 1), session.mc_samples)
        self.batch_size = (
            session.batch_size if batch_size is None else check_count(batch_size, "batch_size")
        )
        self.points_N_2 = np.stack([np.asarray(pool.item(i), dtype=np.float32) for i in pool.ids])
        low, high = self.points_N_2.min(axis=0), self.points_N_2.max(axis=0)
        margin = 0.1 * (high - low) + 1e-3
        self.grid_x = np.linspace(low[0] - margin[0], high[0] + margin[0], self.grid_size)
        self.grid_y = np.linspace(low[1] - margin[1], high[1] + margin[1], self.grid_size)
        self.field_name = field
        self.field: dict | None = None
        self.batch_ids: list = []
        self.error: BaseException | None = None
        self._busy = threading.Lock()
        self._build_widgets()
        self.refresh()

    @staticmethod
    def _check_field(field) -> None:
        if field not in FIELDS:
            raise InvalidArgumentError(f"field must be one of {sorted(FIELDS)}, got {field!r}")

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        self.field_toggle = widgets.ToggleButtons(
            options=[("BALD", "bald"), ("entropy", "entropy"), ("mean entropy", "mean_entropy")],
            value=self.field_name, description="Background",
        )  # fmt: skip
        self.field_toggle.observe(lambda change: self.show_field(change["new"]), names="value")
        self.step_button = widgets.Button(
            description="Label batch & retrain", tooltip="the oracle labels the ringed batch"
        )
        self.step_button.on_click(lambda _: self._in_background(self.step))
        self.status = widgets.HTML()
        self.status.add_class("alwidget-toy-status")
        figure = go.Figure(
            layout=go.Layout(
                width=640, height=560, margin=dict(l=40, r=10, t=40, b=40),
                template="plotly_white", legend=dict(orientation="h", y=-0.08),
                xaxis=dict(range=[self.grid_x[0], self.grid_x[-1]], constrain="domain"),
                yaxis=dict(range=[self.grid_y[0], self.grid_y[-1]], scaleanchor="x"),
            )
        )  # fmt: skip
        figure.add_heatmap(
            x=self.grid_x, y=self.grid_y, z=np.zeros((self.grid_size, self.grid_size)),
            colorscale="Viridis", zmin=0, colorbar=dict(title="", thickness=12),
            hovertemplate="x %{x:.2f}, y %{y:.2f}<br>%{z:.3f}<extra></extra>", name="field",
        )  # fmt: skip
        n_classes = len(self.session.classes)
        figure.add_contour(
            x=self.grid_x, y=self.grid_y, z=np.zeros((self.grid_size, self.grid_size)),
            contours=dict(start=0.5, end=max(0.5, n_classes - 1.5), size=1, coloring="none"),
            line=dict(color="white", width=2), showscale=False, hoverinfo="skip",
            name="decision boundary", showlegend=True,
        )  # fmt: skip
        figure.add_scatter(
            x=self.points_N_2[:, 0], y=self.points_N_2[:, 1], mode="markers",
            marker=dict(size=4, color="rgba(255,255,255,0.55)"), name="unlabeled",
            hoverinfo="skip",
        )  # fmt: skip
        figure.add_scatter(
            x=[], y=[], mode="markers", name="labeled",
            marker=dict(size=9, line=dict(color="white", width=1)),
        )  # fmt: skip
        figure.add_scatter(
            x=[], y=[], mode="markers", name="next batch",
            marker=dict(size=15, color="rgba(0,0,0,0)", line=dict(color="#ff2d55", width=3)),
        )  # fmt: skip
        # traces in the constructor: plotly 7 drops traces added before a FigureWidget is shown
        self.figure = figure = FigureWidget(figure)
        self.widget = widgets.VBox(
            [widgets.HBox([self.field_toggle]), widgets.HBox([self.step_button, self.status]),
             figure]
        )  # fmt: skip
        self.widget.add_class("alwidget-toy")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ actions
    def refresh(self) -> None:
        """Recompute the field and the next batch from the session's current model; redraw."""
        self.field = uncertainty_field(
            self.session, self.grid_x, self.grid_y, mc_samples=self.mc_samples
        )
        if self.session.unlabeled_ids:
            self.batch_ids = list(self.session.query(self.batch_size).ids)
        else:
            self.batch_ids = []
        self._draw()

    def show_field(self, name: str) -> None:
        """Switch the background to ``"bald"``, ``"entropy"`` or ``"mean_entropy"``."""
        self._check_field(name)
        self.field_name = name
        if self.field_toggle.value != name:
            self.field_toggle.value = name  # observe() calls back into here once
            return
        self._draw()

    def step(self) -> None:
        """Label the ringed batch from the ground truth, retrain, and redraw (synchronous)."""
        pool = self.session.pool
        if not pool.has_targets:
            raise InvalidArgumentError(
                f"pool {pool.name!r} has no ground truth to answer with; label the batch "
                "yourself (session.label(ids, labels)), retrain, then call refresh()"
            )
        if self.batch_ids:
            self.session.label(self.batch_ids, oracle_labels(pool, self.batch_ids))
        self.session.retrain()
        self.refresh()

    def _in_background(self, action) -> None:
        if not self._busy.acquire(blocking=False):
            return  # a click while working is ignored, not queued

        def work():
            self.step_button.disabled = True
            self.status.value = "training…"
            try:
                action()
                self.error = None
            except Exception as error:  # shown in the view instead of lost in a thread
                self.error = error
                self.status.value = (
                    f'<span class="alwidget-toy-error" style="color:#b00">'
                    f"{html.escape(type(error).__name__)}: {html.escape(str(error))}</span>"
                )
            finally:
                self.step_button.disabled = False
                self._busy.release()

        self._thread = threading.Thread(target=work, name="alwidget-toy", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a button's work to finish (for scripts and tests)."""
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        session, pool = self.session, self.session.pool
        labels = session.labels
        labeled = [pool.position(i) for i in labels]
        classes = [session.class_index(name) for name in labels.values()]
        batch = [pool.position(i) for i in self.batch_ids]
        _, title = FIELDS[self.field_name]
        evaluation = session.evaluate()
        accuracy = "" if not evaluation else f" · accuracy {evaluation['accuracy']:.3f}"
        with self.figure.edit_lock, self.figure.batch_update():
            heatmap, contour, _, labeled_trace, batch_trace = self.figure.data
            heatmap.z = self.field[self.field_name]
            heatmap.colorbar.title.text = title
            contour.z = self.field["predicted"]
            labeled_trace.x = self.points_N_2[labeled, 0]
            labeled_trace.y = self.points_N_2[labeled, 1]
            labeled_trace.marker.color = [class_colour(index) for index in classes]
            labeled_trace.text = list(labels.values())
            batch_trace.x = self.points_N_2[batch, 0]
            batch_trace.y = self.points_N_2[batch, 1]
            self.figure.layout.title.text = (
                f"{pool.name}: model v{session.model_version}, {len(labeled)} labels"
                f"{accuracy} · next batch by {session.strategy}"
            )
        self.status.value = (
            f'<span class="alwidget-toy-version" data-version="{session.model_version}">'
            f"model v{session.model_version}</span> · {len(labeled)} labels{accuracy}"
        )
