"""The map figure: traces per colour mode, overlays, subsampling, hover escaping."""

import numpy as np
import pytest

from alwidget.embedding import (
    MapLayers,
    build_map_figure,
    choose_drawn_rows,
    text_hover,
)
from alwidget.embedding.figure import (
    LEGEND_NAME_CHARS,
    TRACE_BATCH,
    TRACE_SCORE,
    TRACE_UNCOVERED,
    TRACE_UNLABELED,
    UNLABELED_COLOUR,
    class_colour,
    figure_size,
    legend_name,
    map_layout,
)

CLASSES = ["cat", "dog", "<b>bird</b>"]


def make_layers(n=50, **overrides):
    rng = np.random.default_rng(0)
    labels = np.full(n, -1)
    labels[[0, 1, 2, 3]] = [0, 1, 2, 1]
    values = {
        "coordinates_N_2": rng.normal(size=(n, 2)),
        "class_names": CLASSES,
        "labels_N": labels,
        "predicted_N": np.arange(n) % 3,
        "scores_N": np.linspace(0, 1, n),
        "batch_rows": [10, 11],
        "uncovered_rows": [20],
        "score_name": "bald score",
    }
    values.update(overrides)
    return MapLayers(**values)


def cielab(hex_colours):
    """CIELAB (D65) of "#rrggbb" colours: distances there follow perceived differences."""
    rgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in hex_colours])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


def traces_by_name(figure):
    return {trace.name: trace for trace in figure.data}


def drawn_rows(figure, exclude=()):
    return sorted(
        {int(row) for trace in figure.data if trace.name not in exclude for row in trace.customdata}
    )


def test_colour_by_label_has_fixed_traces_one_webgl_layer_and_overlays():
    figure = build_map_figure(make_layers(), color_by="label")
    names = [trace.name for trace in figure.data]
    assert names == [
        TRACE_UNLABELED,
        "predicted class",
        TRACE_BATCH,
        TRACE_UNCOVERED,
        "cat",
        "dog",
        "&lt;b&gt;bird&lt;/b&gt;",
    ]
    # Only the two base traces are WebGL (one context for the figure); overlays are SVG.
    assert [trace.type for trace in figure.data] == ["scattergl"] * 2 + ["scatter"] * 5
    traces = traces_by_name(figure)
    assert sorted(traces["dog"].customdata.tolist()) == [1, 3]
    assert (
        traces[TRACE_BATCH].customdata.tolist() == [10, 11]
        and traces[TRACE_BATCH].marker.symbol == "diamond"
    )
    assert traces[TRACE_UNCOVERED].customdata.tolist() == [20]
    # Every item is in the grey base layer once; the coloured base layer is empty.
    assert sorted(traces[TRACE_UNLABELED].customdata.tolist()) == list(range(50))
    assert len(traces["predicted class"].customdata) == 0
    # Coordinates follow the rows in customdata.
    trace = traces["dog"]
    np.testing.assert_allclose(
        trace.x, make_layers().coordinates_N_2[trace.customdata, 0], rtol=1e-6
    )


def test_least_covered_rings_use_a_colour_no_class_and_no_grey_uses():
    figure = build_map_figure(make_layers(class_names=[f"c{i}" for i in range(30)]))
    ring = traces_by_name(figure)[TRACE_UNCOVERED].marker
    classes = {class_colour(index) for index in range(30)}
    assert ring.symbol == "circle-open" and ring.color not in classes
    assert UNLABELED_COLOUR not in classes


def test_colour_by_prediction_colours_base_points_by_class():
    predicted = np.arange(50) % 3
    predicted[40:] = -1  # not predicted (outside the prediction sample)
    figure = build_map_figure(make_layers(predicted_N=predicted), color_by="predicted")
    grey, coloured = figure.data[0], figure.data[1]
    assert grey.name == "not predicted" and sorted(grey.customdata.tolist()) == list(range(40, 50))
    assert sorted(coloured.customdata.tolist()) == list(range(40))
    assert list(coloured.marker.color) == [class_colour(p) for p in predicted[coloured.customdata]]
    # Labeled items stay on their class traces, in the class colour.
    assert sorted(traces_by_name(figure)["dog"].customdata.tolist()) == [1, 3]


def test_colour_by_score_has_a_titled_colour_bar_and_greys_unscored():
    scores = np.linspace(0, 1, 50)
    scores[:5] = np.nan
    figure = build_map_figure(make_layers(scores_N=scores), color_by="score")
    grey, scored = figure.data[0], figure.data[1]
    assert scored.name == TRACE_SCORE
    assert scored.marker.showscale and "bald score" in scored.marker.colorbar.title.text
    assert grey.name == "not scored" and sorted(grey.customdata.tolist()) == [0, 1, 2, 3, 4]


