"""Teaching: 2-D toy pools, the race engine and widget, the toy view and ComparePicks.

Tiny pools and short trainings; the browser tests (test_browser_teaching.py) cover the page.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alwidget as al
from alwidget.errors import InvalidArgumentError, InvalidArgumentTypeError
from alwidget.experiments.oracle import OracleSetupError, balanced_initial_ids, oracle_labels
from alwidget.teaching.layout import pool_layout
from alwidget.teaching.race_run import RaceRun, area_under_curve

FAST = al.TrainConfig(min_steps=15, max_steps=30)


# --------------------------------------------------------------------------- toy pools
@pytest.mark.parametrize(
    ("make", "n_classes"),
    [(al.datasets.two_moons, 2), (al.datasets.blobs, 4), (al.datasets.spiral, 3)],
)
def test_toy_pools_are_seeded_2d_and_split(make, n_classes):
    pool = make(120, seed=3)
    again = make(120, seed=3)
    other = make(120, seed=4)
    assert pool.kind == "tabular" and pool.input_shape == (2,)
    assert len(pool.classes) == n_classes
    assert len(pool) + len(pool.held_out_pool) == 120
    held = pool.held_out_pool
    for label in range(n_classes):  # 25% of each class held out (stratified)
        in_class = int((pool.targets == label).sum() + (held.targets == label).sum())
        assert (held.targets == label).sum() == round(in_class * 0.25)
    assert set(np.unique(pool.targets)) == set(range(n_classes))
    first = np.stack([pool.item(i) for i in pool.ids])
    assert np.array_equal(first, np.stack([again.item(i) for i in again.ids]))
    assert not np.array_equal(first, np.stack([other.item(i) for i in other.ids]))


def test_toy_pool_without_held_out_split():
    pool = al.datasets.blobs(40, n_classes=2, test_fraction=0)
    assert len(pool) == 40 and pool.held_out_pool is None


def test_two_moons_classes_are_the_two_half_circles():
    pool = al.datasets.two_moons(200, noise=0.0, test_fraction=0)
    points = np.stack([pool.item(i) for i in pool.ids])
    upper = points[pool.targets == 0]
    lower = points[pool.targets == 1]
    # sklearn's moons: the first centred on (0, 0) opening down, the second on (1, 0.5) up
    assert np.allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-5)
    assert np.allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: al.datasets.two_moons(3), "n_items"),
        (lambda: al.datasets.two_moons(noise=-1), "noise"),
        (lambda: al.datasets.two_moons(test_fraction=1.0), "test_fraction"),
        (lambda: al.datasets.blobs(n_classes=11), "n_classes"),
        (lambda: al.datasets.spiral(n_arms=1), "n_arms"),
        (lambda: al.datasets.spiral(turns=0), "turns"),
        (lambda: al.datasets.blobs(seed=-1), "seed"),
    ],
)
def test_toy_pools_name_the_bad_argument(call, argument):
    with pytest.raises((InvalidArgumentError, InvalidArgumentTypeError), match=argument):
        call()


def test_a_session_trains_on_a_toy_pool_and_separates_blobs():
    pool = al.datasets.blobs(200, n_classes=2, spread=0.5, seed=0)
    session = al.Session(pool, strategy="entropy", store=False, train_config=FAST)
    first = balanced_initial_ids(pool, 10, seed=0)
    session.label(first, oracle_labels(pool, first))
    report = session.retrain()
    assert report.steps >= 15
    assert session.evaluate()["accuracy"] > 0.95  # blobs 3 apart with σ 0.5 barely overlap


# --------------------------------------------------------------------------- race engine
def test_area_under_curve_known_values():
    assert area_under_curve([10, 20, 30], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    # trapezoids: (0.2+0.6)/2*10 + (0.6+1.0)/2*10 = 12 over a width of 20
    assert area_under_curve([10, 20, 30], [0.2, 0.6, 1.0]) == pytest.approx(0.6)
    assert area_under_curve([10], [0.7]) == pytest.approx(0.7)
    assert area_under_curve([], []) is None
    with pytest.raises(ValueError, match="2 label counts but 1"):
        area_under_curve([1, 2], [0.5])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=12),
    st.lists(st.integers(1, 50), min_size=12, max_size=12),
)
def test_area_under_curve_lies_between_the_lowest_and_highest_accuracy(accuracies, gaps):
    labels = np.cumsum(gaps[: len(accuracies)])
    area = area_under_curve(labels, accuracies)
    assert min(accuracies) - 1e-9 <= area <= max(accuracies) + 1e-9


@pytest.fixture(scope="module")
def finished_race():
    pool = al.datasets.two_moons(100, noise=0.2, seed=1)
    race = RaceRun(
        pool, ["random", "entropy"], seeds=[0, 1], initial=4, batch_size=3, rounds=2,
        train_config=FAST, threshold=0.8,
    )  # fmt: skip
    race.run()
    yield race
    race.close()


def test_race_runs_every_lane_with_the_same_initial_labels(finished_race):
    race = finished_race
    assert race.done and race.rounds_done == 3
    for seed in race.seeds:
        random_lane, entropy_lane = race.lane("random", seed), race.lane("entropy", seed)
        assert random_lane.acquired[0] == entropy_lane.acquired[0]  # same cold start per seed
        assert random_lane.n_labels == entropy_lane.n_labels == [4, 7, 10]
        for lane in (random_lane, entropy_lane):
            labeled = lane.labeled_positions
            assert len(labeled) == len(set(labeled.tolist())) == 10  # nothing labeled twice
            assert lane.session.n_labels == 10
            assert len(lane.last_batch_positions) == 3
    assert race.lane("random", 0).acquired[0] != race.lane("random", 1).acquired[0]


def test_race_curves_and_summary_agree_with_the_lanes(finished_race):
    race = finished_race
    curve = race.curve("entropy")
    lanes = race.lanes_of("entropy")
    assert curve["n_labels"] == [4, 7, 10] and curve["n_seeds"] == [2, 2, 2]
    for index in range(3):
        values = [lane.accuracies[index] for lane in lanes]
        assert curve["mean"][index] == pytest.approx(np.mean(values))
        assert curve["low"][index] == min(values) and curve["high"][index] == max(values)
    rows = {row["strategy"]: row for row in race.summary()}
    assert set(rows) == {"random", "entropy"}
    for name, row in rows.items():
        lanes = race.lanes_of(name)
        assert row["n_labels"] == 10 and row["n_seeds"] == 2
        assert row["accuracy"] == pytest.approx(np.mean([ln.accuracies[-1] for ln in lanes]))
        aucs = [area_under_curve(ln.n_labels, ln.accuracies) for ln in lanes]
        assert row["auc"] == pytest.approx(np.mean(aucs))
        reached = [
            next((n for n, a in zip(ln.n_labels, ln.accuracies) if a >= 0.8), None) for ln in lanes
        ]
        assert row["reached"] == sum(value is not None for value in reached)


def test_duplicate_picks_counts_copies_of_labeled_items():
    base = al.Pool(
        np.arange(40, dtype=np.float32).reshape(20, 2), targets=np.arange(20) % 2,
        classes=["a", "b"],
    )  # fmt: skip
    pool = al.datasets.repeated(base, repeats=2, noise_std=0.0)
    race = RaceRun(pool, ["random"], seeds=[0], initial=2, batch_size=2, rounds=0)
    lane = race.lanes[0]
    # written by hand: initial ids 0 and 1; then copies 20 (of 0) and 5; then 25 (of 5) and 7
    lane.acquired = [[0, 1], [20, 5], [25, 7]]
    assert race.duplicate_picks(20) == {"random": 2.0}
    race.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"strategies": ["random", "nonsense"]}, InvalidArgumentError, "nonsense"),
        ({"strategies": "bald"}, InvalidArgumentTypeError, "list of strategy names"),
        ({"strategies": ["bald", "bald"]}, InvalidArgumentError, "twice"),
        ({"seeds": [1, 1]}, InvalidArgumentError, "distinct"),
        ({"threshold": 1.5}, InvalidArgumentError, "threshold"),
        ({"rounds": 100}, OracleSetupError, "at most"),
    ],
)
def test_race_refuses_bad_plans_before_training(kwargs, error, match):
    pool = al.datasets.two_moons(60)
    settings = {"strategies": ["random"], "initial": 4, "batch_size": 4, "rounds": 1} | kwargs
    with pytest.raises(error, match=match):
        RaceRun(pool, **settings)


# --------------------------------------------------------------------------- layout
def test_layouts_of_toy_and_image_pools():
    toy = al.datasets.blobs(40, n_classes=2)
    coordinates, name = pool_layout(toy)
    assert name == "data"
    assert np.array_equal(coordinates[3], toy.item(toy.ids[3]))
    images = al.Pool(np.random.default_rng(0).random((30, 4, 4)), classes=["a", "b"])
    coordinates, name = pool_layout(images)
    assert name == "pca" and coordinates.shape == (30, 2)
    # PCA keeps the spread: the first axis carries at least as much variance as the second
    assert coordinates[:, 0].var() >= coordinates[:, 1].var()
    with pytest.raises(InvalidArgumentError, match="layout='data' needs a pool of 2-D"):
        pool_layout(images, "data")
    with pytest.raises(InvalidArgumentError, match=r"shape \(30, 2\)"):
        pool_layout(images, np.zeros((29, 2)))


# --------------------------------------------------------------------------- widgets
@pytest.fixture
def moons_session():
    pool = al.datasets.two_moons(120, noise=0.2, seed=0)
    session = al.Session(pool, strategy="bald", batch_size=5, store=False, train_config=FAST)
    first = balanced_initial_ids(pool, 6, seed=0)
    session.label(first, oracle_labels(pool, first))
    session.retrain()
    yield session
    session.close()


def test_toy_view_grid_matches_the_pools_inputs_and_the_field_splits(moons_session):
    view = al.ToyView(moons_session, grid_size=12)
    field = view.field
    assert field["bald"].shape == (12, 12)
    # entropy of the mean = BALD + mean entropy, at every grid point
    assert np.allclose(field["entropy"], field["bald"] + field["mean_entropy"], atol=1e-5)
    assert (field["bald"] >= -1e-6).all()
    assert len(view.batch_ids) == 5 and not set(view.batch_ids) & set(moons_session.labeled_ids)
    # the figure shows what the view computed, in place
    heatmap, contour, _, labeled, ringed = view.figure.data
    assert np.allclose(np.asarray(heatmap.z), field["bald"])
    assert len(labeled.x) == 6 and len(ringed.x) == 5
    view.show_field("entropy")
    assert np.allclose(np.asarray(view.figure.data[0].z), field["entropy"])
    figure = view.figure
    view.step()
    assert view.figure is figure  # one figure, updated
    assert moons_session.n_labels == 11 and moons_session.model_version == 2
    assert len(view.figure.data[3].x) == 11


def test_toy_view_predictions_on_pool_points_equal_the_sessions(moons_session):
    from alwidget.teaching.toy import _scaled_grid

    pool = moons_session.pool
    points = np.stack([pool.item(i) for i in pool.ids[:5]])
    grid = _scaled_grid(moons_session, points[:, 0], points[:, 1]).numpy().reshape(5, 5, 2)
    diagonal = grid[np.arange(5), np.arange(5)]  # (x_i, y_i) pairs: the pool's own points
    assert np.allclose(diagonal, pool.inputs(np.arange(5)).numpy(), atol=1e-5)


def test_toy_view_refuses_pools_that_are_not_2d():
    pool = al.datasets.load_digits()
    session = al.Session(pool, store=False)
    with pytest.raises(InvalidArgumentError, match="ToyView draws pools of 2-D points"):
        al.ToyView(session)
    with pytest.raises(InvalidArgumentError, match="field"):
        al.ToyView(al.Session(al.datasets.two_moons(40), store=False), field="margin")


def test_compare_picks_leaves_the_session_alone(moons_session):
    session = moons_session
    labels_before, strategy_before = session.labels, session.strategy
    compare = al.ComparePicks(session, ["random", "entropy", "bald", "batchbald"], mc_samples=8)
    assert session.labels == labels_before and session.strategy == strategy_before
    by_name = {picks.strategy: picks for picks in compare.picks}
    unlabeled = set(session.unlabeled_ids)
    for picks in compare.picks:
        assert len(picks.ids) == 5 and len(set(picks.ids)) == 5 and set(picks.ids) <= unlabeled
    assert by_name["bald"].mc_samples == 8 and by_name["entropy"].mc_samples == 1
    # entropy's batch is the top five by entropy of the current model
    log_probs = session.predict(session.unlabeled_ids, mc_samples=1)
    scores = al.strategies.entropy(log_probs)
    top = {session.unlabeled_ids[i] for i in np.argsort(-scores)[:5]}
    assert set(by_name["entropy"].ids) == top
    # the same model and seed give the same picks; the strips and map show them
    assert [p.ids for p in compare.refresh()] == [p.ids for p in compare.picks]
    assert len(compare.strips.children) == 4
    assert sum(len(trace.x) for trace in compare.map.data[2:]) == 20
    overlap = compare.overlap()
    assert overlap[("random", "entropy")] == len(
        set(by_name["random"].ids) & set(by_name["entropy"].ids)
    )


def test_compare_picks_names_bad_strategies(moons_session):
    with pytest.raises(InvalidArgumentError, match="2 to 4"):
        al.ComparePicks(moons_session, ["bald"])
    with pytest.raises(InvalidArgumentError, match="unknown|nonsense"):
        al.ComparePicks(moons_session, ["bald", "nonsense"])


def test_race_widget_steps_in_the_background_and_redraws():
    race = al.Race(
        al.datasets.two_moons(80, noise=0.2), ["random", "bald"], seeds=[0, 1], initial=4,
        batch_size=3, rounds=2, train_config=FAST, delay=0,
    )  # fmt: skip
    curves, maps = race.curves, race.map
    race.step()
    assert race.wait(timeout=120)
    assert race.run.rounds_done == 1
    race.play()
    assert race.wait(timeout=120)
    assert race.run.done and not race.playing
    assert race.curves is curves and race.map is maps  # updated in place
    assert list(race.curves.data[1].x) == [4, 7, 10]  # random's mean curve
    assert len(race.curves.data[0].x) == 6  # its band: there and back
    assert len(race.map.data[1].x) == 10  # random's labels of seed 0 on its map
    race.seed_picker.value = 1
    lane = race.run.lane("random", 1)
    assert np.allclose(race.map.data[1].x, race.coordinates_N_2[lane.labeled_positions, 0])
    assert 'data-strategy="bald"' in race.table.value and "finished" in race.status.value
    assert race.play_button.disabled
    race.close()


def test_import_alwidget_does_not_import_ipywidgets_and_race_loads_lazily():
    code = (
        "import sys, alwidget as al; assert 'ipywidgets' not in sys.modules;"
        "al.Race; assert 'ipywidgets' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
