"""Cold start: typical, diverse first batches until every class has a few labels.

An untrained model's scores are noise, and a weak one's can miss whole classes for dozens
of labels (BALD on MNIST asked for no 1, 3 or 7 in its first 30). Until the model is trained
and every class has ``min_labels_per_class`` labels, :class:`ColdStart` picks the batch by
:func:`alwidget.strategies.typicality.typical_diverse_selection` in a fixed, cheap feature
space: the encoder's cached features when the session has an encoder, else the inputs
themselves (images pooled down to at most 12×12), projected to 32 principal components
fitted once on a sample of the pool.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from ..blas_threads import one_lapack_thread
from ..strategies.typicality import typical_diverse_selection

__all__ = ["ColdStart"]

# Components of the projection the clusters are found in; enough for digits to separate,
# few enough for k-means over thousands of rows to take well under a second.
COMPONENTS = 32
POOLED_SIDE = 12


@dataclass
class ColdStart:
    """When a query should pick typical, diverse items instead of the strategy's.

    Parameters
    ----------
    pool : Pool
        The session's pool (a :class:`~alwidget.encoders.FeaturePool` with an encoder).
    enabled : bool
        ``Session(cold_start=False)`` turns it off.
    min_labels_per_class : int
        Cold start lasts while a class has fewer labels than this (and the model is untrained).
    max_labels_per_class : int
        ... but not beyond this many labels per class on average: a class the pool may not
        hold must not keep the strategy off for ever (the widget flags it instead).
    sample_size : int
        Unlabeled items clustered per query (a random sample of them).
    """

    pool: object
    enabled: bool = True
    min_labels_per_class: int = 2
    max_labels_per_class: int = 10
    sample_size: int = 3000
    _basis: tuple | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reason(self, counts: dict, model_version: int) -> str | None:
        """Why the next batch is a cold-start batch, or None when the strategy ranks it."""
        if not self.enabled:
            return None
        n_labels = sum(counts.values())
        if n_labels >= self.max_labels_per_class * max(1, len(counts)):
            return None
        short = [name for name, count in counts.items() if count < self.min_labels_per_class]
        if model_version == 0:
            return "the model is not trained yet"
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
            sample = np.sort(rng.choice(unlabeled, size=self.sample_size, replace=False))
        candidates = self.features(sample, rng)
        labeled_features = (
            self.features(labeled, rng) if len(labeled) else np.zeros((0, candidates.shape[1]))
        )
        rows = typical_diverse_selection(candidates, labeled_features, size, rng)
        return sample[rows]

    def features(self, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The cold-start features (``N × 32`` at most) of pool positions."""
        basis = self._fitted_basis(rng)
        mean, components = basis
        return (self._raw(positions) - mean) @ components.T

    def _fitted_basis(self, rng: np.random.Generator) -> tuple:
        with self._lock:
            if self._basis is None:
                n = len(self.pool)
                sample = np.arange(n)
                if n > 2000:
                    sample = np.sort(rng.choice(n, size=2000, replace=False))
                raw = self._raw(sample)
                mean = raw.mean(axis=0)
                centred = raw - mean
                k = int(min(COMPONENTS, centred.shape[0], centred.shape[1]))
                # Right singular vectors = principal axes; the sample is small, so exact SVD.
                with one_lapack_thread():
                    _, _, vt = np.linalg.svd(centred, full_matrices=False)
                self._basis = (mean, vt[:k])
            return self._basis

    def _raw(self, positions: np.ndarray) -> np.ndarray:
        inputs = self.pool.inputs(np.asarray(positions, dtype=np.int64))
        if not isinstance(inputs, torch.Tensor):
            inputs = torch.as_tensor(np.asarray(inputs))
        inputs = inputs.float()
        if inputs.ndim == 4 and max(inputs.shape[2:]) > POOLED_SIDE:
            side = (min(POOLED_SIDE, inputs.shape[2]), min(POOLED_SIDE, inputs.shape[3]))
            inputs = torch.nn.functional.adaptive_avg_pool2d(inputs, side)
        return inputs.reshape(len(inputs), -1).numpy().astype(np.float64)
