"""Session coverage and the map widget wired to a real session: plotly click and lasso
messages (as the browser sends them) -> focus, queue, bulk labels; retrain -> refresh, not refit."""

import time

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import alwidget as al
from alwidget.session import Session
from alwidget.widget.map_view import MapView

FAST_TRAINING = al.TrainConfig(min_steps=15, max_steps=30, max_epochs=5)
WAIT_S = 240


# ----------------------------------------------------------------------------- coverage
@pytest.fixture
def corner_session():
    """Four points at the corners of a square (already zero mean, unit spread, so the
    pool's standardisation leaves them alone) and a model whose features are its inputs."""
    corners = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=np.float32)
    pool = al.Pool(corners, classes=["x", "y"], ids=["c0", "c1", "c2", "c3"])
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(2, 2))
    return Session(pool, model=model, strategy="entropy", cv_folds=0, train_config=FAST_TRAINING)


def test_coverage_without_labels_covers_nothing(corner_session):
    report = corner_session.coverage(radius=2.0)
    assert report["covered_fraction"] == 0.0 and report["k_center_radius"] == float("inf")
    assert report["n_labeled"] == 0 and report["farthest_uncovered_ids"] == []


def test_coverage_figures_on_the_square(corner_session):
    np.testing.assert_allclose(
        corner_session.embeddings(), corner_session.pool.inputs(np.arange(4)).numpy()
    )
    corner_session.label("c0", "x")
    report = corner_session.coverage(radius=2.0)
    assert report["k_center_radius"] == pytest.approx(np.sqrt(8))  # the opposite corner
    assert report["covered_fraction"] == pytest.approx(0.75)  # itself and both neighbours
    assert report["farthest_uncovered_ids"] == ["c3"] and report["radius"] == 2.0
    assert corner_session.coverage(radius=1.9)["covered_fraction"] == pytest.approx(0.25)
    corner_session.label("c3", "y")
    report = corner_session.coverage(radius=2.0)
    assert report["k_center_radius"] == pytest.approx(2.0) and report["covered_fraction"] == 1.0


def test_coverage_is_recorded_in_the_round_history(corner_session):
    corner_session.label(["c0", "c3"], ["x", "y"])
    corner_session.retrain()
    report = corner_session.coverage(radius=2.0)
    entry = corner_session.history[-1]
    assert report["model_version"] == entry["model_version"] == 1
    assert entry["coverage"] == {
        "radius": 2.0,
        "k_center_radius": pytest.approx(2.0),
        "covered_fraction": 1.0,
        "unlabeled_covered_fraction": 1.0,
        "n_labeled": 2,
    }


# --------------------------------------------------------------------------- map widget
@pytest.fixture
def blob_session():
    features, clusters = make_blobs(240, n_features=6, centers=3, cluster_std=0.8, random_state=0)
    pool = al.Pool(
        features.astype(np.float32),
        targets=clusters,
        classes=["a", "b", "c"],
        ids=[f"p{i}" for i in range(240)],
    )
    return Session(
        pool,
        model="mlp",
        strategy="entropy",
        cv_folds=0,
        train_config=FAST_TRAINING,
        seed=0,
    )


@pytest.fixture
def map_view(blob_session):
    focused = []
    view = MapView(blob_session, on_focus=focused.append)
    view.focused = focused
    view.wait(WAIT_S)
    yield view
    view.close()


def trace_index(view, name):
    names = [trace.name for trace in view.figure.data]
    assert name in names, names
    return names.index(name)


def send_points(view, event_type, picks):
    """Deliver a points event exactly as the browser front end does (the synced trait)."""
    xs, ys, point_indexes, trace_indexes = [], [], [], []
    for trace_name, point in picks:
        index = trace_index(view, trace_name)
        trace = view.figure.data[index]
        xs.append(float(trace.x[point]))
        ys.append(float(trace.y[point]))
        point_indexes.append(point)
        trace_indexes.append(index)
    message = {
        "event_type": event_type,
        "points": {
            "xs": xs,
            "ys": ys,
            "point_indexes": point_indexes,
            "trace_indexes": trace_indexes,
        },
    }
    if event_type == "plotly_selected":
        message["selector"] = {
            "type": "box",
            "selector_state": {
                "xrange": [min(xs), max(xs)],
                "yrange": [min(ys), max(ys)],
            },
        }
    view.figure._js2py_pointsCallback = message


