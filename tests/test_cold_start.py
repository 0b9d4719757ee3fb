"""Cold start, big-pool subsets and the panel at real size (issue 12), without a browser.

Hand-built pools with known structure: the cold start must find every cluster, large pools
must score a subset and say so, the strip must number its cards and stay bounded, and
cross-validation must come after the refreshed batch.
"""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.widget_sessions import FAST_TRAINING, tabular_pool

import alwidget as al
from alwidget.strategies.typicality import (
    kmeans_plus_plus_seeds,
    typical_diverse_selection,
    typicality_N,
)
from alwidget.widget.views import MAX_CARDS


def clusters(sizes, n_features=5, spread=0.3, seed=0):
    """Blobs of the given sizes, far apart (centres 10 apart on separate axes)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for index, size in enumerate(sizes):
        centre = np.zeros(n_features)
        centre[index % n_features] = 10.0 * (1 + index // n_features)
        rows.append(centre + spread * rng.normal(size=(size, n_features)))
        labels += [index] * size
    return np.concatenate(rows), np.array(labels)


def test_typicality_is_highest_in_the_dense_middle():
    rng = np.random.default_rng(0)
    core = 0.1 * rng.normal(size=(50, 2))
    outlier = np.array([[5.0, 5.0]])
    scores = typicality_N(np.concatenate([core, outlier]))
    assert np.argmin(scores) == 50
    assert np.linalg.norm(core[np.argmax(scores[:50])]) < 0.15


def test_kmeans_plus_plus_seeds_one_per_far_apart_blob():
    points, labels = clusters([40, 5, 20, 3, 60, 7], spread=0.05)
    for seed in range(5):
        seeds = kmeans_plus_plus_seeds(points, 6, np.random.default_rng(seed))
        # Each seed is a row of the points, and each blob (even of 3) holds exactly one.
        rows = [int(np.flatnonzero((points == seed_row).all(axis=1))[0]) for seed_row in seeds]
        assert sorted(labels[rows]) == [0, 1, 2, 3, 4, 5]


def test_kmeans_plus_plus_seeds_stop_when_every_point_is_a_seed():
    points = np.repeat(np.eye(3), 4, axis=0)  # 3 distinct rows, 4 copies each
    seeds = kmeans_plus_plus_seeds(points, 5, np.random.default_rng(0))
    assert len(seeds) == 3 and len(np.unique(seeds, axis=0)) == 3


def test_one_pick_per_cluster_largest_uncovered_first():
    features, cluster = clusters([300, 200, 100, 50])
    picks = typical_diverse_selection(features, np.zeros((0, 5)), 4, np.random.default_rng(0))
    assert sorted(cluster[picks].tolist()) == [0, 1, 2, 3]
    assert cluster[picks[0]] == 0  # the largest region first


def test_covered_clusters_come_last():
    features, cluster = clusters([300, 200, 100])
    labeled = features[cluster == 0][:5]
    picks = typical_diverse_selection(features, labeled, 2, np.random.default_rng(1))
    assert sorted(cluster[picks].tolist()) == [1, 2]


def test_identical_items_do_not_fail():
    picks = typical_diverse_selection(
        np.ones((20, 3)), np.zeros((0, 3)), 5, np.random.default_rng(0)
    )
    assert len(set(picks.tolist())) == 5


def separated_pool(n_classes=6, per_class=400, n_features=6, seed=0, **kwargs) -> al.Pool:
    features, cluster = clusters([per_class] * n_classes, n_features, seed=seed)
    return al.Pool(
        features.astype(np.float32),
        targets=cluster,
        classes=[f"class {i}" for i in range(n_classes)],
        **kwargs,
    )


def ranked_tabular_session(n_items=200, train_config=FAST_TRAINING) -> al.Session:
    """Three tabular blobs, ranked by the strategy from the first query (no cold start)."""
    return al.Session(
        tabular_pool(n_items), seed=0, store=False, cold_start=False, train_config=train_config
    )


def label_truly(session, batch):
    session.label(
        batch.ids, [int(session.pool.targets[session.pool.position(i)]) for i in batch.ids]
    )


def test_cold_start_finds_every_class_where_the_untrained_strategy_does_not():
    pool = separated_pool()
    cold = al.Session(pool, strategy="bald", seed=0, store=False, train_config=FAST_TRAINING)
    batch = cold.query(6)
    assert cold.last_query_timings["mode"] == "cold start"
    assert "not trained" in cold.last_query_timings["reason"]
    assert len({int(pool.targets[pool.position(i)]) for i in batch.ids}) == 6
    assert batch.strategy.startswith("cold start")
    label_truly(cold, batch)
    cold.retrain()
    assert cold.missing_classes == []
    for _ in range(4):  # until every class has two labels
        batch = cold.query(6)
        if cold.last_query_timings["mode"] == "strategy":
            break
        assert "fewer than 2 labels" in cold.last_query_timings["reason"]
        label_truly(cold, batch)
    assert cold.last_query_timings["mode"] == "strategy"
    assert min(cold.label_counts().values()) >= 2 and cold.n_labels <= 24


def test_a_missing_class_keeps_the_cold_start_until_the_cap():
    pool = separated_pool(n_classes=3, per_class=200)
    # A class the pool never shows: the cold start must hand over to the strategy at last.
    pool_with_ghost = al.Pool(
        pool.inputs(np.arange(len(pool))).numpy(),
        targets=pool.targets,
        classes=["class 0", "class 1", "class 2", "ghost"],
    )
    session = al.Session(pool_with_ghost, seed=0, store=False, train_config=FAST_TRAINING)
    label_truly(session, session.query(6))
    session.retrain()
    batch = session.query(4)
    assert session.last_query_timings["mode"] == "cold start"
    assert "ghost" in session.last_query_timings["reason"]
    assert session.missing_classes == ["ghost"]
    label_truly(session, batch)
    while session.n_labels < 10 * 4:
        label_truly(session, session.query(10))
    session.query(4)
    assert session.last_query_timings["mode"] == "strategy"


def test_cold_start_can_be_switched_off():
    session = al.Session(
        separated_pool(), strategy="entropy", seed=0, store=False, cold_start=False
    )
    batch = session.query(5)
    assert session.last_query_timings["mode"] == "strategy"
    assert list(batch.scores) == sorted(batch.scores, reverse=True)


def test_prioritized_items_lead_a_cold_start_batch():
    session = al.Session(separated_pool(), seed=0, store=False)
    session.prioritize([7, 3])
    assert session.query(5).ids[:2] == [7, 3]


def test_large_pools_score_a_subset_by_default_and_say_so():
    big = separated_pool(n_classes=5, per_class=4_100, n_features=4)  # 20 500 items
    assert al.Session(big, seed=0, store=False).score_subset == 10_000
    assert al.Session(big, seed=0, store=False, score_subset=None).score_subset is None
    assert al.Session(separated_pool(), seed=0, store=False).score_subset is None
    session = al.Session(big, seed=0, store=False, cold_start=False)
    session.query(5)
    assert session.last_query_timings["n_scored"] == 10_000
    # A refill of the same model reuses the items it scored (no second pass).
    first = session.last_query_timings
    session.query(5)
    assert session.last_query_timings["predict_seconds"] <= first["predict_seconds"]


def test_widget_shows_at_once_then_a_quick_batch_refined_by_the_full_ranking():
    big = separated_pool(n_classes=5, per_class=1_200, n_features=4)  # 6 000 items
    session = al.Session(big, seed=0, store=False, cold_start=False, train_config=FAST_TRAINING)
    widget = al.Widget(session, batch_size=5)
    try:
        assert widget.strip.empty_message.startswith("Scoring a sample of the pool")
        widget.ready(timeout=120)
        widget.wait(timeout=120)  # the refinement over every item
        assert len(widget.queue) == 5
        assert widget.scoring_note == ""  # ranked over the whole pool now
        assert session.last_query_timings["n_scored"] == len(big)
    finally:
        widget.close()


def test_a_trained_feature_head_on_a_big_pool_also_starts_from_a_quick_pass():
    """Resuming on 60k MNIST with a trained encoder head: the full first ranking took 10 s in
    the browser; a sample's ranking comes first, then the full one."""
    big = separated_pool(n_classes=5, per_class=4_400, n_features=4)  # 22 000 items
    session = al.Session(
        big, encoder="svd", seed=0, store=False, cold_start=False, train_config=FAST_TRAINING
    )
    first = [int(np.flatnonzero(big.targets == c)[0]) for c in range(5)]
    first += [int(i) for i in np.flatnonzero(big.targets == 0)[1:16]]  # 20 labels, all classes
    session.label([big.ids[i] for i in first], [big.classes[int(big.targets[i])] for i in first])
    session.retrain()
    assert session.scores_on_features
    widget = al.Widget(session, batch_size=5)
    try:
        assert widget.strip.empty_message.startswith("Scoring a sample of the pool")
        widget.ready(timeout=120)
        widget.wait(timeout=120)  # the refinement over every item
        assert session.last_query_timings["n_scored"] == len(big) - 20
    finally:
        widget.close()


