"""A Session's connection to its label store: restore on open, write-through on change.

This lives in the store layer so that :mod:`alwidget.session` imports no database code at
module level; a session imports it when it is constructed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StoreError
from .label_log import Votes
from .opening import open_store
from .records import LabelRecord
from .store import LabelStore

#: Environment variable naming the store a session uses when none is passed
#: (a path, a URL, or ":memory:"); the default file next to the notebook otherwise.
STORE_ENV = "ALWIDGET_STORE"


def pool_fingerprint(pool) -> str:
    """A hex digest identifying a pool by its kind, size and item ids.

    Two pools with the same ids (in any order) match, so a store keeps working when a
    pool is rebuilt from the same data; a pool with other items does not.
    """
    digest = hashlib.sha256(f"alwidget-pool/1\n{pool.kind}\n{len(pool)}\n".encode())
    for key in sorted(str(item_id) for item_id in pool.ids):
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()


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
        if isinstance(store, LabelStore):
            if store.pool_fingerprint not in (None, fingerprint):
                raise StoreError(
                    f"{store.name} belongs to another pool than this session's; open the "
                    "store for this pool or pass store=None"
                )
            self.store = store
        else:
            if store is None:
                store = os.environ.get(STORE_ENV) or None
            self.store = open_store(store, pool_fingerprint=fingerprint, annotator=annotator)
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
        return classes, votes

    def _check_items_in_pool(self, labeled_keys) -> None:
        unknown = [key for key in labeled_keys if key not in self._ids_by_key]
        if unknown:
            raise StoreError(
                f"{self.store.name} holds labels for items that are not in the pool "
                f"(e.g. {unknown[:3]}); open it with the pool it was made for"
            )

    # ----------------------------------------------------------------------- restoring
    def restored_state(self) -> RestoredState:
        """Read everything a session needs to continue where the store left off."""
        labels = self.store.current_labels()
        records: dict[str, LabelRecord] = {}
        for record in self.store.label_records():
            if labels.get(record.item_key) == record.label:
                records[record.item_key] = record  # the latest record carrying that label
        self._check_items_in_pool(labels)
        state = RestoredState()
        for key, label in labels.items():
            record = records[key]
            meta = {
                "annotator": record.annotator,
                "time": record.created_at.timestamp(),
                "model_version": record.model_version,
                "strategy": record.strategy,
                "score": record.score,
            }
            state.labels.append((self._ids_by_key[key], label, meta))
        state.history = self.store.rounds()
        state.queue = [
            self._ids_by_key[key]
            for key in self.store.load_queue()
            if key in self._ids_by_key and key not in labels
        ]
        state.checkpoint = self.store.load_checkpoint()
        return state

    # ------------------------------------------------------------------------- writing
    def record_labels(
        self, labeled: Sequence[tuple[object, str]], *, annotator: str, model_version: int,
        strategy: str,
    ) -> list[LabelRecord]:  # fmt: skip
        """Commit labels (all or none) before the session shows them as stored.

        The score comes from the last queried batch when the item was in it.
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
        return self.store.add_labels(entries)

    def record_undo(self, item_id, *, annotator: str) -> LabelRecord:
        """Commit an undo event for the annotator's label on ``item_id``; return the label undone."""
        return self.store.undo_label(str(item_id), annotator=annotator)

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
