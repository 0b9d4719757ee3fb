"""Reading the label event log: which labels stand, who gave them, which classes are allowed.

Every function takes the caller's connection, so a caller can combine several reads (or a
read and a write) in one transaction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Connection, Select, select

from .errors import ClassMismatchError, StoreCorruptedError
from .schema import EVENT_COLUMNS, label_events, read_meta, write_meta

#: ``{item_key: {annotator: (event_id, label)}}``: each annotator's current label per item.
Votes = dict[str, dict[str, tuple[int, str]]]


def active_labels_query(*columns) -> Select:
    """Label events that no undo cancels (all record columns unless others are named)."""
    undone = select(label_events.c.undoes_event_id).where(
        label_events.c.undoes_event_id.is_not(None)
    )
    return select(*(columns or EVENT_COLUMNS)).where(
        label_events.c.kind == "label", label_events.c.id.not_in(undone)
    )


def current_votes(
    conn: Connection,
    *,
    annotator: str | None = None,
    item_key: str | None = None,
    item_keys: Sequence[str] | None = None,
) -> Votes:
    """Each annotator's current label, optionally of one annotator or of some items only."""
    query = active_labels_query(
        label_events.c.id, label_events.c.item_key, label_events.c.annotator, label_events.c.label
    )
    if annotator is not None:
        query = query.where(label_events.c.annotator == annotator)
    if item_key is not None:
        query = query.where(label_events.c.item_key == item_key)
    if item_keys is not None:
        query = query.where(label_events.c.item_key.in_(list(item_keys)))
    latest: Votes = {}
    # In event order, so a later label of the same annotator replaces an earlier one.
    for event_id, key, who, label in conn.execute(query.order_by(label_events.c.id)):
        latest.setdefault(key, {})[who] = (event_id, label)
    return latest


def resolve_votes(votes: Votes) -> dict[str, str]:
    """The label of each item: the majority of its annotators, ties to the latest tied label.

    Returns
    -------
    dict
        item_key -> label, in the order items were (last) labeled.
    """
    resolved = []
    for key, by_annotator in votes.items():
        counts = Counter(label for _, label in by_annotator.values())
        top = max(counts.values())
        _, winner = max(vote for vote in by_annotator.values() if counts[vote[1]] == top)
        resolved.append((max(event_id for event_id, _ in by_annotator.values()), key, winner))
    resolved.sort()
    return {key: label for _, key, label in resolved}


def store_classes(conn: Connection, classes: list[str] | None, store_name: str) -> list[str] | None:
    """Save new classes after checking that every label in the store is still among them.

    Returns the classes now in force (the stored ones when ``classes`` is None).
    """
    stored = read_meta(conn).get("classes")
    if classes is None:
        return None if stored is None else _decode_classes(stored, store_name)
    if not all(isinstance(name, str) and name for name in classes):
        raise ValueError(f"classes must be non-empty strings, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes!r}")
    used = set(
        conn.execute(
            select(label_events.c.label).where(label_events.c.kind == "label").distinct()
        ).scalars()
    )
    missing = sorted(used - set(classes))
    if missing:
        raise ClassMismatchError(
            f"{store_name} holds labels {missing} that are not among the classes {classes}; "
            "include them, or use a new store"
        )
    write_meta(conn, "classes", json.dumps(classes))
    return classes


def _decode_classes(text: str, store_name: str) -> list[str]:
    """The stored class list, or a store error naming the fix when it was edited by hand."""
    try:
        classes = json.loads(text)
    except ValueError:  # json.JSONDecodeError, and non-UTF-8 bytes
        classes = None
    if not (
        isinstance(classes, list)
        and all(isinstance(name, str) and name for name in classes)
        and len(set(classes)) == len(classes)
    ):
        raise StoreCorruptedError(
            f"{store_name} keeps its classes as {text[:80]!r} in the table alwidget_meta "
            "(key 'classes'), which is not a JSON list of distinct non-empty strings; it was "
            'edited outside alwidget. Write them back as a JSON list, e.g. ["cat", "dog"].'
        )
    return classes


def labels_by_annotator(votes: Votes) -> dict[str, dict[str, str]]:
    """``{item_key: {annotator: label}}``: the votes without their event ids."""
    return {key: {who: label for who, (_, label) in by.items()} for key, by in votes.items()}
