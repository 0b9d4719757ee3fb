"""The plotly figure of the map: WebGL scatter, colour by label / prediction / score, overlays
for labeled items, the current batch and the least covered items.

Every trace carries the pool positions of its points in ``customdata``, so a click or a lasso
selection maps back to items whatever subsample was drawn.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "COLOR_MODES",
    "TRACE_BATCH",
    "TRACE_LABELED",
    "TRACE_SCORE",
    "TRACE_UNCOVERED",
    "TRACE_UNLABELED",
    "MapLayers",
    "build_map_figure",
    "choose_drawn_rows",
    "text_hover",
]

COLOR_MODES = ("label", "predicted", "score")

TRACE_UNLABELED = "unlabeled"
TRACE_LABELED = "labeled"
TRACE_BATCH = "current batch"
TRACE_UNCOVERED = "least covered (farthest from any label)"
TRACE_SCORE = "acquisition score"

# 10 well-separated colours (Tableau 10), then plotly's Dark24 for more classes.
_CLASS_COLOURS = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
_UNLABELED_COLOUR = "rgba(150, 150, 150, 0.45)"
_UNCOVERED_COLOUR = "#d62728"
_HOVER_TEXT_CHARS = 160


def class_colour(index: int) -> str:
    """A stable colour per class index."""
    if index < len(_CLASS_COLOURS):
        return _CLASS_COLOURS[index]
    from plotly.colors import qualitative

    return qualitative.Dark24[(index - len(_CLASS_COLOURS)) % len(qualitative.Dark24)]


def text_hover(text: str, limit: int = _HOVER_TEXT_CHARS) -> str:
    """A text item made safe for plotly hover labels: escaped, shortened, wrapped every ~50
    characters (hover labels render a subset of HTML, so raw text could inject tags)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    lines = [html.escape(flat[start : start + 50]) for start in range(0, len(flat), 50)]
    return "<br>".join(lines)


@dataclass
class MapLayers:
    """Everything drawn on the map, aligned on the N pool items.

    Attributes
    ----------
    coordinates_N_2 : np.ndarray
        Map positions.
    class_names : list of str
        Class names, indexed by the integers below.
    labels_N : np.ndarray of int
        Assigned (or true) class per item, -1 where unlabeled.
    predicted_N : np.ndarray of int, optional
        The model's predicted class per item, -1 where not predicted.
    scores_N : np.ndarray of float, optional
        Acquisition score per item (NaN where not scored).
    batch_rows : np.ndarray of int
        Positions of the current batch.
    uncovered_rows : np.ndarray of int
        Positions to ring as least covered (e.g. ``coverage_report(...)["farthest_uncovered"]``).
    hover_N : list of str, optional
        Hover text per item (already HTML-safe); defaults to ``"item <position>"``.
    score_name : str
        Shown on the colour bar, e.g. the strategy name.
    title : str
        Figure title (e.g. the coverage figures).
    """

    coordinates_N_2: np.ndarray
    class_names: list
    labels_N: np.ndarray
    predicted_N: np.ndarray | None = None
    scores_N: np.ndarray | None = None
    batch_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    uncovered_rows: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    hover_N: list | None = None
    score_name: str = "score"
    title: str = ""

    def __post_init__(self):
        self.coordinates_N_2 = np.asarray(self.coordinates_N_2, dtype=np.float32)
        n = self.coordinates_N_2.shape[0]
        if self.coordinates_N_2.ndim != 2 or self.coordinates_N_2.shape[1] != 2:
            raise ValueError(
                f"coordinates_N_2 must have shape (N, 2), got {self.coordinates_N_2.shape}"
            )
        self.labels_N = self._per_item(self.labels_N, "labels_N", int)
        n_classes = len(self.class_names)
        if self.labels_N.size and (
            self.labels_N.min() < -1 or self.labels_N.max() >= n_classes
        ):
            raise ValueError(
                f"labels_N must be -1 (unlabeled) or a class index below {n_classes}"
            )
        if self.predicted_N is not None:
            self.predicted_N = self._per_item(self.predicted_N, "predicted_N", int)
            if self.predicted_N.size and (
                self.predicted_N.min() < -1 or self.predicted_N.max() >= n_classes
            ):
                raise ValueError(
                    f"predicted_N must be -1 (not predicted) or a class index below {n_classes}"
                )
        if self.scores_N is not None:
            self.scores_N = self._per_item(self.scores_N, "scores_N", float)
        self.batch_rows = self._rows(self.batch_rows, "batch_rows", n)
        self.uncovered_rows = self._rows(self.uncovered_rows, "uncovered_rows", n)
        if self.hover_N is not None and len(self.hover_N) != n:
            raise ValueError(f"hover_N has {len(self.hover_N)} entries for {n} items")

    @property
    def n_items(self) -> int:
        return int(self.coordinates_N_2.shape[0])

    def _per_item(self, values, name, kind) -> np.ndarray:
        array = np.asarray(
            values, dtype=np.int64 if kind is int else np.float64
        ).reshape(-1)
        if array.shape[0] != self.n_items:
            raise ValueError(
                f"{name} has {array.shape[0]} entries for {self.n_items} items"
            )
        return array

    @staticmethod
    def _rows(values, name, n) -> np.ndarray:
        array = np.asarray(values, dtype=np.int64).reshape(-1)
        if array.size and (array.min() < 0 or array.max() >= n):
            raise ValueError(f"{name} has positions outside 0..{n - 1}")
        return np.unique(array)


