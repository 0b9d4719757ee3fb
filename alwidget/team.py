"""Team mode of :class:`alwidget.Session`: several annotators label one pool through one store.

Each annotator runs their own session (own kernel or machine) with ``team=True`` on a
shared store; the store's team queue (:meth:`alwidget.store.LabelStore.claim`) decides who
labels what, and this module connects a session to it.

* :meth:`Session.query` ranks the items that still need labels with the session's
  strategy, publishes the top of that ranking as queue priorities (once per model version
  and strategy, :attr:`TeamMixin.team_publish_size` items at a time, more only when the
  published ones run out), claims ``k`` items for this annotator and explains exactly those.
* A published priority carries the ranking's *generation*, the number of labels its model
  was trained on, so the best-informed ranking in the team is handed out first and older
  rankings sink below it instead of lingering. Prioritized items go above every ranking.
* ``session.labels`` is the team's consensus, which trains the model: per item the majority
  of the annotators' current labels, ties to the latest (the rule of
  :meth:`LabelStore.current_labels`). :meth:`TeamMixin.refresh_labels` rebuilds it from the
  store; :meth:`Session.retrain` calls it first.

Relies on the session's ``pool``, ``classes``, ``annotator``, ``strategy``, ``mc_samples``,
``score_subset``, ``model_version``, ``_factory``, ``_lock``, ``_labels``, ``_label_meta``,
``_priority``, ``_rng``, ``_scored``, ``_labels_at_last_training``, ``_persistence``,
``_scoring_for``, ``_predict``, ``_labeled_snapshot``, ``_grow_classes`` and
``_persist_batch``. Like the rest of the session layer it imports no database code at
module level.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import AlreadyLabeledError, NotLabeledError
from .team_query import PRIORITIZED, TeamQueryMixin, TeamQueueEmptyError

__all__ = [
    "PRIORITIZED",
    "TeamMixin",
    "TeamQueueEmptyError",
    "TeamState",
    "consensus_label",
    "team_settings",
]


def team_settings(team, overlap, lease_seconds, annotator) -> TeamState | None:
    """Check a session's team arguments; the team state to start with, or None when solo."""
    if not isinstance(team, bool):
        raise TypeError(f"team must be True or False, got {team!r}")
    if not team:
        if overlap != 1 or lease_seconds != 600.0:
            raise ValueError(
                "overlap= and lease_seconds= only apply to team mode; pass team=True (with a "
                "shared store and annotator=) to use them"
            )
        return None
    if isinstance(overlap, bool) or not isinstance(overlap, int | np.integer) or overlap < 1:
        raise ValueError(f"overlap must be an integer >= 1 (annotators per item), got {overlap!r}")
    try:
        lease = float(lease_seconds)
    except (TypeError, ValueError):
        lease = math.nan
    if not (math.isfinite(lease) and lease > 0):
        raise ValueError(f"lease_seconds must be a positive number of seconds, got {lease_seconds!r}")
    if annotator is None:
        raise ValueError(
            "team mode needs annotator='<name>', a different one for each member of the team, "
            "so the store can tell whose label is whose and who holds which item"
        )
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError(f"annotator must be a non-empty string, got {annotator!r}")
    return TeamState(overlap=int(overlap), lease_seconds=lease)


def consensus_label(votes: dict[str, tuple[int, int]]) -> int:
    """The consensus class of one item: the majority, ties going to the latest tied label.

    ``votes`` maps annotator -> (event id, class index), as the store keeps them.
    """
    counts = Counter(label for _, label in votes.values())
    top = max(counts.values())
    return max(vote for vote in votes.values() if counts[vote[1]] == top)[1]


@dataclass
class TeamState:
    """What a team-mode session knows about its team (guarded by the session's lock)."""

    overlap: int
    lease_seconds: float
    #: pool position -> annotator -> (event id, class index) of their current label
    votes: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)
    #: own labels and undos so far: a refresh whose read overlapped one reads again
    writes: int = 0
    #: positions the queue handed to this session; labeled even when others got there first
    handed_out: set[int] = field(default_factory=set)
    #: prioritized item ids already put at the front of the queue
    boosted: set = field(default_factory=set)
    # The ranking being published: what it was made with, its order, how far it is published.
    ranking_key: tuple | None = None
    order: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    cursor: int = 0
    n_published: int = 0
    published: set[int] = field(default_factory=set)
    #: score of every position scored for the current ranking_key (NaN elsewhere)
    scores: np.ndarray | None = None
    query_lock: threading.Lock = field(default_factory=threading.Lock)


