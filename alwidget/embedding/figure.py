"""The plotly figure of the map, built so that a label changes only a small part of it.

Fixed trace order (:data:`TRACE_ORDER`), the same in every colour mode:

0. ``base_grey`` (WebGL): every drawn point without a colour (unlabeled, not predicted, not
   scored), small and grey;
1. ``base_colour`` (WebGL): the drawn points coloured by prediction or score (empty when
   colouring by label);
2. ``current batch`` (SVG): diamonds;
3. ``least covered`` (SVG): black rings (no class is black, so rings never read as a class);
4. one SVG trace per class: the *labeled* items of that class, in the class's colour.

The two WebGL traces hold the big arrays and change only when the layout or the colour mode
changes; a label moves one point into a class trace (a few numbers). All WebGL traces live in
one figure, so a map costs the browser one WebGL context however often it is updated.
Every trace carries the pool positions of its points in ``customdata``, so a click or a lasso
selection maps back to items whatever subsample was drawn.
"""

from __future__ import annotations

import colorsys
import html
import math

import numpy as np
import plotly.graph_objects as go

from .layers import MapLayers, choose_drawn_rows, text_hover

__all__ = [
    "COLOR_MODES",
    "LEGEND_NAME_CHARS",
    "TRACE_BATCH",
    "TRACE_ORDER",
    "TRACE_SCORE",
    "TRACE_UNCOVERED",
    "TRACE_UNLABELED",
    "MapLayers",
    "base_trace_updates",
    "build_map_figure",
    "choose_drawn_rows",
    "class_colour",
    "class_trace_update",
    "empty_map_traces",
    "figure_size",
    "legend_name",
    "map_layout",
    "overlay_updates",
    "text_hover",
]

COLOR_MODES = ("label", "predicted", "score")

TRACE_UNLABELED = "unlabeled"
TRACE_BATCH = "current batch"
TRACE_UNCOVERED = "least covered"
TRACE_SCORE = "acquisition score"
TRACE_PREDICTED = "predicted class"
TRACE_ORDER = ("base_grey", "base_colour", "batch", "uncovered")  # then one trace per class
FIRST_CLASS_TRACE = len(TRACE_ORDER)

# Nine Tableau/D3 colours (their grey left out: it read as "unlabeled"), then colours chosen
# greedily to be as far as possible (CIELAB) from those already taken, among saturated ones:
# every pair differs by ΔE ≥ 27, and none is grey or black (chroma ≥ 26).
_CLASS_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#0d0dff", "#ff0dff", "#0dff0d", "#ffbf80", "#0d5dff", "#06734e", "#ff0d86",
    "#737322", "#41d9a6", "#a608a6", "#ff8080", "#0d86ff", "#a65708", "#a6083d", "#94d90b",
)  # fmt: skip
UNLABELED_COLOUR = "rgba(150, 150, 150, 0.45)"
UNCOVERED_COLOUR = "#000000"
BATCH_COLOUR = "rgba(255, 215, 0, 0.95)"
_GOLDEN_ANGLE = 0.381966  # fraction of a turn: successive hues never repeat

# Legend entries are cut to this many characters (the full name is in the points' hover).
LEGEND_NAME_CHARS = 18
_LEGEND_FONT_PX = 11
_LEGEND_ROW_PX = 20
_TOP_MARGIN_PX = 64
_MODEBAR_MARGIN_PX = 28


def class_colour(index: int) -> str:
    """A stable, saturated colour per class index (never grey, black or the batch's gold).

    The first 24 come from a fixed palette; later classes step round the hue circle by the
    golden angle at full saturation, alternating brightness.
    """
    index = int(index)
    if index < 0:
        raise ValueError(f"class index must be >= 0, got {index}")
    if index < len(_CLASS_COLOURS):
        return _CLASS_COLOURS[index]
    step = index - len(_CLASS_COLOURS)
    hue = (0.05 + step * _GOLDEN_ANGLE) % 1.0
    value = 0.85 if step % 2 == 0 else 0.6
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, value)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def legend_name(class_name, max_chars: int = LEGEND_NAME_CHARS) -> str:
    """A class name as a legend entry: HTML-escaped and cut to ``max_chars`` with "…"."""
    text = str(class_name)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return html.escape(text)


