"""Entry points for views beside the panel: focus any item, queue next, bulk labels, the map slot."""

from __future__ import annotations

import pytest
from fixtures.widget_sessions import Gate, gated_session, true_class

import alwidget as al
from alwidget.errors import AlreadyLabeledError


@pytest.fixture
def widget():
    gate = Gate()
    gate.opened.set()
    widget = al.Widget(gated_session(gate), batch_size=6).ready()
    yield widget
    widget.wait(timeout=60)
    widget.close()


def unqueued_ids(widget, n: int) -> list:
    queued = {item.id for item in widget.queue}
    return [i for i in widget.session.unlabeled_ids if i not in queued][:n]


def test_focus_item_fetches_an_unqueued_item_with_its_explanation(widget):
    target = unqueued_ids(widget, 1)[0]
    in_hand = widget.focused_item
    widget.focus_item(target)
    widget.wait(timeout=30)
    assert widget.focused_item.id == target and widget.focused_item.prioritized
    ids = [item.id for item in widget.queue]
    assert ids.index(target) == ids.index(in_hand.id) + 1  # right after the item that was in hand
    assert "you prioritized it" in widget.why.value
    widget.focus_item(widget.queue[0].id)  # a queued item: focused at once
    assert widget.focused == 0


def test_focus_item_refuses_labeled_items(widget):
    done = widget.label(true_class(widget.session, widget.focused_item.id))
    with pytest.raises(AlreadyLabeledError):
        widget.focus_item(done)


def test_queue_next_puts_items_after_the_current_one(widget):
    wanted = unqueued_ids(widget, 3)
    in_hand = widget.focused_item
    widget.queue_next(wanted)
    widget.wait(timeout=30)
    ids = [item.id for item in widget.queue]
    assert ids[:4] == [in_hand.id, *wanted]
    assert widget.focused_item.id == in_hand.id
    widget.label(true_class(widget.session, in_hand.id))
    assert widget.focused_item.id == wanted[0]


def test_label_many_and_undo_each(widget):
    queued = widget.queue[2].id
    outside = unqueued_ids(widget, 2)
    in_hand = widget.focused_item
    widget.label_many([queued, *outside], "b")
    assert {i: widget.session.labels[i] for i in [queued, *outside]} == dict.fromkeys(
        [queued, *outside], "b"
    )
    assert queued not in [item.id for item in widget.queue]
    assert widget.focused_item.id == in_hand.id and widget.n_labels == 3
    widget.undo()
    widget.undo()
    assert widget.n_labels == 1 and outside[0] not in widget.session.labels
    widget.undo()  # the queued one comes back to the strip
    assert widget.n_labels == 0 and queued in [item.id for item in widget.queue]


def test_label_many_is_all_or_nothing(widget):
    done = widget.label(true_class(widget.session, widget.focused_item.id))
    others = unqueued_ids(widget, 2)
    with pytest.raises(AlreadyLabeledError):
        widget.label_many([*others, done], "a")
    assert widget.n_labels == 1 and not set(others) & set(widget.session.labels)


def test_attach_map_links_clicks_queue_and_bulk_labels(widget):
    from alwidget.widget.map_view import MapView

    view = MapView(widget.session, start=False)  # no layout fit: the links are under test here
    try:
        widget.attach_map(view)
        assert view in widget.children[1].children  # beside the panel
        assert view.map.batch_ids == [item.id for item in widget.queue]

        target = unqueued_ids(widget, 1)[0]
        view.handle_click(widget.session.pool.positions([target]))
        widget.wait(timeout=30)
        assert widget.focused_item.id == target
        view.wait(timeout=30)
        assert view.map.batch_ids == [item.id for item in widget.queue]

        chosen = unqueued_ids(widget, 2)
        view.handle_selection(widget.session.pool.positions(chosen))
        view.label_selection("c")
        assert all(widget.session.labels[i] == "c" for i in chosen) and widget.n_labels == 2
        widget.undo()
        assert widget.n_labels == 1
    finally:
        view.wait(timeout=60)
        view.close()
