"""The plotly figure of the map: WebGL scatter, colour by label / prediction / score, overlays
for labeled items, the current batch and the least covered items.

Every trace carries the pool positions of its points in ``customdata``, so a click or a lasso
selection maps back to items whatever subsample was drawn.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from .layers import MapLayers, choose_drawn_rows, text_hover

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


def class_colour(index: int) -> str:
    """A stable colour per class index."""
    if index < len(_CLASS_COLOURS):
        return _CLASS_COLOURS[index]
    from plotly.colors import qualitative

    return qualitative.Dark24[(index - len(_CLASS_COLOURS)) % len(qualitative.Dark24)]


def _hover(layers: MapLayers, rows: np.ndarray) -> list[str]:
    base = layers.hover_N
    texts = []
    for row in rows.tolist():
        parts = [base[row] if base is not None else f"item {row}"]
        label = layers.labels_N[row]
        parts.append(
            "label: " + (html.escape(str(layers.class_names[label])) if label >= 0 else "—")
        )
        if layers.predicted_N is not None and layers.predicted_N[row] >= 0:
            parts.append(
                "predicted: " + html.escape(str(layers.class_names[layers.predicted_N[row]]))
            )
        if layers.scores_N is not None and np.isfinite(layers.scores_N[row]):
            parts.append(f"{html.escape(layers.score_name)}: {layers.scores_N[row]:.3g}")
        texts.append("<br>".join(parts))
    return texts


def _scatter(layers, rows, name, *, marker, legendgroup=None, showlegend=True) -> go.Scattergl:
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


def _grey_scatter(layers: MapLayers, rows: np.ndarray, name: str) -> go.Scattergl:
    """Small grey points for items without a class (or score) to colour them by."""
    return _scatter(layers, rows, name, marker={"size": 4, "color": _UNLABELED_COLOUR})


def _base_traces(layers: MapLayers, rows: np.ndarray, color_by: str) -> list[go.Scattergl]:
    traces = []
    if color_by == "score":
        if layers.scores_N is None:
            raise ValueError("color_by='score' needs scores_N (acquisition scores)")
        scores = layers.scores_N[rows]
        scored = np.isfinite(scores)
        if (~scored).any():
            traces.append(_grey_scatter(layers, rows[~scored], "not scored"))
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
                        "title": {"text": f"{layers.score_name}<br>(higher = asked first)"},
                        "len": 0.6,
                        "y": 0.3,
                    },
                },
            )
        )
        return traces
    if color_by == "label":
        values, prefix, classless_name = layers.labels_N[rows], "label", TRACE_UNLABELED
        size, outline = 8, {"width": 1, "color": "white"}
    elif color_by == "predicted":
        if layers.predicted_N is None:
            raise ValueError(
                "color_by='predicted' needs predicted_N (the model's predicted classes)"
            )
        values, prefix, classless_name = layers.predicted_N[rows], "predicted", "not predicted"
        size, outline = 5, {"width": 0}
    else:
        raise ValueError(f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}")
    classless = rows[values < 0]
    if classless.size:
        traces.append(_grey_scatter(layers, classless, classless_name))
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
        raise ValueError(f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}")
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
