"""The labeling half of :class:`alwidget.Session`: labels, undo, the priority queue.

Kept apart from training and scoring so each file holds one idea; it relies on the session's
``pool``, ``classes``, ``_lock``, ``_labels`` (pool position → class index, in labeling
order), ``_label_meta``, ``_priority``, ``_scored`` and ``_labels_at_last_training``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .errors import AlreadyLabeledError, NotLabeledError, UnknownItemError, UnknownLabelError

__all__ = ["LabelingMixin"]


class LabelingMixin:
    """Label bookkeeping shared by every session; thread-safe through ``self._lock``."""

    @property
    def labels(self) -> dict:
        """Item id → class name, in labeling order (a copy): the labels training uses.

        In team mode, the team's consensus: per item the majority of the annotators'
        current labels, ties going to the latest (as :meth:`LabelStore.current_labels`),
        as of the last :meth:`refresh_labels` plus this session's own labels since;
        :attr:`my_labels` holds this annotator's own.
        """
        with self._lock:
            return {self.pool.ids[p]: self.classes[c] for p, c in self._labels.items()}

    @property
    def labeled_ids(self) -> list:
        with self._lock:
            return [self.pool.ids[p] for p in self._labels]

    @property
    def unlabeled_ids(self) -> list:
        with self._lock:
            return [self.pool.ids[p] for p in self._unlabeled_positions()]

    @property
    def n_labels(self) -> int:
        return len(self._labels)

    @property
    def labels_since_retrain(self) -> int:
        """Labels added since the data of the last training run was taken."""
        return max(0, len(self._labels) - self._labels_at_last_training)

    @property
    def stale(self) -> bool:
        """Whether labels arrived after the last scoring (the ranking no longer reflects them)."""
        with self._lock:
            return self._scored is not None and self._scored["n_labels"] != len(self._labels)

    def label_counts(self) -> dict:
        """Class name → number of labels (every class present, zeros included)."""
        with self._lock:
            counts = np.bincount(np.fromiter(self._labels.values(), dtype=np.int64), minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    def _unlabeled_positions(self) -> np.ndarray:
        mask = np.ones(len(self.pool), dtype=bool)
        mask[list(self._labels)] = False
        return np.flatnonzero(mask)

    def _resolve_position(self, item_id) -> int:
        try:
            return self.pool.position(item_id)
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r}: it is not in the pool") from None

    def class_index(self, label) -> int:
        """Class index of a class name or index, with a clear error for anything else."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < len(self.classes):
                return int(label)
            raise UnknownLabelError(f"label index {int(label)} is out of range: there are {len(self.classes)} classes")
        name = str(label)
        if name in self.classes:
            return self.classes.index(name)
        raise UnknownLabelError(f"unknown label {label!r}: classes are {self.classes}")

    def label(self, ids, labels, *, annotator: str | None = None) -> None:
        """Record labels for items: ``label(id, "cat")`` or ``label([id1, id2], ["cat", 3])``.

        All ids and labels are checked before anything is stored, so a bad entry stores
        nothing.

        Raises
        ------
        UnknownItemError, UnknownLabelError, AlreadyLabeledError, ValueError
        """
        single = isinstance(ids, (str, int, np.integer)) or not isinstance(ids, Sequence | np.ndarray)
        id_list = [ids] if single else list(ids)
        label_list = [labels] if single or isinstance(labels, str) else list(labels)
        if len(id_list) != len(label_list):
            raise ValueError(f"got {len(id_list)} ids but {len(label_list)} labels")
        who = annotator or self.annotator
        with self._lock:
            resolved = []
            seen = set()
            for item_id, label in zip(id_list, label_list):
                position = self._resolve_position(item_id)
                if self._team is not None:
                    self._check_team_can_label(position, who)  # only the annotator's own label is in the way
                elif position in self._labels:
                    raise AlreadyLabeledError(
                        f"item {item_id!r} is already labeled {self.classes[self._labels[position]]!r}; undo it first"
                    )
                if position in seen:
                    raise AlreadyLabeledError(f"item {item_id!r} appears twice in one label() call")
                seen.add(position)
                resolved.append((position, self.class_index(label)))
            records = self._persist_labels(resolved, who)  # committed first
            if self._team is not None:
                self._commit_team_labels(records)
                return
            for position, class_index in resolved:
                self._commit_label(position, class_index, who)

    def _commit_label(self, position: int, class_index: int, annotator: str) -> None:
        """Store one validated label. Persistence hooks in here before memory changes."""
        item_id = self.pool.ids[position]
        meta = {"annotator": annotator, "time": time.time(), "model_version": self.model_version, "strategy": self.strategy}
        self._labels[position] = class_index
        self._label_meta[position] = meta
        if item_id in self._priority:
            self._priority.remove(item_id)

    def unlabel(self, item_id) -> str:
        """Undo the label of ``item_id``; returns the class name it had.

        In team mode only this annotator's own label is undone; teammates' stay.
        """
        with self._lock:
            position = self._resolve_position(item_id)
            if self._team is not None:
                return self._undo_team_label(position)
            if position not in self._labels:
                raise NotLabeledError(f"item {item_id!r} has no label to undo")
            self._persist_undo(position)
            class_index = self._labels.pop(position)
            self._label_meta.pop(position, None)
            return self.classes[class_index]

    def prioritize(self, ids) -> None:
        """Put unlabeled items at the front of the next batches ("label these next")."""
        with self._lock:
            for item_id in ids:
                position = self._resolve_position(item_id)
                if position not in self._labels and item_id not in self._priority:
                    self._priority.append(self.pool.ids[position])
            self._persist_queue()