class TeamMixin(TeamQueryMixin):
    """Team-mode methods of :class:`alwidget.Session` (inactive when ``team=False``)."""

    _team: TeamState | None = None
    #: How many items of a ranking one publish puts in the team queue. Larger costs more
    #: per publish; smaller publishes more often when the team labels fast.
    team_publish_size: int = 256

    # ------------------------------------------------------------------------- public
    @property
    def team(self) -> bool:
        """Whether the session labels as one member of a team (``team=True``)."""
        return self._team is not None

    @property
    def overlap(self) -> int:
        """Distinct annotators wanted per item (1 outside team mode)."""
        return 1 if self._team is None else self._team.overlap

    @property
    def my_labels(self) -> dict:
        """Item id → class name of the labels this session's annotator gave, in labeling order.

        Outside team mode these are the session's labels given under its own annotator name.
        """
        with self._lock:
            if self._team is None:
                return {
                    self.pool.ids[p]: self.classes[c]
                    for p, c in self._labels.items()
                    if self._label_meta.get(p, {}).get("annotator", self.annotator) == self.annotator
                }
            mine = sorted(
                (vote[0], position, vote[1])
                for position, by in self._team.votes.items()
                if (vote := by.get(self.annotator)) is not None
            )
            return {self.pool.ids[p]: self.classes[c] for _, p, c in mine}

    def refresh_labels(self) -> int:
        """Load every annotator's current labels from the store (team mode).

        Rebuilds :attr:`labels` (the consensus) and takes over classes teammates added.
        :meth:`retrain` calls it, so training always uses the whole team's labels.

        Returns
        -------
        int
            Number of labeled items.
        """
        team = self._require_team("refresh_labels")
        for _attempt in range(3):
            with self._lock:
                writes = team.writes
            snapshot = self._persistence.team_snapshot()
            with self._lock:
                if team.writes == writes:  # no own label slipped in between read and apply
                    self._apply_team_snapshot(*snapshot)
                    return len(self._labels)
        with self._lock:  # this session labels faster than the store reads: read holding it off
            self._apply_team_snapshot(*self._persistence.team_snapshot())
            return len(self._labels)

    def agreement(self):
        """Agreement between annotators on items several of them labeled.

        Returns
        -------
        alwidget.store.AgreementReport
            Per item (keyed by ``str(item_id)``), per annotator, Cohen's kappa per pair and
            Fleiss' kappa overall; see :meth:`alwidget.store.LabelStore.agreement`.
        """
        return self.store.agreement()

    def conflicts(self) -> list[dict]:
        """Items whose annotators' current labels disagree, for review.

        Returns
        -------
        list of dict
            ``{"id", "item_key", "labels": {annotator: label}, "majority_label"}``
            (``majority_label`` is None on a tie); see :meth:`LabelStore.conflicts`.
        """
        return [
            {"id": self._persistence.item_id(entry["item_key"]), **entry}
            for entry in self.store.conflicts()
        ]

    def team_progress(self) -> dict[str, int]:
        """The team queue's counts: items, live leases, items by number of labels."""
        return self.store.team_progress()

    def release(self) -> int:
        """Give back the items this annotator holds but has not labeled (e.g. when stopping).

        Returns the number of items released; teammates can get them right away instead
        of after ``lease_seconds``.
        """
        team = self._require_team("release")
        released = self.store.release(annotator=self.annotator)
        with self._lock:
            team.handed_out.clear()
        return released

    # ----------------------------------------------------------------------- joining
    def _require_team(self, what: str) -> TeamState:
        if self._team is None:
            raise ValueError(f"{what}() belongs to team mode; create the session with team=True")
        return self._team

    def _join_team(self) -> None:
        """Called once the store is attached: check it can be shared, load the team's labels."""
        if not self._persistence.is_shared:
            self.close()
            raise ValueError(
                "team mode needs a store the other annotators can open: a PostgreSQL URL, or a "
                "SQLite file for annotators on one machine; this session's store is in memory "
                "(store=False, ':memory:' or $ALWIDGET_STORE)"
            )
        self._persistence.queue_batches = False  # leases keep the batch; the queue keeps priorities
        self._label_meta.clear()  # team mode keeps who-labeled-what in the votes instead
        self.refresh_labels()

    def _apply_team_snapshot(self, classes, votes, *, only_these: bool = False) -> None:
        """Take over the store's votes: all of them, or (``only_these``) those of the given items."""
        team = self._team
        names = [*(classes or []), *(label for by in votes.values() for _, label in by.values())]
        added = list(dict.fromkeys(name for name in names if name not in self.classes))
        if added:
            if not self._factory.can_change_classes:
                raise ValueError(
                    f"teammates added the classes {added}, but the model {self._factory.name} "
                    "cannot grow its output; pass a factory taking num_classes= (or a built-in model)"
                )
            self._grow_classes(added)
        position_of = self.pool.position
        fresh = {
            position_of(self._persistence.item_id(key)): {
                who: (event_id, self.classes.index(label)) for who, (event_id, label) in by.items()
            }
            for key, by in votes.items()
        }
        if only_these:
            if all(team.votes.get(position, {}) == by for position, by in fresh.items()):
                return  # nothing new (the usual case): skip the rebuild
            team.votes.update((position, by) for position, by in fresh.items() if by)
            for position in (position for position, by in fresh.items() if not by):
                team.votes.pop(position, None)
        else:
            team.votes = fresh
        self._rebuild_consensus()
        self._priority[:] = [i for i in self._priority if self.pool.position(i) not in self._labels]

    def _sync_team_classes(self) -> None:
        """Take over classes teammates added (before this session adds one)."""
        with self._lock:
            self._apply_team_snapshot(*self._persistence.team_snapshot())

    def _refresh_before_training(self) -> None:
        from .store import StoreError

        try:
            self.refresh_labels()
        except StoreError as error:
            warnings.warn(
                f"could not load the team's labels ({error}); training on the {len(self._labels)} "
                "labels this session knows",
                stacklevel=3,
            )

    # ------------------------------------------------------------------------ labels
    def _rebuild_consensus(self) -> None:
        """``_labels`` from the votes, ordered like the store's (by each item's latest label)."""
        votes = self._team.votes
        ordered = sorted(votes.items(), key=lambda item: max(event for event, _ in item[1].values()))
        self._labels.clear()
        self._labels.update((position, consensus_label(by)) for position, by in ordered if by)

    def _check_team_can_label(self, position: int, annotator: str) -> None:
        """Refuse a second label from one annotator, or one beyond ``overlap`` off the queue."""
        team = self._team
        item_id = self.pool.ids[position]
        if position not in team.handed_out:  # labeled by id, not from a batch: ask the store
            fresh = self._persistence.item_votes(str(item_id))
            self._apply_team_snapshot(None, {str(item_id): fresh}, only_these=True)
        by = team.votes.get(position, {})
        if annotator in by:
            raise AlreadyLabeledError(
                f"{annotator!r} already labeled item {item_id!r} "
                f"{self.classes[by[annotator][1]]!r}; undo it first"
            )
        if len(by) >= team.overlap and position not in team.handed_out:
            given = ", ".join(f"{who}: {self.classes[c]!r}" for who, (_, c) in sorted(by.items()))
            raise AlreadyLabeledError(
                f"item {item_id!r} already has {len(by)} label(s) ({given}) and the team gives each "
                f"item to {team.overlap} annotator(s) (overlap={team.overlap}); query() hands out "
                "the items that still need labels"
            )

    def _commit_team_labels(self, records) -> None:
        """Take stored labels (LabelRecords, in order) into the votes; caller holds the lock."""
        team = self._team
        for record in records:
            item_id = self._persistence.item_id(record.item_key)
            position = self.pool.position(item_id)
            by = team.votes.setdefault(position, {})
            by[record.annotator] = (record.event_id, self.classes.index(record.label))
            self._labels.pop(position, None)  # re-inserted last: it now has the latest label
            self._labels[position] = consensus_label(by)
            if item_id in self._priority:
                self._priority.remove(item_id)
        team.writes += 1

    def _undo_team_label(self, position: int) -> str:
        """Undo this annotator's own label on ``position``; caller holds the lock."""
        team = self._team
        by = team.votes.get(position, {})
        item_id = self.pool.ids[position]
        if self.annotator not in by:
            others = f"; its labels are teammates' ({', '.join(sorted(by))})" if by else ""
            raise NotLabeledError(
                f"{self.annotator!r} has no label on item {item_id!r} to undo{others}"
            )
        self._persistence.record_undo(item_id, annotator=self.annotator)
        _, class_index = by.pop(self.annotator)
        if not by:
            del team.votes[position]
        team.writes += 1
        self._rebuild_consensus()
        return self.classes[class_index]

    def _needs_labels_mask(self) -> np.ndarray:
        """Items the team still wants labels for that this annotator has not given; under lock."""
        mask = np.ones(len(self.pool), dtype=bool)
        for position, by in self._team.votes.items():
            if self.annotator in by or len(by) >= self._team.overlap:
                mask[position] = False
        return mask
