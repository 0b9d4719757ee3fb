"""Active learning must pay off: on the embedded digits, after 5 rounds of 10, uncertainty
sampling beats random on average over three seeds (same seeds, same initial labels)."""

import numpy as np
import pytest

import alwidget as al
from alwidget.experiments.simulate import simulate


@pytest.fixture(scope="module")
def final_accuracy():
    pool = al.datasets.load_digits()
    results = {}
    for strategy in ("random", "entropy", "bald"):
        results[strategy] = [
            simulate(pool, strategy=strategy, initial=20, batch_size=10, rounds=5, seed=seed)[
                "final_accuracy"
            ]
            for seed in (0, 1, 2)
        ]
    return results


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["entropy", "bald"])
def test_uncertainty_beats_random_at_equal_labels(final_accuracy, strategy):
    assert np.mean(final_accuracy[strategy]) > np.mean(final_accuracy["random"]) + 0.01, (
        final_accuracy
    )
