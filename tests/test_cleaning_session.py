"""Cleaning through the session: suspects, relabel and keep as stored events, "not a class"."""

import numpy as np
import pytest

import alwidget as al
from alwidget.errors import AlreadyLabeledError, InvalidArgumentError
from alwidget.session.cleaning import SuspectDetail

FAST = al.TrainConfig(max_steps=60, min_steps=40, lr=1e-2)
CENTRES = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
FLIPS = {4: "b", 23: "c", 41: "a", 57: "b"}  # item -> the wrong label given


def blobs_pool(outlier: bool = False) -> al.Pool:
    """Three well separated blobs of 20 items (ids 0-59), plus a far outlier (id 60)."""
    rng = np.random.default_rng(3)
    rows = np.repeat(CENTRES, 20, axis=0) + rng.normal(scale=0.6, size=(60, 2))
    targets = np.repeat(np.arange(3), 20)
    if outlier:
        rows = np.vstack([rows, [[40.0, -40.0]]])
        targets = np.append(targets, 0)
    return al.Pool(rows.astype(np.float32), targets=targets, classes=["a", "b", "c"])


def noisy_session(store, pool=None, *, label_all=True) -> al.Session:
    pool = pool or blobs_pool()
    session = al.Session(
        pool, model="mlp", store=store, train_config=FAST, cv_folds=0, seed=0,
        track_coverage=False,
    )  # fmt: skip
    if label_all and not session.n_labels:
        ids = list(range(60))
        given = [FLIPS.get(i, "abc"[i // 20]) for i in ids]
        session.label(ids, given)
    return session


def test_flips_rank_first_and_a_relabel_is_a_stored_undoable_event(store_url):
    session = noisy_session(store_url)
    suspects = session.label_issues(folds=3)
    assert {s.id for s in suspects[: len(FLIPS)]} == set(FLIPS)
    first = suspects[0]
    assert first.given == FLIPS[first.id] and first.predicted == "abc"[first.id // 20]
    assert first.reason.startswith(f"you said {first.given} · model says {first.predicted}, p = ")
    assert f"of {first.n_folds} folds agree" in first.reason and first.n_folds == 3

    change = session.relabel(first.id, first.predicted, annotator="reviewer")
    assert (change.from_label, change.to_label, change.annotator) == (
        first.given, first.predicted, "reviewer",
    )  # fmt: skip
    assert session.labels[first.id] == first.predicted
    assert session.store.current_labels()[str(first.id)] == first.predicted
    assert first.id not in {s.id for s in session.label_issues(folds=3)}  # reviewed

    assert session.unlabel(first.id) == first.predicted  # undoes the change, not the label
    assert session.labels[first.id] == first.given
    assert session.store.current_labels()[str(first.id)] == first.given
    kinds = [(r.kind, r.item_key) for r in session.store.cleaning_records(history=True)]
    assert kinds == [("change", str(first.id)), ("undo", str(first.id))]
    session.close()


def test_a_kept_suspect_is_not_asked_again_even_after_reopening(tmp_path):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    session = noisy_session(url)
    kept = session.label_issues(folds=3)[0]
    session.keep(kept.id)
    assert kept.id not in {s.id for s in session.label_issues(folds=3)}
    session.relabel(57, "c")
    session.close()

    reopened = noisy_session(url)
    assert reopened.labels[57] == "c" and reopened.labels[kept.id] == kept.given
    ids = {s.id for s in reopened.label_issues(folds=3)}
    assert kept.id not in ids and 57 not in ids
    assert kept.id in {s.id for s in reopened.label_issues(folds=3, include_kept=True)}
    reopened.close()


def test_query_mixes_suspects_in_front_and_relabel_is_checked():
    session = noisy_session(False)
    session.retrain()
    with pytest.raises(InvalidArgumentError, match="relabel must be a share"):
        session.query(4, relabel=1.5)
    session.relabel_fraction = 0.5
    session.unlabel(59)  # something new to query besides suspects
    batch = session.query(2)
    assert isinstance(batch.items[0], SuspectDetail) and batch.ids[0] in FLIPS
    assert batch.items[0].suspect.reason.startswith("you said")
    assert batch.ids[1] == 59 and not isinstance(batch.items[1], SuspectDetail)
    assert [item.rank for item in batch.items] == [1, 2]


def test_a_not_a_class_item_is_never_queried_nor_labeled_nor_trained_on(tmp_path):
    url = f"sqlite:///{tmp_path / 'labels.db'}"
    pool = blobs_pool(outlier=True)
    session = noisy_session(url, pool)
    for item_id in (58, 59):
        session.unlabel(item_id)
    session.retrain()
    odd = session.out_of_distribution(3)
    assert odd[0]["id"] == 60 and odd[0]["sparsity"] > 5
    with pytest.raises(InvalidArgumentError, match="undo their labels"):
        session.mark_not_a_class([60, 3])  # 3 is labeled: nothing is marked
    assert session.not_a_class_ids == []
    session.mark_not_a_class([60], reason="not a blob")
    assert set(session.query(2).ids) == {58, 59}
    assert 60 not in session.unlabeled_ids
    with pytest.raises(AlreadyLabeledError, match="not a class"):
        session.label(60, "a")
    session.retrain()
    assert 60 not in session.labeled_ids
    session.close()

    reopened = noisy_session(url, pool)
    assert reopened.not_a_class_ids == [60]
    assert 60 not in reopened.query(2).ids
    assert all(entry["id"] != 60 for entry in reopened.out_of_distribution(5))
    reopened.unmark_not_a_class([60])
    assert 60 in reopened.unlabeled_ids
    reopened.close()


def test_in_team_mode_items_annotators_disagree_on_are_suspects_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    pool = blobs_pool()

    def member(name):
        return al.Session(
            pool, model="mlp", store=url, annotator=name, team=True, overlap=2,
            train_config=FAST, cv_folds=0, seed=0, track_coverage=False,
        )  # fmt: skip

    alice, bob = member("alice"), member("bob")
    alice.label(list(range(60)), ["abc"[i // 20] for i in range(60)])
    bob.label([5, 6], ["c", "a"])  # item 5 disagrees with alice, item 6 agrees
    alice.refresh_labels()
    suspects = alice.label_issues(folds=3)
    assert suspects[0].id == 5 and suspects[0].source == "annotators disagree"
    assert suspects[0].votes == {"alice": "a", "bob": "c"}
    assert "annotators disagree" in suspects[0].reason
    assert 6 not in {s.id for s in suspects}
    alice.close()
    bob.close()


def test_progress_reports_every_fold_and_a_stricter_list_keeps_labels_even_in_fold_models_doubt():
    session = noisy_session(False)
    reports = []
    suspects = session.label_issues(folds=3, progress=reports.append)
    assert {report["fold"] for report in reports} == {0, 1, 2}
    assert {r["folds_done"] for r in reports} == {0, 1, 2, 3} and reports[-1]["folds_done"] == 3
    assert all(0 <= s.in_fold_disagreeing <= 2 for s in suspects)
    # Most 60-step models that trained on a flipped label still do not take it up.
    assert len({s.id for s in suspects if s.in_fold_disagreeing >= 1} & set(FLIPS)) >= 2
    for k in (1, 2):
        strict = session.label_issues(folds=3, min_in_fold_disagreeing=k)  # no new training
        assert [s.id for s in strict] == [s.id for s in suspects if s.in_fold_disagreeing >= k]
    assert session.label_issues(folds=3, min_in_fold_disagreeing=3) == []  # only 2 in-fold
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="min_in_fold_disagreeing must be"):
            session.label_issues(folds=3, min_in_fold_disagreeing=bad)
