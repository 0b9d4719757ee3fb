"""The session end to end on the embedded digits, and every bad input it must name."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

import alwidget as al
from alwidget.errors import (
    AlreadyLabeledError,
    NotEnoughClassesError,
    NotLabeledError,
    PoolExhaustedError,
    StrategyModelMismatchError,
    TrainingInProgressError,
    UnknownItemError,
    UnknownLabelError,
)
from alwidget.experiments.oracle import balanced_initial_ids
from alwidget.training import TrainConfig

FAST = TrainConfig(min_steps=60, max_steps=120, max_epochs=20)


@pytest.fixture(scope="module")
def digits():
    return al.datasets.load_digits()


def oracle(pool, ids):
    return [int(pool.targets[pool.position(i)]) for i in ids]


def test_the_issue_walkthrough(digits):
    # cold_start=False: the strategy ranks from the first query (tests/test_cold_start.py
    # covers the typical, diverse first batches).
    session = al.Session(
        digits, model="small_cnn", strategy="bald", mc_samples=20, seed=0, train_config=FAST,
        cold_start=False,
    )  # fmt: skip
    batch = session.query(10)
    assert len(batch) == 10 and len(set(batch.ids)) == 10
    assert list(batch.scores) == sorted(batch.scores, reverse=True)
    first = batch.items[0]
    assert first.rank == 1 and first.pool_rank == 1 and first.n_scored == len(digits)
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert sum(first.votes.values()) == 20
    assert first.bald == pytest.approx(first.entropy_of_mean - first.mean_entropy, abs=1e-6)
    assert first.predicted in digits.classes

    session.label(batch.ids[:3], ["4", "7", "1"])
    assert session.labels == dict(zip(batch.ids[:3], ["4", "7", "1"]))
    initial = [i for i in balanced_initial_ids(digits, 20, seed=0) if i not in session.labels]
    session.label(initial, oracle(digits, initial))
    report = session.retrain()
    assert report.steps > 0 and report.seconds > 0 and report.n_labels == session.n_labels
    evaluation = session.evaluate()
    assert evaluation["n_test"] == len(digits.test) and 0.3 < evaluation["accuracy"] <= 1.0
    assert session.history[-1]["n_labels"] == session.n_labels
    second = session.query(5)
    assert second.model_version == 1
    assert not set(second.ids) & set(session.labels)


def test_labels_change_the_queue_without_rescoring(digits):
    session = al.Session(digits, strategy="entropy", seed=1, cold_start=False)
    batch = session.query(5)
    session.label(batch.ids[0], int(digits.targets[digits.position(batch.ids[0])]))
    assert session.stale
    again = session.query(5)
    assert again.ids == batch.ids[1:] + again.ids[4:]
    assert not session.stale


def test_undo_removes_the_label(digits):
    session = al.Session(digits, seed=0)
    session.label(3, "5")
    assert session.unlabel(3) == "5"
    assert 3 not in session.labels
    with pytest.raises(NotLabeledError):
        session.unlabel(3)


def test_prioritized_items_jump_the_queue(digits):
    session = al.Session(digits, seed=0)
    session.prioritize([100, 7])
    batch = session.query(4)
    assert batch.ids[:2] == [100, 7] and batch.items[0].prioritized
    session.label(100, "1")
    assert session.query(4).ids[0] == 7


def test_ensembles_feed_the_sample_axis_and_make_bald_possible(digits):
    session = al.Session(
        digits, model="mlp", strategy="bald", ensemble=3, mc_samples=1, seed=0, train_config=FAST
    )
    ids = balanced_initial_ids(digits, 20, seed=0)
    session.label(ids, oracle(digits, ids))
    report = session.retrain()
    assert len(report.members) == 3
    assert session.predict(digits.ids[:4]).shape == (4, 3, 10)
    assert session.query(3).items[0].bald > 0


def test_retrain_in_a_thread_while_labeling_continues(digits):
    session = al.Session(digits, seed=0, train_config=TrainConfig(min_steps=300, max_steps=300))
    ids = balanced_initial_ids(digits, 20, seed=0)
    session.label(ids, oracle(digits, ids))
    progress = []
    worker = threading.Thread(target=session.retrain, kwargs={"progress": progress.append})
    worker.start()
    while not progress:
        worker.join(0.01)
    with pytest.raises(TrainingInProgressError):
        session.retrain()
    batch = session.query(3)  # scoring with the old model still works
    session.label(batch.ids, oracle(digits, batch.ids))
    worker.join()
    assert session.model_version == 1
    assert session.n_labels == 23 and session.labels_since_retrain == 3
    assert progress[-1]["step"] == progress[-1]["total_steps"]


def test_failed_training_keeps_the_old_model(digits):
    session = al.Session(digits, seed=0, train_config=FAST)
    ids = balanced_initial_ids(digits, 20, seed=0)
    session.label(ids, oracle(digits, ids))
    session.retrain()
    before = session.predict(digits.ids[:5])
    with pytest.raises(RuntimeError, match="stop"):
        session.retrain(should_stop=lambda: (_ for _ in ()).throw(RuntimeError("stop now")))
    assert session.model_version == 1
    np.testing.assert_array_equal(before, session.predict(digits.ids[:5]))


def test_score_subset_bounds_the_work(digits):
    session = al.Session(digits, seed=0, score_subset=100, cold_start=False)
    batch = session.query(5)
    assert batch.items[0].n_scored == 100


def test_user_module_and_factory(digits):
    rows = al.Pool(np.random.default_rng(0).normal(size=(60, 5)), targets=np.arange(60) % 3)
    module = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    session = al.Session(rows, module, strategy="bald", seed=0, train_config=FAST)
    assert session.mc_samples == 20
    session.label(list(range(9)), [i % 3 for i in range(9)])
    session.retrain()
    assert session.query(2).items[0].bald >= 0
    factory_session = al.Session(rows, lambda num_classes: nn.Linear(5, num_classes), seed=0)
    assert factory_session.predict([0]).shape == (1, 1, 3)


# ------------------------------------------------------------------- bad input
def test_unknown_or_repeated_ids_and_labels(digits):
    session = al.Session(digits, seed=0)
    with pytest.raises(UnknownItemError, match="999999"):
        session.label(999999, "1")
    with pytest.raises(UnknownLabelError, match="classes are"):
        session.label(1, "eleven")
    with pytest.raises(UnknownLabelError, match="out of range"):
        session.label(1, 10)
    with pytest.raises(ValueError, match="2 ids but 1 labels"):
        session.label([1, 2], ["3"])
    session.label(1, "3")
    with pytest.raises(AlreadyLabeledError, match="already labeled '3'"):
        session.label(1, "4")
    with pytest.raises(AlreadyLabeledError):
        session.label([5, 5], ["1", "1"])
    assert session.labels == {1: "3"}  # a failed call stores nothing


def test_bald_on_a_model_without_dropout_is_refused():
    rows = al.Pool(np.zeros((10, 3)), classes=["a", "b"])
    with pytest.raises(StrategyModelMismatchError, match="no dropout"):
        al.Session(rows, nn.Linear(3, 2), strategy="bald")
    with pytest.raises(StrategyModelMismatchError, match="mc_samples=1"):
        al.Session(rows, "mlp", strategy="bald", mc_samples=1)
    with pytest.raises(StrategyModelMismatchError):
        al.Session(rows, nn.Linear(3, 2), strategy="entropy", mc_samples=5)


def test_one_class_only_cannot_train(digits):
    session = al.Session(digits, seed=0)
    session.label([0, 1], ["3", "3"])
    with pytest.raises(NotEnoughClassesError, match="at least two classes"):
        session.retrain()


def test_exhausted_pool():
    rows = al.Pool(np.random.default_rng(0).normal(size=(4, 3)), classes=["a", "b"])
    session = al.Session(rows, seed=0)
    session.label([0, 1, 2, 3], ["a", "b", "a", "b"])
    with pytest.raises(PoolExhaustedError, match="every one of the 4"):
        session.query()


def test_model_with_the_wrong_output_width():
    rows = al.Pool(np.zeros((10, 3)), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        al.Session(rows, nn.Linear(3, 2))


def test_nan_model_output_is_named(digits):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # trainable, so only the NaN is wrong

        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan")) * self.scale

    session = al.Session(digits, Broken(), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        session.query()


def test_not_a_pool():
    with pytest.raises(TypeError, match="alwidget.Pool"):
        al.Session(np.zeros((3, 3)))


def test_without_a_held_out_split_accuracy_is_cross_validated():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [6.0, 6.0]])
    targets = np.arange(80) % 2
    rows = al.Pool(centers[targets] + rng.normal(size=(80, 2)), targets=targets)
    session = al.Session(rows, seed=0, cv_folds=3, train_config=FAST)
    assert session.evaluate() is None
    session.label(list(range(30)), targets[:30].tolist())
    session.retrain()
    evaluation = session.evaluate()
    assert evaluation["method"].startswith("3-fold") and evaluation["n_test"] == 30
    assert evaluation["accuracy"] > 0.9
    assert session.history[-1]["accuracy"] == evaluation["accuracy"]


def test_a_class_added_while_labeling_is_used_kept_and_resumed(tmp_path):
    rng = np.random.default_rng(0)
    rows = al.Pool(rng.normal(size=(40, 4)), classes=["cat", "dog"])
    store = f"sqlite:///{tmp_path / 'labels.db'}"
    session = al.Session(rows, "mlp", strategy="bald", seed=0, store=store, train_config=FAST)
    before = session.predict([0, 1])
    assert session.add_class("bird") == 2
    after = session.predict([0, 1])
    assert after.shape == (2, 20, 3)
    np.testing.assert_allclose(np.exp(after[..., 2]), 0.0, atol=1e-6)  # no mass until trained
    np.testing.assert_allclose(after[..., :2], before, atol=1e-5)
    session.label([0, 1, 2, 3, 4, 5], ["cat", "dog", "bird", "cat", "dog", "bird"])
    session.retrain()
    assert session.query(3).items[0].probabilities.keys() == {"cat", "dog", "bird"}
    with pytest.raises(ValueError, match="already exists"):
        session.add_class("dog")
    session.close()
    resumed = al.Session(rows, "mlp", strategy="bald", seed=0, store=store, train_config=FAST)
    assert resumed.classes == ["cat", "dog", "bird"]
    assert resumed.labels[2] == "bird" and resumed.model_version == 1
    np.testing.assert_allclose(resumed.predict([7]), session.predict([7]), atol=1e-6)


def test_a_fixed_width_model_cannot_grow():
    rows = al.Pool(np.zeros((10, 3)), classes=["a", "b"])
    session = al.Session(rows, nn.Linear(3, 2), store=False)
    with pytest.raises(ValueError, match="fixed number of outputs"):
        session.add_class("c")


def test_coverage_is_recorded_each_round_and_resumed(digits, tmp_path):
    store = f"sqlite:///{tmp_path / 'labels.db'}"
    session = al.Session(digits, model="mlp", seed=0, train_config=FAST, store=store)
    ids = balanced_initial_ids(digits, 20, seed=0)
    session.label(ids, oracle(digits, ids))
    session.retrain()
    first = session.history[-1]["coverage"]
    assert 0 < first["covered_fraction"] < 1 and first["n_labeled"] == 20
    batch = session.query(30)
    session.label(batch.ids, oracle(digits, batch.ids))
    session.retrain()
    assert session.history[-1]["coverage"]["n_labeled"] == 50
    session.close()
    resumed = al.Session(digits, model="mlp", seed=0, train_config=FAST, store=store)
    assert [entry["coverage"]["n_labeled"] for entry in resumed.history] == [20, 50]


def test_warm_start_continues_from_the_current_weights(digits):
    session = al.Session(
        digits,
        model="mlp",
        seed=0,
        store=False,
        train_config=TrainConfig(min_steps=1, max_steps=1, warm_start=True),
    )
    ids = balanced_initial_ids(digits, 20, seed=0)
    session.label(ids, oracle(digits, ids))
    session.retrain()
    first = {name: value.clone() for name, value in session.model.members[0].state_dict().items()}
    session.retrain()
    # From scratch, the same seed and labels would reproduce the first weights exactly; warm,
    # it is one more Adam step on top of them, two steps away from the initialisation.
    fresh = session.model.fresh_member(0).state_dict()
    moved_from_first = max(
        float((session.model.members[0].state_dict()[k] - first[k]).abs().max()) for k in first
    )
    moved_from_fresh = max(
        float((session.model.members[0].state_dict()[k] - fresh[k]).abs().max()) for k in first
    )
    assert 0 < moved_from_first < moved_from_fresh
