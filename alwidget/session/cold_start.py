"""Cold start: typical, diverse first batches until every class has a few labels.

An untrained model's scores are noise, and a weak one's can miss whole classes for dozens
of labels (BALD on MNIST asked for no 1, 3 or 7 in its first 30). Until the model is trained
and every class has ``min_labels_per_class`` labels, :class:`ColdStart` picks the batch by
:func:`alwidget.strategies.typicality.typical_diverse_selection` in a fixed, cheap feature
space, :class:`~.input_features.InputFeatures`: the encoder's cached features when the
session has an encoder, else the inputs themselves (images pooled down to at most 12×12),
projected to 32 principal components fitted once on a sample of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..strategies.typicality import typical_diverse_selection
from .input_features import InputFeatures

__all__ = ["ColdStart"]


@dataclass
class ColdStart:
    """When a query should pick typical, diverse items instead of the strategy's.

    Parameters
    ----------
    features : InputFeatures
        The feature space the picks are made in (shared with the map before training).
    enabled : bool
        ``Session(cold_start=False)`` turns it off.
    min_labels_per_class : int
        Cold start lasts while a class has fewer labels than this (and the model is untrained).
    max_labels_per_class : int
        ... but, once the model is trained, not beyond this many labels per class on average:
        a class the pool may not hold must not keep the strategy off for ever (the widget
        flags it instead).
    sample_size : int
        Unlabeled items clustered per query: a random sample of them, drawn first from the
        items whose features are cached (at the first query, the random 1 000 the principal
        axes were fitted on), so the first batch reads no more of the pool than the fit did.
    """

    features: InputFeatures
    enabled: bool = True
    min_labels_per_class: int = 2
    max_labels_per_class: int = 10
    sample_size: int = 1000

    def reason(
        self, counts: dict, model_version: int, *, scores_are_noise: bool = True
    ) -> str | None:
        """Why the next batch is a cold-start batch, or None when the strategy ranks it.

        ``scores_are_noise``: the model is untrained *and* its weights are random (built
        from scratch, not the user's pretrained module). Its ranking then says nothing
        however many labels there are, so the cap does not apply: before, the fifth query on
        5 000 PNGs scored every item with random weights (68 s) to rank them at random.
        """
        if not self.enabled:
            return None
        if model_version == 0 and scores_are_noise:
            return "the model is not trained yet"
        n_labels = sum(counts.values())
        if n_labels >= self.max_labels_per_class * max(1, len(counts)):
            return None
        if model_version == 0:
            return "the model is not trained yet"
        short = [name for name, count in counts.items() if count < self.min_labels_per_class]
        if short:
            shown = ", ".join(map(str, short[:6])) + (" …" if len(short) > 6 else "")
            return f"{len(short)} class(es) have fewer than {self.min_labels_per_class} labels ({shown})"
        return None

    def select(
        self,
        unlabeled: np.ndarray,
        labeled: np.ndarray,
        size: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``size`` unlabeled pool positions, typical and far from the labels, in pick order."""
        sample = unlabeled
        if len(unlabeled) > self.sample_size:
            known = self.features.known(unlabeled)
            cheap, costly = unlabeled[known], unlabeled[~known]
            take = min(len(cheap), self.sample_size)
            sample = np.sort(
                np.concatenate([
                    rng.choice(cheap, size=take, replace=False),
                    rng.choice(costly, size=self.sample_size - take, replace=False),
                ])
            )  # fmt: skip
        candidates = self.features.rows(sample).astype(np.float64)
        labeled_features = (
            self.features.rows(labeled).astype(np.float64)
            if len(labeled)
            else np.zeros((0, candidates.shape[1]))
        )
        rows = typical_diverse_selection(candidates, labeled_features, size, rng)
        return sample[rows]
