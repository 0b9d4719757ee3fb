"""A training run that diverges never replaces a good model (issue 13, item 6)."""

import numpy as np
import pytest

import alwidget as al
from alwidget.errors import TrainingRejectedError


def test_a_diverged_run_keeps_the_current_model_and_says_why():
    pool = al.datasets.load_digits()
    session = al.Session(pool, model="mlp", store=False, cv_folds=0)
    rng = np.random.default_rng(0)
    for position in rng.choice(len(pool), 100, replace=False):
        session.label(pool.ids[position], pool.classes[pool.targets[position]])
    session.retrain()
    good = session.evaluate()["accuracy"]
    before = session.predict(pool.ids[:50], mc_samples=1)
    history = len(session.history)
    session.train_config = al.TrainConfig(lr=1e3)
    with pytest.raises(TrainingRejectedError, match="current model is kept"):
        session.retrain()
    assert session.model_version == 1 and len(session.history) == history
    np.testing.assert_array_equal(session.predict(pool.ids[:50], mc_samples=1), before)
    assert session.evaluate()["accuracy"] == good > 0.8
    session.train_config = al.TrainConfig()
    session.retrain()  # a sane run after it is installed as usual
    assert session.model_version == 2
