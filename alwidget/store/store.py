"""The label store: an append-only log of labels plus a session's queue, history and model.

:class:`LabelStore` is the store's one public face. It keeps the label log itself and hands
the team queue and a session's history, queue and checkpoints to parts (:class:`TeamQueue`,
:class:`SessionState`) that share its :class:`Database`; their methods appear on the store
under the same names and documentation.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from . import export as _export
from .database import Database
from .forwarding import forwarded_to
from .label_log import Votes, active_labels_query, current_votes, resolve_votes, store_classes
from .records import LabelRecord, check_item_key, check_label, clean_score, utc_now
from .schema import EVENT_COLUMNS, SCHEMA_VERSION, checkpoints, label_events, rounds
from .session_state import SessionState
from .team_queue import TeamQueue

_LABEL_FIELDS = frozenset({"item_key", "label", "annotator", "model_version", "strategy", "score"})

# The part of a store that carries out a forwarded method.
_team_queue_of = operator.attrgetter("_team_queue")
_session_state_of = operator.attrgetter("_session_state")


class LabelStore:
    """Durable storage of one pool's labels, queue, learning history and model checkpoint.

    Create it with :func:`alwidget.store.open_store`. Every method commits before it
    returns, so whatever a method reported as done survives a crash of the process. Methods
    are thread-safe (a session's background training thread may record rounds while the
    widget saves labels). Failures are raised as :class:`~alwidget.store.StoreError`
    subclasses; on :class:`~alwidget.store.StoreUnavailableError` nothing was written.

    Attributes
    ----------
    name : str
        The store's URL with any password masked.
    annotator : str
        Default annotator for labels, undos, the queue and claims.
    pool_fingerprint : str or None
        Fingerprint of the pool this store belongs to.
    classes : list of str or None
        Allowed labels; None means any non-empty string.
    created : bool
        True if this open created the store, False if it resumed an existing one.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        annotator: str,
        pool_fingerprint: str | None,
        classes: list[str] | None,
        created: bool,
    ) -> None:
        self.name = name
        self.annotator = annotator
        self._database = Database(engine, name)
        self._team_queue = TeamQueue(self._database, self._choose_annotator)
        self._session_state = SessionState(self._database, self._choose_annotator)
        self.pool_fingerprint = pool_fingerprint
        self.classes = classes
        self.created = created
        self.schema_version = SCHEMA_VERSION

    def __repr__(self) -> str:
        state = "closed" if self._database.closed else ("new" if self.created else "resumed")
        return f"LabelStore({self.name!r}, annotator={self.annotator!r}, {state})"

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections. The store cannot be used afterwards."""
        self._database.close()

    @property
    def is_shared(self) -> bool:
        """Whether other processes can open this store (False for an in-memory one)."""
        return self._database.is_shared

    def _choose_annotator(self, annotator: str | None) -> str:
        chosen = self.annotator if annotator is None else annotator
        if not isinstance(chosen, str) or not chosen:
            raise ValueError(f"annotator must be a non-empty string, not {chosen!r}")
        return chosen

    # ----------------------------------------------------------------------------- labels

    def add_label(
        self,
        item_key: str,
        label: str,
        *,
        annotator: str | None = None,
        model_version: int | None = None,
        strategy: str | None = None,
        score: float | None = None,
    ) -> LabelRecord:
        """Record a label; it is committed to disk or server when this returns.

        Parameters
        ----------
        item_key : str
            ``str(item_id)`` of the pool item.
        label : str
            The class; must be in :attr:`classes` when the store has classes.
        annotator : str, optional
            Who labeled; :attr:`annotator` by default.
        model_version : int, optional
            Version of the model whose ranking surfaced the item.
        strategy : str, optional
            Acquisition strategy that surfaced the item.
        score : float, optional
            The strategy's score for the item (NaN is stored as missing).

        Returns
        -------
        LabelRecord
            The stored event, with its id and timestamp.

        Raises
        ------
        StoreUnavailableError
            The store could not be written; the label was not saved.
        """
        entry = {
            "item_key": item_key,
            "label": label,
            "annotator": annotator,
            "model_version": model_version,
            "strategy": strategy,
            "score": score,
        }
        (record,) = self.add_labels([entry])
        return record

    def add_labels(self, entries: Sequence[Mapping[str, object]]) -> list[LabelRecord]:
        """Record several labels in one transaction: all are saved, or none.

        Parameters
        ----------
        entries : list of dict
            Each with ``item_key`` and ``label`` and optionally ``annotator``,
            ``model_version``, ``strategy`` and ``score`` (as for :meth:`add_label`).

        Returns
        -------
        list of LabelRecord
            The stored events, in the order given.
        """
        rows = []
        for entry in entries:
            unknown = set(entry) - _LABEL_FIELDS
            if unknown:
                raise TypeError(
                    f"unknown label fields {sorted(unknown)}; a label entry takes only "
                    f"{sorted(_LABEL_FIELDS)}"
                )
            version = entry.get("model_version")
            strategy = entry.get("strategy")
            rows.append(
                {
                    "item_key": check_item_key(entry.get("item_key")),
                    "kind": "label",
                    "label": check_label(entry.get("label"), self.classes),
                    "annotator": self._choose_annotator(entry.get("annotator")),
                    "created_at": utc_now(),
                    "model_version": None if version is None else int(version),
                    "strategy": str(strategy) if strategy else None,
                    "score": clean_score(entry.get("score")),
                    "undoes_event_id": None,
                }
            )
        if not rows:
            return []
        statement = insert(label_events).returning(label_events.c.id, sort_by_parameter_order=True)
        with self._database.transaction(write=True) as conn:
            event_ids = list(conn.execute(statement, rows).scalars())
            self._team_queue.mark_done(conn, [(row["item_key"], row["annotator"]) for row in rows])
        return [
            LabelRecord(event_id=event_id, **values)
            for event_id, values in zip(event_ids, rows, strict=True)
        ]

    def undo_label(self, item_key: str, *, annotator: str | None = None) -> LabelRecord:
        """Cancel the annotator's latest label on an item, by recording an undo event.

        The label row stays in the log. Undoing again cancels the label before it, so
        label A, label B, undo leaves the item labeled A.

        Returns
        -------
        LabelRecord
            The label that was undone.

        Raises
        ------
        LookupError
            The annotator has no label on this item left to undo.
        """
        key = check_item_key(item_key)
        who = self._choose_annotator(annotator)
        with self._database.transaction(write=True) as conn:
            active = active_labels_query().where(
                label_events.c.item_key == key, label_events.c.annotator == who
            )
            row = conn.execute(active.order_by(label_events.c.id.desc()).limit(1)).first()
            if row is None:
                raise LookupError(f"annotator {who!r} has no label on item {key!r} to undo")
            conn.execute(
                insert(label_events).values(
                    item_key=key,
                    kind="undo",
                    label=None,
                    annotator=who,
                    created_at=utc_now(),
                    undoes_event_id=row.id,
                )
            )
            still_labeled = conn.execute(active.limit(1)).first() is not None
            if not still_labeled:
                self._team_queue.reopen_assignment(conn, key, who)
        return LabelRecord.from_row(row)

    def label_records(self, annotator: str | None = None) -> list[LabelRecord]:
        """Current (not undone) label of every item and annotator, in labeling order."""
        query = active_labels_query().order_by(label_events.c.id)
        if annotator is not None:
            query = query.where(label_events.c.annotator == annotator)
        with self._database.transaction(write=False) as conn:
            latest = {(row.item_key, row.annotator): row for row in conn.execute(query)}
        rows = sorted(latest.values(), key=lambda row: row.id)
        return [LabelRecord.from_row(row) for row in rows]

    def history(self) -> list[LabelRecord]:
        """Every event ever written, labels and undos, in order."""
        with self._database.transaction(write=False) as conn:
            rows = conn.execute(select(*EVENT_COLUMNS).order_by(label_events.c.id)).all()
        return [LabelRecord.from_row(row) for row in rows]

    def current_labels(self, annotator: str | None = None) -> dict[str, str]:
        """The label of each labeled item.

        Parameters
        ----------
        annotator : str, optional
            Only this annotator's labels. By default every annotator counts: an item
            labeled by several annotators gets the majority label, ties going to the most
            recent of the tied labels.

        Returns
        -------
        dict
            item_key -> label, in the order items were (last) labeled.
        """
        with self._database.transaction(write=False) as conn:
            votes = current_votes(conn, annotator=annotator)
        return resolve_votes(votes)

    def item_votes(self, item_key: str) -> dict[str, tuple[int, str]]:
        """Every annotator's current label on one item.

        Returns
        -------
        dict
            ``{annotator: (event_id, label)}``; empty when nobody labeled the item.
        """
        key = check_item_key(item_key)
        with self._database.transaction(write=False) as conn:
            return current_votes(conn, item_key=key).get(key, {})

    def team_snapshot(self) -> tuple[list[str] | None, Votes]:
        """The classes and every annotator's current labels, read in one transaction.

        Teammates may have added classes since this store was opened; :attr:`classes` is
        updated to the ones read.

        Returns
        -------
        (classes, votes)
            The store's classes (None when it has none) and ``{item_key: {annotator:
            (event_id, label)}}``, the votes :meth:`current_labels` resolves.
        """
        with self._database.transaction(write=False) as conn:
            classes = store_classes(conn, None, self.name)
            votes = current_votes(conn)
        if classes is not None:
            self.classes = classes
        return classes, votes

    def set_classes(self, classes: Sequence[str]) -> None:
        """Replace the allowed classes (e.g. after adding one); labels in use must remain."""
        with self._database.transaction(write=True) as conn:
            self.classes = store_classes(conn, list(classes), self.name)

    # ------------------------------------------------------------------------ team queue

    enqueue, claim, release, team_progress, agreement, conflicts = forwarded_to(
        _team_queue_of,
        TeamQueue.enqueue, TeamQueue.claim, TeamQueue.release, TeamQueue.progress,
        TeamQueue.agreement, TeamQueue.conflicts,
    )  # fmt: skip

    # ------------------------------------------------- learning history, queue, checkpoint

    (record_round, update_round, rounds, save_queue, load_queue, save_checkpoint,
     load_checkpoint) = forwarded_to(
        _session_state_of,
        SessionState.record_round, SessionState.update_round, SessionState.rounds,
        SessionState.save_queue, SessionState.load_queue, SessionState.save_checkpoint,
        SessionState.load_checkpoint,
    )  # fmt: skip

    # ------------------------------------------------------------------------------ export

    def counts(self) -> dict[str, int]:
        """Number of label events, undo events, labeled items, rounds and checkpoints."""
        with self._database.transaction(write=False) as conn:
            by_kind = dict(
                conn.execute(
                    select(label_events.c.kind, func.count()).group_by(label_events.c.kind)
                ).all()
            )
            n_rounds = conn.execute(select(func.count()).select_from(rounds)).scalar_one()
            n_checkpoints = conn.execute(select(func.count()).select_from(checkpoints)).scalar_one()
            n_labeled = len(current_votes(conn))
        return {
            "label_events": by_kind.get("label", 0),
            "undo_events": by_kind.get("undo", 0),
            "labeled_items": n_labeled,
            "rounds": n_rounds,
            "checkpoints": n_checkpoints,
        }

    def to_dataframe(self, *, history: bool = False):
        """Labels with their metadata as a pandas DataFrame.

        Parameters
        ----------
        history : bool
            False (default): the current label of each item and annotator. True: every
            event, including undone labels and the undo events (columns ``kind`` and
            ``undoes_event_id`` added).
        """
        records = self.history() if history else self.label_records()
        return _export.records_to_dataframe(records, history=history)

    def export(self, path: str | Path, *, history: bool = False) -> Path:
        """Write the labels to ``.csv``, ``.json`` or ``.jsonl`` (chosen by the suffix).

        JSON files also hold the classes and pool fingerprint. Read any of them back with
        :func:`alwidget.store.read_export`.

        Returns
        -------
        Path
            The file written.
        """
        records = self.history() if history else self.label_records()
        return _export.write_export(
            Path(path),
            records,
            history=history,
            classes=self.classes,
            pool_fingerprint=self.pool_fingerprint,
        )