def test_panel_says_cold_start_flags_missing_classes_and_marks_accuracy_unreliable():
    pool = separated_pool(n_classes=4, per_class=100)
    session = al.Session(pool, seed=0, store=False, train_config=FAST_TRAINING, cv_folds=2)
    widget = al.Widget(session, batch_size=4).ready(timeout=120)
    try:
        assert widget.scoring_note.startswith("Cold start")
        assert "Cold start" in widget.why.value
        assert "No labels yet for 4 class(es)" in widget.counts.value
        ids = [i for i in pool.ids if pool.targets[pool.position(i)] == 0][:4]
        ids += [i for i in pool.ids if pool.targets[pool.position(i)] == 1][:4]
        session.label(ids, [int(pool.targets[pool.position(i)]) for i in ids])
        widget.retrain().result(timeout=120)
        widget.wait(timeout=120)  # cross-validation runs after the refreshed batch
        assert widget.training_progress["phase"] == "validated"
        assert session.history[-1]["accuracy"] is not None
        assert widget.evaluated_version == session.model_version == 1
        assert "unreliable: 2 class(es) unlabeled" in widget.counts.value
        assert "class 2, class 3" in widget.counts.value
    finally:
        widget.close()


def test_strip_ranks_are_queue_places_and_the_strip_is_bounded():
    session = ranked_tabular_session()
    widget = al.Widget(session, batch_size=6).ready(timeout=120)
    try:
        widget.queue_next(list(session.unlabeled_ids[:60]))  # "label these next" on a big lasso
        widget.wait(timeout=120)
        cards = widget.strip.cards
        assert len(widget.queue) > MAX_CARDS and len(cards) == MAX_CARDS
        assert widget.strip.more == len(widget.queue) - MAX_CARDS
        assert [card["rank"] for card in cards] == list(range(1, MAX_CARDS + 1))
        widget.focus(40)
        ranks = [card["rank"] for card in widget.strip.cards]
        assert ranks == list(range(ranks[0], ranks[0] + len(ranks))) and 41 in ranks
        shown = widget.strip.cards[widget.strip.focused]
        assert shown["index"] == 40 and shown["key"] == str(widget.focused_item.id)
        target = widget.strip.cards[0]["index"]
        widget.strip.click(0)  # a click reports the queue place, not the card's
        assert widget.focused == target
    finally:
        widget.close()


