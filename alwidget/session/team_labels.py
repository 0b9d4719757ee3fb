"""The team's label book: several annotators on one shared store, trained on their consensus.

Each annotator runs their own session with ``team=True`` on a shared store. This book keeps
every annotator's current label per item (their *votes*, read from the store) and serves the
consensus — per item the majority, ties to the latest (the rule of
:meth:`alwidget.store.LabelStore.current_labels`) — as the labels training uses.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import (
    AlreadyLabeledError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotLabeledError,
)
from .labels import LabelBook

__all__ = ["TeamLabelBook", "TeamSettings", "consensus_label", "team_settings"]


@dataclass(frozen=True)
class TeamSettings:
    """How a team shares its work: annotators per item, and how long a lease lasts."""

    overlap: int
    lease_seconds: float


def team_settings(team, overlap, lease_seconds, annotator) -> TeamSettings | None:
    """Check a session's team arguments; the settings, or None when solo."""
    if not isinstance(team, bool):
        raise InvalidArgumentTypeError(f"team must be True or False, got {team!r}")
    if not team:
        if overlap != 1 or lease_seconds != 600.0:
            raise InvalidArgumentError(
                "overlap= and lease_seconds= only apply to team mode; pass team=True (with a "
                "shared store and annotator=) to use them"
            )
        return None
    if isinstance(overlap, bool) or not isinstance(overlap, int | np.integer) or overlap < 1:
        raise InvalidArgumentError(
            f"overlap must be an integer >= 1 (annotators per item), got {overlap!r}"
        )
    try:
        lease = float(lease_seconds)
    except (TypeError, ValueError):
        lease = math.nan
    if not (math.isfinite(lease) and lease > 0):
        raise InvalidArgumentError(
            f"lease_seconds must be a positive number of seconds, got {lease_seconds!r}"
        )
    if annotator is None:
        raise InvalidArgumentError(
            "team mode needs annotator='<name>', a different one for each member of the team, "
            "so the store can tell whose label is whose and who holds which item"
        )
    if not isinstance(annotator, str) or not annotator.strip():
        raise InvalidArgumentError(f"annotator must be a non-empty string, got {annotator!r}")
    return TeamSettings(overlap=int(overlap), lease_seconds=lease)


def consensus_label(votes: dict[str, tuple[int, int]]) -> int:
    """The consensus class of one item: the majority, ties going to the latest tied label.

    ``votes`` maps annotator -> (event id, class index), as the store keeps them.
    """
    counts = Counter(label for _, label in votes.values())
    top = max(counts.values())
    return max(vote for vote in votes.values() if counts[vote[1]] == top)[1]


