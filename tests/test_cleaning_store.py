"""The store's cleaning log on SQLite and PostgreSQL: changes, keeps, "not a class", undo."""

import sqlite3

import pytest
from sqlalchemy import text

from alwidget.store import LabelConflictError, NothingToUndoError, open_store, schema

FINGERPRINT = "0123456789abcdef"
CLASSES = ["cat", "dog", "fox"]


def test_a_change_is_logged_from_what_to_what_and_undo_restores_the_old_label(store_url):
    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        first = store.add_label("7", "cat", annotator="ann")
        change, label = store.change_label(
            "7", "dog", annotator="bob", replaces_event_id=first.event_id, reason="model says dog"
        )
        assert (change.kind, change.from_label, change.to_label) == ("change", "cat", "dog")
        assert change.annotator == "bob" and change.created_at is not None
        assert change.label_event_id == label.event_id and label.strategy == "relabel"
        assert store.current_labels() == {"7": "dog"}
        assert [r.kind for r in store.cleaning_records()] == ["change"]
        # The first label is still in the log, under the change.
        assert [(r.kind, r.label) for r in store.history()] == [("label", "cat"), ("label", "dog")]

        undone = store.undo_change("7", annotator="bob")
        assert undone.event_id == change.event_id
        assert store.current_labels() == {"7": "cat"}
        assert store.cleaning_records() == []
        assert [r.kind for r in store.cleaning_records(history=True)] == ["change", "undo"]
        with pytest.raises(NothingToUndoError):
            store.undo_change("7", annotator="bob")


def test_a_change_of_a_label_replaced_meanwhile_is_refused(store_url):
    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        first = store.add_label("1", "cat")
        store.change_label("1", "fox", replaces_event_id=first.event_id)
        with pytest.raises(NothingToUndoError, match="no longer current"):
            store.change_label("1", "dog", replaces_event_id=first.event_id)
        with pytest.raises(ValueError, match="keep"):
            store.change_label("1", "fox")
        with pytest.raises(NothingToUndoError, match="no label"):
            store.change_label("2", "fox")
        assert store.current_labels() == {"1": "fox"}


def test_keep_and_not_a_class_are_stored_and_undoable(store_url):
    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        store.add_label("3", "dog")
        store.record_decision("3", "keep", label="dog")
        store.record_decision("9", "not_a_class", reason="a scanner artefact")
        with pytest.raises(LabelConflictError, match="undo its label"):
            store.record_decision("3", "not_a_class")
        with pytest.raises(LabelConflictError, match="nothing to keep"):
            store.record_decision("3", "keep", label="cat")
    # Reopened: the decisions are still there.
    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        standing = {(r.item_key, r.kind) for r in store.cleaning_records()}
        assert standing == {("3", "keep"), ("9", "not_a_class")}
        store.undo_decision("9", "not_a_class")
        assert {(r.item_key, r.kind) for r in store.cleaning_records()} == {("3", "keep")}


def test_a_version_1_store_gains_the_cleaning_log_in_place(tmp_path):
    path = tmp_path / "v1.db"
    with open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        store.add_label("1", "cat")
    # Make it a store as version 1 wrote it: no cleaning table.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE cleaning_events")
        conn.execute("UPDATE alwidget_meta SET value = '1' WHERE key = 'schema_version'")
    with open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        assert store.current_labels() == {"1": "cat"}
        store.change_label("1", "dog")
        assert store.current_labels() == {"1": "dog"}
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM alwidget_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == str(schema.SCHEMA_VERSION)


def test_the_database_refuses_an_incomplete_change_row(store_url):
    from sqlalchemy import create_engine

    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES):
        pass
    engine = create_engine(store_url)
    with pytest.raises(Exception, match="cleaning_event_complete|CHECK"):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cleaning_events (item_key, kind, annotator, created_at) "
                    "VALUES ('1', 'change', 'a', CURRENT_TIMESTAMP)"
                )
            )
    engine.dispose()
