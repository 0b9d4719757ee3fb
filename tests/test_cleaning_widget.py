"""Cleaning in the widget (Python side): suspects found in the background and mixed into the
queue, changed by key, undone by ``u``; the "Unusual items" filter marks "not a class"."""

import threading
import time

from test_cleaning_session import FAST, FLIPS, blobs_pool, noisy_session

import alwidget as al
from alwidget.widget import Widget
from alwidget.widget.suspects import is_suspect
from alwidget.widget.unusual import MARK_KEY


def watch_check(widget) -> list:
    """Every text the label check's status line shows, in order."""
    seen = []
    widget.label_check.status.observe(lambda change: seen.append(change["new"]), names=["value"])
    return seen


def test_the_batch_comes_first_then_suspects_join_behind_the_item_in_hand():
    session = noisy_session(False)
    session.retrain()
    session.unlabel(58)
    session.unlabel(59)
    session.relabel_fraction = 0.5
    widget = Widget(session, batch_size=2)
    seen = watch_check(widget)
    widget.ready(60)
    # The first batch is on screen before any fold has trained: new items only.
    first = [item.id for item in widget.queue]
    assert set(first) <= {58, 59} and first
    in_hand = widget.focused_item.id
    widget.wait(120)

    folds = [text for text in seen if "checking labels: fold" in text]
    assert any("fold 1 / 5" in text for text in folds)
    assert any("fold 5 / 5" in text for text in folds)
    assert "labels checked (model v1)" in seen[-1]
    queue = widget.queue
    assert widget.focused_item.id == in_hand  # never replaced
    suspect = queue[widget.focused + 1]
    assert suspect.id in FLIPS and suspect.suspect is not None

    widget.focus(widget.focused + 1)
    card = widget.strip.cards[widget.strip.focused]
    assert card["predicted"] == f"⚠ {FLIPS[suspect.id]} → {suspect.suspect.predicted}?"
    assert "Label suspect" in widget.why.value and "you said" in widget.why.value
    widget.press_key(suspect.suspect.predicted)  # one-letter classes are their own keys
    assert session.labels[suspect.id] == suspect.suspect.predicted
    (change,) = session.store.cleaning_records()
    assert (change.item_key, change.from_label, change.to_label) == (
        str(suspect.id), FLIPS[suspect.id], suspect.suspect.predicted,
    )  # fmt: skip
    assert suspect.id not in [item.id for item in widget.queue]

    widget.undo()
    assert session.labels[suspect.id] == FLIPS[suspect.id]
    assert widget.focused_item.id == suspect.id and session.store.cleaning_records() == []
    widget.close()
    assert session.cleaning.check_in_background is False


def test_a_retrain_stops_the_label_check_and_the_new_model_gets_its_own():
    session = noisy_session(False)
    session.retrain()
    session.unlabel(59)
    session.relabel_fraction = 0.5
    # Slow folds, so the retrain surely lands while the check runs.
    session.train_config = al.TrainConfig(max_steps=20_000, min_steps=20_000, lr=1e-2)
    widget = Widget(session, batch_size=2)
    seen = watch_check(widget)
    widget.ready(60)
    deadline = time.monotonic() + 60
    while not any("fold 1 / 5" in text for text in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("fold 1 / 5" in text for text in seen), seen
    session.train_config = FAST
    started = time.monotonic()
    widget.retrain().result(120)
    widget.wait(120)
    assert time.monotonic() - started < 60  # 5 slow folds would take minutes
    assert any("label check stopped" in text for text in seen), seen
    assert "labels checked (model v2)" in seen[-1]
    assert session.cleaning.suspects_ready()
    assert any(is_suspect(item) for item in widget.queue)
    widget.close()


def test_unusual_items_are_listed_with_why_and_a_mark_takes_them_out_of_the_queue(tmp_path):
    session = noisy_session(f"sqlite:///{tmp_path / 'labels.db'}", blobs_pool(outlier=True))
    session.unlabel(58)
    session.unlabel(59)
    session.retrain()
    widget = Widget(session, batch_size=3).ready(60)
    widget.wait(60)
    assert 60 in [item.id for item in widget.queue]
    assert MARK_KEY not in widget.key_catcher.watched_keys

    widget.unusual.show()
    widget.wait(60)
    assert MARK_KEY in widget.key_catcher.watched_keys
    first = widget.unusual.entries[0]
    assert first["id"] == 60 and widget.unusual.strip.cards[0]["key"] == "60"
    assert "neighbours are" in widget.unusual.why.value
    assert "nearest labeled item" in widget.unusual.why.value

    widget.press_key(MARK_KEY)
    assert session.not_a_class_ids == [60]
    assert 60 not in [item.id for item in widget.queue]
    assert 60 not in [entry["id"] for entry in widget.unusual.entries]
    (record,) = session.store.cleaning_records()
    assert (record.kind, record.item_key) == ("not_a_class", "60")

    assert widget.unusual.undo() == 60
    assert session.not_a_class_ids == [] and widget.unusual.entries[0]["id"] == 60
    widget.unusual.show(False)
    assert MARK_KEY not in widget.key_catcher.watched_keys
    widget.press_key(MARK_KEY)  # closed: the key does nothing
    assert session.not_a_class_ids == []
    widget.close()
    session.close()


def test_a_label_check_never_holds_the_lock_the_widget_reads_and_stops_when_asked():
    """While the folds train, the widget's thread can still ask what awaits review."""
    session = noisy_session(False)
    session.retrain()
    session.train_config = al.TrainConfig(max_steps=20_000, min_steps=20_000, lr=1e-2)
    running, stop, result = threading.Event(), threading.Event(), []
    worker = threading.Thread(
        target=lambda: result.append(
            session.label_issues(progress=lambda _info: running.set(), should_stop=stop.is_set)
        )
    )
    worker.start()
    assert running.wait(60)
    started = time.monotonic()
    session.cleaning.awaiting_review()
    assert time.monotonic() - started < 0.5
    stop.set()
    worker.join(60)
    assert result == [None] and not session.cleaning.suspects_ready()