# ----------------------------------------------------------------------------- hover texts
def _base_hover(layers: MapLayers, rows: np.ndarray) -> list[str]:
    """Hover of the base points: the item and the model's view (the label lives on the
    class traces, so a base point's text never goes stale when it gets labeled)."""
    base = layers.hover_N
    texts = []
    for row in rows.tolist():
        parts = [base[row] if base is not None else f"item {row}"]
        if layers.predicted_N is not None and layers.predicted_N[row] >= 0:
            parts.append(
                "predicted: " + html.escape(str(layers.class_names[layers.predicted_N[row]]))
            )
        if layers.scores_N is not None and np.isfinite(layers.scores_N[row]):
            parts.append(f"{html.escape(layers.score_name)}: {layers.scores_N[row]:.3g}")
        texts.append("<br>".join(parts))
    return texts


def _overlay_hover(layers: MapLayers, rows: np.ndarray, what: str) -> list[str]:
    base = _base_hover(layers, rows)
    texts = []
    for row, text in zip(rows.tolist(), base):
        label = layers.labels_N[row]
        shown = html.escape(str(layers.class_names[label])) if label >= 0 else "—"
        texts.append(f"{text}<br>label: {shown}" + (f"<br><i>{what}</i>" if what else ""))
    return texts


# ------------------------------------------------------------------------ trace contents
def _points(layers: MapLayers, rows: np.ndarray) -> dict:
    rows = np.asarray(rows, dtype=np.int64)
    return {
        "x": layers.coordinates_N_2[rows, 0],
        "y": layers.coordinates_N_2[rows, 1],
        "customdata": rows,
    }


def _placed(layers: MapLayers, rows: np.ndarray) -> np.ndarray:
    """Rows whose position is known (a map being built has the rest as NaN)."""
    return rows[np.isfinite(layers.coordinates_N_2[rows]).all(axis=1)]


def base_trace_updates(layers: MapLayers, rows: np.ndarray, color_by: str) -> list[dict]:
    """Properties of the two WebGL traces (grey, coloured) for ``rows`` in a colour mode.

    Returns
    -------
    list of two dicts
        Plotly properties for ``base_grey`` and ``base_colour``; each has ``x``, ``y``,
        ``customdata`` (pool rows), ``text``, ``name``, ``showlegend`` and ``marker``.
    """
    if color_by not in COLOR_MODES:
        raise ValueError(f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}")
    rows = _placed(layers, np.asarray(rows, dtype=np.int64))
    grey_marker = {"size": 4, "color": UNLABELED_COLOUR, "line": {"width": 0}}
    if color_by == "label":
        grey_rows, coloured_rows = rows, rows[:0]
        grey_name, coloured_name = TRACE_UNLABELED, TRACE_PREDICTED
        coloured_marker = {"size": 5, "color": "black", "showscale": False}
    elif color_by == "predicted":
        if layers.predicted_N is None:
            raise ValueError(
                "color_by='predicted' needs predicted_N (the model's predicted classes)"
            )
        predicted = layers.predicted_N[rows]
        grey_rows, coloured_rows = rows[predicted < 0], rows[predicted >= 0]
        grey_name, coloured_name = "not predicted", TRACE_PREDICTED
        colours = [class_colour(index) for index in layers.predicted_N[coloured_rows].tolist()]
        coloured_marker = {"size": 5, "color": colours, "opacity": 0.55, "showscale": False}
    else:
        if layers.scores_N is None:
            raise ValueError("color_by='score' needs scores_N (acquisition scores)")
        scored = np.isfinite(layers.scores_N[rows])
        grey_rows, coloured_rows = rows[~scored], rows[scored]
        grey_name, coloured_name = "not scored", TRACE_SCORE
        coloured_marker = {
            "size": 5,
            "color": layers.scores_N[coloured_rows],
            "colorscale": "Viridis",
            "showscale": True,
            "colorbar": {
                "title": {"text": f"{html.escape(layers.score_name)}<br>(higher = asked first)"},
                "len": 0.6,
                "y": 0.7,
                "thickness": 12,
            },
        }
    return [
        {
            **_points(layers, grey_rows),
            "text": _base_hover(layers, grey_rows),
            "name": grey_name,
            "showlegend": True,
            "marker": grey_marker,
        },
        {
            **_points(layers, coloured_rows),
            "text": _base_hover(layers, coloured_rows),
            "name": coloured_name,
            # Class colours are explained by the class entries, scores by the colour bar.
            "showlegend": False,
            "marker": coloured_marker,
        },
    ]