def choose_drawn_rows(
    layers: MapLayers, max_points: int | None, seed: int = 0
) -> np.ndarray:
    """Rows to draw: all when they fit, else every labeled, batch and uncovered row plus a
    seeded random sample of the others up to ``max_points`` (sorted positions)."""
    n = layers.n_items
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise ValueError(f"max_points must be positive or None, got {max_points}")
    must = np.union1d(
        np.flatnonzero(layers.labels_N >= 0),
        np.union1d(layers.batch_rows, layers.uncovered_rows),
    )
    others = np.setdiff1d(np.arange(n), must, assume_unique=True)
    n_others = max(max_points - must.size, 0)
    sample = np.random.default_rng(seed).choice(
        others, size=min(n_others, others.size), replace=False
    )
    return np.union1d(must, sample)


def _hover(layers: MapLayers, rows: np.ndarray) -> list[str]:
    base = layers.hover_N
    texts = []
    for row in rows.tolist():
        parts = [base[row] if base is not None else f"item {row}"]
        label = layers.labels_N[row]
        parts.append(
            "label: "
            + (html.escape(str(layers.class_names[label])) if label >= 0 else "—")
        )
        if layers.predicted_N is not None and layers.predicted_N[row] >= 0:
            parts.append(
                "predicted: "
                + html.escape(str(layers.class_names[layers.predicted_N[row]]))
            )
        if layers.scores_N is not None and np.isfinite(layers.scores_N[row]):
            parts.append(
                f"{html.escape(layers.score_name)}: {layers.scores_N[row]:.3g}"
            )
        texts.append("<br>".join(parts))
    return texts


def _scatter(
    layers, rows, name, *, marker, legendgroup=None, showlegend=True
) -> go.Scattergl:
    return go.Scattergl(
        x=layers.coordinates_N_2[rows, 0],
        y=layers.coordinates_N_2[rows, 1],
        mode="markers",
        name=name,
        legendgroup=legendgroup or name,
        showlegend=showlegend,
        marker=marker,
        customdata=rows,
        text=_hover(layers, rows),
        hovertemplate="%{text}<extra></extra>",
    )


