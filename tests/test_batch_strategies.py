"""Batch-aware and diversity selectors: BatchBALD, core-set, BADGE, hybrid, stochastic, typicality."""

import functools
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from alwidget import strategies
from alwidget.strategies import SCORES, SELECTORS, AcquisitionInputs, get_strategy
from alwidget.strategies.batchbald import (
    exact_joint_entropy,
    sampled_joint_entropy,
    select_batchbald,
)
from alwidget.strategies.clustering import kmeans
from alwidget.strategies.scores import bald, mean_entropy

NEW_STRATEGIES = ["batchbald", "coreset", "badge", "hybrid", "stochastic_bald", "typicality"]
EMBEDDING_STRATEGIES = ["coreset", "badge", "hybrid", "typicality"]


def random_log_probs(rng, n_items, n_samples, n_classes, spread=2.0):
    return log_softmax(rng.normal(size=(n_items, n_samples, n_classes)) * spread, axis=-1)


def inputs_for(log_probs, embeddings=None, labeled=None, seed=0):
    return AcquisitionInputs(log_probs, embeddings, labeled, np.random.default_rng(seed))


def run_strategy(name, log_probs, batch_size, embeddings=None, labeled=None, seed=0):
    spec = get_strategy(name)
    scores = SCORES[spec.score](log_probs)
    return SELECTORS[spec.selector](
        scores, batch_size, inputs_for(log_probs, embeddings, labeled, seed)
    )


def brute_joint_entropy(log_probs_B_K_C):
    """Independent reference: enumerate every configuration with itertools."""
    probs = np.exp(log_probs_B_K_C)
    n_items, n_samples, n_classes = probs.shape
    total = 0.0
    for config in itertools.product(range(n_classes), repeat=n_items):
        joint = np.mean(
            [np.prod([probs[i, k, c] for i, c in enumerate(config)]) for k in range(n_samples)]
        )
        if joint > 0:
            total -= joint * np.log(joint)
    return total


# --- registry ---------------------------------------------------------------------------


def test_new_strategies_are_registered_and_listed():
    names = strategies.available()
    for name in NEW_STRATEGIES:
        assert name in names
        spec = get_strategy(name)
        assert spec.score in SCORES and spec.selector in SELECTORS
        assert spec.needs_embeddings == (name in EMBEDDING_STRATEGIES)
    for old in ["random", "entropy", "bald", "margin"]:
        assert old in names and get_strategy(old).selector == "top_k"


# --- shared contract ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NEW_STRATEGIES),
    n_items=st.integers(1, 30),
    batch_size=st.integers(1, 40),
    n_labeled=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_every_selector_returns_distinct_valid_indices(name, n_items, batch_size, n_labeled, seed):
    rng = np.random.default_rng(seed)
    log_probs = random_log_probs(rng, n_items, 4, 3)
    embeddings = rng.normal(size=(n_items, 3))
    labeled = rng.normal(size=(n_labeled, 3))
    selection = run_strategy(name, log_probs, batch_size, embeddings, labeled, seed)
    expected = min(batch_size, n_items)
    assert selection.indices.shape == (expected,) and selection.scores.shape == (expected,)
    assert len(set(selection.indices.tolist())) == expected
    assert ((selection.indices >= 0) & (selection.indices < n_items)).all()
    assert np.isfinite(selection.scores).all()