class TeamLabelBook(LabelBook):
    """Votes of every annotator; :attr:`targets` holds their consensus.

    The store refuses an annotator's second current label on an item (another session of the
    same annotator may have given one), and undoes exactly the label event this book holds.

    Parameters
    ----------
    pool, classes, link, annotator
        As for :class:`LabelBook`.
    settings : TeamSettings
        Overlap and lease.
    grow_classes : callable
        Called with class names teammates added, before their labels are taken over.
    """

    def __init__(self, pool, classes, link, annotator, settings: TeamSettings,
                 grow_classes: Callable[[list[str]], None]) -> None:  # fmt: skip
        super().__init__(pool, classes, link, annotator)
        self.one_label_per = "annotator"
        self.settings = settings
        self.grow_classes = grow_classes
        #: pool position -> annotator -> (event id, class index) of their current label
        self.votes: dict[int, dict[str, tuple[int, int]]] = {}
        #: own labels and undos so far: a refresh whose read overlapped one reads again
        self.writes = 0
        #: positions the queue handed to this session; labeled even when others got there first
        self.handed_out: set[int] = set()

    # --------------------------------------------------------------- refreshing
    def refresh(self) -> int:
        """Load every annotator's current labels from the store; returns the labeled count."""
        for _attempt in range(3):
            with self.lock:
                writes = self.writes
            snapshot = self.link.team_snapshot()
            with self.lock:
                if self.writes == writes:  # no own label slipped in between read and apply
                    self.apply_snapshot(*snapshot)
                    return len(self.targets)
        with self.lock:  # this session labels faster than the store reads: read holding it off
            self.apply_snapshot(*self.link.team_snapshot())
            return len(self.targets)

    def before_training(self) -> None:
        from ..store import StoreError

        try:
            self.refresh()  # everyone's labels train everyone's model
        except StoreError as error:
            warnings.warn(
                f"could not load the team's labels ({error}); training on the "
                f"{len(self.targets)} labels this session knows",
                stacklevel=4,
            )

    def annotate_round(self, entry: dict) -> None:
        entry.setdefault("annotator", self.annotator)  # a team shares one history

    def sync_classes(self) -> None:
        """Take over classes teammates added (before this session adds one)."""
        with self.lock:
            self.apply_snapshot(*self.link.team_snapshot())

    def apply_snapshot(self, classes, votes, *, only_these: bool = False) -> None:
        """Take over the store's votes: all of them, or (``only_these``) those of given items."""
        names = [*(classes or []), *(label for by in votes.values() for _, label in by.values())]
        added = list(dict.fromkeys(name for name in names if name not in self.classes))
        if added:
            self.grow_classes(added)
        fresh = {
            self.pool.position(self.link.item_id(key)): {
                who: (event_id, self.classes.index(label)) for who, (event_id, label) in by.items()
            }
            for key, by in votes.items()
        }
        if only_these:
            if all(self.votes.get(position, {}) == by for position, by in fresh.items()):
                return  # nothing new (the usual case): skip the rebuild
            self.votes.update((position, by) for position, by in fresh.items() if by)
            for position in [position for position, by in fresh.items() if not by]:
                self.votes.pop(position, None)
        else:
            self.votes = fresh
        self._rebuild_consensus()
        self.priority[:] = [i for i in self.priority if self.pool.position(i) not in self.targets]

    def _rebuild_consensus(self) -> None:
        """Consensus from the votes, ordered like the store's (by each item's latest label)."""
        ordered = sorted(self.votes.items(), key=lambda item: max(e for e, _ in item[1].values()))
        self.targets.clear()
        self.targets.update((position, consensus_label(by)) for position, by in ordered if by)

    # ------------------------------------------------------------------- writes
    def check_can_label(self, position: int, annotator: str) -> None:
        """Refuse a second label from one annotator, or one beyond ``overlap`` off the queue."""
        item_id = self.pool.ids[position]
        if position not in self.handed_out:  # labeled by id, not from a batch: ask the store
            fresh = self.link.item_votes(str(item_id))
            self.apply_snapshot(None, {str(item_id): fresh}, only_these=True)
        by = self.votes.get(position, {})
        overlap = self.settings.overlap
        if annotator in by:
            raise AlreadyLabeledError(
                f"{annotator!r} already labeled item {item_id!r} "
                f"{self.classes[by[annotator][1]]!r}; undo it first"
            )
        if len(by) >= overlap and position not in self.handed_out:
            given = ", ".join(f"{who}: {self.classes[c]!r}" for who, (_, c) in sorted(by.items()))
            raise AlreadyLabeledError(
                f"item {item_id!r} already has {len(by)} label(s) ({given}) and the team gives "
                f"each item to {overlap} annotator(s) (overlap={overlap}); query() hands out "
                "the items that still need labels"
            )

    def commit(self, resolved, records, annotator, model_version, strategy) -> None:
        for record in records:
            position = self.pool.position(self.link.item_id(record.item_key))
            by = self.votes.setdefault(position, {})
            by[record.annotator] = (record.event_id, self.classes.index(record.label))
            self.targets.pop(position, None)  # re-inserted last: it now has the latest label
            self.targets[position] = consensus_label(by)
        self.writes += 1

    def unlabel(self, item_id) -> str:
        """Undo this annotator's own label; teammates' labels stay.

        Raises
        ------
        NothingToUndoError
            Another session of this annotator undid or replaced that label; nothing was
            undone and the item's votes are re-read from the store.
        """
        from ..store.errors import NothingToUndoError

        with self.lock:
            position = self.position(item_id)
            by = self.votes.get(position, {})
            if self.annotator not in by:
                others = f"; its labels are teammates' ({', '.join(sorted(by))})" if by else ""
                raise NotLabeledError(
                    f"{self.annotator!r} has no label on item {item_id!r} to undo{others}"
                )
            key = str(self.pool.ids[position])
            try:
                self.link.record_undo(
                    self.pool.ids[position],
                    annotator=self.annotator,
                    event_id=by[self.annotator][0],
                )
            except NothingToUndoError:
                self.take_over({key: self.link.item_votes(key)})
                raise
            _, class_index = by.pop(self.annotator)
            if not by:
                del self.votes[position]
            self.writes += 1
            self._rebuild_consensus()
            return self.classes[class_index]

    def take_over(self, votes: dict) -> None:
        with self.lock:
            self.apply_snapshot(None, votes, only_these=True)
            self.writes += 1  # a refresh that read before this must read again

    # ------------------------------------------------------------------ queries
    def needs_labels_mask(self) -> np.ndarray:
        """Items the team still wants labels for that this annotator has not given."""
        with self.lock:
            mask = np.ones(len(self.pool), dtype=bool)
            for position, by in self.votes.items():
                if self.annotator in by or len(by) >= self.settings.overlap:
                    mask[position] = False
            mask[list(self.excluded)] = False
        return mask

    def complete(self, position: int) -> bool:
        """Whether ``position`` has all the labels the team wants."""
        with self.lock:
            return len(self.votes.get(position, ())) >= self.settings.overlap

    def mine(self) -> dict:
        with self.lock:
            own = sorted(
                (vote[0], position, vote[1])
                for position, by in self.votes.items()
                if (vote := by.get(self.annotator)) is not None
            )
            return {self.pool.ids[p]: self.classes[c] for _, p, c in own}

    def restore(self, state) -> None:
        # Who labeled what comes from the votes, which refresh() loads; the queue is shared.
        with self.lock:
            self.priority = list(state.queue)
        self.refresh()
