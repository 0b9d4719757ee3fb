"""The label store: an append-only log of labels plus a session's queue, history and model.

:class:`LabelStore` is the store's one public face. It keeps the label log itself and hands
the team queue and a session's history, queue and checkpoints to parts (:class:`TeamQueue`,
:class:`SessionState`) that share its :class:`Database`; their methods appear on the store
under the same names and documentation.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select, text

from . import export as _export
from .cleaning_log import CleaningLog
from .database import Database
from .errors import LabelConflictError, NothingToUndoError
from .forwarding import forwarded_to
from .label_log import Votes, active_labels_query, current_votes, resolve_votes, store_classes
from .pool_binding import bind_pool, rebind_pool
from .records import LabelRecord, check_item_key, check_label, clean_score, utc_now
from .schema import EVENT_COLUMNS, SCHEMA_VERSION, checkpoints, label_events, rounds
from .session_state import SessionState
from .team_queue import TeamQueue

_LABEL_FIELDS = frozenset({"item_key", "label", "annotator", "model_version", "strategy", "score"})
_ONE_LABEL_PER = (None, "item", "annotator")
# First key of the PostgreSQL advisory locks that serialise label writes per item (the
# two-key lock space, apart from the one-key lock that guards schema creation).
_ITEM_LOCK_SPACE = 7412


def _lock_items(conn: Connection, item_keys) -> None:
    """Serialise checks-then-writes on these items with other transactions until commit.

    SQLite write transactions already run one at a time (``BEGIN IMMEDIATE``). PostgreSQL
    runs them side by side, so two sessions could both see an item unlabeled and both label
    it, or both undo one event; a transaction-scoped advisory lock per item prevents that.
    Keys are locked in sorted order so two batches never wait for each other in a cycle.
    """
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(item_keys)):
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
            {"space": _ITEM_LOCK_SPACE, "key": key},
        )


# The part of a store that carries out a forwarded method.
_team_queue_of = operator.attrgetter("_team_queue")
_session_state_of = operator.attrgetter("_session_state")
_cleaning_log_of = operator.attrgetter("_cleaning_log")


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
        self._cleaning_log = CleaningLog(
            self._database, self._choose_annotator, lambda: self.classes, lambda: self.name
        )
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
        one_label_per: str | None = None,
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
        one_label_per : {None, "item", "annotator"}
            Refuse the label when the item already has a current label (``"item"``), or one
            from this annotator (``"annotator"``); see :meth:`add_labels`.

        Returns
        -------
        LabelRecord
            The stored event, with its id and timestamp.

        Raises
        ------
        StoreUnavailableError
            The store could not be written; the label was not saved.
        LabelConflictError
            ``one_label_per`` refused it; the label was not saved.
        """
        entry = {
            "item_key": item_key,
            "label": label,
            "annotator": annotator,
            "model_version": model_version,
            "strategy": strategy,
            "score": score,
        }
        (record,) = self.add_labels([entry], one_label_per=one_label_per)
        return record

    def add_labels(
        self, entries: Sequence[Mapping[str, object]], *, one_label_per: str | None = None
    ) -> list[LabelRecord]:
        """Record several labels in one transaction: all are saved, or none.

        Parameters
        ----------
        entries : list of dict
            Each with ``item_key`` and ``label`` and optionally ``annotator``,
            ``model_version``, ``strategy`` and ``score`` (as for :meth:`add_label`).
        one_label_per : {None, "item", "annotator"}
            None (default) records every label, as a log would. ``"item"`` refuses labels
            of items that already have a current label from anyone (one label per item, as
            a solo session keeps them); ``"annotator"`` refuses an annotator's second
            current label on an item (as a team keeps them). The check and the write are one
            transaction, so two sessions on one store cannot both label an item.

        Returns
        -------
        list of LabelRecord
            The stored events, in the order given.

        Raises
        ------
        LabelConflictError
            ``one_label_per`` refused some entry; nothing was saved. Its ``votes`` hold the
            current labels of the items in conflict.
        """
        if one_label_per not in _ONE_LABEL_PER:
            raise ValueError(
                f"one_label_per must be one of {_ONE_LABEL_PER}, not {one_label_per!r}"
            )
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
            if one_label_per is not None:
                _lock_items(conn, [row["item_key"] for row in rows])
                self._refuse_second_labels(conn, rows, one_label_per)
            event_ids = list(conn.execute(statement, rows).scalars())
            self._team_queue.mark_done(conn, [(row["item_key"], row["annotator"]) for row in rows])
        return [
            LabelRecord(event_id=event_id, **values)
            for event_id, values in zip(event_ids, rows, strict=True)
        ]

    def _refuse_second_labels(self, conn, rows: list[dict], one_label_per: str) -> None:
        """Raise :class:`LabelConflictError` for rows that would give an item a second label."""
        per_item = one_label_per == "item"
        seen: set = set()
        for row in rows:
            slot = row["item_key"] if per_item else (row["item_key"], row["annotator"])
            if slot in seen:
                raise ValueError(f"item {row['item_key']!r} appears twice in one add_labels call")
            seen.add(slot)
        keys = list(dict.fromkeys(row["item_key"] for row in rows))
        votes: Votes = {}
        for start in range(0, len(keys), 500):  # bounded IN lists for any batch size
            votes.update(current_votes(conn, item_keys=keys[start : start + 500]))
        clashes = {
            row["item_key"]: votes[row["item_key"]]
            for row in rows
            if votes.get(row["item_key"])
            and (per_item or row["annotator"] in votes[row["item_key"]])
        }
        if not clashes:
            return
        key, by = next(iter(clashes.items()))
        given = ", ".join(f"{label!r} by {who!r}" for who, (_, label) in by.items())
        scope = "" if per_item else f" from {rows[0]['annotator']!r}"
        raise LabelConflictError(
            f"item {key!r} already has a label{scope} in {self.name} ({given}), written by "
            f"another session on this store{' (and more items)' if len(clashes) > 1 else ''}; "
            "nothing was saved. Undo that label first to change it.",
            clashes,
        )

    def undo_label(
        self, item_key: str, *, annotator: str | None = None, event_id: int | None = None
    ) -> LabelRecord:
        """Cancel a label by recording an undo event: the annotator's latest on the item, or
        exactly the label event ``event_id``.

        The label row stays in the log. Undoing again cancels the label before it, so
        label A, label B, undo leaves the item labeled A.

        Parameters
        ----------
        item_key : str
            ``str(item_id)`` of the item.
        annotator : str, optional
            Whose label; :attr:`annotator` by default.
        event_id : int, optional
            The label event to cancel (a session passes the one it wrote, so it never undoes
            a label another session wrote since). Refused when that event is no longer the
            item's current label from ``annotator``.

        Returns
        -------
        LabelRecord
            The label that was undone.

        Raises
        ------
        NothingToUndoError
            The annotator has no label on this item left to undo, or ``event_id`` is not
            one of its current labels (say, another session undid it). Also a
            :class:`LookupError`.
        """
        key = check_item_key(item_key)
        who = self._choose_annotator(annotator)
        with self._database.transaction(write=True) as conn:
            _lock_items(conn, [key])
            active = active_labels_query().where(
                label_events.c.item_key == key, label_events.c.annotator == who
            )
            if event_id is None:
                row = conn.execute(active.order_by(label_events.c.id.desc()).limit(1)).first()
            else:
                row = conn.execute(active.where(label_events.c.id == int(event_id))).first()
            if row is None:
                raise self._nothing_to_undo(conn, key, who, event_id)
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

    def _nothing_to_undo(self, conn, key: str, who: str, event_id) -> NothingToUndoError:
        if event_id is None:
            return NothingToUndoError(f"annotator {who!r} has no label on item {key!r} to undo")
        now = current_votes(conn, item_key=key).get(key, {})
        holds = ", ".join(f"{label!r} by {by!r}" for by, (_, label) in now.items()) or "no label"
        return NothingToUndoError(
            f"the label event {event_id} of {who!r} on item {key!r} is no longer current in "
            f"{self.name} (another session on this store undid or replaced it); nothing was "
            f"undone. The item now has {holds}."
        )

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

    def bind_pool(
        self,
        pool_fingerprint: str,
        *,
        former_fingerprints: Collection[str] = (),
        pool_classes: Sequence[str] | None = None,
    ) -> None:
        """Check that this store belongs to the pool with ``pool_fingerprint``, as
        :func:`open_store` does, and record the fingerprint when the store has none.

        Raises
        ------
        PoolMismatchError
            The store belongs to another pool.
        """
        with self._database.transaction(write=True) as conn:
            binding = bind_pool(
                conn, self.name, pool_fingerprint, former_fingerprints=former_fingerprints,
                pool_classes=pool_classes,
            )  # fmt: skip
        self.pool_fingerprint = binding.fingerprint
        binding.warn(self.name)

    def rebind_pool(self, pool_fingerprint: str, item_keys: Collection[str]) -> str | None:
        """Tie this store to another pool fingerprint (e.g. after the pool's files moved).

        Parameters
        ----------
        pool_fingerprint : str
            The new fingerprint.
        item_keys : collection of str
            ``str(item_id)`` of every item of the new pool; every item the store holds a
            label for must be among them.

        Returns
        -------
        str or None
            The fingerprint the store had.

        Raises
        ------
        PoolMismatchError
            The store holds labels of items outside ``item_keys``; nothing was changed.
        """
        with self._database.transaction(write=True) as conn:
            former = rebind_pool(conn, self.name, pool_fingerprint, item_keys)
        self.pool_fingerprint = pool_fingerprint
        return former

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

    # ------------------------------------------------------------------------- cleaning

    change_label, undo_change, record_decision, undo_decision, cleaning_records = forwarded_to(
        _cleaning_log_of,
        CleaningLog.change_label, CleaningLog.undo_change, CleaningLog.record_decision,
        CleaningLog.undo_decision, CleaningLog.cleaning_records,
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

        CSV is safe to open in a spreadsheet: a text cell that starts with ``=``, ``+``,
        ``-``, ``@``, a tab or a carriage return (which a spreadsheet would run as a formula)
        is written with an apostrophe in front, as is one that starts with an apostrophe;
        numbers are written as they are. :func:`~alwidget.store.read_export` removes the
        apostrophes again, and JSON files keep every value unchanged.

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
