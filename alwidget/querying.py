"""The querying half of :class:`alwidget.Session`: score the unlabeled items, pick a batch.

Relies on the session's ``pool``, ``classes``, ``strategy``, ``mc_samples``, ``batch_size``,
``score_subset``, ``model_version``, ``_lock``, ``_labels``, ``_priority``, ``_rng``,
``_scored`` and ``_predict``. In team mode (``team=True``) :meth:`query` hands the ranking to
the team queue instead (:mod:`alwidget.team`).
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from . import strategies
from .acquisition import Batch, build_batch
from .errors import PoolExhaustedError

__all__ = ["QueryMixin", "call_score"]


def call_score(function, log_probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Run a score function, giving it the session's generator when it takes one."""
    if "rng" in inspect.signature(function).parameters:
        return function(log_probs, rng=rng)
    return function(log_probs)


class QueryMixin:
    """Scoring with a per-model-version cache, and :meth:`query`."""

    def _scoring_for(self, positions: np.ndarray, want_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Log-probs (and embeddings) for ``positions``, reusing the last pass of this model."""
        with self._lock:
            cached, version = self._scored, self.model_version
        if cached is not None and cached["model_version"] == version and (cached["embeddings"] is not None or not want_embeddings):
            rows = cached["row_of"][positions]
            if (rows >= 0).all():
                embeddings = None if cached["embeddings"] is None else cached["embeddings"][rows]
                return cached["log_probs"][rows], embeddings
        prediction = self._predict(positions, mc_samples=self.mc_samples, embeddings=want_embeddings)
        row_of = np.full(len(self.pool), -1, dtype=np.int64)
        row_of[positions] = np.arange(len(positions))
        with self._lock:
            if self.model_version == version:
                self._scored = {
                    "model_version": version,
                    "row_of": row_of,
                    "log_probs": prediction.log_probs_N_K_C,
                    "embeddings": prediction.embeddings_N_D,
                    "n_labels": len(self._labels),
                }
        return prediction.log_probs_N_K_C, prediction.embeddings_N_D

    def query(self, batch_size: int | None = None) -> Batch:
        """The next batch to label, ranked by the session's strategy, with explanations.

        In team mode the batch holds exactly the items the team queue handed to this
        annotator (see :class:`alwidget.Session`'s ``team`` parameter).

        Raises
        ------
        PoolExhaustedError
            Every item is labeled (team mode: nothing is left to hand to this annotator,
            :class:`alwidget.team.TeamQueueEmptyError`).
        """
        if self._team is not None:
            return self._team_query(self.batch_size if batch_size is None else batch_size)
        spec = strategies.get_strategy(self.strategy)
        size = self.batch_size if batch_size is None else batch_size
        with self._lock:
            unlabeled = self._unlabeled_positions()
            priority = list(self._priority)
            n_labels = len(self._labels)
        if len(unlabeled) == 0:
            raise PoolExhaustedError(f"every one of the {len(self.pool)} pool items is labeled: nothing left to query")
        strategies.check_batch_size(len(unlabeled), size)
        candidates = unlabeled
        if self.score_subset is not None and len(unlabeled) > self.score_subset:
            candidates = np.sort(self._rng.choice(unlabeled, size=self.score_subset, replace=False))
            prioritized = np.array([self.pool.position(i) for i in priority], dtype=np.int64)
            candidates = np.union1d(candidates, prioritized)
        started = time.perf_counter()
        log_probs, embeddings = self._scoring_for(candidates, spec.needs_embeddings)
        with self._lock:
            if self._scored is not None:
                self._scored["n_labels"] = n_labels
        labeled_embeddings = None
        if spec.needs_embeddings and n_labels:
            labeled_positions, _ = self._labeled_snapshot()
            labeled_embeddings = self._predict(labeled_positions, mc_samples=1, embeddings=True).embeddings_N_D
        predicted = time.perf_counter()
        scores = call_score(strategies.SCORES[spec.score], log_probs, self._rng)
        scored = time.perf_counter()
        inputs = strategies.AcquisitionInputs(log_probs, embeddings, labeled_embeddings, self._rng)
        selection = strategies.SELECTORS[spec.selector](scores, size, inputs)
        self.last_query_timings = {
            "predict_seconds": predicted - started,
            "score_seconds": scored - predicted,
            "select_seconds": time.perf_counter() - scored,
            "n_scored": len(candidates),
        }
        candidate_ids = [self.pool.ids[p] for p in candidates]
        batch = build_batch(
            candidate_ids, log_probs, scores, selection, self.classes, self.strategy, self.model_version, priority
        )
        self._persist_batch(batch)
        return batch
