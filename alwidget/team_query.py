"""How a team-mode session queries: rank, publish to the team queue, claim, explain.

The query half of :class:`alwidget.team.TeamMixin` (see :mod:`alwidget.team` for the
whole picture). A ranking is published once per model version, strategy and class list,
:attr:`TeamMixin.team_publish_size` items at a time; the next part follows only when the
claims run short. A published priority is ``generation + 1 - rank / (pool size + 1)``, its
integer part the number of labels the ranking's model was trained on, and the store keeps
the higher generation when two rankings meet (:meth:`SessionStore.publish`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from . import strategies
from .acquisition import Batch, build_batch
from .errors import PoolExhaustedError
from .querying import call_score

__all__ = ["PRIORITIZED", "TeamQueryMixin", "TeamQueueEmptyError"]

#: Queue priority of prioritized items: above any ranking (whose priorities stay below the
#: pool size + 1).
PRIORITIZED = 1e12


class TeamQueueEmptyError(PoolExhaustedError):
    """The team queue has nothing to hand to this annotator now.

    Either every item has its ``overlap`` labels, or the items that still need labels are
    leased to other annotators (they come back when a lease runs out).
    """


class TeamQueryMixin:
    """:meth:`Session.query` in team mode."""

    def _team_query(self, size) -> Batch:
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"batch size must be a positive integer, got {size!r}")
        size, team = int(size), self._team
        spec = strategies.get_strategy(self.strategy)
        timings = {"rank_seconds": 0.0, "publish_seconds": 0.0, "claim_seconds": 0.0, "n_scored": 0,
                   "n_published": 0, "refreshed": False}  # fmt: skip
        with team.query_lock:
            key = (self.model_version, self.strategy, self.mc_samples, len(self.classes))
            if team.ranking_key != key:
                team.ranking_key, team.n_published, team.published = key, 0, set()
                team.scores = np.full(len(self.pool), np.nan)
                self._rank_for_team(spec, size, timings)
            self._publish_next(timings, boosts_only=team.n_published > 0)
            claimed = self._claim(size, timings)
            while len(claimed) < size:
                if not timings["refreshed"]:  # teammates' labels may have used the ranking up
                    self.refresh_labels()
                    timings["refreshed"] = True
                more = self._publish_next(timings) or (
                    self._rank_for_team(spec, size, timings) and self._publish_next(timings)
                )  # the next part of this ranking, else a ranking of what was never published
                if not more:
                    break  # everything that still needs labels is published
                claimed = self._claim(size, timings)
            if not claimed:
                raise TeamQueueEmptyError(self._empty_queue_message())
            batch = self._team_batch(claimed)  # reads the ranking's scores: still under the lock
        self.last_query_timings = timings
        self._persist_batch(batch)
        return batch

    def _rank_for_team(self, spec, size: int, timings: dict) -> bool:
        """Score what still needs labels (not yet published for this ranking) and order it.

        Top-k strategies order by score; batch-aware ones put their joint selection of
        ``4 × size`` items (at most a publish) first, then the rest by score.
        """
        team, started = self._team, time.perf_counter()
        with self._lock:
            mask = self._needs_labels_mask()
            n_labels = len(self._labels)
        mask[list(team.published)] = False
        candidates = np.flatnonzero(mask)
        if len(candidates) == 0:
            team.order, team.cursor = candidates, 0
            return False
        if self.score_subset is not None and len(candidates) > self.score_subset:
            candidates = np.sort(self._rng.choice(candidates, size=self.score_subset, replace=False))
        log_probs, embeddings = self._scoring_for(candidates, spec.needs_embeddings)
        with self._lock:
            if self._scored is not None:
                self._scored["n_labels"] = n_labels
        scores = call_score(strategies.SCORES[spec.score], log_probs, self._rng)
        order = np.argsort(-scores, kind="stable")
        if spec.selector != "top_k":
            labeled_embeddings = None
            if spec.needs_embeddings and n_labels:
                labeled, _ = self._labeled_snapshot()
                labeled_embeddings = self._predict(labeled, mc_samples=1, embeddings=True).embeddings_N_D
            joint = min(len(candidates), 4 * size, self.team_publish_size)
            inputs = strategies.AcquisitionInputs(log_probs, embeddings, labeled_embeddings, self._rng)
            selection = strategies.SELECTORS[spec.selector](scores, joint, inputs)
            first = np.asarray(selection.indices, dtype=np.int64)
            order = np.concatenate([first, order[~np.isin(order, first)]])
        team.order, team.cursor = candidates[order], 0
        team.scores[candidates] = scores
        timings["rank_seconds"] += time.perf_counter() - started
        timings["n_scored"] += len(candidates)
        return True

    def _publish_next(self, timings: dict, *, boosts_only: bool = False) -> int:
        """Put new prioritized items and the next part of the ranking into the team queue."""
        team, started = self._team, time.perf_counter()
        with self._lock:
            needed = self._needs_labels_mask()
            boosts = [
                (item_id, PRIORITIZED - n)
                for n, item_id in enumerate(self._priority)
                if item_id not in team.boosted
            ]
            generation = self._labels_at_last_training if self.model_version > 0 else 0
        chunk = []
        limit = 0 if boosts_only else self.team_publish_size
        while len(chunk) < limit and team.cursor < len(team.order):
            position = int(team.order[team.cursor])
            team.cursor += 1
            if needed[position]:
                chunk.append(position)
        # Ranks continue across the parts of one ranking; all lie in (generation, generation + 1).
        span = len(self.pool) + 1
        entries = {
            str(self.pool.ids[p]): generation + 1 - (team.n_published + rank + 1) / span
            for rank, p in enumerate(chunk)
        }
        entries.update((str(item_id), priority) for item_id, priority in boosts)
        self._persistence.publish(entries)
        team.boosted.update(item_id for item_id, _ in boosts)
        team.n_published += len(chunk)
        team.published.update(chunk)
        timings["publish_seconds"] += time.perf_counter() - started
        timings["n_published"] += len(entries)
        return len(chunk)

    def _claim(self, size: int, timings: dict) -> list[int]:
        """Claim up to ``size`` items; leases on items known to have their labels go back."""
        team, started = self._team, time.perf_counter()
        keys = self.store.claim(
            size, self.annotator, lease_seconds=team.lease_seconds, overlap=team.overlap
        )
        positions = [self.pool.position(self._persistence.item_id(key)) for key in keys]
        with self._lock:
            # A lease that ran out while teammates labeled the item still comes back first.
            complete = [p for p in positions if len(team.votes.get(p, ())) >= team.overlap]
            positions = [p for p in positions if p not in complete]
            team.handed_out.update(positions)
        if complete:
            self.store.release([str(self.pool.ids[p]) for p in complete], annotator=self.annotator)
        timings["claim_seconds"] += time.perf_counter() - started
        return positions

    def _empty_queue_message(self) -> str:
        team = self._team
        with self._lock:
            waiting = int(self._needs_labels_mask().sum())
        if waiting == 0:
            return (
                f"every item has its {team.overlap} label(s) or one from {self.annotator!r}: "
                "nothing left to hand out"
            )
        return (
            f"{waiting} item(s) still need labels, but other annotators hold them; an item comes "
            f"back when its lease runs out (lease_seconds={team.lease_seconds:g}) or its holder "
            "calls release()"
        )

    def _team_batch(self, claimed: list[int]) -> Batch:
        """A Batch of exactly the claimed items, explained by this session's model."""
        team = self._team
        positions = np.asarray(claimed, dtype=np.int64)
        with self._lock:
            cached, version = self._scored, self.model_version
            prioritized = [i for i in self._priority if self.pool.position(i) in set(claimed)]
        ranked_scores = team.scores[positions]
        outside = np.isnan(ranked_scores)  # handed out from a teammate's ranking, unscored here
        rows = None
        if cached is not None and cached["model_version"] == version:
            rows = cached["row_of"][positions]
        if rows is not None and (rows >= 0).all() and not outside.any():
            log_probs, scores = cached["log_probs"][rows], ranked_scores
        else:  # explain with the current model, scoring every item of the batch afresh
            prediction = self._predict(positions, mc_samples=self.mc_samples, embeddings=False)
            log_probs = prediction.log_probs_N_K_C
            score = strategies.SCORES[strategies.get_strategy(self.strategy).score]
            scores = call_score(score, log_probs, self._rng)
        ids = [self.pool.ids[p] for p in positions]
        selection = strategies.Selection(indices=np.arange(len(ids)), scores=scores)
        batch = build_batch(
            ids, log_probs, scores, selection, self.classes, self.strategy, version, prioritized
        )
        # Rank each item among everything this session scored, not only among the batch.
        scored = np.concatenate([team.scores[~np.isnan(team.scores)], scores[outside]])
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
