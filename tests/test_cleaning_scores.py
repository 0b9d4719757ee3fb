"""Label-issue and out-of-distribution scores on hand-built cases with known answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alwidget.strategies import label_issues as li


def _confident_probs(true_labels, n_classes, confidence=0.9):
    probs = np.full((len(true_labels), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(true_labels)), true_labels] = confidence
    return probs


def test_thresholds_are_mean_self_confidence_per_given_class():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    thresholds = li.class_thresholds_C(probs, np.array([0, 0, 1]))
    np.testing.assert_allclose(thresholds, [0.7, 0.7])
    # A class nobody was given can never be confidently counted.
    assert li.class_thresholds_C(probs, np.array([0, 0, 0]))[1] == np.inf


def test_confident_joint_counts_the_flip_off_the_diagonal():
    # Items 0-3 truly class 0, 4-7 class 1; item 3 was given 1 by mistake.
    probs = _confident_probs(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2)
    given = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    joint, confident = li.confident_joint_C_C(probs, given)
    assert joint.tolist() == [[3, 0], [1, 4]]
    assert confident.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    calibrated = li.calibrated_joint_C_C(probs, given)
    np.testing.assert_allclose(calibrated.sum(axis=1), [3, 5])


@pytest.mark.parametrize("method", li.ISSUE_METHODS)
def test_known_flips_are_flagged_and_rank_first(method):
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(3), 20)
    probs = _confident_probs(true, 3, confidence=0.8)
    probs = probs * rng.uniform(0.9, 1.1, probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    given = true.copy()
    flips = np.array([2, 25, 47, 50])
    given[flips] = (true[flips] + 1) % 3
    ranked = li.rank_label_issues(probs, given, method=method)
    assert sorted(ranked[: len(flips)].tolist()) == flips.tolist()
    assert len(ranked) == len(flips)


def test_rankings_order_by_how_little_the_given_label_is_believed():
    probs = np.array([[0.1, 0.9], [0.45, 0.55], [0.9, 0.1]])
    given = np.array([0, 0, 0])
    np.testing.assert_allclose(li.self_confidence_scores_N(probs, given), [0.9, 0.55, 0.1])
    np.testing.assert_allclose(li.normalized_margin_scores_N(probs, given), [0.9, 0.55, 0.1])


def test_an_item_the_model_agrees_with_is_never_flagged():
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.1, 0.9], [0.55, 0.45]])
    given = np.array([0, 0, 1, 0])
    for method in li.ISSUE_METHODS:
        assert not li.find_label_issues_N(probs, given, method).any()


@settings(max_examples=40, deadline=None)
@given(
    n_classes=st.integers(2, 5),
    per_class=st.integers(6, 15),
    n_flips=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_planted_confident_flips_rank_above_every_clean_item(n_classes, per_class, n_flips, seed):
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(n_classes), per_class)
    probs = rng.dirichlet(np.ones(n_classes) * 0.3, len(true)) * 0.2
    probs[np.arange(len(true)), true] += 0.8
    given = true.copy()
    flips = rng.choice(len(true), size=n_flips, replace=False)
    # The flips are the model's most confident items, so each clears its class's threshold.
    probs[flips] = 0.001 / (n_classes - 1)
    probs[flips, true[flips]] = 1 - 0.001
    given[flips] = (true[flips] + rng.integers(1, n_classes, n_flips)) % n_classes
    scores = li.self_confidence_scores_N(probs, given)
    clean = np.setdiff1d(np.arange(len(true)), flips)
    assert scores[flips].min() > scores[clean].max()
    flagged = li.find_label_issues_N(probs, given, "confident_joint")
    assert flagged[flips].all() and not flagged[clean].any()


def test_sample_disagreement_counts_samples_voting_against_the_label():
    probs_N_K_C = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]],
            [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]],
        ]
    )
    scores = li.sample_disagreement_scores_N(np.log(probs_N_K_C), np.array([0, 0]))
    np.testing.assert_allclose(scores, [0.75, 0.0])


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="given_labels_N"):
        li.find_label_issues_N(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="probs_N_C rows must sum to 1"):
        li.find_label_issues_N(np.array([[2.0, 3.0]]), np.array([0]))
    with pytest.raises(ValueError, match="method"):
        li.find_label_issues_N(np.array([[0.5, 0.5]]), np.array([0]), "vote")


def test_knn_distances_by_hand():
    points = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(li.knn_distances_N(points, points, 1, exclude_self=True), [1, 1, 2])
    np.testing.assert_allclose(li.knn_distances_N(np.array([[10.0]]), points, 2), [8.0])


def test_an_isolated_item_scores_most_out_of_distribution():
    rng = np.random.default_rng(1)
    bulk = rng.normal(size=(200, 3))
    outlier = np.array([[12.0, 12.0, 12.0]])
    points = np.vstack([bulk, outlier])
    labeled = np.zeros(len(points), dtype=bool)
    labeled[:20] = True
    result = li.ood_scores(points, labeled, k=5, reference_size=100)
    assert result["scores_N"].argmax() == 200
    assert result["sparsity_N"][200] > 5 and np.median(result["sparsity_N"][:200]) < 1.3
    assert result["labeled_distance_N"][200] > result["labeled_distance_N"][:200].max()


def test_the_noisy_oracle_is_seeded_and_flips_as_told():
    import alwidget as al
    from alwidget.experiments.oracle import LabelNoise, OracleSetupError

    targets = np.arange(2000) % 4
    pool = al.Pool(np.zeros((2000, 2), dtype=np.float32), targets=targets, classes=list("abcd"))
    ids = list(range(2000))
    noise = LabelNoise(0.2, "symmetric", seed=1)
    answers = np.array(noise.answer(pool, ids))
    wrong = answers != targets
    assert set(np.flatnonzero(wrong).tolist()) == noise.flipped
    assert 0.17 < wrong.mean() < 0.23
    assert len(set(((answers - targets) % 4)[wrong].tolist())) == 3  # any other class
    assert LabelNoise(0.2, "symmetric", seed=1).answer(pool, ids) == answers.tolist()
    pairs = LabelNoise(0.3, "class-dependent", seed=0)
    shifted = np.array(pairs.answer(pool, ids))
    assert set(((shifted - targets) % 4)[shifted != targets].tolist()) == {1}
    with pytest.raises(OracleSetupError, match="rate"):
        LabelNoise(1.5)
