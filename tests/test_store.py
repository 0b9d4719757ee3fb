"""Label store: labels, undo, resume and export, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from pandas.testing import assert_frame_equal

from alwidget.store import (
    ClassMismatchError,
    LabelStore,
    default_store_path,
    open_store,
    read_export,
    resolve_store_url,
)

CLASSES = ["cat", "dog", "bird"]
FINGERPRINT = "f00dfeed" * 8


def make_store(url, annotator="ann", classes=CLASSES) -> LabelStore:
    return open_store(url, pool_fingerprint=FINGERPRINT, classes=classes, annotator=annotator)


def test_label_relabel_and_undo_are_an_event_log(store_url):
    with make_store(store_url) as store:
        assert store.created
        first = store.add_label("7", "cat", model_version=1, strategy="bald", score=0.25)
        assert (first.item_key, first.label, first.annotator) == ("7", "cat", "ann")
        assert first.created_at.tzinfo is not None
        store.add_label("8", "dog", model_version=1)
        store.add_label("7", "bird", model_version=2)
        assert store.current_labels() == {"8": "dog", "7": "bird"}

        undone = store.undo_label("7")
        assert undone.label == "bird"
        assert store.current_labels() == {"7": "cat", "8": "dog"}
        store.undo_label("7")
        assert store.current_labels() == {"8": "dog"}
        with pytest.raises(LookupError, match="no label on item '7'"):
            store.undo_label("7")

        kinds = [(event.kind, event.item_key, event.label) for event in store.history()]
        assert kinds == [
            ("label", "7", "cat"),
            ("label", "8", "dog"),
            ("label", "7", "bird"),
            ("undo", "7", None),
            ("undo", "7", None),
        ]
        undo_targets = [e.undoes_event_id for e in store.history() if e.kind == "undo"]
        assert undo_targets == [3, 1]
        assert store.counts()["undo_events"] == 2


def test_bad_input_is_refused_with_clear_errors(tmp_path):
    with make_store(tmp_path / "s.db") as store:
        with pytest.raises(TypeError, match=r"str\(item_id\)"):
            store.add_label(7, "cat")
        with pytest.raises(ValueError, match="not one of the store's classes"):
            store.add_label("7", "horse")
        with pytest.raises(ValueError, match="non-empty"):
            store.add_label("7", "")
        with pytest.raises(TypeError, match="score must be a number"):
            store.add_label("7", "cat", score="high")
        with pytest.raises(TypeError, match="JSON-serialisable"):
            store.record_round({"model": object()})
        with pytest.raises(TypeError, match="only tensors"):
            store.save_checkpoint(1, [{"w": object()}])
        assert store.current_labels() == {}
        # NaN scores are stored as missing, identically on both backends.
        assert store.add_label("7", "cat", score=float("nan")).score is None


def test_current_labels_take_the_majority_of_annotators(store_url):
    with make_store(store_url) as store:
        store.add_label("1", "cat", annotator="a")
        store.add_label("1", "dog", annotator="b")
        store.add_label("1", "dog", annotator="c")
        store.add_label("2", "cat", annotator="a")
        store.add_label("2", "bird", annotator="b")  # tie: the later label wins
        assert store.current_labels() == {"1": "dog", "2": "bird"}
        assert store.current_labels(annotator="a") == {"1": "cat", "2": "cat"}
        store.undo_label("1", annotator="c")
        assert store.current_labels()["1"] == "dog"  # tie between a and b: b is later


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )


def test_resume_restores_labels_history_queue_and_checkpoint(store_url):
    model = _model()
    model.train()
    model(torch.randn(16, 5))  # moves BatchNorm's running statistics away from the defaults
    model.eval()
    inputs = torch.randn(10, 5)
    predictions = model(inputs).detach()
    second = torch.nn.Linear(2, 2)
    rounds = [
        {"model_version": 1, "n_labels": 20, "accuracy": 0.8125, "seconds": {"train": 1.5}},
        {"model_version": 2, "n_labels": 30, "accuracy": np.float64(1 / 3), "sizes": np.arange(3)},
    ]
    with make_store(store_url) as store:
        for i in range(25):
            store.add_label(str(i), CLASSES[i % 3], model_version=i // 10, strategy="bald",
                            score=i / 7)  # fmt: skip
        store.undo_label("3")
        for entry in rounds:
            store.record_round(entry)
        store.save_queue(["30", "31", "29"])
        store.save_queue(["40", "41"], annotator="someone-else")
        store.save_checkpoint(1, [second.state_dict()])
        store.save_checkpoint(2, [model.state_dict(), second.state_dict()])
        labels_before = store.current_labels()
        history_before = store.history()

    with make_store(store_url) as resumed:
        assert not resumed.created
        assert resumed.current_labels() == labels_before
        assert resumed.history() == history_before
        assert resumed.rounds() == [
            rounds[0],
            {"model_version": 2, "n_labels": 30, "accuracy": 1 / 3, "sizes": [0, 1, 2]},
        ]
        assert resumed.load_queue() == ["30", "31", "29"]
        assert resumed.load_queue(annotator="someone-else") == ["40", "41"]
        assert resumed.counts()["checkpoints"] == 1  # keep=1 dropped the older one
        version, state_dicts = resumed.load_checkpoint()
    assert version == 2 and len(state_dicts) == 2
    originals = (model.state_dict(), second.state_dict())
    for saved, loaded in zip(originals, state_dicts, strict=True):
        assert list(saved) == list(loaded)
        for name in saved:
            assert loaded[name].dtype == saved[name].dtype
            assert torch.equal(loaded[name], saved[name]), name
    restored = _model()
    restored.load_state_dict(state_dicts[0])
    restored.eval()
    assert torch.equal(restored(inputs).detach(), predictions)


def test_empty_store_has_no_checkpoint_queue_or_history(store_url):
    with make_store(store_url) as store:
        assert store.load_checkpoint() is None
        assert store.load_queue() == []
        assert store.rounds() == []
        assert store.current_labels() == {}


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
@pytest.mark.parametrize("history", [False, True])
def test_export_round_trips(store_url, tmp_path, suffix, history):
    with make_store(store_url) as store:
        store.add_label("a,1", "cat", model_version=0, strategy="random", score=0.1)
        store.add_label('quote"2', "dog", annotator="zoë", model_version=3, score=1 / 3)
        store.add_label("3", "bird")  # no version, strategy or score
        store.add_label("4", "cat", score=float("inf"), strategy="entropy")
        store.undo_label("3")
        frame = store.to_dataframe(history=history)
        path = store.export(tmp_path / f"labels{suffix}", history=history)
    assert len(frame) == (5 if history else 3)
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert_frame_equal(read_export(path), frame)
    if suffix == ".json":
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        assert document["classes"] == CLASSES
        assert document["pool_fingerprint"] == FINGERPRINT
    if not history:
        assert list(frame["item_key"]) == ["a,1", 'quote"2', "4"]


def test_export_refuses_unknown_formats(tmp_path):
    with make_store(tmp_path / "s.db") as store:
        with pytest.raises(ValueError, match=r"\.csv, \.json, \.jsonl"):
            store.export(tmp_path / "labels.xlsx")
    assert not (tmp_path / "labels.xlsx").exists()


def test_classes_may_grow_but_labels_in_use_must_stay(tmp_path):
    path = tmp_path / "s.db"
    with make_store(path) as store:
        store.add_label("1", "dog")
    with make_store(path, classes=[*CLASSES, "fish"]) as store:
        store.add_label("2", "fish")
    with make_store(path, classes=None) as store:
        assert store.classes == [*CLASSES, "fish"]
    with pytest.raises(ClassMismatchError, match=r"\['dog', 'fish'\]"):
        make_store(path, classes=["cat", "bird"])
    with make_store(path, classes=None) as store:
        with pytest.raises(ClassMismatchError):
            store.set_classes(["cat"])
        store.set_classes(["dog", "fish", "cat", "bird", "cow"])
        store.add_label("3", "cow")


def test_store_argument_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_store_path("0123456789abcdef") == tmp_path / "alwidget-01234567.db"
    assert (
        resolve_store_url(None, "0123456789abcdef") == f"sqlite:///{tmp_path}/alwidget-01234567.db"
    )
    assert resolve_store_url(False) == "sqlite://"
    assert resolve_store_url(":memory:") == "sqlite://"
    assert resolve_store_url("labels.db") == f"sqlite:///{tmp_path}/labels.db"
    assert resolve_store_url(tmp_path / "x.db") == f"sqlite:///{tmp_path}/x.db"
    assert resolve_store_url("postgresql://u:pw@db.example/labels").startswith(
        "postgresql+psycopg://u:pw@db.example/labels"
    )
    with pytest.raises(ValueError, match="SQLite .* or PostgreSQL"):
        resolve_store_url("mysql://u@h/db")
    with pytest.raises(TypeError, match="store must be"):
        resolve_store_url(42)

    with open_store(None, pool_fingerprint="0123456789abcdef", classes=CLASSES) as store:
        store.add_label("1", "cat")
    assert (tmp_path / "alwidget-01234567.db").exists()
    with open_store(False, classes=CLASSES) as store:
        store.add_label("1", "cat")
        assert store.current_labels() == {"1": "cat"}


@pytest.mark.parametrize("where", ["memory", "file"])
def test_threads_share_one_store(tmp_path, where):
    url = False if where == "memory" else tmp_path / "t.db"
    with make_store(url) as store:

        def label_range(start: int) -> None:
            for i in range(start, start + 40):
                store.add_label(str(i), CLASSES[i % 3])
                if i % 10 == 0:
                    store.record_round({"i": i})

        threads = [threading.Thread(target=label_range, args=(k * 100,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.current_labels()) == 160
        assert len(store.rounds()) == 16


def test_add_labels_saves_all_or_nothing(store_url):
    with make_store(store_url) as store:
        with pytest.raises(ValueError, match="horse"):
            store.add_labels(
                [{"item_key": "1", "label": "cat"}, {"item_key": "2", "label": "horse"}]
            )
        with pytest.raises(TypeError, match="unknown label fields"):
            store.add_labels([{"item_key": "1", "label": "cat", "confidence": 1}])
        assert store.current_labels() == {}
        records = store.add_labels(
            [{"item_key": "1", "label": "cat", "score": 0.5}, {"item_key": "2", "label": "dog"}]
        )
        assert [r.event_id for r in records] == [1, 2]
        assert store.current_labels() == {"1": "cat", "2": "dog"}


def test_a_batch_failing_midway_leaves_nothing_behind(tmp_path):
    import sqlite3

    path = tmp_path / "s.db"
    with open_store(path, classes=CLASSES) as store:
        store.enqueue([("1", 1.0), ("2", 1.0)])
        with sqlite3.connect(path) as conn:  # the database refuses the second row
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON label_events WHEN NEW.item_key = '2' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        with pytest.raises(Exception, match="refused"):
            store.add_labels([{"item_key": "1", "label": "cat"}, {"item_key": "2", "label": "dog"}])
        assert store.current_labels() == {} and store.team_progress()["unlabeled_items"] == 2


def test_a_round_can_be_completed_after_it_was_recorded(store_url):
    with make_store(store_url) as store:
        store.record_round({"model_version": 1, "accuracy": 0.5})
        store.record_round({"model_version": 2, "accuracy": 0.6})
        assert store.update_round(1, {"model_version": 1, "accuracy": 0.5, "coverage": 0.9})
        assert not store.update_round(7, {"model_version": 7})
        assert store.rounds() == [
            {"model_version": 1, "accuracy": 0.5, "coverage": 0.9},
            {"model_version": 2, "accuracy": 0.6},
        ]
