"""A Session's connection to its label store: restore on open, write-through on change.

This lives in the store layer so that :mod:`alwidget.session` imports no database code at
module level; a session imports it when it is constructed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .connection import default_store_path
from .errors import PoolMismatchError, StoreCorruptedError, StoreError
from .label_log import Votes
from .opening import open_store
from .records import LabelRecord
from .store import LabelStore

#: Environment variable naming the store a session uses when none is passed
#: (a path, a URL, or ":memory:"); the default file next to the notebook otherwise.
STORE_ENV = "ALWIDGET_STORE"


def pool_fingerprint(pool) -> str:
    """A hex digest identifying a pool by its content (:attr:`alwidget.Pool.content_digest`).

    A pool rebuilt from the same data (same items, ids and order) gets the same fingerprint,
    so its store and its default store file are found again; two pools of the same size but
    other items do not share a store.
    """
    return pool.content_digest


def ids_fingerprint(pool) -> str:
    """The fingerprint stores recorded before pools were fingerprinted by content.

    It covers the pool's kind, size and ids only, so two different pools of the same size
    share it; it is used only to recognise (and upgrade) stores written back then.
    """
    digest = hashlib.sha256(f"alwidget-pool/1\n{pool.kind}\n{len(pool)}\n".encode())
    for key in sorted(str(item_id) for item_id in pool.ids):
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def rebind_store(store, pool) -> str | None:
    """Tie a store to ``pool`` after the pool's content changed but its items did not.

    A store is refused (:class:`PoolMismatchError`) when its pool's content fingerprint
    changes, which happens when image files are moved, copied or touched. When the items
    are still the ones the labels were given to, this ties the store to the pool as it is
    now; reopen it with the session afterwards.

    Parameters
    ----------
    store : str, path-like or LabelStore
        The store (as for ``Session(store=)``; None is the default file of ``pool``).
    pool : Pool
        The pool the store's labels belong to.

    Returns
    -------
    str or None
        The fingerprint the store recorded before.

    Raises
    ------
    PoolMismatchError
        The store holds labels of items that are not in ``pool``; nothing was changed.
    """
    keys = [str(item_id) for item_id in pool.ids]
    if isinstance(store, LabelStore):
        return store.rebind_pool(pool_fingerprint(pool), keys)
    with open_store(store, pool_fingerprint=None) as opened:
        return opened.rebind_pool(pool_fingerprint(pool), keys)


@dataclass
class RestoredState:
    """What a resumed store gives back to a session.

    Attributes
    ----------
    labels : list of (item_id, class_name, meta)
        Current labels in labeling order; ``meta`` has annotator, time, model_version,
        strategy and score.
    history : list of dict
        Rounds as recorded.
    queue : list
        Item ids that were queued and are still unlabeled, in order.
    checkpoint : (int, list of dict) or None
        ``(model_version, state_dicts)`` of the last saved model.
    """

    labels: list[tuple[object, str, dict]] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    queue: list = field(default_factory=list)
    checkpoint: tuple[int, list[dict]] | None = None


#: At most this many sibling default files are looked into when a new one is created.
_SIBLINGS_CHECKED = 50


def _open_default_store(
    fingerprint: str, annotator: str, binding: dict, item_keys: set[str]
) -> LabelStore:
    """The store of ``./alwidget-<fingerprint[:8]>.db``, or the file an older alwidget
    named after the pool's ids when that one belongs to this pool.

    Older versions named the default file after the ids fingerprint; a notebook re-run
    after upgrading finds its labels there (the file keeps its name, re-recorded with the
    content fingerprint). A file of another pool with the same ids is left alone.

    When a new file is created, other default files in the folder whose labels all name
    items of this pool are reported: after image files are moved or copied the pool's
    content fingerprint changes, and the labels must not seem lost.
    """
    path = default_store_path(fingerprint)
    former = default_store_path(binding["former_fingerprints"][0])
    if not path.exists() and former.exists() and former.stat().st_size > 0:
        try:
            return open_store(former, pool_fingerprint=fingerprint, annotator=annotator, **binding)
        except PoolMismatchError:
            pass  # another pool's: this pool gets a file of its own
    siblings = [] if path.exists() else _stores_labeling_these_items(path.parent, item_keys)
    store = open_store(path, pool_fingerprint=fingerprint, annotator=annotator, **binding)
    if store.created and siblings:
        shown = ", ".join(f"{name} ({count} items labeled)" for name, count in siblings[:3])
        warnings.warn(
            f"started a new label store {path.name}, but {shown} in the same folder holds "
            "labels of items with this pool's ids, for a pool whose content differs (say, its "
            "files were moved, copied or changed). If those labels are this pool's, tie that "
            "file to it with alwidget.store.rebind_store(path, pool) and pass store=path.",
            stacklevel=4,
        )
    return store


def _stores_labeling_these_items(folder: Path, item_keys: set[str]) -> list[tuple[str, int]]:
    """Default store files in ``folder`` whose labeled items all have ids in ``item_keys``."""
    found = []
    for candidate in sorted(folder.glob("alwidget-*.db"))[:_SIBLINGS_CHECKED]:
        try:
            conn = sqlite3.connect(f"{candidate.resolve().as_uri()}?mode=ro", uri=True)
            try:
                keys = [row[0] for row in conn.execute("SELECT item_key FROM label_events")]
            finally:
                conn.close()
        except sqlite3.Error:
            continue  # not a store, or busy: nothing to report
        if keys and all(key in item_keys for key in keys):
            found.append((candidate.name, len(set(keys))))
    return found


class SessionStore:
    """Writes a session's labels, history, queue and model to a :class:`LabelStore`.

    Parameters
    ----------
    store : None, False, str, path-like or LabelStore
        As accepted by :func:`open_store`; None uses ``$ALWIDGET_STORE`` when set, else
        ``./alwidget-<fingerprint[:8]>.db``.
    pool : Pool
        The session's pool.
    classes : list of str
        The session's classes.
    annotator : str
        Default annotator.
    """

    def __init__(self, store, pool, classes: Sequence[str], annotator: str) -> None:
        self.pool = pool
        self._ids_by_key = {str(item_id): item_id for item_id in pool.ids}
        fingerprint = pool_fingerprint(pool)
        # A store written before content fingerprints recorded the ids fingerprint.
        binding = {"former_fingerprints": (ids_fingerprint(pool),), "pool_classes": classes}
        if isinstance(store, LabelStore):
            store.bind_pool(fingerprint, **binding)
            self.store = store
        else:
            if store is None:
                store = os.environ.get(STORE_ENV) or None
            if store is None:
                self.store = _open_default_store(
                    fingerprint, annotator, binding, set(self._ids_by_key)
                )
            else:
                self.store = open_store(
                    store, pool_fingerprint=fingerprint, annotator=annotator, **binding
                )
        # Classes added during labeling (Session.add_class) come after the pool's own.
        stored = list(self.store.classes or [])
        self.classes = list(classes) + [name for name in stored if name not in classes]
        if self.classes != stored:
            self.store.set_classes(self.classes)
        self._batch_scores: dict[str, tuple[float, str, int]] = {}
        self._batch_ids: list = []
        #: Whether the saved queue includes the rest of the last batch. In team mode the
        #: annotator's leases keep that batch instead, so only prioritized items are saved.
        self.queue_batches = True

    @property
    def is_shared(self) -> bool:
        """Whether other processes can open this store (False for an in-memory one)."""
        return self.store.is_shared

    def item_id(self, item_key: str):
        """The pool id whose ``str()`` is ``item_key``."""
        try:
            return self._ids_by_key[item_key]
        except KeyError:
            raise StoreError(
                f"{self.store.name} hands out item {item_key!r}, which is not in this pool"
            ) from None

    def publish(self, priorities: Mapping[str, float]) -> int:
        """Put items in the team queue, keeping any priority of a higher generation.

        A priority's integer part is the generation of the ranking that gave it (the
        number of labels its model was trained on; prioritized items are far above any),
        so a ranking by a model trained on fewer labels, or a ranking after a user's
        "label these next", never pushes an item down. Within one generation the latest
        ranking wins. Returns the number of items written or kept.
        """
        return self.store.enqueue(priorities.items(), keep_higher_generations=True)

    def item_votes(self, item_key: str) -> dict[str, tuple[int, str]]:
        """Every annotator's current label on one item: ``{annotator: (event_id, label)}``."""
        return self.store.item_votes(item_key)

    def team_snapshot(self) -> tuple[list[str] | None, Votes]:
        """Classes and every annotator's current label per item, read in one transaction.

        Returns
        -------
        (classes, votes)
            The store's classes (None when it has none) and ``{item_key: {annotator:
            (event_id, label)}}``, the data :meth:`LabelStore.current_labels` resolves.
        """
        classes, votes = self.store.team_snapshot()
        self._check_items_in_pool(votes)
        if classes is not None:
            self._check_labels_are_classes(votes, classes)
        return classes, votes

    def _check_items_in_pool(self, labeled_keys) -> None:
        unknown = [key for key in labeled_keys if key not in self._ids_by_key]
        if unknown:
            raise StoreError(
                f"{self.store.name} holds labels for items that are not in the pool "
                f"(e.g. {unknown[:3]}); open it with the pool it was made for"
            )

    def _check_labels_are_classes(self, votes: Votes, classes: Sequence[str]) -> None:
        # Opening checks labels against the stored classes, but a hand-edited store can hold
        # others; refusing keeps every label where it is rather than dropping it.
        for key, by in votes.items():
            for who, (event_id, label) in by.items():
                if label not in classes:
                    raise StoreCorruptedError(
                        f"{self.store.name} holds the label {label!r} (item {key!r}, "
                        f"annotator {who!r}, event {event_id}), which is not among its "
                        f"classes {list(classes)}: the store was edited outside alwidget. "
                        f"Add the class with store.set_classes([..., {label!r}]) or undo that "
                        f"label with store.undo_label({key!r}, annotator={who!r}), then open "
                        "the session again."
                    )

    # ----------------------------------------------------------------------- restoring
    def restored_state(self) -> RestoredState:
        """Read everything a session needs to continue where the store left off.

        Labels must be sound; a damaged learning history or checkpoint is only warned about
        (both can be recomputed from the labels).
        """
        labels = self.store.current_labels()
        records: dict[str, LabelRecord] = {}
        votes: Votes = {}
        for record in self.store.label_records():
            votes.setdefault(record.item_key, {})[record.annotator] = (
                record.event_id, record.label
            )  # fmt: skip
            if labels.get(record.item_key) == record.label:
                records[record.item_key] = record  # the latest record carrying that label
        self._check_items_in_pool(labels)
        self._check_labels_are_classes(votes, self.classes)
        state = RestoredState()
        for key, label in labels.items():
            record = records[key]
            meta = {
                "annotator": record.annotator,
                "time": record.created_at.timestamp(),
                "model_version": record.model_version,
                "strategy": record.strategy,
                "score": record.score,
                "event_id": record.event_id,
            }
            state.labels.append((self._ids_by_key[key], label, meta))
        state.queue = [
            self._ids_by_key[key]
            for key in self.store.load_queue()
            if key in self._ids_by_key and key not in labels
        ]
        try:
            state.history = self.store.rounds()
        except StoreCorruptedError as error:
            warnings.warn(f"{error} Starting with an empty learning history.", stacklevel=4)
        try:
            state.checkpoint = self.store.load_checkpoint()
        except StoreCorruptedError as error:
            warnings.warn(f"{error} The model starts untrained.", stacklevel=4)
        return state

    # ------------------------------------------------------------------------- writing
    def record_labels(
        self, labeled: Sequence[tuple[object, str]], *, annotator: str, model_version: int,
        strategy: str, one_label_per: str | None = None,
    ) -> list[LabelRecord]:  # fmt: skip
        """Commit labels (all or none) before the session shows them as stored.

        The score comes from the last queried batch when the item was in it;
        ``one_label_per`` is passed to :meth:`LabelStore.add_labels` (it raises
        :class:`LabelConflictError` when another session labeled an item first).
        """
        entries = []
        for item_id, class_name in labeled:
            key = str(item_id)
            surfaced = self._batch_scores.get(key)
            entries.append(
                {
                    "item_key": key,
                    "label": class_name,
                    "annotator": annotator,
                    "model_version": surfaced[2] if surfaced else model_version,
                    "strategy": surfaced[1] if surfaced else strategy,
                    "score": surfaced[0] if surfaced else None,
                }
            )
        return self.store.add_labels(entries, one_label_per=one_label_per)

    def record_undo(self, item_id, *, annotator: str, event_id: int | None = None) -> LabelRecord:
        """Commit an undo of the label event ``event_id`` (the session's own) on ``item_id``, or
        of the annotator's latest label there; return the label undone.

        Raises :class:`NothingToUndoError` when that label is no longer current.
        """
        return self.store.undo_label(str(item_id), annotator=annotator, event_id=event_id)

    def remember_batch(self, batch, priority: Sequence) -> None:
        """Keep the batch's scores for the labels to come and save the queue."""
        self._batch_scores = {
            str(item_id): (float(score), batch.strategy, batch.model_version)
            for item_id, score in zip(batch.ids, batch.scores, strict=True)
        }
        self._batch_ids = list(batch.ids)
        self.save_queue(priority)

    def save_queue(self, priority: Sequence) -> None:
        """Save prioritized items followed by the rest of the last batch."""
        batch_ids = self._batch_ids if self.queue_batches else []
        queue = list(dict.fromkeys(str(item_id) for item_id in [*priority, *batch_ids]))
        self.store.save_queue(queue)

    def _background(self, what: str, action) -> None:
        # History and checkpoints can be recomputed from the labels, so a store outage
        # while saving them must not throw away a finished training run.
        try:
            action()
        except StoreError as error:
            warnings.warn(f"could not save the {what} to the label store: {error}", stacklevel=3)

    def record_round(self, entry: Mapping[str, object]) -> None:
        """Append a history entry (a failure is a warning, not an error)."""
        self._background("learning history", lambda: self.store.record_round(entry))

    def update_round(self, entry: Mapping[str, object]) -> None:
        """Rewrite the stored history entry of ``entry["model_version"]`` (warning on failure)."""
        self._background(
            "learning history",
            lambda: self.store.update_round(entry["model_version"], entry),
        )

    def save_model(self, model_version: int, members: Sequence) -> None:
        """Save the members' weights as the latest checkpoint (a failure is a warning)."""
        state_dicts = [member.state_dict() for member in members]
        self._background(
            "model checkpoint", lambda: self.store.save_checkpoint(model_version, state_dicts)
        )

    # ------------------------------------------------------------------------- reading
    def export(self, path: str | Path, *, history: bool = False) -> Path:
        """Write labels with their metadata to ``.csv``, ``.json`` or ``.jsonl``."""
        return self.store.export(path, history=history)

    def to_dataframe(self, *, history: bool = False):
        """Labels with their metadata as a pandas DataFrame."""
        return self.store.to_dataframe(history=history)

    def close(self) -> None:
        self.store.close()