def class_trace_update(layers: MapLayers, class_index: int) -> dict:
    """Points and hover of the labeled items of one class (its overlay trace)."""
    rows = _placed(layers, np.flatnonzero(layers.labels_N == class_index))
    return {**_points(layers, rows), "text": _overlay_hover(layers, rows, "")}


def overlay_updates(layers: MapLayers) -> dict[str, dict]:
    """Points and hover of the batch and least-covered overlays, keyed like
    :data:`TRACE_ORDER`."""
    batch = _placed(layers, layers.batch_rows)
    uncovered = _placed(layers, layers.uncovered_rows)
    return {
        "batch": {**_points(layers, batch), "text": _overlay_hover(layers, batch, "in the batch")},
        "uncovered": {
            **_points(layers, uncovered),
            "text": _overlay_hover(layers, uncovered, "least covered: far from every label"),
        },
    }


def _trace(kind, name, *, marker, showlegend=True, legendrank=1000):
    common = {
        "mode": "markers",
        "name": name,
        "marker": marker,
        "showlegend": showlegend,
        "legendrank": legendrank,
        "x": [],
        "y": [],
        "customdata": [],
        "text": [],
        "hovertemplate": "%{text}<extra></extra>",
    }
    return go.Scattergl(**common) if kind == "gl" else go.Scatter(**common)


def class_trace(class_index: int, class_name) -> go.Scatter:
    """The (empty) overlay trace of one class's labeled items."""
    return _trace(
        "svg",
        legend_name(class_name),
        marker={
            "size": 9,
            "color": class_colour(class_index),
            "line": {"width": 1, "color": "#333333"},
        },
        legendrank=2000 + class_index,
    )


def empty_map_traces(class_names) -> list:
    """Every trace of the map, empty, in :data:`TRACE_ORDER` then one per class."""
    traces = [
        _trace("gl", TRACE_UNLABELED, marker={"size": 4, "color": UNLABELED_COLOUR}),
        _trace("gl", TRACE_PREDICTED, marker={"size": 5}, showlegend=False),
        _trace(
            "svg",
            TRACE_BATCH,
            marker={
                "size": 12,
                "symbol": "diamond",
                "color": BATCH_COLOUR,
                "line": {"width": 1.5, "color": "black"},
            },
            legendrank=1001,
        ),
        _trace(
            "svg",
            TRACE_UNCOVERED,
            marker={
                "size": 17,
                "symbol": "circle-open",
                "color": UNCOVERED_COLOUR,
                "line": {"width": 2.5},
            },
            legendrank=1002,
        ),
    ]
    traces += [class_trace(index, name) for index, name in enumerate(class_names)]
    return traces


