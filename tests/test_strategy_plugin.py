"""A strategy added from outside the package with one call, then used through Session.

The score below is defined here and the package knows nothing of it: the spec's declared
need for MC samples must decide K, refuse a model that cannot give samples, and one query
must rank by exactly this score.
"""

import numpy as np
import pytest

import alwidget as al
from alwidget import strategies
from alwidget.errors import StrategyModelMismatchError


def spread_of_top_class(log_probs_N_K_C):
    """How much the K samples disagree on the probability of the mean's top class."""
    probs_N_K_C = np.exp(log_probs_N_K_C)
    top_N = probs_N_K_C.mean(axis=1).argmax(axis=-1)
    return probs_N_K_C[np.arange(len(top_N)), :, top_N].std(axis=1)


@pytest.fixture
def spread_strategy():
    spec = strategies.register_strategy(
        "top_class_spread", spread_of_top_class, description="MC spread", needs_samples=True
    )
    yield spec
    strategies.unregister_strategy("top_class_spread")


@pytest.fixture(scope="module")
def small_pool():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return al.Pool(digits.data[:300] / 16.0, targets=digits.target[:300])


def test_registered_strategy_ranks_a_session_query(spread_strategy, small_pool):
    assert "top_class_spread" in strategies.available()
    session = al.Session(
        small_pool, "mlp", strategy="top_class_spread", seed=3, store=False, cold_start=False
    )  # the plug-in ranks from the first query (no cold-start picks)
    assert session.mc_samples == 20  # declared needs_samples, no count: the default K
    batch = session.query(8)
    log_probs, scores = session.score_items()  # the same pass the query made (cached)
    assert log_probs.shape == (len(small_pool), 20, len(small_pool.classes))
    np.testing.assert_allclose(scores, spread_of_top_class(log_probs))
    expected = [small_pool.ids[p] for p in np.argsort(-scores, kind="stable")[:8]]
    assert batch.ids == expected
    assert batch.strategy == "top_class_spread"
    assert [item.score for item in batch] == pytest.approx(np.sort(scores)[::-1][:8])


def test_declared_need_for_samples_refuses_a_deterministic_model(spread_strategy, small_pool):
    with pytest.raises(StrategyModelMismatchError, match="top_class_spread.*K > 1"):
        al.Session(small_pool, "mlp", strategy="top_class_spread", mc_samples=1, store=False)


def test_registering_twice_or_with_a_bad_part_is_refused(spread_strategy):
    with pytest.raises(ValueError, match="exists.*replace=True"):
        strategies.register_strategy("top_class_spread", spread_of_top_class)
    with pytest.raises(ValueError, match="selector='no_such'"):
        strategies.register_strategy("other", "entropy", "no_such")
    assert "other" not in strategies.available()


def test_a_score_of_the_wrong_shape_is_named(small_pool):
    strategies.register_strategy("broken", lambda log_probs: np.zeros(3))
    try:
        session = al.Session(small_pool, "mlp", strategy="broken", store=False)
        with pytest.raises(ValueError, match="one finite number per item"):
            session.query(4)
    finally:
        strategies.unregister_strategy("broken")
