"""How a team-mode session queries: rank, publish to the team queue, claim, explain.

A ranking is published once per model version, strategy and class list,
:attr:`TeamQueue.publish_size` items at a time; the next part follows only when the claims
run short. A published priority is ``generation + 1 - rank / (pool size + 1)``, its integer
part the number of labels the ranking's model was trained on, so the best-informed ranking
in the team is handed out first and older rankings sink below it. Prioritized items go above
every ranking. The store keeps the higher generation when two rankings meet.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from ..acquisition import Batch, build_batch
from ..errors import PoolExhaustedError
from ..strategies import Selection
from .acquire import AcquisitionSettings, acquire
from .model_state import ModelState
from .team_labels import TeamLabelBook

__all__ = ["PRIORITIZED", "TeamQueue", "TeamQueueEmptyError"]

#: Queue priority of prioritized items: above any ranking (whose priorities stay below the
#: pool size + 1).
PRIORITIZED = 1e12


class TeamQueueEmptyError(PoolExhaustedError):
    """The team queue has nothing to hand to this annotator now.

    Either every item has its ``overlap`` labels, or the items that still need labels are
    leased to other annotators (they come back when a lease runs out).
    """


class TeamQueue:
    """Publishes this session's ranking to the store's team queue and claims from it."""

    #: How many items of a ranking one publish puts in the team queue. Larger costs more
    #: per publish; smaller publishes more often when the team labels fast.
    publish_size: int = 256

    def __init__(self, pool, book: TeamLabelBook, model: ModelState,
                 settings: AcquisitionSettings, classes: list[str]) -> None:  # fmt: skip
        self.pool = pool
        self.book = book
        self.model = model
        self.settings = settings
        self.classes = classes
        self.link = book.link
        # Serialises whole queries; taken before the book's or the model's lock.
        self.query_lock = threading.Lock()
        self.boosted: set = set()  # prioritized ids already put at the front of the queue
        self.ranking_key: tuple | None = None
        self.order = np.empty(0, dtype=np.int64)
        self.cursor = 0
        self.n_published = 0
        self.published: set[int] = set()
        #: score of every position scored for the current ranking_key (NaN elsewhere)
        self.scores = np.full(len(pool), np.nan)

    def query(self, size) -> tuple[Batch, dict]:
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"batch size must be a positive integer, got {size!r}")
        size = int(size)
        timings = {"rank_seconds": 0.0, "publish_seconds": 0.0, "claim_seconds": 0.0,
                   "n_scored": 0, "n_published": 0, "refreshed": False}  # fmt: skip
        with self.query_lock:
            settings = self.settings
            key = (self.model.version, settings.strategy, settings.mc_samples, len(self.classes))
            if self.ranking_key != key:
                self.ranking_key, self.n_published, self.published = key, 0, set()
                self.scores = np.full(len(self.pool), np.nan)
                self._rank(size, timings)
            self._publish_next(timings, boosts_only=self.n_published > 0)
            claimed = self._claim(size, timings)
            while len(claimed) < size:
                if not timings["refreshed"]:  # teammates' labels may have used the ranking up
                    self.book.refresh()
                    timings["refreshed"] = True
                more = self._publish_next(timings) or (
                    self._rank(size, timings) and self._publish_next(timings)
                )  # the next part of this ranking, else a ranking of what was never published
                if not more:
                    break  # everything that still needs labels is published
                claimed = self._claim(size, timings)
            if not claimed:
                raise TeamQueueEmptyError(self._empty_queue_message())
            batch = self._explain(claimed)  # reads the ranking's scores: still under the lock
        return batch, timings

    def _rank(self, size: int, timings: dict) -> bool:
        """Score what still needs labels (not yet published for this ranking) and order it.

        The strategy's joint selection of ``4 × size`` items (at most a publish) comes first,
        then the rest by score.
        """
        started = time.perf_counter()
        mask = self.book.needs_labels_mask()
        mask[list(self.published)] = False
        candidates = np.flatnonzero(mask)
        if len(candidates) == 0:
            self.order, self.cursor = candidates, 0
            return False
        candidates = self.settings.subsample(candidates)
        labeled, _ = self.book.snapshot()
        joint = min(len(candidates), 4 * size, self.publish_size)
        result = acquire(
            self.model, self.settings, candidates, batch_size=joint,
            labeled_positions=labeled, n_labels=len(labeled),
        )  # fmt: skip
        first = np.asarray(result.selection.indices, dtype=np.int64)
        by_score = np.argsort(-result.scores_N, kind="stable")
        order = np.concatenate([first, by_score[~np.isin(by_score, first)]])
        self.order, self.cursor = candidates[order], 0
        self.scores[candidates] = result.scores_N
        timings["rank_seconds"] += time.perf_counter() - started
        timings["n_scored"] += len(candidates)
        return True

    def _publish_next(self, timings: dict, *, boosts_only: bool = False) -> int:
        """Put new prioritized items and the next part of the ranking into the team queue."""
        started = time.perf_counter()
        needed = self.book.needs_labels_mask()
        boosts = [
            (item_id, PRIORITIZED - n)
            for n, item_id in enumerate(self.book.priority_ids())
            if item_id not in self.boosted
        ]
        with self.model.lock:
            version, trained_on = self.model.version, self.model.labels_at_last_training
        generation = trained_on if version > 0 else 0
        chunk = []
        limit = 0 if boosts_only else self.publish_size
        while len(chunk) < limit and self.cursor < len(self.order):
            position = int(self.order[self.cursor])
            self.cursor += 1
            if needed[position]:
                chunk.append(position)
        # Ranks continue across the parts of one ranking; all lie in (generation, generation + 1).
        span = len(self.pool) + 1
        entries = {
            str(self.pool.ids[p]): generation + 1 - (self.n_published + rank + 1) / span
            for rank, p in enumerate(chunk)
        }
        entries.update((str(item_id), priority) for item_id, priority in boosts)
        self.link.publish(entries)
        self.boosted.update(item_id for item_id, _ in boosts)
        self.n_published += len(chunk)
        self.published.update(chunk)
        timings["publish_seconds"] += time.perf_counter() - started
        timings["n_published"] += len(entries)
        return len(chunk)

    def _claim(self, size: int, timings: dict) -> list[int]:
        """Claim up to ``size`` items; leases on items known to have their labels go back."""
        started = time.perf_counter()
        settings, annotator = self.book.settings, self.book.annotator
        keys = self.link.store.claim(
            size, annotator, lease_seconds=settings.lease_seconds, overlap=settings.overlap
        )
        positions = [self.pool.position(self.link.item_id(key)) for key in keys]
        # A lease that ran out while teammates labeled the item still comes back first.
        complete = [p for p in positions if self.book.complete(p)]
        positions = [p for p in positions if p not in complete]
        with self.book.lock:
            self.book.handed_out.update(positions)
        if complete:
            self.link.store.release([str(self.pool.ids[p]) for p in complete], annotator=annotator)
        timings["claim_seconds"] += time.perf_counter() - started
        return positions

    def release(self) -> int:
        """Give back the items this annotator holds but has not labeled."""
        released = self.link.store.release(annotator=self.book.annotator)
        with self.book.lock:
            self.book.handed_out.clear()
        return released

    def _empty_queue_message(self) -> str:
        waiting = int(self.book.needs_labels_mask().sum())
        settings, annotator = self.book.settings, self.book.annotator
        if waiting == 0:
            return (
                f"every item has its {settings.overlap} label(s) or one from {annotator!r}: "
                "nothing left to hand out"
            )
        return (
            f"{waiting} item(s) still need labels, but other annotators hold them; an item "
            f"comes back when its lease runs out (lease_seconds={settings.lease_seconds:g}) or "
            "its holder calls release()"
        )

    def _explain(self, claimed: list[int]) -> Batch:
        """A Batch of exactly the claimed items, explained by this session's model."""
        positions = np.asarray(claimed, dtype=np.int64)
        claimed_set = set(claimed)
        prioritized = [i for i in self.book.priority_ids() if self.pool.position(i) in claimed_set]
        ranked_scores = self.scores[positions]
        outside = np.isnan(ranked_scores)  # handed out from a teammate's ranking, unscored here
        # Scoring only: the ranking's pass is reused when it holds every claimed item.
        result = acquire(self.model, self.settings, positions, n_labels=len(self.book))
        scores = np.where(outside, result.scores_N, ranked_scores)
        ids = [self.pool.ids[p] for p in positions]
        selection = Selection(indices=np.arange(len(ids)), scores=scores)
        batch = build_batch(
            ids, result.log_probs_N_K_C, scores, selection, self.classes,
            self.settings.strategy, self.model.version, prioritized,
        )  # fmt: skip
        # Rank each item among everything this session scored, not only among the batch.
        scored = np.concatenate([self.scores[~np.isnan(self.scores)], scores[outside]])
        negated = -np.sort(scored)[::-1]  # ascending, as searchsorted needs
        score_of = dict(zip(ids, scores.tolist()))
        items = [
            replace(
                item,
                pool_rank=int(np.searchsorted(negated, -score_of[item.id], side="left")) + 1,
                n_scored=len(scored),
            )
            for item in batch.items
        ]
        return replace(batch, items=items)
