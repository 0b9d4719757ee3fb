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
    TRACE_BATCH,
    TRACE_LABELED,
    TRACE_SCORE,
    TRACE_UNCOVERED,
    TRACE_UNLABELED,
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


def traces_by_name(figure):
    return {trace.name: trace for trace in figure.data}


def drawn_rows(figure, exclude=()):
    return sorted(
        {int(row) for trace in figure.data if trace.name not in exclude for row in trace.customdata}
    )


def test_colour_by_label_draws_each_point_once_with_overlays():
    figure = build_map_figure(make_layers(), color_by="label")
    traces = traces_by_name(figure)
    assert all(trace.type == "scattergl" for trace in figure.data)
    assert set(traces) == {
        TRACE_UNLABELED,
        "label: cat",
        "label: dog",
        "label: &lt;b&gt;bird&lt;/b&gt;",
        TRACE_BATCH,
        TRACE_UNCOVERED,
    }
    assert sorted(traces["label: dog"].customdata.tolist()) == [1, 3]
    assert (
        traces[TRACE_BATCH].customdata.tolist() == [10, 11]
        and traces[TRACE_BATCH].marker.symbol == "diamond"
    )
    assert traces[TRACE_UNCOVERED].customdata.tolist() == [20]
    base = [trace for trace in figure.data if trace.name not in (TRACE_BATCH, TRACE_UNCOVERED)]
    rows = np.concatenate([trace.customdata for trace in base])
    assert sorted(rows.tolist()) == list(range(50))  # every item exactly once in the base layer
    # Coordinates follow the rows in customdata.
    trace = traces["label: dog"]
    np.testing.assert_allclose(
        trace.x, make_layers().coordinates_N_2[trace.customdata, 0], rtol=1e-6
    )


def test_colour_by_prediction_rings_labeled_items():
    predicted = np.arange(50) % 3
    predicted[40:] = -1  # not predicted (outside the prediction sample)
    figure = build_map_figure(make_layers(predicted_N=predicted), color_by="predicted")
    traces = traces_by_name(figure)
    assert {"predicted: cat", "predicted: dog", "not predicted", TRACE_LABELED} <= set(traces)
    assert sorted(traces[TRACE_LABELED].customdata.tolist()) == [0, 1, 2, 3]
    assert sorted(traces["not predicted"].customdata.tolist()) == list(range(40, 50))


def test_colour_by_score_has_a_titled_colour_bar_and_greys_unscored():
    scores = np.linspace(0, 1, 50)
    scores[:5] = np.nan
    figure = build_map_figure(make_layers(scores_N=scores), color_by="score")
    traces = traces_by_name(figure)
    scored = traces[TRACE_SCORE]
    assert scored.marker.showscale and "bald score" in scored.marker.colorbar.title.text
    assert sorted(traces["not scored"].customdata.tolist()) == [0, 1, 2, 3, 4]


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
    assert len(drawn_rows(figure)) == 300
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