def test_retrain_refreshes_the_explanation_of_the_item_in_hand():
    session = ranked_tabular_session()
    widget = al.Widget(session, batch_size=6).ready(timeout=120)
    try:
        for _ in range(12):
            item = widget.focused_item
            widget.label(session.classes[int(session.pool.targets[session.pool.position(item.id)])])
            widget.ready(timeout=60)
            if widget.focused_item is None:
                widget.wait(timeout=60)
        in_hand = widget.focused_item
        widget.retrain().result(timeout=120)
        widget.wait(timeout=120)
        assert widget.focused_item.id == in_hand.id
        assert "retrained since" not in widget.why.value
        fresh = session.explain([in_hand.id])[0]
        assert widget.focused_item.probabilities == pytest.approx(fresh.probabilities, abs=1e-5)
    finally:
        widget.close()


def test_strategy_picker_reranks_the_queue_behind_the_item_in_hand():
    session = ranked_tabular_session()
    widget = al.Widget(session, batch_size=6).ready(timeout=120)
    try:
        assert widget.strategy_picker.value == "entropy"
        assert "bald" in widget.strategy_picker.options
        in_hand = widget.focused_item
        widget.strategy_picker.value = "bald"  # as a click in the browser would
        widget.wait(timeout=120)
        assert session.strategy == "bald"
        assert widget.focused_item.id == in_hand.id
        widget.focus(1)  # an item of the new ranking
        assert "strategy <code>bald</code>" in widget.why.value
        with pytest.raises(ValueError, match="unknown strategy"):
            widget.set_strategy("no-such-strategy")
        assert widget.strategy_picker.value == "bald"
    finally:
        widget.close()