def id_of(view, trace_name, point):
    row = view.figure.data[trace_index(view, trace_name)].customdata[point]
    return view.session.pool.ids[int(row)]


def test_first_fit_draws_every_item(map_view):
    assert map_view.last_error == "" and map_view.last_outcome == "fitted"
    rows = np.concatenate([trace.customdata for trace in map_view.figure.data])
    assert sorted(rows.tolist()) == list(range(240))
    assert "no labels yet" in map_view.title
    assert map_view.map.projector.coordinates_N_2.shape == (240, 2)


def test_click_on_a_point_focuses_that_item(map_view):
    expected = id_of(map_view, "unlabeled", 7)
    send_points(map_view, "plotly_click", [("unlabeled", 7)])
    assert map_view.focused == [expected]
    assert f"item {expected}" in map_view.item_pane.value and "<img" not in map_view.item_pane.value


def test_lasso_across_traces_queues_the_unlabeled_items_next(map_view, blob_session):
    blob_session.label(["p0", "p1"], ["a", "b"])
    map_view.refresh_overlays()
    map_view.wait(WAIT_S)
    labeled_trace = blob_session.labels["p0"]
    send_points(
        map_view,
        "plotly_selected",
        [("unlabeled", 3), ("unlabeled", 4), ("unlabeled", 9), (labeled_trace, 0)],
    )
    wanted = [id_of(map_view, "unlabeled", point) for point in (3, 4, 9)]
    assert sorted(map_view.selected_ids) == sorted(wanted + ["p0"])
    assert "4</b> selected (1 already labeled" in map_view.selection_info.value
    assert not map_view.queue_button.disabled
    map_view.queue_button.click()
    assert map_view.last_error == ""
    batch = blob_session.query(batch_size=5)
    assert set(batch.ids[:3]) == set(wanted) and all(item.prioritized for item in batch.items[:3])


def test_bulk_label_gives_the_selection_one_class_and_redraws(map_view, blob_session):
    send_points(
        map_view,
        "plotly_selected",
        [("unlabeled", 0), ("unlabeled", 1), ("unlabeled", 2)],
    )
    wanted = map_view.selected_ids
    map_view.bulk_class.value = "c"
    map_view.bulk_button.click()
    map_view.wait(WAIT_S)
    assert map_view.last_error == ""
    assert {item_id: blob_session.labels[item_id] for item_id in wanted} == dict.fromkeys(
        wanted, "c"
    )
    drawn = [
        blob_session.pool.ids[int(row)]
        for row in map_view.figure.data[trace_index(map_view, "c")].customdata
    ]
    assert sorted(drawn) == sorted(wanted)
    assert map_view.map.coverage["n_labeled"] == 3 and "k-center radius" in map_view.title
    # The selection is cleared with the redraw, so a second click has nothing to label.
    assert map_view.bulk_button.disabled


def test_retrain_refreshes_the_layout_without_refitting_unless_asked(map_view, blob_session):
    before = map_view.map.projector.coordinates_N_2.copy()
    assert map_view.update().result(WAIT_S) == "unchanged"
    blob_session.label(["p0", "p1", "p2", "p3"], ["a", "b", "c", "a"])
    blob_session.retrain()
    assert map_view.update().result(WAIT_S) == "refreshed"
    projector = map_view.map.projector
    assert projector.n_fits == 1 and projector.alignment_r2 is not None
    assert not np.allclose(before, projector.coordinates_N_2)  # points were re-placed
    assert "model v1" in map_view.title
    map_view.refit_button.click()
    map_view.wait(WAIT_S)
    assert (
        map_view.last_outcome == "refitted" and projector.n_fits == 2 and map_view.last_error == ""
    )


def test_colour_modes_switch_in_the_background(map_view):
    map_view.color_dropdown.value = "score"
    map_view.wait(WAIT_S)
    score_trace = map_view.figure.data[trace_index(map_view, "acquisition score")]
    assert (
        score_trace.marker.showscale and "entropy score" in score_trace.marker.colorbar.title.text
    )
    map_view.color_dropdown.value = "predicted"
    map_view.wait(WAIT_S)
    coloured = map_view.figure.data[1]
    assert coloured.name == "predicted class" and len(coloured.customdata) == 240
    assert not map_view.figure.data[1].marker.showscale
    assert map_view.last_error == ""


