"""Cleaning decisions in the store: label changes after review, kept suspects, "not a class".

Every decision is a row of ``cleaning_events`` (who, when, from what to what, why) and an undo
is a row that points at what it cancels, so nothing is ever deleted. A change also writes the
new label into ``label_events`` in the same transaction: every reader of labels (sessions,
exports, the team's consensus) sees it, and the earlier label stays in the log underneath, so
undoing the change brings it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from .database import Database
from .errors import LabelConflictError, NothingToUndoError
from .label_log import active_labels_query, current_votes
from .records import LabelRecord, check_item_key, check_label, utc_now
from .schema import cleaning_events, label_events

__all__ = ["CleaningLog", "CleaningRecord", "DECISIONS"]

#: Decisions :meth:`CleaningLog.record_decision` writes (a change has its own method).
DECISIONS = ("keep", "not_a_class")


@dataclass(frozen=True)
class CleaningRecord:
    """One row of the cleaning log.

    Attributes
    ----------
    event_id : int
        The row's id.
    item_key : str
        ``str(item_id)``.
    kind : str
        ``"change"``, ``"keep"``, ``"not_a_class"`` or ``"undo"``.
    annotator : str
        Who decided.
    created_at : datetime
        When (UTC).
    from_label, to_label : str or None
        A change's old and new label; a keep's label in ``from_label``.
    label_event_id : int or None
        A change's new label event in the label log.
    undoes_id : int or None
        What an undo cancels.
    reason : str or None
        Why the item was reviewed (e.g. "you said 3 · model says 8, p = 0.97").
    """

    event_id: int
    item_key: str
    kind: str
    annotator: str
    created_at: datetime
    from_label: str | None
    to_label: str | None
    label_event_id: int | None
    undoes_id: int | None
    reason: str | None

    @classmethod
    def from_row(cls, row) -> CleaningRecord:
        return cls(
            row.id, row.item_key, row.kind, row.annotator, row.created_at, row.from_label,
            row.to_label, row.label_event_id, row.undoes_id, row.reason,
        )  # fmt: skip


def _lock_item(conn, key: str) -> None:
    from .store import _lock_items

    _lock_items(conn, [key])


def _undone_ids(conn) -> set[int]:
    return set(
        conn.execute(
            select(cleaning_events.c.undoes_id).where(cleaning_events.c.undoes_id.is_not(None))
        ).scalars()
    )


def _undone_label_events(conn) -> set[int]:
    return set(
        conn.execute(
            select(label_events.c.undoes_event_id).where(
                label_events.c.undoes_event_id.is_not(None)
            )
        ).scalars()
    )


@dataclass(eq=False)
class CleaningLog:
    """The cleaning decisions of a :class:`~alwidget.store.LabelStore` (which forwards its
    methods here); ``classes`` returns the store's allowed labels."""

    database: Database
    choose_annotator: Callable[[str | None], str]
    classes: Callable[[], list[str] | None]
    name: Callable[[], str]

    def change_label(
        self,
        item_key: str,
        label: str,
        *,
        annotator: str | None = None,
        replaces_event_id: int | None = None,
        model_version: int | None = None,
        reason: str | None = None,
    ) -> tuple[CleaningRecord, LabelRecord]:
        """Change an item's label after review, as one logged event (undo: :meth:`undo_change`).

        Parameters
        ----------
        item_key : str
            ``str(item_id)``; the item must have a current label.
        label : str
            The new label; must differ from the one it replaces.
        annotator : str, optional
            Who changes it (the store's annotator by default).
        replaces_event_id : int, optional
            The label event the caller saw; refused when it is no longer current, so a
            change never overwrites a label written since by another session.
        model_version : int, optional
            The model whose suspicion led to the review.
        reason : str, optional
            Why the item was reviewed.

        Returns
        -------
        (CleaningRecord, LabelRecord)
            The change and the new label event.

        Raises
        ------
        NothingToUndoError
            The item has no current label, or ``replaces_event_id`` is no longer current.
        ValueError
            The new label equals the old one (record a ``"keep"`` instead).
        """
        key = check_item_key(item_key)
        new = check_label(label, self.classes())
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=True) as conn:
            _lock_item(conn, key)
            votes = current_votes(conn, item_key=key).get(key, {})
            if not votes:
                raise NothingToUndoError(
                    f"item {key!r} has no label in {self.name()} to change; label it instead"
                )
            if replaces_event_id is None:
                replaced_id, old = votes.get(who) or max(votes.values())
            else:
                current = {event_id: name for event_id, name in votes.values()}
                if int(replaces_event_id) not in current:
                    holds = ", ".join(f"{name!r} by {by!r}" for by, (_, name) in votes.items())
                    raise NothingToUndoError(
                        f"the label event {replaces_event_id} on item {key!r} is no longer "
                        f"current in {self.name()} (another session changed it; the item now has "
                        f"{holds}); nothing was changed"
                    )
                replaced_id, old = int(replaces_event_id), current[int(replaces_event_id)]
            if new == old:
                raise ValueError(
                    f"item {key!r} is already labeled {old!r}: record a 'keep' decision instead "
                    "of a change to the same label"
                )
            now = utc_now()
            label_row = {
                "item_key": key, "kind": "label", "label": new, "annotator": who,
                "created_at": now, "model_version": model_version, "strategy": "relabel",
                "score": None, "undoes_event_id": None,
            }  # fmt: skip
            label_id = conn.execute(insert(label_events).returning(label_events.c.id), label_row)
            label_id = label_id.scalar_one()
            change = {
                "item_key": key, "kind": "change", "annotator": who, "created_at": now,
                "from_label": old, "to_label": new, "label_event_id": label_id,
                "undoes_id": None, "reason": reason,
            }  # fmt: skip
            change_id = conn.execute(
                insert(cleaning_events).returning(cleaning_events.c.id), change
            ).scalar_one()
            # The replaced label stays in the log underneath: the newer label of the same
            # annotator wins, and undoing the change brings the old one back.
            del replaced_id
        return (
            CleaningRecord(event_id=change_id, **change),
            LabelRecord(event_id=label_id, **label_row),
        )

    def undo_change(self, item_key: str, *, annotator: str | None = None) -> CleaningRecord:
        """Undo the annotator's latest standing change of an item; the label before it returns.

        Raises
        ------
        NothingToUndoError
            No standing change of this annotator on the item.
        """
        key = check_item_key(item_key)
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=True) as conn:
            _lock_item(conn, key)
            standing = self._standing(conn, key, "change", who)
            if standing is None:
                raise NothingToUndoError(
                    f"annotator {who!r} has no standing label change on item {key!r} to undo"
                )
            now = utc_now()
            conn.execute(
                insert(label_events).values(
                    item_key=key,
                    kind="undo",
                    label=None,
                    annotator=who,
                    created_at=now,
                    undoes_event_id=standing.label_event_id,
                )  # fmt: skip
            )
            conn.execute(
                insert(cleaning_events).values(
                    item_key=key,
                    kind="undo",
                    annotator=who,
                    created_at=now,
                    undoes_id=standing.id,
                )  # fmt: skip
            )
        return CleaningRecord.from_row(standing)

    def record_decision(
        self,
        item_key: str,
        kind: str,
        *,
        annotator: str | None = None,
        label: str | None = None,
        reason: str | None = None,
    ) -> CleaningRecord:
        """Record a ``"keep"`` (the reviewed ``label`` stands) or a ``"not_a_class"`` mark.

        Raises
        ------
        LabelConflictError
            ``"not_a_class"`` on an item that has a current label (undo it first), or
            ``"keep"`` of a label the item no longer has.
        """
        if kind not in DECISIONS:
            raise ValueError(f"kind must be one of {DECISIONS}, got {kind!r}")
        key = check_item_key(item_key)
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=True) as conn:
            _lock_item(conn, key)
            votes = current_votes(conn, item_key=key).get(key, {})
            labels = {name for _, name in votes.values()}
            if kind == "not_a_class" and votes:
                raise LabelConflictError(
                    f"item {key!r} is labeled ({', '.join(sorted(labels))}) in {self.name()}; "
                    "undo its label before marking it 'not a class'",
                    {key: votes},
                )
            if kind == "keep" and label not in labels:
                raise LabelConflictError(
                    f"item {key!r} is not labeled {label!r} in {self.name()} (it has "
                    f"{sorted(labels) or 'no label'}); nothing to keep",
                    {key: votes},
                )
            row = {
                "item_key": key, "kind": kind, "annotator": who, "created_at": utc_now(),
                "from_label": label if kind == "keep" else None, "to_label": None,
                "label_event_id": None, "undoes_id": None, "reason": reason,
            }  # fmt: skip
            row_id = conn.execute(
                insert(cleaning_events).returning(cleaning_events.c.id), row
            ).scalar_one()
        return CleaningRecord(event_id=row_id, **row)

    def undo_decision(
        self, item_key: str, kind: str, *, annotator: str | None = None
    ) -> CleaningRecord:
        """Undo the latest standing ``kind`` decision (``"keep"`` or ``"not_a_class"``) on an item.

        Raises
        ------
        NothingToUndoError
            There is none.
        """
        if kind not in DECISIONS:
            raise ValueError(f"kind must be one of {DECISIONS}, got {kind!r}")
        key = check_item_key(item_key)
        who = self.choose_annotator(annotator)
        with self.database.transaction(write=True) as conn:
            _lock_item(conn, key)
            standing = self._standing(conn, key, kind, None)
            if standing is None:
                raise NothingToUndoError(f"item {key!r} has no standing {kind!r} decision to undo")
            conn.execute(
                insert(cleaning_events).values(
                    item_key=key,
                    kind="undo",
                    annotator=who,
                    created_at=utc_now(),
                    undoes_id=standing.id,
                )  # fmt: skip
            )
        return CleaningRecord.from_row(standing)

    def _standing(self, conn, key: str, kind: str, annotator: str | None):
        query = select(cleaning_events).where(
            cleaning_events.c.item_key == key,
            cleaning_events.c.kind == kind,
            cleaning_events.c.id.not_in(
                select(cleaning_events.c.undoes_id).where(cleaning_events.c.undoes_id.is_not(None))
            ),
        )
        if annotator is not None:
            query = query.where(cleaning_events.c.annotator == annotator)
        for row in conn.execute(query.order_by(cleaning_events.c.id.desc())):
            if kind != "change":
                return row
            still = active_labels_query(label_events.c.id).where(
                label_events.c.id == row.label_event_id
            )
            if conn.execute(still).first() is not None:
                return row
        return None

    def cleaning_records(self, *, history: bool = False) -> list[CleaningRecord]:
        """The standing decisions (default), or every row including undone ones and undos.

        A change stands while its label event does (undoing that label undoes the change).
        """
        with self.database.transaction(write=False) as conn:
            rows = conn.execute(select(cleaning_events).order_by(cleaning_events.c.id)).all()
            if history:
                return [CleaningRecord.from_row(row) for row in rows]
            undone, undone_labels = _undone_ids(conn), _undone_label_events(conn)
        return [
            CleaningRecord.from_row(row)
            for row in rows
            if row.kind != "undo"
            and row.id not in undone
            and (row.kind != "change" or row.label_event_id not in undone_labels)
        ]