def test_the_panel_switches_pseudo_labels_on_and_shows_those_the_model_trained_with():
    config = al.TrainConfig(min_steps=15, max_steps=30, max_epochs=5)
    session = ranked_tabular_session(300, train_config=config)
    widget = al.Widget(session, batch_size=6).ready(timeout=120)
    try:
        assert widget.pseudo_labels.value == ""  # untrained: none yet
        assert widget.pseudo_labels_switch.value is False
        widget.pseudo_labels_switch.value = True  # as a click would
        assert session.train_config.pseudo_labels is True
        assert "pseudo-labels on" in widget.status
        ids = list(session.pool.ids[:24])
        session.label(ids, [int(session.pool.targets[session.pool.position(i)]) for i in ids])
        for _ in range(2):  # pseudo-labels come from the previous model's predictions
            widget.retrain().result(timeout=120)
            widget.wait(timeout=120)
        summary = session.pseudo_labels(sample=12)
        assert summary["n"] > 0
        assert f"<b>{summary['n']}</b> pseudo-labels" in widget.pseudo_labels.value
        assert "never stored as labels" in widget.pseudo_labels.value
        assert session.n_labels == 24
        widget.pseudo_labels_switch.value = False
        assert session.train_config.pseudo_labels is False
    finally:
        widget.close()


def test_query_reports_how_far_scoring_is():
    pool = separated_pool(n_classes=3, per_class=2_000, n_features=4)
    session = al.Session(pool, seed=0, store=False, cold_start=False, chunk_size=512)
    seen = []
    session.query(5, progress=lambda step: seen.append((step.done, step.total)))
    assert seen[-1] == (6_000, 6_000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    with pytest.raises(al.errors.AlwidgetError, match="progress"):
        session.query(5, progress="not callable")


def test_compare_strategies_shows_each_strategys_batch_from_the_same_model():
    session = ranked_tabular_session()
    widget = al.Widget(session, batch_size=4).ready(timeout=120)
    try:
        widget.compare_button.value = True  # as a click would
        widget.wait(timeout=120)
        comparison = widget._comparison
        assert [picks.strategy for picks in comparison.picks] == ["entropy", "random", "bald"]
        assert all(len(picks.ids) == 4 for picks in comparison.picks)
        assert widget.compare_box.children == (comparison.widget,)
        assert session.strategy == "entropy"  # comparing never changes what ranks the queue
        widget.compare_button.value = False
        assert widget.compare_box.layout.display == "none"
    finally:
        widget.close()