def test_errors_from_callbacks_are_shown_in_the_view(blob_session):
    def failing_queue(ids):
        raise RuntimeError("label store unreachable")

    view = MapView(blob_session, on_queue=failing_queue)
    try:
        view.wait(WAIT_S)
        send_points(view, "plotly_selected", [("unlabeled", 0)])
        view.queue_button.click()
        assert "label store unreachable" in view.last_error
        shown = "".join(output.get("text", "") for output in view.errors.outputs)
        assert "label store unreachable" in shown
        assert "label store unreachable" in view.status.value
        with pytest.raises(ValueError, match="select unlabeled points first"):
            view.handle_selection([])
            view.label_selection("a")
    finally:
        view.close()


def test_follow_marks_the_panel_batch_and_tracks_labels(blob_session):
    panel = al.Widget(blob_session).ready()
    view = MapView(
        blob_session,
        on_focus=lambda item_id: panel.focus(0, item_key=str(item_id)),
        start=False,
    )
    try:
        view.follow(panel)
        view.update()
        view.wait(WAIT_S)
        queued = [item.id for item in panel.queue]
        batch_trace = view.figure.data[trace_index(view, "current batch")]
        assert sorted(blob_session.pool.ids[int(row)] for row in batch_trace.customdata) == sorted(
            queued
        )
        # A click on the third batch diamond focuses that item in the panel.
        send_points(view, "plotly_click", [("current batch", 2)])
        assert panel.focused_item.id == id_of(view, "current batch", 2)
        panel.label(panel.session.classes[0])
        view.wait(WAIT_S)
        assert view.map.coverage["n_labeled"] == 1
    finally:
        view.close()
        panel.close()


def record_messages(view):
    """Every update message the figure sends to the browser, as (trace indexes, props)."""
    sent = []

    def record(change):
        if change["new"]:
            message = change["new"]
            sent.append((message["style_traces"], set(message["style_data"])))

    view.figure.observe(record, "_py2js_update")
    return sent


def test_a_label_resends_only_the_overlays_that_changed(blob_session):
    panel = al.Widget(blob_session, batch_size=5).ready()
    view = MapView(blob_session, start=False)
    try:
        panel.attach_map(view)
        view.update().result(WAIT_S)
        view.wait(WAIT_S)
        figure, base = view.figure, view.figure.data[0]
        painted = dict(view.paint_counts)
        sent = record_messages(view)
        panel.label("b")
        view.wait(WAIT_S)
        assert view.paint_counts["base"] == painted["base"]  # the WebGL traces were not resent
        touched = {index for indexes, _props in sent for index in indexes}
        b_trace = trace_index(view, "b")
        assert b_trace in touched and touched <= {2, 3, b_trace}  # batch, rings, class "b"
        assert len(view.figure.data[b_trace].customdata) == 1
        # A retrain moves the points: the base traces are resent, in the same figure object.
        panel.label("a")
        panel.retrain().result(WAIT_S)
        panel.wait(WAIT_S)
        view.wait(WAIT_S)
        assert view.last_outcome == "refreshed" and view.paint_counts["base"] == painted["base"] + 1
        assert view.figure is figure and view.figure.data[0] is base
        assert [trace.type for trace in view.figure.data].count("scattergl") == 2
    finally:
        view.close()
        panel.close()


def test_a_burst_of_labels_is_drawn_at_the_pause_after_it(blob_session):
    """Each overlay change redraws every WebGL point in the browser (0.3 s at 30 000), which
    held the next key press: during a burst the map sends nothing, then catches up."""
    from alwidget.widget.pace import LabelingPace

    panel = al.Widget(blob_session, batch_size=8).ready()
    view = MapView(blob_session, start=False, pace=LabelingPace(settle_s=0.05, burst_gap_s=0.6))
    try:
        panel.attach_map(view)
        view.update().result(WAIT_S)
        view.wait(WAIT_S)
        for _ in range(3):  # the user has been labeling fast already
            view.pace.note_label()
            time.sleep(0.1)
        sent_at = []
        view.figure.observe(lambda change: sent_at.append(time.monotonic()), "_py2js_update")
        first_label_at = time.monotonic()
        for _ in range(5):
            panel.label(panel.session.classes[0])
            time.sleep(0.15)
        last_label_at = time.monotonic()
        assert not [t for t in sent_at if first_label_at <= t <= last_label_at]
        view.wait(WAIT_S)
        assert sent_at and min(sent_at) > last_label_at
        assert view.map.coverage["n_labeled"] == 5
        assert len(view.figure.data[trace_index(view, panel.session.classes[0])].customdata) == 5
    finally:
        view.close()
        panel.close()


