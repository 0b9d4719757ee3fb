"""Uncertainty scores on tiny hand-built distributions with known orderings, plus properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import alwidget.strategies as S


def log(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


# Three items, one sample each: confident, two-way tie, uniform over three classes.
CONFIDENT = [0.98, 0.01, 0.01]
TWO_WAY = [0.5, 0.5, 0.0 + 1e-12]
UNIFORM = [1 / 3, 1 / 3, 1 / 3]
SINGLE_SAMPLE = log([[CONFIDENT], [TWO_WAY], [UNIFORM]])

# Two items with the same mean prediction (0.5, 0.5): one where both samples agree on 50/50
# (aleatoric), one where the samples disagree confidently (epistemic: BALD's target).
AGREEING = [[0.5, 0.5], [0.5, 0.5]]
DISAGREEING = [[0.99, 0.01], [0.01, 0.99]]
TWO_SAMPLES = log([AGREEING, DISAGREEING])


def test_registry_lists_the_required_names():
    required = {
        "random",
        "least_confidence",
        "margin",
        "entropy",
        "bald",
        "variation_ratios",
        "mean_std",
    }
    assert required <= set(S.available())
    assert S.available() == sorted(S.available())


@pytest.mark.parametrize("name", ["least_confidence", "entropy"])
def test_single_sample_scores_rank_uniform_above_tie_above_confident(name):
    scores = S.SCORES[name](SINGLE_SAMPLE)
    assert scores[2] > scores[1] > scores[0]


def test_margin_ranks_the_tie_first():
    scores = S.margin(SINGLE_SAMPLE)
    assert np.argmax(scores) in (1, 2)  # both have a zero margin
    assert scores[1] == pytest.approx(0.0, abs=1e-9)
    assert scores[0] == pytest.approx(-(0.98 - 0.01))


@pytest.mark.parametrize("name", ["bald", "variation_ratios", "mean_std"])
def test_sample_based_scores_prefer_disagreement(name):
    scores = S.SCORES[name](TWO_SAMPLES)
    assert scores[1] > scores[0]


def test_entropy_cannot_tell_aleatoric_from_epistemic_but_bald_can():
    assert S.entropy(TWO_SAMPLES)[0] == pytest.approx(S.entropy(TWO_SAMPLES)[1])
    assert S.bald(TWO_SAMPLES)[0] == pytest.approx(0.0, abs=1e-12)
    assert S.bald(TWO_SAMPLES)[1] == pytest.approx(np.log(2) - S.mean_entropy(TWO_SAMPLES)[1])


def test_bald_is_entropy_of_mean_minus_mean_entropy():
    parts = S.explain(TWO_SAMPLES)
    assert np.allclose(parts["bald_N"], parts["entropy_of_mean_N"] - parts["mean_entropy_N"])
    assert parts["votes_N_C"].tolist() == [[2, 0], [1, 1]]


def test_variation_ratio_counts_votes():
    three_votes = log([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]])
    assert S.variation_ratios(three_votes)[0] == pytest.approx(1 - 2 / 3, abs=1e-3)


def test_random_scores_follow_the_generator():
    first = S.random_scores(SINGLE_SAMPLE, rng=np.random.default_rng(5))
    second = S.random_scores(SINGLE_SAMPLE, rng=np.random.default_rng(5))
    assert np.array_equal(first, second)


def test_top_k_selection_is_separate_and_stable():
    selection = S.select_top_k(np.array([0.1, 0.9, 0.9, 0.5]), 3)
    assert selection.indices.tolist() == [1, 2, 3]
    assert selection.scores.tolist() == [0.9, 0.9, 0.5]
    assert S.select_top_k(np.array([0.3, 0.2]), 5).indices.tolist() == [0, 1]


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 2)), "3 dimensions"),
        (np.full((2, 1, 3), np.nan), "NaN"),
        (np.zeros((2, 1, 3)), "logsumexp"),
    ],
)
def test_bad_log_probs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        S.entropy(bad)


def test_empty_pool_and_bad_batch_sizes():
    with pytest.raises(ValueError, match="empty"):
        S.select_top_k(np.array([]), 3)
    with pytest.raises(ValueError, match="positive integer"):
        S.select_top_k(np.array([1.0]), 0)


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="bald"):
        S.get_strategy("uncertainty")


# ----------------------------------------------------------------------- properties
def log_prob_arrays(max_items=6, max_samples=5, max_classes=4):
    shapes = st.tuples(
        st.integers(1, max_items), st.integers(1, max_samples), st.integers(2, max_classes)
    )
    logits = shapes.flatmap(
        lambda shape: arrays(
            np.float64, shape, elements=st.floats(-8, 8, allow_nan=False, width=32)
        )
    )
    return logits.map(lambda x: x - np.logaddexp.reduce(x, axis=-1, keepdims=True))


SAMPLE_SCORES = ["least_confidence", "margin", "entropy", "bald", "mean_std"]


@settings(max_examples=60, deadline=None)
@given(log_prob_arrays())
def test_bald_is_non_negative(log_probs):
    assert (S.bald(log_probs) >= 0).all()


@settings(max_examples=40, deadline=None)
@given(log_prob_arrays(max_samples=1))
def test_bald_is_zero_with_one_sample(log_probs):
    assert np.array_equal(S.bald(log_probs), np.zeros(log_probs.shape[0]))


@settings(max_examples=60, deadline=None)
@given(log_prob_arrays(), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_the_order_of_samples(log_probs, random):
    order = list(range(log_probs.shape[1]))
    random.shuffle(order)
    for name in SAMPLE_SCORES + ["variation_ratios"]:
        assert np.allclose(
            S.SCORES[name](log_probs), S.SCORES[name](log_probs[:, order]), atol=1e-9
        ), name


@settings(max_examples=40, deadline=None)
@given(log_prob_arrays(max_items=12), st.integers(1, 5))
def test_scoring_in_chunks_equals_scoring_the_whole_array(log_probs, chunk):
    for name in SAMPLE_SCORES + ["variation_ratios"]:
        whole = S.SCORES[name](log_probs)
        pieces = np.concatenate(
            [S.SCORES[name](log_probs[i : i + chunk]) for i in range(0, len(log_probs), chunk)]
        )
        assert np.allclose(whole, pieces), name


@settings(max_examples=40, deadline=None)
@given(log_prob_arrays())
def test_entropy_is_bounded_by_log_classes(log_probs):
    scores = S.entropy(log_probs)
    assert (scores >= -1e-9).all() and (scores <= np.log(log_probs.shape[2]) + 1e-9).all()
