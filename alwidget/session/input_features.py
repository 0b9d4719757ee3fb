"""Cheap, fixed features of the pool's inputs, for when the model's own say nothing yet.

A model built from scratch has random weights until its first training run: its
penultimate-layer features are a random projection, and one pass over 5 000 RGB 96×96 PNGs
took 65 s. Cold start, the map, coverage and outlier scores need *some* feature space before
that run, and a fixed one is better than noise that changes with the seed. These features are
the inputs pooled to at most 12×12 a side (images) or flattened (anything else), projected on
the first 32 principal components of a seeded sample of 1 000 rows. With an encoder the
pool's inputs already are the encoder's features, so the same projection serves them too.

Rows are computed at first use, in chunks, and cached, so a map and a cold-start query read
the pool once between them.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..blas_threads import one_lapack_thread

__all__ = ["InputFeatures", "COMPONENTS", "POOLED_SIDE", "FIT_ROWS", "CHUNK_ROWS"]

#: Principal components kept: enough for digits to separate, few enough that k-means over
#: thousands of rows takes well under a second.
COMPONENTS = 32
#: Images are average-pooled to at most this side before the projection.
POOLED_SIDE = 12
#: Rows the principal axes are fitted on (exact SVD): twice the 432 values of a pooled RGB
#: image, and half the reads of 2 000, which the first batch of a PNG folder waits for.
FIT_ROWS = 1000
#: Rows read from the pool at a time (bounds the memory of full-size images in flight).
CHUNK_ROWS = 1000


class InputFeatures:
    """The pool's inputs, pooled and projected on 32 principal components, cached.

    Parameters
    ----------
    pool : Pool
        The items; ``pool.inputs(positions)`` gives model inputs. It may grow later: new
        rows are projected on the same axes.
    seed : int
        Seeds the sample the principal axes are fitted on.
    """

    def __init__(self, pool, seed: int = 0) -> None:
        self.pool = pool
        self.seed = int(seed)
        # ``_lock`` guards the cache arrays (held briefly); ``_work`` serialises reading the
        # pool, so a query and the map starting together never read or fit the same rows
        # twice (each waits at most one chunk for the other).
        self._lock = threading.Lock()
        self._work = threading.Lock()
        self._basis: tuple[np.ndarray, np.ndarray] | None = None
        self._rows = np.zeros((0, 0), dtype=np.float32)
        self._known = np.zeros(0, dtype=bool)

    @property
    def width(self) -> int:
        """Number of features per row (at most :data:`COMPONENTS`)."""
        return int(self._fitted_basis()[1].shape[0])

    def all(self) -> np.ndarray:
        """Features of the whole pool, ``N × width`` float32."""
        return self.rows(np.arange(len(self.pool)))

    def fit_in_background(self) -> threading.Thread | None:
        """Start fitting the principal axes on a daemon thread (None if fitted already).

        A new session calls this when its first batch will be a cold start: the fit reads
        1 000 items (0.7 s of PNG decoding for 96×96 images) while the notebook goes on to
        build the widget, so the first batch does not wait for it. A caller meanwhile waits
        for this fit instead of repeating it.
        """
        if self._basis is not None:
            return None
        thread = threading.Thread(
            target=self._fit_quietly, name="alwidget-input-features", daemon=True
        )
        thread.start()
        return thread

    def _fit_quietly(self) -> None:
        try:
            self._fitted_basis()
        except Exception:  # noqa: BLE001 - the next caller fits again and gets the error itself
            pass

    def known(self, positions) -> np.ndarray:
        """Which of ``positions`` are cached already (reading them costs nothing)."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        with self._lock:
            known = np.zeros(len(positions), dtype=bool)
            inside = positions < len(self._known)
            known[inside] = self._known[positions[inside]]
            return known

    def rows(self, positions) -> np.ndarray:
        """Features of pool ``positions`` (any order, repeats allowed), ``M × width``."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        mean, components = self._fitted_basis()
        with self._lock:
            self._grow_cache(len(self.pool), components.shape[0])
            missing = np.unique(positions[~self._known[positions]])
        for start in range(0, len(missing), CHUNK_ROWS):
            with self._work:
                chunk = missing[start : start + CHUNK_ROWS]
                with self._lock:
                    chunk = chunk[~self._known[chunk]]  # another thread may have read some
                if len(chunk):
                    self._store(chunk, self._project(self._raw(chunk), mean, components))
        with self._lock:
            return self._rows[positions].copy()

    @staticmethod
    def _project(raw: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
        return ((raw - mean) @ components.T).astype(np.float32)

    def _store(self, positions: np.ndarray, projected: np.ndarray) -> None:
        with self._lock:
            self._grow_cache(len(self.pool), projected.shape[1])
            self._rows[positions] = projected
            self._known[positions] = True

    def _grow_cache(self, n_items: int, width: int) -> None:
        if len(self._known) >= n_items:
            return
        rows = np.zeros((n_items, width), dtype=np.float32)
        known = np.zeros(n_items, dtype=bool)
        if len(self._known):
            rows[: len(self._rows)] = self._rows
            known[: len(self._known)] = self._known
        self._rows, self._known = rows, known

    def _fitted_basis(self) -> tuple[np.ndarray, np.ndarray]:
        if self._basis is not None:
            return self._basis
        with self._work:
            if self._basis is not None:  # fitted by another thread while this one waited
                return self._basis
            n_items = len(self.pool)
            sample = np.arange(n_items)
            if n_items > FIT_ROWS:
                rng = np.random.default_rng(self.seed)
                sample = np.sort(rng.choice(n_items, size=FIT_ROWS, replace=False))
            raw = self._raw(sample)
            mean = raw.mean(axis=0)
            centred = raw - mean
            k = int(min(COMPONENTS, centred.shape[0], centred.shape[1]))
            # Right singular vectors are the principal axes; the sample is small, so exact SVD.
            with one_lapack_thread():
                _, _, vt = np.linalg.svd(centred, full_matrices=False)
            components = vt[:k]
            # The sample's rows are read already: keep their features (as many reads saved).
            self._store(sample, self._project(raw, mean, components))
            self._basis = (mean, components)
            return self._basis

    def _raw(self, positions: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(positions), CHUNK_ROWS):
            inputs = self.pool.inputs(positions[start : start + CHUNK_ROWS])
            if not isinstance(inputs, torch.Tensor):
                inputs = torch.as_tensor(np.asarray(inputs))
            inputs = inputs.float()
            if inputs.ndim == 4 and max(inputs.shape[2:]) > POOLED_SIDE:
                side = (min(POOLED_SIDE, inputs.shape[2]), min(POOLED_SIDE, inputs.shape[3]))
                inputs = torch.nn.functional.adaptive_avg_pool2d(inputs, side)
            parts.append(inputs.reshape(len(inputs), -1).numpy().astype(np.float64))
        if not parts:
            return np.zeros((0, 0))
        return np.concatenate(parts)