def _base_traces(
    layers: MapLayers, rows: np.ndarray, color_by: str
) -> list[go.Scattergl]:
    traces = []
    if color_by == "score":
        if layers.scores_N is None:
            raise ValueError("color_by='score' needs scores_N (acquisition scores)")
        scores = layers.scores_N[rows]
        scored = np.isfinite(scores)
        if (~scored).any():
            traces.append(
                _scatter(
                    layers,
                    rows[~scored],
                    "not scored",
                    marker={"size": 4, "color": _UNLABELED_COLOUR},
                )
            )
        traces.append(
            _scatter(
                layers,
                rows[scored],
                TRACE_SCORE,
                marker={
                    "size": 5,
                    "color": scores[scored],
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {
                        "title": {
                            "text": f"{layers.score_name}<br>(higher = asked first)"
                        },
                        "len": 0.6,
                        "y": 0.3,
                    },
                },
            )
        )
        return traces
    if color_by == "label":
        values, prefix = layers.labels_N[rows], "label"
        unlabeled = rows[values < 0]
        if unlabeled.size:
            traces.append(
                _scatter(
                    layers,
                    unlabeled,
                    TRACE_UNLABELED,
                    marker={"size": 4, "color": _UNLABELED_COLOUR},
                )
            )
        size, outline = 8, {"width": 1, "color": "white"}
    elif color_by == "predicted":
        if layers.predicted_N is None:
            raise ValueError(
                "color_by='predicted' needs predicted_N (the model's predicted classes)"
            )
        values, prefix = layers.predicted_N[rows], "predicted"
        unpredicted = rows[values < 0]
        if unpredicted.size:
            traces.append(
                _scatter(
                    layers,
                    unpredicted,
                    "not predicted",
                    marker={"size": 4, "color": _UNLABELED_COLOUR},
                )
            )
        size, outline = 5, {"width": 0}
    else:
        raise ValueError(
            f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}"
        )
    for class_index, class_name in enumerate(layers.class_names):
        members = rows[values == class_index]
        if members.size:
            marker = {"size": size, "color": class_colour(class_index), "line": outline}
            # Legend entries render a subset of HTML: a class name must show as text.
            traces.append(
                _scatter(
                    layers,
                    members,
                    f"{prefix}: {html.escape(str(class_name))}",
                    marker=marker,
                )
            )
    return traces


def build_map_figure(
    layers: MapLayers,
    *,
    color_by: str = "label",
    max_points: int | None = 30_000,
    seed: int = 0,
    height: int = 560,
) -> go.Figure:
    """The map as a plotly figure.

    Parameters
    ----------
    layers : MapLayers
        What to draw.
    color_by : {"label", "predicted", "score"}
        Colour points by assigned label (unlabeled grey), by the model's prediction, or by
        acquisition score with a colour bar.
    max_points : int or None
        Draw at most about this many points (labeled, batch and least covered always drawn).
    seed : int
        Seed of the subsample of drawn points.
    height : int
        Figure height in pixels.

    Returns
    -------
    go.Figure
        Traces hold pool positions in ``customdata``. Labeled items are ringed in black
        (except when coloured by label, where colour already says it), the batch is drawn as
        diamonds and the least covered items as red rings.
    """
    if color_by not in COLOR_MODES:
        raise ValueError(
            f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}"
        )
    rows = choose_drawn_rows(layers, max_points, seed)
    traces = _base_traces(layers, rows, color_by)
    labeled = rows[layers.labels_N[rows] >= 0]
    if color_by != "label" and labeled.size:
        traces.append(
            _scatter(
                layers,
                labeled,
                TRACE_LABELED,
                marker={
                    "size": 9,
                    "symbol": "circle-open",
                    "color": "black",
                    "line": {"width": 1.5},
                },
            )
        )
    if layers.batch_rows.size:
        traces.append(
            _scatter(
                layers,
                layers.batch_rows,
                TRACE_BATCH,
                marker={
                    "size": 12,
                    "symbol": "diamond",
                    "color": "rgba(255, 215, 0, 0.9)",
                    "line": {"width": 1.5, "color": "black"},
                },
            )
        )
    if layers.uncovered_rows.size:
        traces.append(
            _scatter(
                layers,
                layers.uncovered_rows,
                TRACE_UNCOVERED,
                marker={
                    "size": 16,
                    "symbol": "circle-open",
                    "color": _UNCOVERED_COLOUR,
                    "line": {"width": 2.5},
                },
            )
        )
    drawn = (
        f"showing {rows.size:,} of {layers.n_items:,} items"
        if rows.size < layers.n_items
        else f"{layers.n_items:,} items"
    )
    title = f"{layers.title}<br><sup>{drawn}</sup>" if layers.title else drawn
    figure = go.Figure(data=traces)
    figure.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 14}},
        height=height,
        margin={"l": 10, "r": 10, "t": 80, "b": 10},
        # Below the plot, so it never hides points (and wraps for many classes).
        legend={
            "itemsizing": "constant",
            "title": {"text": "click an entry to hide it:"},
            "font": {"size": 11},
            "orientation": "h",
            "yanchor": "top",
            "y": -0.02,
            "x": 0,
        },
        autosize=True,
        dragmode="lasso",
        hovermode="closest",
        plot_bgcolor="white",
        uirevision="alwidget-map",  # keep the user's zoom across updates
    )
    figure.update_xaxes(visible=False, scaleanchor="y", scaleratio=1)
    figure.update_yaxes(visible=False)
    return figure
