"""How a session answers :meth:`alwidget.Session.query`: alone, or through the team queue.

:class:`SoloQuery` and :class:`alwidget.session.team_queue.TeamQueue` share one interface,
``query(size) -> (Batch, timings)``, and both rank with :func:`acquire`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import strategies
from ..acquisition import Batch, build_batch
from ..errors import PoolExhaustedError
from .acquire import AcquisitionSettings, acquire
from .labels import LabelBook
from .model_state import ModelState

__all__ = ["SoloQuery"]


@dataclass
class SoloQuery:
    """Score the unlabeled items (or a random subset of them), pick a batch, explain it."""

    pool: object
    book: LabelBook
    model: ModelState
    settings: AcquisitionSettings
    classes: list[str]

    def candidates(self, unlabeled: np.ndarray, priority: list) -> np.ndarray:
        """What to score: every unlabeled item, or ``score_subset`` of them plus the priority."""
        sample = self.settings.subsample(unlabeled)
        if len(sample) == len(unlabeled):
            return unlabeled
        prioritized = np.array([self.pool.position(i) for i in priority], dtype=np.int64)
        return np.union1d(sample, prioritized)

    def query(self, size: int) -> tuple[Batch, dict]:
        with self.book.lock:
            unlabeled = self.book.unlabeled_positions()
            priority = list(self.book.priority)
            n_labels = len(self.book)
        if len(unlabeled) == 0:
            raise PoolExhaustedError(
                f"every one of the {len(self.pool)} pool items is labeled: nothing left to query"
            )
        strategies.check_batch_size(len(unlabeled), size)
        candidates = self.candidates(unlabeled, priority)
        labeled, _ = self.book.snapshot()
        result = acquire(
            self.model, self.settings, candidates, batch_size=size,
            labeled_positions=labeled, n_labels=n_labels,
        )  # fmt: skip
        batch = build_batch(
            [self.pool.ids[p] for p in candidates], result.log_probs_N_K_C, result.scores_N,
            result.selection, self.classes, self.settings.strategy, self.model.version, priority,
        )  # fmt: skip
        return batch, result.timings
