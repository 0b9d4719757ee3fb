"""How a session answers :meth:`alwidget.Session.query`: alone, or through the team queue.

:class:`SoloQuery` and :class:`alwidget.session.team_queue.TeamQueue` share one interface,
``query(size) -> (Batch, timings)``, and both rank with :func:`acquire`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import strategies
from ..acquisition import Batch, build_batch
from ..errors import PoolExhaustedError
from ..strategies import Selection
from .acquire import AcquisitionSettings, acquire
from .cold_start import ColdStart
from .labels import LabelBook
from .model_state import ModelState

__all__ = ["COLD_START_STRATEGY", "SoloQuery"]

# The strategy name a cold-start batch carries (shown in the strip's explanation).
COLD_START_STRATEGY = "cold start (typical, diverse)"


@dataclass
class SoloQuery:
    """Score the unlabeled items (or a random subset of them), pick a batch, explain it."""

    pool: object
    book: LabelBook
    model: ModelState
    settings: AcquisitionSettings
    classes: list[str]
    cold_start: ColdStart | None = field(default=None)

    def candidates(
        self, unlabeled: np.ndarray, priority: list, score_subset: int | None = None
    ) -> np.ndarray:
        """What to score: every unlabeled item, or ``score_subset`` of them plus the priority.

        With a subset, the items the current model scored already are reused while at least
        half a subset of them is left unlabeled: a refill of the same model then costs no
        prediction (one random subset per model version, not per query).
        """
        sample = None
        if score_subset is None and self.settings.score_subset is not None:
            scored = self._scored_by_current_model(unlabeled)
            if scored is not None and 2 * len(scored) >= min(
                self.settings.score_subset, len(unlabeled)
            ):
                sample = scored
        if sample is None:
            sample = self.settings.subsample(unlabeled, score_subset)
        if len(sample) == len(unlabeled):
            return unlabeled
        prioritized = np.array([self.pool.position(i) for i in priority], dtype=np.int64)
        return np.union1d(sample, prioritized)

    def _scored_by_current_model(self, unlabeled: np.ndarray) -> np.ndarray | None:
        cached = self.model.cached_scoring()
        if cached is None or (cached.model_version, cached.mc_samples) != (
            self.model.version,
            self.settings.mc_samples,
        ):
            return None
        by_position = getattr(cached, "scores_by_position", None)
        if by_position is not None:
            return unlabeled[~np.isnan(by_position[unlabeled])]
        return unlabeled[cached.row_of[unlabeled] >= 0]

    def query(
        self, size: int, score_subset: int | None = None, progress: Callable | None = None
    ) -> tuple[Batch, dict]:
        """The next batch; ``score_subset`` overrides the session's for this query only;
        ``progress`` gets :class:`~alwidget.session.acquire.ScoringProgress` per chunk."""
        with self.book.lock:
            unlabeled = self.book.unlabeled_positions()
            priority = list(self.book.priority)
            n_labels = len(self.book)
            counts = self.book.counts()
        if len(unlabeled) == 0:
            raise PoolExhaustedError(
                f"every one of the {len(self.pool)} pool items is labeled: nothing left to query"
            )
        strategies.check_batch_size(len(unlabeled), size)
        labeled, _ = self.book.snapshot()
        reason = None if self.cold_start is None else self.cold_start.reason(
            counts, self.model.version, scores_are_noise=self.model.untrained_is_random
        )  # fmt: skip
        if reason is not None:
            return self._cold_start_query(size, unlabeled, labeled, priority, n_labels, reason)
        candidates = self.candidates(unlabeled, priority, score_subset)
        result = acquire(
            self.model, self.settings, candidates, batch_size=size,
            labeled_positions=labeled, n_labels=n_labels, progress=progress,
        )  # fmt: skip
        batch = build_batch(
            [self.pool.ids[p] for p in candidates], result.log_probs_N_K_C, result.scores_N,
            result.selection, self.classes, self.settings.strategy, self.model.version, priority,
        )  # fmt: skip
        return batch, {**result.timings, "mode": "strategy", "n_unlabeled": len(unlabeled)}

    def _cold_start_query(self, size, unlabeled, labeled, priority, n_labels, reason):
        """Typical, diverse picks; the strategy still scores them, for the explanations."""
        started = time.perf_counter()
        prioritized = [self.pool.position(i) for i in priority]
        rest = np.setdiff1d(unlabeled, np.array(prioritized, dtype=np.int64))
        wanted = max(0, size - len(prioritized))
        picks = self.cold_start.select(rest, labeled, wanted, self.settings.rng) if wanted else []
        chosen = np.array([*prioritized[:size], *picks], dtype=np.int64)
        picked = time.perf_counter()
        result = acquire(self.model, self.settings, chosen, n_labels=n_labels)
        # The cold-start order is the ranking: typicality first, the strategy's score shown.
        selection = Selection(np.arange(len(chosen)), result.scores_N.astype(np.float64))
        batch = build_batch(
            [self.pool.ids[p] for p in chosen], result.log_probs_N_K_C, result.scores_N,
            selection, self.classes, COLD_START_STRATEGY, self.model.version, priority,
        )  # fmt: skip
        timings = {
            "select_seconds": picked - started,
            "predict_seconds": result.timings["predict_seconds"],
            "score_seconds": result.timings["score_seconds"],
            "n_scored": min(len(rest), self.cold_start.sample_size),
            "mode": "cold start",
            "reason": reason,
            "n_unlabeled": len(unlabeled),
        }
        return batch, timings
