"""Label books: which item carries which class, who gave it, and the "label these next" queue.

A session holds one book: :class:`SoloLabelBook` (one label per item) or
:class:`alwidget.session.team_labels.TeamLabelBook` (several annotators, consensus). Both
answer the same questions, so the session's code paths hold no team branches. Every write
goes to the store first and shows in memory only once it is committed.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..errors import AlreadyLabeledError, NotLabeledError, UnknownItemError, UnknownLabelError
from .checks import check_label_arguments

__all__ = ["LabelBook", "SoloLabelBook", "split_label_arguments"]


def split_label_arguments(ids, labels) -> tuple[list, list]:
    """``label(id, "cat")`` or ``label([id1, id2], ["cat", 3])`` as two equal-length lists."""
    return check_label_arguments(ids, labels)


class LabelBook:
    """What both books share: the labels training uses, the priority queue, look-ups.

    Parameters
    ----------
    pool : Pool
        The items.
    classes : list of str
        The session's class list (shared, so classes added later are seen here).
    link : alwidget.store.session_link.SessionStore
        Where every change is committed first.
    annotator : str
        Whose labels this session writes.
    """

    #: What the store refuses as a second label (see ``LabelStore.add_labels``): another
    #: session on the same store may have labeled an item this one still shows as unlabeled.
    one_label_per: str | None = None

    def __init__(self, pool, classes: list[str], link, annotator: str) -> None:
        self.pool = pool
        self.classes = classes
        self.link = link
        self.annotator = annotator
        # Guards the fields below and is held across a store write, so memory follows the
        # store's order. May be held while taking the model's lock, never the other way.
        self.lock = threading.RLock()
        self.targets: dict[int, int] = {}  # pool position -> class index, in labeling order
        self.priority: list = []  # item ids to put at the front of the next batches
        # Positions marked "not a class" (see alwidget.session.cleaning): never queried,
        # never labeled, so never trained on.
        self.excluded: set[int] = set()

    # ---------------------------------------------------------------- look-ups
    def position(self, item_id) -> int:
        try:
            return self.pool.position(item_id)
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r}: it is not in the pool") from None

    def class_index(self, label) -> int:
        """Class index of a class name or index, with a clear error for anything else."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < len(self.classes):
                return int(label)
            raise UnknownLabelError(
                f"label index {int(label)} is out of range: there are {len(self.classes)} classes"
            )
        name = str(label)
        if name in self.classes:
            return self.classes.index(name)
        raise UnknownLabelError(f"unknown label {label!r}: classes are {self.classes}")

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Labeled positions and their class indices, in labeling order."""
        with self.lock:
            count = len(self.targets)
            positions = np.fromiter(self.targets.keys(), dtype=np.int64, count=count)
            targets = np.fromiter(self.targets.values(), dtype=np.int64, count=count)
        return positions, targets

    def named(self) -> dict:
        with self.lock:
            return {self.pool.ids[p]: self.classes[c] for p, c in self.targets.items()}

    def labeled_mask(self) -> np.ndarray:
        with self.lock:
            mask = np.zeros(len(self.pool), dtype=bool)
            mask[list(self.targets)] = True
        return mask

    def unlabeled_positions(self) -> np.ndarray:
        """Unlabeled items a query may hand out (those marked "not a class" left out)."""
        mask = ~self.labeled_mask()
        with self.lock:
            mask[list(self.excluded)] = False
        return np.flatnonzero(mask)

    def counts(self) -> dict:
        with self.lock:
            values = np.fromiter(self.targets.values(), dtype=np.int64, count=len(self.targets))
        counts = np.bincount(values, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    def __len__(self) -> int:
        return len(self.targets)

    # ------------------------------------------------------------------ writes
    def label(self, ids, labels, *, annotator: str, model_version: int, strategy: str) -> None:
        """Validate every pair, commit them to the store, then show them in memory.

        Raises
        ------
        LabelConflictError
            Another session on the store labeled one of the items first; nothing was saved
            and the book now shows the store's labels of those items.
        """
        from ..store.errors import LabelConflictError

        id_list, label_list = split_label_arguments(ids, labels)
        with self.lock:
            resolved, seen = [], set()
            for item_id, label in zip(id_list, label_list):
                position = self.position(item_id)
                if position in self.excluded:
                    raise AlreadyLabeledError(
                        f"item {item_id!r} is marked 'not a class'; unmark it first "
                        "(session.unmark_not_a_class) to label it"
                    )
                self.check_can_label(position, annotator)
                if position in seen:
                    raise AlreadyLabeledError(f"item {item_id!r} appears twice in one label() call")
                seen.add(position)
                resolved.append((position, self.class_index(label)))
            try:
                records = self.link.record_labels(
                    [(self.pool.ids[p], self.classes[c]) for p, c in resolved],
                    annotator=annotator, model_version=model_version, strategy=strategy,
                    one_label_per=self.one_label_per,
                )  # fmt: skip
            except LabelConflictError as conflict:
                self.take_over(conflict.votes)
                raise
            self.commit(resolved, records, annotator, model_version, strategy)
            for position, _ in resolved:
                self._drop_priority(self.pool.ids[position])

    def prioritize(self, ids) -> None:
        """Put unlabeled items at the front of the next batches, and save the queue."""
        with self.lock:
            for item_id in ids:
                position = self.position(item_id)
                if position not in self.targets and self.pool.ids[position] not in self.priority:
                    self.priority.append(self.pool.ids[position])
            self.link.save_queue(self.priority)

    def priority_ids(self) -> list:
        with self.lock:
            return list(self.priority)

    def _drop_priority(self, item_id) -> None:
        if item_id in self.priority:
            self.priority.remove(item_id)

    # ---------------------------------------------------- what each book decides
    def check_can_label(self, position: int, annotator: str) -> None:
        raise NotImplementedError

    def commit(self, resolved, records, annotator: str, model_version: int, strategy: str):
        raise NotImplementedError

    def unlabel(self, item_id) -> str:
        raise NotImplementedError

    def take_over(self, votes: dict) -> None:
        """Show what the store holds for some items: ``{item_key: {annotator: (event_id,
        label)}}`` (no annotator: unlabeled), after another session on the store changed them."""
        raise NotImplementedError

    def needs_labels_mask(self) -> np.ndarray:
        """Items a query may hand to this annotator."""
        raise NotImplementedError

    def mine(self) -> dict:
        """Item id → class name of this annotator's own labels, in labeling order."""
        raise NotImplementedError

    def restore(self, state) -> None:
        """Take over what the store already holds (labels, queue)."""
        raise NotImplementedError

    def before_training(self) -> None:
        """Bring the labels up to date before a training snapshot is taken."""

    def annotate_round(self, entry: dict) -> None:
        """Add what a history entry should say about who trained it."""


