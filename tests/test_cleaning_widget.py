"""A label suspect in the widget (Python side): marked, changed by key, undone by ``u``."""

from test_cleaning_session import FLIPS, noisy_session

from alwidget.widget import Widget


def test_a_suspect_in_the_strip_is_marked_and_a_class_key_changes_its_label():
    session = noisy_session(False)
    session.retrain()
    session.unlabel(59)
    session.relabel_fraction = 0.5
    widget = Widget(session, batch_size=2).ready()
    suspect = widget.focused_item
    assert suspect.id in FLIPS
    card = widget.strip.cards[0]
    assert card["predicted"] == f"⚠ {FLIPS[suspect.id]} → {suspect.suspect.predicted}?"
    assert "Label suspect" in widget.why.value and "you said" in widget.why.value

    widget.press_key(suspect.suspect.predicted)  # one-letter classes are their own keys
    assert session.labels[suspect.id] == suspect.suspect.predicted
    (change,) = session.store.cleaning_records()
    assert (change.item_key, change.from_label, change.to_label) == (
        str(suspect.id), FLIPS[suspect.id], suspect.suspect.predicted,
    )  # fmt: skip
    assert widget.focused_item.id != suspect.id

    widget.undo()
    assert session.labels[suspect.id] == FLIPS[suspect.id]
    assert widget.focused_item.id == suspect.id and session.store.cleaning_records() == []
    widget.close()