# ---------------------------------------------------------------------------- layout
def figure_size(
    width: int | None,
    n_legend_entries: int,
    plot_height: int | None = None,
    *,
    top_margin: int = _TOP_MARGIN_PX,
) -> tuple[int, int]:
    """``(height, bottom margin)`` in pixels for a figure ``width`` wide with a legend of
    ``n_legend_entries`` below the plot, so that the legend is never cut off.

    The plot area is about 3/4 as high as it is wide (at least 300 px, at most 620 px) unless
    ``plot_height`` fixes it. Legend entries have a fixed width (see :func:`map_layout`), so
    the rows they wrap onto are known in advance.
    """
    width = 600 if not width or width <= 0 else int(width)
    if plot_height is None:
        plot_height = int(min(max(0.75 * width, 300), 620))
    per_row = max(1, (width - 20) // _legend_entry_width())
    rows = math.ceil(max(n_legend_entries, 1) / per_row)
    bottom = 30 + rows * _LEGEND_ROW_PX
    return int(top_margin) + int(plot_height) + bottom, bottom


def _legend_entry_width() -> int:
    # symbol (40 px) + the longest name the legend shows, at ~0.6 em per character
    return 40 + math.ceil(LEGEND_NAME_CHARS * _LEGEND_FONT_PX * 0.6)


def map_layout(
    title: str, *, width: int | None, n_legend_entries: int, plot_height: int | None = None
) -> dict:
    """The figure layout: title, size, a legend that fits below the plot, lasso by default,
    zoom kept across updates (``uirevision``).

    An empty ``title`` leaves only the mode bar's room above the plot (the widget writes
    its summary in an HTML line above the figure instead).
    """
    top = _TOP_MARGIN_PX if title else _MODEBAR_MARGIN_PX
    height, bottom = figure_size(width, n_legend_entries, plot_height, top_margin=top)
    layout = {
        "title": {"text": title, "x": 0.01, "y": 0.99, "yanchor": "top", "font": {"size": 13}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": top, "b": bottom},
        # Below the plot, so it never hides points; fixed-width entries wrap predictably.
        "legend": {
            "itemsizing": "constant",
            "title": {"text": "click an entry to hide it", "side": "top"},
            "font": {"size": _LEGEND_FONT_PX},
            "orientation": "h",
            "entrywidth": _legend_entry_width(),
            "entrywidthmode": "pixels",
            "yanchor": "top",
            "y": -0.01,
            "x": 0,
        },
        "dragmode": "lasso",
        "hovermode": "closest",
        "plot_bgcolor": "white",
        "uirevision": "alwidget-map",  # keep the user's zoom across updates
        "xaxis": {"visible": False, "scaleanchor": "y", "scaleratio": 1},
        "yaxis": {"visible": False},
    }
    if width:
        layout["width"] = int(width)
    return layout


def drawn_title(layers_title: str, n_drawn: int, n_items: int) -> str:
    drawn = (
        f"showing {n_drawn:,} of {n_items:,} items" if n_drawn < n_items else f"{n_items:,} items"
    )
    return f"{layers_title}<br><sup>{drawn}</sup>" if layers_title else drawn


def build_map_figure(
    layers: MapLayers,
    *,
    color_by: str = "label",
    max_points: int | None = 30_000,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
) -> go.Figure:
    """The map as a plotly figure (for scripts; :class:`alwidget.widget.map_view.MapView`
    keeps one figure and updates its traces in place).

    Parameters
    ----------
    layers : MapLayers
        What to draw.
    color_by : {"label", "predicted", "score"}
        Colour the small points by nothing (grey), by the model's prediction, or by
        acquisition score with a colour bar. Labeled items are always drawn larger, in their
        class's colour.
    max_points : int or None
        Draw at most about this many points (labeled, batch and least covered always drawn).
    seed : int
        Seed of the subsample of drawn points.
    height : int, optional
        Height of the plot area in pixels (default: from the width).
    width : int, optional
        Figure width in pixels (default: plotly's autosize).

    Returns
    -------
    go.Figure
        Traces in :data:`TRACE_ORDER`, then one per class; pool positions in ``customdata``.
    """
    if color_by not in COLOR_MODES:
        raise ValueError(f"unknown color_by {color_by!r}; choose one of {', '.join(COLOR_MODES)}")
    rows = choose_drawn_rows(layers, max_points, seed)
    figure = go.Figure(data=empty_map_traces(layers.class_names))
    for trace, update in zip(figure.data, base_trace_updates(layers, rows, color_by)):
        trace.update(update)
    for key, update in overlay_updates(layers).items():
        figure.data[TRACE_ORDER.index(key)].update(update)
    for class_index in range(len(layers.class_names)):
        figure.data[FIRST_CLASS_TRACE + class_index].update(class_trace_update(layers, class_index))
    figure.update_layout(
        map_layout(
            drawn_title(layers.title, rows.size, layers.n_items),
            width=width,
            n_legend_entries=len(figure.data),
            plot_height=height,
        )
    )
    return figure
