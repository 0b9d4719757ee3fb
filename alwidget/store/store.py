"""The label store: an append-only log of labels plus a session's queue, history and model."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select

from . import export as _export
from .connection import translated_errors
from .records import LabelRecord, clean_score, utc_now
from .schema import EVENT_COLUMNS, SCHEMA_VERSION, checkpoints, label_events, rounds
from .session_state import SessionStateMixin
from .team import TeamQueueMixin


class LabelStore(SessionStateMixin, TeamQueueMixin):
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
        self._engine = engine
        self._lock = threading.RLock()
        self._closed = False
        self.name = name
        self.annotator = annotator
        self.pool_fingerprint = pool_fingerprint
        self.classes = classes
        self.created = created
        self.schema_version = SCHEMA_VERSION
        self._default_lease_seconds = 600.0

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("new" if self.created else "resumed")
        return f"LabelStore({self.name!r}, annotator={self.annotator!r}, {state})"

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections. The store cannot be used afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._engine.dispose()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        """One transaction, committed when the block ends, with driver errors translated."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            with translated_errors(self.name), self._engine.connect() as conn:
                if write:
                    conn.execution_options(alwidget_write=True)
                with conn.begin():
                    yield conn

    def _annotator(self, annotator: str | None) -> str:
        chosen = self.annotator if annotator is None else annotator
        if not isinstance(chosen, str) or not chosen:
            raise ValueError(f"annotator must be a non-empty string, not {chosen!r}")
        return chosen

    @staticmethod
    def _check_key(item_key: object) -> str:
        if not isinstance(item_key, str):
            raise TypeError(
                f"item_key must be a str (use str(item_id)), not {type(item_key).__name__}"
            )
        if not item_key:
            raise ValueError("item_key must not be empty")
        return item_key

    def _check_label(self, label: object) -> str:
        if not isinstance(label, str) or not label:
            raise ValueError(f"a label must be a non-empty string, not {label!r}")
        if self.classes is not None and label not in self.classes:
            raise ValueError(
                f"label {label!r} is not one of the store's classes {self.classes}; "
                "add it first with store.set_classes()"
            )
        return label

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
        (record,) = self.add_labels(
            [
                {
                    "item_key": item_key,
                    "label": label,
                    "annotator": annotator,
                    "model_version": model_version,
                    "strategy": strategy,
                    "score": score,
                }
            ]
        )
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
            unknown = set(entry) - {
                "item_key", "label", "annotator", "model_version", "strategy", "score"
            }  # fmt: skip
            if unknown:
                raise TypeError(f"unknown label fields {sorted(unknown)}")
            version = entry.get("model_version")
            strategy = entry.get("strategy")
            rows.append(
                {
                    "item_key": self._check_key(entry.get("item_key")),
                    "kind": "label",
                    "label": self._check_label(entry.get("label")),
                    "annotator": self._annotator(entry.get("annotator")),
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
        with self._transaction(write=True) as conn:
            event_ids = list(conn.execute(statement, rows).scalars())
            self._mark_done(conn, [(values["item_key"], values["annotator"]) for values in rows])
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
        key = self._check_key(item_key)
        who = self._annotator(annotator)
        with self._transaction(write=True) as conn:
            active = self._active_labels_query().where(
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
                self._reopen_assignment(conn, key, who)
        return LabelRecord.from_row(row)

    @staticmethod
    def _active_labels_query(*columns):
        """Label events that no undo cancels (all record columns unless others are named)."""
        undone = select(label_events.c.undoes_event_id).where(
            label_events.c.undoes_event_id.is_not(None)
        )
        return select(*(columns or EVENT_COLUMNS)).where(
            label_events.c.kind == "label", label_events.c.id.not_in(undone)
        )

    def _current_votes(
        self, conn: Connection, annotator: str | None = None
    ) -> dict[str, dict[str, tuple[int, str]]]:
        """item_key -> annotator -> (event_id, label) of that annotator's current label."""
        columns = self._active_labels_query(
            label_events.c.id, label_events.c.item_key, label_events.c.annotator,
            label_events.c.label,
        )  # fmt: skip
        if annotator is not None:
            columns = columns.where(label_events.c.annotator == annotator)
        latest: dict[str, dict[str, tuple[int, str]]] = {}
        for event_id, key, who, label in conn.execute(columns.order_by(label_events.c.id)):
            latest.setdefault(key, {})[who] = (event_id, label)
        return latest

    def label_records(self, annotator: str | None = None) -> list[LabelRecord]:
        """Current (not undone) label of every item and annotator, in labeling order."""
        query = self._active_labels_query().order_by(label_events.c.id)
        if annotator is not None:
            query = query.where(label_events.c.annotator == annotator)
        with self._transaction(write=False) as conn:
            latest = {(row[1], row[4]): row for row in conn.execute(query)}
        rows = sorted(latest.values(), key=lambda row: row[0])
        return [LabelRecord.from_row(row) for row in rows]

    def history(self) -> list[LabelRecord]:
        """Every event ever written, labels and undos, in order."""
        with self._transaction(write=False) as conn:
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
        with self._transaction(write=False) as conn:
            votes = self._current_votes(conn, annotator)
        resolved = []
        for key, by_annotator in votes.items():
            if len(by_annotator) == 1:
                ((event_id, label),) = by_annotator.values()
                resolved.append((event_id, key, label))
                continue
            counts = Counter(label for _, label in by_annotator.values())
            top = max(counts.values())
            _, winner = max(vote for vote in by_annotator.values() if counts[vote[1]] == top)
            resolved.append((max(event_id for event_id, _ in by_annotator.values()), key, winner))
        resolved.sort()
        return {key: label for _, key, label in resolved}

    def set_classes(self, classes: Sequence[str]) -> None:
        """Replace the allowed classes (e.g. after adding one); labels in use must remain."""
        from .opening import store_classes

        with self._transaction(write=True) as conn:
            self.classes = store_classes(conn, list(classes), self.name)

    # ------------------------------------------------------------------------------ export

    def counts(self) -> dict[str, int]:
        """Number of label events, undo events, labeled items, rounds and checkpoints."""
        with self._transaction(write=False) as conn:
            by_kind = dict(
                conn.execute(
                    select(label_events.c.kind, func.count()).group_by(label_events.c.kind)
                ).all()
            )
            n_rounds = conn.execute(select(func.count()).select_from(rounds)).scalar_one()
            n_checkpoints = conn.execute(select(func.count()).select_from(checkpoints)).scalar_one()
        return {
            "label_events": by_kind.get("label", 0),
            "undo_events": by_kind.get("undo", 0),
            "labeled_items": len(self.current_labels()),
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
