"""The store never loses or moves a label (issue 13): typed ids, content fingerprints, two
sessions of one annotator, formula-safe CSV, and clear errors for hand-edited stores."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import warnings

import numpy as np
import pytest
import torch
from pandas.testing import assert_frame_equal

import alwidget as al
from alwidget.errors import AlreadyLabeledError, AlwidgetError, NotLabeledError
from alwidget.store import (
    ExportFileError,
    LabelConflictError,
    NothingToUndoError,
    PoolFingerprintWarning,
    PoolMismatchError,
    StoreCorruptedError,
    StoreError,
    StoreLocationError,
    open_store,
    read_export,
    rebind_store,
)
from alwidget.store.connection import default_store_path
from alwidget.store.session_link import ids_fingerprint, pool_fingerprint


def rows(seed: int, n: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def session(pool, store, **kwargs):
    return al.Session(pool, "mlp", store=store, cv_folds=0, **kwargs)


def meta(path) -> dict:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM alwidget_meta"))


def edit(path, sql: str, *params) -> None:
    """Change a store behind alwidget's back, as a user with a SQLite browser would."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """A notebook folder with no $ALWIDGET_STORE, so sessions use their default file."""
    monkeypatch.delenv("ALWIDGET_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------- 1. ids that print alike
def test_typed_ids_keep_their_labels_and_ids_that_read_alike_are_refused(tmp_path):
    path = tmp_path / "labels.db"
    mixed = al.Pool(rows(0, 4), classes=["a", "b"], ids=[1, "2", 3, "x"])
    first = session(mixed, path)
    first.label([1, "2"], ["a", "b"])
    first.unlabel(1)
    first.label(1, "b")
    first.close()
    again = session(al.Pool(rows(0, 4), classes=["a", "b"], ids=[1, "2", 3, "x"]), path)
    assert again.labels == {"2": "b", 1: "b"}  # each label on its own item, ids typed
    assert [type(item_id) for item_id in again.labels] == [str, int]
    again.close()
    with pytest.raises(ValueError, match="both read '1'"):
        al.Pool(rows(0, 3), classes=["a", "b"], ids=[1, "1", 2])
    with pytest.raises(AlwidgetError, match="ids must be ints or non-empty strings"):
        al.Pool(rows(0, 2), classes=["a", "b"], ids=[None, "None"])


# ---------------------------------------------------------- 2. the pool fingerprint is content
def test_same_size_pools_in_one_folder_get_separate_default_stores(in_tmp):
    data = rows(1, 200)
    customers = al.Pool(data, classes=["churn", "stay"], name="customers")
    sensors = al.Pool(rows(2, 200), classes=["ok", "fault"], name="sensors")
    first = session(customers, None)
    first.label([0, 1], ["churn", "stay"])
    first.close()
    with pytest.warns(UserWarning, match="rebind_store"):  # customers' file names these ids
        second = session(sensors, None)
    assert second.labels == {} and second.classes == ["ok", "fault"]
    assert second.store.name != first.store.name
    second.close()
    with pytest.raises(PoolMismatchError, match="different pool"):
        session(sensors, in_tmp / f"alwidget-{pool_fingerprint(customers)[:8]}.db")
    # The notebook re-run: the pool rebuilt from the same values finds its labels.
    rebuilt = al.Pool(np.array(data.tolist(), dtype=np.float32), classes=["churn", "stay"])
    again = session(rebuilt, None)
    assert again.labels == {0: "churn", 1: "stay"} and again.store.name == first.store.name
    again.close()


def old_store(path, pool, labels: dict) -> None:
    """A store as alwidget wrote it before content fingerprints: keyed on kind, size, ids."""
    with open_store(path, pool_fingerprint=ids_fingerprint(pool), classes=pool.classes) as store:
        for item_id, label in labels.items():
            store.add_label(str(item_id), label)


def test_an_old_store_is_upgraded_once_to_the_content_of_the_pool_that_opens_it(tmp_path):
    path = tmp_path / "labels.db"
    pool = al.Pool(rows(4), classes=["a", "b"])
    old_store(path, pool, {3: "a", 5: "b"})
    with pytest.warns(PoolFingerprintWarning, match="older alwidget"):
        first = session(pool, path)
    assert first.labels == {3: "a", 5: "b"}
    first.close()
    assert meta(path)["pool_fingerprint"] == pool_fingerprint(pool)
    assert meta(path)["former_pool_fingerprint"].startswith(ids_fingerprint(pool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the upgrade happens once
        session(pool, path).close()
    same_ids = al.Pool(rows(5), classes=["a", "b"])
    with pytest.raises(PoolMismatchError, match="different pool"):
        session(same_ids, path)


def test_an_old_store_of_other_classes_is_not_taken_over(tmp_path):
    path = tmp_path / "labels.db"
    customers = al.Pool(rows(1, 200), classes=["churn", "stay"])
    old_store(path, customers, {0: "churn"})
    sensors = al.Pool(rows(2, 200), classes=["ok", "fault"])
    with pytest.raises(PoolMismatchError, match="another dataset's labels"):
        session(sensors, path)
    assert meta(path)["pool_fingerprint"] == ids_fingerprint(customers)  # left untouched


def test_an_old_default_file_is_found_and_other_pools_get_their_own(in_tmp):
    customers = al.Pool(rows(1, 200), classes=["yes", "no"])
    sensors = al.Pool(rows(2, 200), classes=["yes", "no"])
    old_file = default_store_path(ids_fingerprint(customers))
    old_store(old_file, customers, {0: "yes"})
    with pytest.warns(PoolFingerprintWarning):
        first = session(customers, None)  # the notebook re-run after upgrading alwidget
    assert first.labels == {0: "yes"} and first.store.name.endswith(old_file.name)
    first.close()
    again = session(customers, None)
    assert again.labels == {0: "yes"}
    again.close()
    with pytest.warns(UserWarning, match=old_file.name):
        other = session(sensors, None)  # same ids, same classes, other content
    assert other.labels == {} and not other.store.name.endswith(old_file.name)
    other.close()


def test_rebind_store_ties_a_store_to_its_items_after_their_content_changed(tmp_path):
    path = tmp_path / "labels.db"
    data = rows(6)
    first = session(al.Pool(data, classes=["a", "b"]), path)
    first.label([1, 2], ["a", "b"])
    first.close()
    moved = al.Pool(data + 1e-3, classes=["a", "b"])
    with pytest.raises(PoolMismatchError, match="rebind_store"):
        session(moved, path)
    with pytest.raises(PoolMismatchError, match="not in this pool"):
        rebind_store(path, al.Pool(rows(6, 2), classes=["a", "b"]))
    assert rebind_store(path, moved) == pool_fingerprint(al.Pool(data, classes=["a", "b"]))
    again = session(moved, path)
    assert again.labels == {1: "a", 2: "b"}
    again.close()


def test_image_files_copied_elsewhere_keep_their_labels(in_tmp):
    from PIL import Image

    def folder(name: str) -> list:
        (in_tmp / name).mkdir(parents=True)
        for index in range(6):
            pixels = np.full((8, 8), index * 40, dtype=np.uint8)
            Image.fromarray(pixels).save(in_tmp / name / f"{index}.png")
        return sorted((in_tmp / name).glob("*.png"))

    first = session(al.Pool(folder("photos"), classes=["dark", "light"]), None)
    first.label([0, 5], ["dark", "light"])
    first.close()
    # The same files under another folder (a moved project): relative paths and sizes match.
    copied = al.Pool(folder("moved/photos"), classes=["dark", "light"])
    resumed = session(copied, None)
    assert resumed.labels == {0: "dark", 5: "light"}
    resumed.close()
    # Other files of the same names get their own store.
    (in_tmp / "other").mkdir()
    for index in range(6):
        Image.fromarray(np.full((9, 9), 3, dtype=np.uint8)).save(in_tmp / "other" / f"{index}.png")
    other = session(
        al.Pool(sorted((in_tmp / "other").glob("*.png")), classes=["dark", "light"]), None
    )
    assert other.labels == {}
    other.close()


def test_a_store_object_of_another_pool_is_refused(tmp_path):
    path = tmp_path / "labels.db"
    session(al.Pool(rows(7), classes=["a", "b"]), path).close()
    with (
        open_store(path) as store,
        pytest.raises(PoolMismatchError, match="different pool"),
    ):
        session(al.Pool(rows(8), classes=["a", "b"]), store)


# ------------------------------------------------------------ 4. two sessions, one annotator
def test_a_second_session_cannot_label_an_item_the_first_labeled(store_url):
    pool = al.Pool(rows(9), classes=["a", "b"])
    path = store_url
    first, second = session(pool, path), session(pool, path)
    first.label(0, "a")
    with pytest.raises(AlreadyLabeledError, match="another session") as refused:
        second.label([5, 0], ["b", "b"])
    assert isinstance(refused.value, LabelConflictError)
    assert second.labels == {0: "a"}  # it now shows the store's label, and saved nothing
    assert first.store.current_labels() == {"0": "a"}
    second.label(5, "b")
    first.close(), second.close()


def test_undo_targets_the_label_this_session_wrote(store_url):
    pool = al.Pool(rows(10), classes=["a", "b"])
    path = store_url
    first = session(pool, path)
    first.label(0, "a")
    second = session(pool, path)
    assert second.unlabel(0) == "a"
    second.label(0, "b")
    with pytest.raises(NotLabeledError, match="no longer current") as refused:
        first.unlabel(0)
    assert isinstance(refused.value, NothingToUndoError)
    assert first.labels == {0: "b"}  # it now shows what the store holds
    fresh = session(pool, path)
    assert fresh.labels == {0: "b"}
    assert first.unlabel(0) == "b"  # the event it now knows is undone, not another
    assert fresh.store.current_labels() == {}
    for each in (first, second, fresh):
        each.close()


def test_team_sessions_of_one_annotator_neither_double_label_nor_cross_undo(tmp_path):
    pool = al.Pool(rows(11), classes=["a", "b"])
    url = f"sqlite:///{tmp_path / 'team.db'}"

    def member():
        return session(pool, url, annotator="ann", team=True, overlap=2, seed=0)

    first, second = member(), member()
    batch = second.query(3)  # handed out, so second does not re-read the item before labeling
    first.label(batch.ids[0], "a")
    with pytest.raises(LabelConflictError, match="from 'ann'"):
        second.label(batch.ids[0], "b")
    assert second.my_labels == {batch.ids[0]: "a"}
    assert second.unlabel(batch.ids[0]) == "a"
    second.label(batch.ids[0], "b")
    with pytest.raises(NothingToUndoError):
        first.unlabel(batch.ids[0])
    assert first.my_labels == {batch.ids[0]: "b"}
    with open_store(url) as store:
        assert store.current_labels() == {str(batch.ids[0]): "b"}
    first.close(), second.close()


# ----------------------------------------------------------------------- 7. formula-safe CSV
def test_csv_export_escapes_formulas_and_reads_back_exactly(tmp_path):
    ids = ['=HYPERLINK("http://x","y")', "+1", "-2", "@A1", "'quoted", "\tx", "plain"]
    pool = al.Pool(rows(12, len(ids)), classes=["=1+1", "@SUM(A1)", "ok"], ids=ids)
    labeling = session(pool, False, annotator="=cmd|' /C calc'!A0")
    labeling.label(ids, ["=1+1", "@SUM(A1)", "ok", "ok", "=1+1", "ok", "ok"])
    store = labeling.store
    store.add_label("plain", "ok", annotator="-x", score=-0.5)
    path = labeling.export(tmp_path / "labels.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert not [cell for cell in cells if cell[:1] == "-" and cell != "-0.5"]
    assert "'=1+1" in cells and "''quoted" in cells and "-0.5" in cells  # numbers stay numbers
    assert_frame_equal(read_export(path), labeling.to_dataframe())
    history = labeling.export(tmp_path / "history.csv", history=True)
    assert_frame_equal(read_export(history), labeling.to_dataframe(history=True))


# ------------------------------------------------------- mistakes get store errors, labels stay
def test_a_malformed_store_url_is_a_store_error():
    for url in ("://", "sqlite://:x", "postgresql+nodriver://user:secret@host/db"):
        with pytest.raises(StoreLocationError, match="names no label store") as raised:
            open_store(url)
        assert isinstance(raised.value, ValueError) and "secret" not in str(raised.value)
    with pytest.raises(StoreLocationError):
        session(al.Pool(rows(13), classes=["a", "b"]), "://")


def labeled_store(path, **kwargs):
    pool = al.Pool(rows(14), classes=["a", "b"])
    labeling = session(pool, path, **kwargs)
    labeling.label([2, 3], ["a", "b"])
    return pool, labeling


def test_a_damaged_checkpoint_or_history_is_warned_about_and_the_labels_resume(tmp_path):
    path = tmp_path / "labels.db"
    pool, labeling = labeled_store(path)
    labeling.retrain()
    labeling.close()
    edit(path, "UPDATE checkpoints SET payload = x''")
    edit(path, "UPDATE rounds SET data = '{oops'")
    with open_store(path) as store:
        with pytest.raises(StoreCorruptedError, match="checkpoint cannot be loaded"):
            store.load_checkpoint()
        with pytest.raises(StoreCorruptedError, match="round 1 .* not a JSON object"):
            store.rounds()
    with pytest.warns(UserWarning) as caught:
        resumed = session(pool, path)
    assert {"learning history" in str(w.message) for w in caught} == {True, False}
    assert resumed.labels == {2: "a", 3: "b"} and resumed.model_version == 0
    resumed.close()
    with open_store(path) as store:  # sound checkpoints still load
        store.save_checkpoint(2, [{"w": torch.ones(2)}, {"w": torch.zeros(2)}])
        version, state_dicts = store.load_checkpoint()
    assert version == 2 and torch.equal(state_dicts[1]["w"], torch.zeros(2))
    not_a_list = io.BytesIO()
    torch.save({"w": torch.ones(1)}, not_a_list)  # one state dict, not a list of them
    edit(path, "UPDATE checkpoints SET payload = ?", not_a_list.getvalue())
    with open_store(path) as store, pytest.raises(StoreCorruptedError, match="not a list"):
        store.load_checkpoint()


def test_hand_edited_classes_are_a_store_error_and_keep_the_labels(tmp_path):
    path = tmp_path / "labels.db"
    pool, labeling = labeled_store(path)
    labeling.close()
    for text in ('["a",', '{"a": 1}', '["a", ""]'):
        edit(path, "UPDATE alwidget_meta SET value = ? WHERE key = 'classes'", text)
        with pytest.raises(StoreCorruptedError, match=r"alwidget_meta \(key 'classes'\)"):
            session(pool, path)
    edit(path, "UPDATE alwidget_meta SET value = '[\"a\", \"b\"]' WHERE key = 'classes'")
    assert session(pool, path).labels == {2: "a", 3: "b"}


def test_a_stored_label_that_is_not_a_class_is_a_store_error_until_fixed(tmp_path):
    path = tmp_path / "labels.db"
    pool, labeling = labeled_store(path)
    labeling.close()
    edit(path, "UPDATE label_events SET label = 'zzz' WHERE item_key = '3'")
    with pytest.raises(StoreCorruptedError, match="label 'zzz' .*item '3'.*set_classes"):
        session(pool, path)
    with open_store(path) as store:
        assert store.current_labels() == {"2": "a", "3": "zzz"}  # nothing was dropped
        store.set_classes(["a", "b", "zzz"])
    resumed = session(pool, path)
    assert resumed.labels == {2: "a", 3: "zzz"} and resumed.classes == ["a", "b", "zzz"]
    resumed.close()


def test_team_sessions_refuse_a_label_that_is_not_a_class(tmp_path):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    pool, labeling = labeled_store(url, annotator="ann", team=True)
    labeling.close()
    edit(tmp_path / "team.db", "UPDATE label_events SET label = 'zzz' WHERE item_key = '3'")
    with pytest.raises(StoreCorruptedError, match="'zzz'"):
        session(pool, url, annotator="bob", team=True)


def test_an_edited_export_file_is_an_export_error(tmp_path):
    _, labeling = labeled_store(False)
    path = labeling.export(tmp_path / "labels.json")
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ExportFileError, match="cannot be read") as raised:
        read_export(path)
    assert isinstance(raised.value, (ValueError, StoreError))
    path = labeling.export(tmp_path / "labels.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "one" + lines[1][1:], *lines[2:]]))  # an event id
    with pytest.raises(ExportFileError):
        read_export(path)
    document = json.loads(labeling.export(tmp_path / "labels.json").read_text())
    del document["labels"][0]["label"]
    (tmp_path / "labels.json").write_text(json.dumps(document))
    with pytest.raises(ExportFileError):
        read_export(tmp_path / "labels.json")


def test_concurrent_sessions_give_an_item_one_label_and_undo_an_event_once(store_url):
    """Separate connections racing on the same items, as sessions in several processes do."""
    keys = [str(i) for i in range(25)]
    open_store(store_url, pool_fingerprint="race", classes=["a", "b"]).close()
    stores = [open_store(store_url, pool_fingerprint="race", annotator="ann") for _ in range(5)]
    outcomes: list = []

    def race(action) -> None:
        barrier = threading.Barrier(len(stores))

        def run(store) -> None:
            barrier.wait()
            for key in keys:
                try:
                    outcomes.append(action(store, key))
                except (LabelConflictError, NothingToUndoError) as refused:
                    outcomes.append(type(refused))

        threads = [threading.Thread(target=run, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    race(lambda store, key: store.add_label(key, "a", one_label_per="item"))
    written = [o for o in outcomes if not isinstance(o, type)]
    assert sorted(record.item_key for record in written) == sorted(keys)  # one label each
    assert outcomes.count(LabelConflictError) == len(keys) * (len(stores) - 1)
    events = {record.item_key: record.event_id for record in written}
    outcomes.clear()
    race(lambda store, key: store.undo_label(key, event_id=events[key]))
    assert len([o for o in outcomes if not isinstance(o, type)]) == len(keys)
    assert outcomes.count(NothingToUndoError) == len(keys) * (len(stores) - 1)
    assert stores[0].current_labels() == {}
    assert stores[0].counts()["undo_events"] == len(keys)
    for store in stores:
        store.close()