class SoloLabelBook(LabelBook):
    """One annotator, one label per item."""

    one_label_per = "item"

    def __init__(self, pool, classes, link, annotator) -> None:
        super().__init__(pool, classes, link, annotator)
        self.meta: dict[int, dict] = {}  # pool position -> annotator, time, model, strategy

    def check_can_label(self, position: int, annotator: str) -> None:
        if position in self.targets:
            raise AlreadyLabeledError(
                f"item {self.pool.ids[position]!r} is already labeled "
                f"{self.classes[self.targets[position]]!r}; undo it first"
            )

    def commit(self, resolved, records, annotator, model_version, strategy) -> None:
        for (position, class_index), record in zip(resolved, records, strict=True):
            self.targets[position] = class_index
            self.meta[position] = {
                "annotator": annotator, "time": time.time(),
                "model_version": model_version, "strategy": strategy,
                "event_id": record.event_id,
            }  # fmt: skip

    def unlabel(self, item_id) -> str:
        """Undo the label this session shows, by its event in the store.

        Raises
        ------
        NothingToUndoError
            Another session on the store undid or replaced that label; nothing was undone
            and the book now shows what the store holds for the item.
        """
        from ..store.errors import NothingToUndoError

        with self.lock:
            position = self.position(item_id)
            if position not in self.targets:
                raise NotLabeledError(f"item {item_id!r} has no label to undo")
            meta = self.meta.get(position, {})
            key = str(self.pool.ids[position])
            try:
                self.link.record_undo(
                    self.pool.ids[position],
                    annotator=meta.get("annotator", self.annotator),
                    event_id=meta.get("event_id"),
                )
            except NothingToUndoError:
                self.take_over({key: self.link.item_votes(key)})
                raise
            class_index = self.targets.pop(position)
            self.meta.pop(position, None)
            return self.classes[class_index]

    def take_over(self, votes: dict) -> None:
        from ..store.label_log import resolve_votes

        with self.lock:
            for key, by in votes.items():
                position = self.pool.position(self.link.item_id(key))
                self.targets.pop(position, None)
                self.meta.pop(position, None)
                label = resolve_votes({key: by}).get(key)
                if label is None or label not in self.classes:
                    continue  # a class this session lacks shows after reopening
                event_id, who = max((e, who) for who, (e, name) in by.items() if name == label)
                self.targets[position] = self.classes.index(label)
                self.meta[position] = {"annotator": who, "time": time.time(), "event_id": event_id}
                self._drop_priority(self.pool.ids[position])

    def needs_labels_mask(self) -> np.ndarray:
        mask = ~self.labeled_mask()
        with self.lock:
            mask[list(self.excluded)] = False
        return mask

    def mine(self) -> dict:
        with self.lock:
            return {
                self.pool.ids[p]: self.classes[c]
                for p, c in self.targets.items()
                if self.meta.get(p, {}).get("annotator", self.annotator) == self.annotator
            }

    def restore(self, state) -> None:
        with self.lock:
            for item_id, class_name, meta in state.labels:
                position = self.pool.position(item_id)
                self.targets[position] = self.classes.index(class_name)
                self.meta[position] = dict(meta)
            self.priority = list(state.queue)