def test_a_redraw_after_the_points_moved_clears_the_selection(map_view, blob_session):
    send_points(map_view, "plotly_selected", [("unlabeled", 0), ("unlabeled", 5)])
    assert len(map_view.selected_rows) == 2 and not map_view.queue_button.disabled
    sent = []
    map_view.figure.observe(
        lambda change: change["new"] and sent.append(change["new"]), "_py2js_update"
    )
    blob_session.label(["p0", "p1"], ["a", "b"])
    blob_session.retrain()
    assert map_view.update().result(WAIT_S) == "refreshed"
    cleared = [
        message
        for message in sent
        if message["layout_data"].get("selections") == []
        and message["style_data"].get("selectedpoints") == [None] * len(map_view.figure.data)
    ]
    assert cleared, sent
    assert map_view.selected_rows.size == 0 and map_view.queue_button.disabled


def test_first_fit_draws_the_sample_first_and_reports_progress(blob_session):
    from alwidget.embedding import MapProjector

    view = MapView(
        blob_session,
        start=False,
        projector=MapProjector(fit_sample_size=100, transform_chunk_rows=50, seed=0),
    )
    statuses, drawn = [], []
    view.status.observe(lambda change: statuses.append(change["new"]), "value")
    view.figure.observe(
        lambda change: (
            change["new"]
            and 0 in change["new"]["style_traces"]
            and drawn.append(len(view.figure.data[0].customdata))
        ),
        "_py2js_update",
    )
    try:
        view.update().result(WAIT_S)
        assert view.last_error == ""
        assert drawn[:1] == [100] and drawn[-1] == 240  # the sample, then every item
        assert "fitting UMAP on 100 of 240 items…" in statuses
        assert "placing the rest…" in statuses
        assert any(status.startswith("placing the rest: 140 of 140") for status in statuses)
        assert statuses[-1] == "layout fitted for model v0"
    finally:
        view.close()


def test_plot_width_follows_the_width_the_browser_reports(map_view):
    # The browser side of WidthProbe sets this trait; the figure must take that width,
    # also across redraws.
    map_view.width_probe.width = 455
    assert map_view.figure.layout.width == 455
    narrow_height = map_view.figure.layout.height
    map_view.refresh_overlays()
    map_view.wait(WAIT_S)
    assert map_view.figure.layout.width == 455
    # Wider: a taller plot, and the legend needs fewer rows below it.
    map_view.width_probe.width = 900
    assert map_view.figure.layout.height > narrow_height
    assert map_view.figure.layout.margin.b <= 120


def test_background_jobs_coalesce_waiting_jobs_of_one_kind_and_report_errors():
    import threading

    from alwidget.widget.jobs import JobRunner as CoalescingJobs

    errors, runs = [], []
    jobs = CoalescingJobs(on_error=lambda error, kind: errors.append((kind, str(error))))
    release = threading.Event()
    jobs.submit("slow", release.wait)  # occupies the worker
    first = jobs.submit("redraw", lambda: runs.append("redraw"))
    assert jobs.submit("redraw", lambda: runs.append("again")) is first
    other = jobs.submit("overlays", lambda: runs.append("overlays"))
    assert other is not first

    def fail():
        raise RuntimeError("no embeddings")

    jobs.submit("update", fail)
    release.set()
    jobs.wait(30)
    assert runs == ["redraw", "overlays"]
    assert errors == [("update", "no embeddings")]
    jobs.shutdown()


def test_the_figure_is_resent_once_when_the_browser_first_answers(blob_session):
    """Edits sent before the browser's model listens are lost: the first message back from
    the browser (plotly's layout report after drawing) gets every trace and the layout again."""
    view = MapView(blob_session)
    try:
        view.wait(WAIT_S)
        restyled = []
        view.figure.observe(
            lambda change: change["new"] and restyled.append(change["new"]["restyle_traces"]),
            "_py2js_restyle",
        )
        delta = {"layout_delta": {}, "layout_edit_id": view.figure._last_layout_edit_id}
        view.figure._js2py_layoutDelta = delta
        assert view.figure.resends == 1
        assert restyled == [[index] for index in range(len(view.figure.data))]
        assert len(view.figure.data[0].customdata) == 240  # the points themselves went along
        view.figure._js2py_layoutDelta = dict(delta)
        assert view.figure.resends == 1  # once: from then on the browser gets every edit
    finally:
        view.close()
