"""A Session with a label store: commit before return, resume, export, faults."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch
from pandas.testing import assert_frame_equal

import alwidget as al
from alwidget.store import (
    PoolMismatchError,
    StoreUnavailableError,
    open_store,
    read_export,
)
from alwidget.store.session_link import pool_fingerprint
from alwidget.training import TrainConfig

FAST = TrainConfig(min_steps=30, max_steps=30)


@pytest.fixture(scope="module")
def digits():
    return al.datasets.load_digits()


def oracle(pool, ids):
    return [int(pool.targets[pool.position(i)]) for i in ids]


def make_session(pool, store, **kwargs):
    return al.Session(pool, seed=0, train_config=FAST, store=store, **kwargs)


def test_resume_restores_labels_queue_history_and_predictions(digits, store_url):
    session = make_session(digits, store_url, strategy="bald", mc_samples=4, model="gal_cnn")
    assert session.store.created
    first = digits.ids[:30]
    session.label(first, oracle(digits, first))
    session.unlabel(first[3])
    session.retrain()
    batch = session.query(8)
    session.label(batch.ids[:3], oracle(digits, batch.ids[:3]))
    session.prioritize([digits.ids[100]])
    probe = digits.ids[200:210]
    predictions = session.predict(probe)
    labels, history, version = session.labels, session.history, session.model_version
    session.close()

    resumed = make_session(digits, store_url, strategy="bald", mc_samples=4, model="gal_cnn")
    assert not resumed.store.created
    assert resumed.labels == labels  # same items, labels and labeling order
    assert resumed.history == history
    assert resumed.model_version == version
    assert resumed.labels_since_retrain == 3
    # The prioritized item, then the rest of the batch that was being labeled, come first.
    queue = [digits.ids[100], *(i for i in batch.ids if i not in labels)]
    assert resumed.query(len(queue) + 2).ids[: len(queue)] == queue
    np.testing.assert_array_equal(resumed.predict(probe), predictions)
    resumed.close()


def test_every_label_is_committed_before_label_returns(digits, tmp_path):
    path = tmp_path / "labels.db"
    session = make_session(digits, path)
    session.label(digits.ids[0], oracle(digits, digits.ids[:1])[0])
    with open_store(path) as other:  # another connection, as another process would see it
        assert other.current_labels() == {str(digits.ids[0]): digits.classes[digits.targets[0]]}
    session.unlabel(digits.ids[0])
    with open_store(path) as other:
        assert other.current_labels() == {}
        assert [e.kind for e in other.history()] == ["label", "undo"]
    session.close()


def test_scores_and_strategy_of_the_surfacing_batch_are_recorded(digits):
    # The strategy's own batch (an untrained model's first batches are cold-start picks,
    # recorded under that name: see the end of this test).
    session = make_session(digits, False, strategy="margin", cold_start=False)
    batch = session.query(5)
    session.label(batch.ids[:2], oracle(digits, batch.ids[:2]))
    session.label(digits.ids[-1], oracle(digits, digits.ids[-1:])[0])  # not from a batch
    records = {r.item_key: r for r in session.store.label_records()}
    for item_id, score in zip(batch.ids[:2], batch.scores[:2], strict=True):
        assert records[str(item_id)].score == pytest.approx(float(score))
        assert records[str(item_id)].strategy == "margin"
    assert records[str(digits.ids[-1])].score is None
    cold = make_session(digits, False, strategy="margin")
    picked = cold.query(3).ids[0]
    cold.label(picked, oracle(digits, [picked])[0])
    record = {r.item_key: r for r in cold.store.label_records()}[str(picked)]
    assert record.strategy == "cold start (typical, diverse)"


def test_export_from_a_session_round_trips(digits, tmp_path):
    session = make_session(digits, tmp_path / "s.db", annotator="dr. who")
    session.label(digits.ids[:12], oracle(digits, digits.ids[:12]))
    session.unlabel(digits.ids[5])
    frame = session.to_dataframe()
    assert list(frame["item_key"]) == [str(i) for i in digits.ids[:12] if i != digits.ids[5]]
    assert set(frame["annotator"]) == {"dr. who"}
    for suffix in (".csv", ".json"):
        path = session.export(tmp_path / f"labels{suffix}")
        assert_frame_equal(read_export(path), frame)
    assert len(session.to_dataframe(history=True)) == 13


def test_a_locked_store_refuses_the_label_and_the_session_does_not_keep_it(digits, tmp_path):
    path = tmp_path / "labels.db"
    store = open_store(path, pool_fingerprint=pool_fingerprint(digits), busy_timeout=0.2)
    session = make_session(digits, store)
    session.label(digits.ids[0], 0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailableError, match="not saved"):
        session.label(digits.ids[1], 1)
    with pytest.raises(StoreUnavailableError):
        session.unlabel(digits.ids[0])
    blocker.execute("ROLLBACK")
    blocker.close()
    assert list(session.labels) == [digits.ids[0]]  # the refused label is not shown as saved
    session.label(digits.ids[1], 1)
    assert store.current_labels() == {str(digits.ids[0]): "0", str(digits.ids[1]): "1"}
    session.close()


def test_default_store_is_a_file_named_after_the_pool(digits, tmp_path, monkeypatch):
    monkeypatch.delenv("ALWIDGET_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    session = make_session(digits, None)
    session.label(digits.ids[:2], oracle(digits, digits.ids[:2]))
    session.close()
    expected = tmp_path / f"alwidget-{pool_fingerprint(digits)[:8]}.db"
    assert expected.exists()
    again = make_session(digits, None)
    assert list(again.labels) == digits.ids[:2]
    again.close()
    monkeypatch.setenv("ALWIDGET_STORE", str(tmp_path / "elsewhere.db"))
    make_session(digits, None).close()
    assert (tmp_path / "elsewhere.db").exists()


def test_a_store_of_another_pool_is_refused(digits, tmp_path):
    path = tmp_path / "labels.db"
    make_session(digits, path).close()
    rows = al.Pool(np.zeros((20, 3), dtype=np.float32), classes=["a", "b"])
    with pytest.raises(PoolMismatchError, match="different pool"):
        al.Session(rows, seed=0, store=path)


def test_a_checkpoint_that_does_not_fit_warns_and_keeps_the_labels(digits, tmp_path):
    path = tmp_path / "labels.db"
    session = make_session(digits, path, model="mlp")
    session.label(digits.ids[:20], oracle(digits, digits.ids[:20]))
    session.retrain()
    session.close()
    with pytest.warns(UserWarning, match="does not fit"):
        other = make_session(digits, path, model="small_cnn")
    assert len(other.labels) == 20 and other.model_version == 0
    assert len(other.history) == 1
    other.close()


def test_checkpoints_hold_every_ensemble_member(digits, tmp_path):
    path = tmp_path / "labels.db"
    session = make_session(digits, path, model="mlp", ensemble=2)
    session.label(digits.ids[:20], oracle(digits, digits.ids[:20]))
    session.retrain()
    session.close()
    with open_store(path) as store:
        version, state_dicts = store.load_checkpoint()
    assert version == 1 and len(state_dicts) == 2
    assert not all(
        torch.equal(state_dicts[0][name], state_dicts[1][name]) for name in state_dicts[0]
    )