def test_base_hover_does_not_carry_the_label_which_would_go_stale():
    figure = build_map_figure(make_layers(), color_by="predicted")
    assert all("label:" not in text for text in figure.data[1].text)
    assert all("label: dog" in text for text in traces_by_name(figure)["dog"].text)


def test_points_not_placed_yet_are_left_out():
    coordinates = np.random.default_rng(0).normal(size=(50, 2))
    coordinates[30:] = np.nan  # a map still being built: only the fitted sample is placed
    figure = build_map_figure(make_layers(coordinates_N_2=coordinates))
    assert sorted(figure.data[0].customdata.tolist()) == list(range(30))
    assert np.isfinite(figure.data[0].x).all()


def test_class_colours_are_distinct_saturated_and_stable():
    colours = [class_colour(index) for index in range(60)]
    lab = cielab(colours)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    assert chroma.min() > 25  # none is grey or black (chroma 0)
    first = lab[:24]
    distances = np.linalg.norm(first[:, None] - first[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 25  # the fixed palette: every pair clearly apart
    assert len(set(colours)) == 60 and colours == [class_colour(i) for i in range(60)]
    with pytest.raises(ValueError, match="class index"):
        class_colour(-1)


def test_long_class_names_are_cut_in_the_legend_and_escaped():
    assert legend_name("short") == "short"
    long = legend_name("a" * 40)
    assert len(long) == LEGEND_NAME_CHARS and long.endswith("…")
    assert legend_name("<i>x</i>") == "&lt;i&gt;x&lt;/i&gt;"


@pytest.mark.parametrize("width", [380, 417, 700, 1200])
def test_the_legend_gets_room_for_all_its_rows(width):
    """A fixed entry width makes the legend's rows known: 24 classes at 417 px need
    several rows, and the bottom margin holds them all."""
    entry = 40 + np.ceil(LEGEND_NAME_CHARS * 11 * 0.6)
    rows = np.ceil(28 / max(1, (width - 20) // entry))
    height, bottom = figure_size(width, 28)
    assert bottom >= rows * 20 and height - bottom >= 300 + 60
    layout = map_layout("t", width=width, n_legend_entries=28)
    assert layout["legend"]["entrywidth"] == entry and layout["margin"]["b"] == bottom
    assert figure_size(width, 28, plot_height=200)[0] == 64 + 200 + bottom


@pytest.mark.parametrize("mode, missing", [("score", "scores_N"), ("predicted", "predicted_N")])
def test_colour_modes_need_their_data(mode, missing):
    with pytest.raises(ValueError, match=missing):
        build_map_figure(make_layers(**{missing: None}), color_by=mode)
    with pytest.raises(ValueError, match="color_by"):
        build_map_figure(make_layers(), color_by="size")


def test_subsample_keeps_labeled_batch_and_uncovered():
    layers = make_layers(n=5000)
    rows = choose_drawn_rows(layers, max_points=300, seed=1)
    assert rows.size == 300 and {0, 1, 2, 3, 10, 11, 20} <= set(rows.tolist())
    figure = build_map_figure(layers, max_points=300)
    assert len(drawn_rows(figure)) == 300 and len(figure.data[0].customdata) == 300
    assert "showing 300 of 5,000 items" in figure.layout.title.text
    np.testing.assert_array_equal(choose_drawn_rows(layers, max_points=300, seed=1), rows)


def test_hover_escapes_class_names_and_text():
    payload = "<img src=x onerror=alert(1)>"
    hover = [f"<b>item {i}</b><br>{text_hover(payload)}" for i in range(50)]
    figure = build_map_figure(make_layers(hover_N=hover), color_by="predicted")
    texts = [text for trace in figure.data for text in trace.text]
    assert all("<img" not in text for text in texts)
    assert any("&lt;img src=x onerror=alert(1)&gt;" in text for text in texts)
    assert any("&lt;b&gt;bird&lt;/b&gt;" in text for text in texts)


def test_long_text_hover_is_shortened_and_wrapped():
    hover = text_hover("word " * 200)
    assert hover.count("<br>") >= 2 and len(hover) < 200 and hover.endswith("…")


def test_bad_layers_are_rejected():
    with pytest.raises(ValueError, match="labels_N"):
        make_layers(labels_N=np.full(50, 7))
    with pytest.raises(ValueError, match="batch_rows"):
        make_layers(batch_rows=[50])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        make_layers(coordinates_N_2=np.zeros((50, 3)))
    with pytest.raises(ValueError, match="hover_N"):
        make_layers(hover_N=["x"])