@pytest.mark.parametrize("name", NEW_STRATEGIES)
def test_batch_larger_than_pool_takes_the_whole_pool(name):
    rng = np.random.default_rng(0)
    selection = run_strategy(name, random_log_probs(rng, 4, 3, 3), 10, rng.normal(size=(4, 2)))
    assert sorted(selection.indices.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("name", NEW_STRATEGIES)
def test_empty_pool_and_bad_batch_sizes_raise(name):
    spec = get_strategy(name)
    empty = inputs_for(np.zeros((0, 3, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="pool is empty"):
        SELECTORS[spec.selector](np.zeros(0), 5, empty)
    rng = np.random.default_rng(0)
    log_probs = random_log_probs(rng, 4, 3, 3)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch size must be a positive integer"):
            SELECTORS[spec.selector](
                np.ones(4), bad, inputs_for(log_probs, rng.normal(size=(4, 2)))
            )


@pytest.mark.parametrize("name", EMBEDDING_STRATEGIES)
def test_missing_embeddings_error_names_strategy_and_field(name):
    rng = np.random.default_rng(0)
    log_probs = random_log_probs(rng, 5, 3, 3)
    with pytest.raises(ValueError, match=rf"strategy '{name}' needs inputs\.embeddings_N_D"):
        run_strategy(name, log_probs, 2)
    with pytest.raises(ValueError, match=rf"'{name}': embeddings_N_D has 4 rows but there are 5"):
        run_strategy(name, log_probs, 2, rng.normal(size=(4, 2)))
    if name != "badge":  # BADGE does not look at labeled items
        with pytest.raises(ValueError, match="labeled_embeddings_L_D .* has 3 features"):
            run_strategy(name, log_probs, 2, rng.normal(size=(5, 2)), rng.normal(size=(2, 3)))


def test_mismatched_log_probs_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError, match="batchbald needs log_probs_N_K_C with one row per scored item"
    ):
        select_batchbald(np.ones(6), 2, inputs_for(random_log_probs(rng, 5, 3, 3)))
    with pytest.raises(ValueError, match="'badge' needs log_probs_N_K_C"):
        SELECTORS["badge"](
            np.ones(6), 2, inputs_for(random_log_probs(rng, 5, 3, 3), rng.normal(size=(6, 2)))
        )


# --- BatchBALD ----------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(2, 5), st.integers(0, 2**16))
def test_batchbald_of_one_item_is_bald(n_items, n_samples, n_classes, seed):
    log_probs = random_log_probs(np.random.default_rng(seed), n_items, n_samples, n_classes)
    bald_scores = bald(log_probs)
    selection = select_batchbald(bald_scores, 1, inputs_for(log_probs), dtype=np.float64)
    assert selection.scores[0] == pytest.approx(bald_scores.max(), abs=1e-10)
    assert bald_scores[selection.indices[0]] == pytest.approx(bald_scores.max(), abs=1e-10)
    # float32 bulk products (the default) stay within single precision.
    single = select_batchbald(bald_scores, 1, inputs_for(log_probs))
    assert single.scores[0] == pytest.approx(bald_scores.max(), abs=2e-5)


def test_joint_entropy_matches_brute_force_enumeration():
    log_probs = random_log_probs(np.random.default_rng(1), 3, 4, 3)
    assert exact_joint_entropy(log_probs) == pytest.approx(
        brute_joint_entropy(log_probs), abs=1e-12
    )
    # One item: the entropy of its mean prediction.
    mean = np.exp(log_probs[0]).mean(0)
    assert exact_joint_entropy(log_probs[:1]) == pytest.approx(-(mean * np.log(mean)).sum())


def test_sampled_joint_entropy_agrees_with_exact():
    log_probs = random_log_probs(np.random.default_rng(2), 4, 5, 3)
    exact = exact_joint_entropy(log_probs)
    sampled = sampled_joint_entropy(log_probs, num_samples=200_000, rng=np.random.default_rng(0))
    assert sampled == pytest.approx(exact, abs=0.02)
    rough = sampled_joint_entropy(log_probs, num_samples=500, rng=np.random.default_rng(0))
    assert abs(rough - exact) > 1e-6  # it really samples


def brute_force_batchbald(log_probs, batch_size):
    """Greedy maximisation of H(y_A) - sum_i E_k H(y_i | w_k) by enumeration."""
    conditional = mean_entropy(log_probs)
    chosen, gains, previous = [], [], 0.0
    for _ in range(batch_size):
        values = {
            x: brute_joint_entropy(log_probs[chosen + [x]]) - conditional[chosen + [x]].sum()
            for x in range(log_probs.shape[0])
            if x not in chosen
        }
        best = max(values, key=values.get)
        chosen.append(best)
        gains.append(values[best] - previous)
        previous = values[best]
    return chosen, gains


def test_batchbald_matches_brute_force_greedy_in_exact_mode():
    log_probs = random_log_probs(np.random.default_rng(4), 7, 4, 3, spread=1.5)
    expected_indices, expected_gains = brute_force_batchbald(log_probs, 4)
    selection = select_batchbald(bald(log_probs), 4, inputs_for(log_probs), dtype=np.float64)
    assert selection.indices.tolist() == expected_indices
    np.testing.assert_allclose(selection.scores, expected_gains, atol=1e-10)


def test_batchbald_sampled_mode_tracks_exact_gains():
    log_probs = random_log_probs(np.random.default_rng(5), 8, 6, 3, spread=1.5)
    _, expected_gains = brute_force_batchbald(log_probs, 5)
    # exact_budget=1 forces sampling from the second chosen item on.
    sampled = select_batchbald(
        bald(log_probs),
        5,
        inputs_for(log_probs),
        exact_budget=1,
        num_samples=60_000,
        dtype=np.float64,
    )
    np.testing.assert_allclose(sampled.scores, expected_gains, atol=0.02)


def test_batchbald_never_takes_a_duplicate_of_an_informative_item():
    # Four consistent samples, two classes. Item 0 splits the samples {0,1} vs {2,3}
    # (maximal BALD); item 1 is its exact copy; item 2 splits {0,2} vs {1,3}, slightly
    # softer. Top-k BALD takes both copies; after seeing item 0's label its copy tells
    # nothing new about the weights, while item 2 still does.
    sure, soft = 1 - 1e-6, 0.9
    split_a = [sure, sure, 1 - sure, 1 - sure]
    split_b = [soft, 1 - soft, soft, 1 - soft]
    probs = np.array([[[p, 1 - p] for p in split] for split in (split_a, split_a, split_b)])
    log_probs = np.log(probs)
    scores = bald(log_probs)
    assert set(SELECTORS["top_k"](scores, 2).indices.tolist()) == {0, 1}
    selection = select_batchbald(scores, 2, inputs_for(log_probs))
    assert selection.indices.tolist() in ([0, 2], [1, 2])
    assert selection.scores[1] == pytest.approx(scores[2], abs=1e-4)


def test_batchbald_prefilters_by_score():
    rng = np.random.default_rng(6)
    log_probs = random_log_probs(rng, 50, 5, 4)
    scores = bald(log_probs)
    selection = select_batchbald(scores, 3, inputs_for(log_probs), max_candidates=10)
    top_ten = set(np.argsort(-scores)[:10].tolist())
    assert set(selection.indices.tolist()) <= top_ten
    # Asking for more items than max_candidates widens the shortlist to the batch size.
    assert len(select_batchbald(scores, 12, inputs_for(log_probs), max_candidates=10).indices) == 12


# --- core-set and BADGE: duplicates -------------------------------------------------------


@st.composite
def duplicated_pools(draw):
    """Distinct lattice points (each with its own prediction), each repeated 1-3 times."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n_distinct = draw(st.integers(2, 12))
    lattice = rng.choice(1000, size=n_distinct, replace=False)
    embeddings = np.column_stack([lattice // 32, lattice % 32]).astype(float)
    log_probs = random_log_probs(rng, n_distinct, 3, 4)
    copies = rng.integers(1, 4, size=n_distinct)
    rows = rng.permutation(np.repeat(np.arange(n_distinct), copies))
    return embeddings[rows], log_probs[rows], rows, n_distinct, seed


@settings(max_examples=40, deadline=None)
@given(duplicated_pools(), st.sampled_from(["coreset", "badge"]))
def test_duplicates_are_never_both_chosen(pool, name):
    embeddings, log_probs, originals, n_distinct, seed = pool
    selection = run_strategy(name, log_probs, n_distinct, embeddings, seed=seed)
    assert sorted(originals[selection.indices].tolist()) == list(range(n_distinct))


def test_coreset_skips_copies_of_labeled_points_and_follows_the_largest_gap():
    line = np.array([[0.0], [0.0], [1.0], [6.0], [10.0]])
    selection = run_strategy(
        "coreset", random_log_probs(np.random.default_rng(0), 5, 2, 2), 2, line, np.array([[0.0]])
    )
    # Farthest from 0 is 10; then 6 is 4 away from 10 but 6 from 0 -> distance 4 beats 1.
    assert selection.indices.tolist() == [4, 3]
    np.testing.assert_allclose(selection.scores, [10.0, 4.0])


def test_badge_starts_from_the_largest_gradient_then_samples_by_squared_distance():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [0.7, 0.3]])
    log_probs = np.log(np.maximum(probs, 1e-300))[:, None, :]
    embeddings = np.array([[1.0, 0.0], [100.0, 0.0], [0.0, 100.0], [0.0, 3.0]])
    # g = (p - onehot) x h. |g|^2: item 0 -> 0.5 * 1, item 3 -> 0.18 * 9 = 1.62, confident -> 0.
    # Squared distances to item 3 (a0.a3 * h0.h3 = 0): item 0 -> 2.12, items 1, 2 -> 1.62.
    second = []
    for seed in range(3000):
        selection = run_strategy("badge", log_probs, 2, embeddings, seed=seed)
        assert selection.indices[0] == 3
        assert selection.scores[0] == pytest.approx(1.62)
        second.append(selection.indices[1])
        assert selection.scores[1] == pytest.approx(2.12 if selection.indices[1] == 0 else 1.62)
    assert np.mean(np.array(second) == 0) == pytest.approx(2.12 / 5.36, abs=0.03)
    # Items 1 and 2 share a zero gradient: once one is drawn the other has weight 0, so
    # it comes only when nothing else is left, and never twice.
    assert sorted(run_strategy("badge", log_probs, 4, embeddings).indices.tolist()) == [0, 1, 2, 3]


# --- hybrid -------------------------------------------------------------------------------


@pytest.mark.parametrize("diversity", ["kcenter", "kmeans"])
def test_hybrid_stays_in_the_uncertain_shortlist(diversity):
    rng = np.random.default_rng(7)
    log_probs = random_log_probs(rng, 200, 4, 5)
    embeddings = rng.normal(size=(200, 6))
    scores = SCORES["entropy"](log_probs)
    select = functools.partial(SELECTORS["hybrid"], num_candidates=30, diversity=diversity)
    selection = select(scores, 8, inputs_for(log_probs, embeddings))
    assert set(selection.indices.tolist()) <= set(np.argsort(-scores)[:30].tolist())
    np.testing.assert_array_equal(selection.scores, scores[selection.indices])
    # A shortlist of exactly the batch is plain top-k.
    exact = SELECTORS["hybrid"](
        scores, 8, inputs_for(log_probs, embeddings), num_candidates=8, diversity=diversity
    )
    assert set(exact.indices.tolist()) == set(np.argsort(-scores)[:8].tolist())


def test_hybrid_spreads_over_clusters_instead_of_taking_one_tight_group():
    # The five most uncertain items sit on one spot; five slightly less uncertain are spread.
    scores = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.9, 0.89, 0.88, 0.87, 0.86, 0.1])
    embeddings = np.array(
        [[0, 0]] * 5 + [[10, 0], [0, 10], [-10, 0], [0, -10], [7, 7], [50, 50]], dtype=float
    )
    log_probs = random_log_probs(np.random.default_rng(0), 11, 2, 2)
    selection = SELECTORS["hybrid"](scores, 5, inputs_for(log_probs, embeddings), num_candidates=10)
    assert selection.indices[0] == 0
    assert sorted(selection.indices[1:].tolist()) == [5, 6, 7, 8]
    with pytest.raises(ValueError, match="diversity"):
        SELECTORS["hybrid"](scores, 2, inputs_for(log_probs, embeddings), diversity="dpp")


# --- stochastic ---------------------------------------------------------------------------


def first_pick_frequency(scores, mode, beta, draws=4000):
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(draws):
        inputs = AcquisitionInputs(np.zeros((len(scores), 1, 1)), rng=rng)
        hits += (
            SELECTORS["stochastic"](np.array(scores), 1, inputs, mode=mode, beta=beta).indices[0]
            == 0
        )
    return hits / draws


@pytest.mark.parametrize(
    "scores, mode, beta, expected",
    [
        ([3.0, 1.0], "power", 1.0, 0.75),
        ([3.0, 1.0], "power", 2.0, 0.9),
        ([np.log(3.0), 0.0], "softmax", 1.0, 0.75),
        ([5.0, -2.0], "softrank", 1.0, 2 / 3),
        ([3.0, 1.0], "power", 0.0, 0.5),
    ],
)
def test_stochastic_sampling_probabilities(scores, mode, beta, expected):
    assert first_pick_frequency(scores, mode, beta) == pytest.approx(expected, abs=0.03)


def test_stochastic_extremes_and_errors():
    scores = np.array([0.5, 0.0, 0.9, 0.0, 0.7])
    inputs = AcquisitionInputs(np.zeros((5, 1, 1)), rng=np.random.default_rng(0))
    sharp = SELECTORS["stochastic"](scores, 3, inputs, beta=1e6)
    assert sharp.indices.tolist() == [2, 4, 0]
    # Zero-score items come only after every positive one.
    full = SELECTORS["stochastic_power"](scores, 5, inputs)
    assert set(full.indices[3:].tolist()) == {1, 3}
    with pytest.raises(ValueError, match="non-negative scores"):
        SELECTORS["stochastic"](np.array([-0.1, 0.2]), 1, inputs)
    with pytest.raises(ValueError, match="mode"):
        SELECTORS["stochastic"](scores, 1, inputs, mode="gibbs")
    with pytest.raises(ValueError, match="beta"):
        SELECTORS["stochastic"](scores, 1, inputs, beta=-1.0)


# --- typicality and k-means ---------------------------------------------------------------


def three_blobs(rng):
    centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    sizes = [120, 80, 60]
    points = np.vstack([c + rng.normal(size=(n, 2)) for c, n in zip(centers, sizes)])
    blob = np.repeat(np.arange(3), sizes)
    outliers = np.array([[10.0, 10.0], [-15.0, -15.0]])
    return np.vstack([points, outliers]), np.r_[blob, -1, -1], centers


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(8)
    points, blob, _ = three_blobs(rng)
    _, labels = kmeans(points[blob >= 0], 3, rng)
    for b in range(3):
        assert len(set(labels[blob[blob >= 0] == b].tolist())) == 1
    assert len(set(labels.tolist())) == 3


def test_typicality_picks_dense_centres_of_distinct_uncovered_clusters():
    rng = np.random.default_rng(9)
    points, blob, centers = three_blobs(rng)
    log_probs = random_log_probs(rng, len(points), 2, 2)
    selection = run_strategy("typicality", log_probs, 3, points)
    assert sorted(blob[selection.indices].tolist()) == [0, 1, 2]
    for index in selection.indices:
        assert np.linalg.norm(points[index] - centers[blob[index]]) < 1.0
    # A label already inside blob 0 sends the next two picks to the other blobs.
    labeled = centers[:1] + 0.1
    covered = run_strategy("typicality", log_probs, 2, points, labeled)
    assert sorted(blob[covered.indices].tolist()) == [1, 2]


def test_batchbald_chunking_and_single_sample_cases():
    log_probs = random_log_probs(np.random.default_rng(12), 40, 5, 3)
    scores = bald(log_probs)
    whole = select_batchbald(scores, 6, inputs_for(log_probs), dtype=np.float64)
    chunked = select_batchbald(scores, 6, inputs_for(log_probs), dtype=np.float64, chunk_elements=1)
    np.testing.assert_array_equal(whole.indices, chunked.indices)
    np.testing.assert_allclose(whole.scores, chunked.scores, atol=1e-12)
    # A deterministic model (K = 1) carries no information about weights: zero gains, score order.
    single = log_probs[:, :1]
    entropy_scores = SCORES["entropy"](single)
    selection = select_batchbald(entropy_scores, 4, inputs_for(single))
    np.testing.assert_array_equal(selection.indices, np.argsort(-entropy_scores, kind="stable")[:4])
    assert (selection.scores == 0).all()


def test_batchbald_on_a_repeated_pool_takes_distinct_originals():
    # Repeated-MNIST in miniature: 40 items, each present three times. Top-k BALD spends
    # the batch on copies; BatchBALD takes ten different originals. (K = 100 samples: the
    # gains of one batch add up to at most log K nats, so a small K saturates early.)
    rng = np.random.default_rng(0)
    base = log_softmax(
        rng.normal(size=(40, 1, 4)) * 2 + rng.normal(size=(40, 100, 4)) * 1.5, axis=-1
    )
    originals = np.repeat(np.arange(40), 3)
    log_probs = base[originals]
    scores = bald(log_probs)
    assert len(set(originals[SELECTORS["top_k"](scores, 10).indices].tolist())) <= 4
    selection = select_batchbald(scores, 10, inputs_for(log_probs))
    assert len(set(originals[selection.indices].tolist())) == 10
    assert selection.scores.sum() <= np.log(100)
    # Diminishing returns (the objective is submodular), up to the sampled estimate's noise.
    assert (np.diff(selection.scores) <= 1e-2).all()
