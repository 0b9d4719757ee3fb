"""A 2-D UMAP map of the pool that stays in place while the model is retrained.

``MapProjector`` fits umap-learn on a sample of the pool (always including the rows the caller
must see placed exactly, such as labeled items and the current batch) and places every other
row on that fitted map (UMAP's ``transform``; :mod:`alwidget.embedding.landmarks` does it fast
for the euclidean metric). After a retrain the features change basis, so ``refresh`` first maps
the new features linearly onto the features the map was fitted on and then places them on the
*same* fitted map: the fitted sample acts as fixed landmarks and clusters do not jump. ``refit`` starts over on the current features and turns the result onto
the previous layout.

umap-learn compiles its kernels with numba. ``umap`` is imported lazily, on the first fit, through
:func:`alwidget.embedding.umap_loader.import_umap`, which makes all the kernels on the default
path cacheable: set ``NUMBA_CACHE_DIR`` to a writable folder so later processes load compiled
code instead of spending 10–50 s compiling (the very first process still compiles).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..blas_threads import one_lapack_thread
from .alignment import SimilarityTransform, fit_linear_alignment, fit_similarity
from .landmarks import place_on_map
from .umap_loader import import_umap

__all__ = ["EXACT_NEIGHBOURS_MAX_ROWS", "MIN_ROWS_FOR_UMAP", "MapProjector", "StagedFeatures"]

# Below this many rows a neighbour graph says nothing; the map falls back to the first two
# principal components so a brand-new project still shows its handful of items.
MIN_ROWS_FOR_UMAP = 8

# umap-learn computes exact neighbours (sklearn, BLAS) below 4096 fitted rows and switches to
# pynndescent above, whose numba code is recompiled in every process (~40 s on 2 cores). The
# default fit sample stays below the switch.
EXACT_NEIGHBOURS_MAX_ROWS = 4095


def _as_feature_matrix(embeddings, what: str = "embeddings") -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (items x features), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{what} has no rows: there is nothing to place on the map")
    if array.shape[1] == 0:
        raise ValueError(f"{what} has no feature columns")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{what} must be real numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad_rows.size:
        shown = ", ".join(str(i) for i in bad_rows[:5])
        raise ValueError(
            f"{what} has NaN or infinite values in {bad_rows.size} row(s), e.g. row {shown}"
        )
    return array


def _as_row_indices(rows, n_rows: int, what: str) -> np.ndarray:
    if rows is None:
        return np.zeros(0, dtype=np.int64)
    array = np.asarray(rows)
    if array.dtype == bool:
        if array.shape != (n_rows,):
            raise ValueError(f"{what} as a mask must have shape ({n_rows},), got {array.shape}")
        return np.flatnonzero(array)
    array = array.reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{what} must be row positions (integers) or a boolean mask, got dtype {array.dtype}"
        )
    if array.min() < 0 or array.max() >= n_rows:
        raise ValueError(f"{what} has positions outside 0..{n_rows - 1}")
    return np.unique(array.astype(np.int64))


def _principal_plane(features: np.ndarray) -> np.ndarray:
    """First two principal components (zero-padded), for pools too small for UMAP."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    if centred.shape[0] == 1:
        return np.zeros((1, 2), dtype=np.float32)
    with one_lapack_thread():
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    # SVD signs are arbitrary; fix them so the same input always gives the same picture.
    signs = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(coords.shape[1])])
    coords = coords * np.where(signs == 0, 1.0, signs)
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords.astype(np.float32)


class MapProjector:
    """Project a pool's embeddings to 2-D with UMAP and keep the layout stable across retrains.

    Parameters
    ----------
    fit_sample_size : int
        How many rows UMAP is fitted on; the rest are placed with ``transform``. Rows passed as
        ``keep`` are always in the sample, even if that makes it larger. The default stays on
        umap-learn's exact-neighbour path (see ``EXACT_NEIGHBOURS_MAX_ROWS``).
    n_neighbors, min_dist, metric :
        Passed to ``umap.UMAP``. ``n_neighbors`` is lowered to ``n_fitted - 1`` on small pools.
    seed : int or None
        Seeds the sample and UMAP, making results repeatable. umap-learn then runs on one
        thread; ``None`` lets it use every core with run-to-run differences.
    transform_chunk_rows : int
        Rows placed per block, bounding memory (exact neighbours build a chunk x sample
        distance matrix).
    alignment_ridge : float
        Relative ridge penalty of the linear map from new features to fitted ones in
        ``refresh``; keeps it well posed when features outnumber fitted rows.
    n_epochs : int or None
        Layout optimisation epochs of the fit. 200, umap-learn's own choice for data sets
        over 10 000 rows: the fitted sample stands for a pool that is usually bigger, and
        umap-learn's 500 for a 4 000-row sample made the fit twice as long (7.3 s against
        3.7 s here) before the map's first paint. ``None`` leaves it to umap-learn.
    pca_components : int or None
        Features wider than this are first projected onto the fitted sample's leading
        principal components (the usual step before UMAP); it makes placing 60 000 rows
        several times cheaper. ``refresh`` maps new features straight onto these components.
        ``None`` keeps every feature.
    transform_epochs : int
        Epochs that refine the rows placed on a fitted map (rows outside the sample, and every
        row in ``refresh``) after their first placement at the membership-weighted mean of their
        nearest landmarks (see :mod:`alwidget.embedding.landmarks`); 0 keeps that mean. With the
        euclidean metric; other metrics use ``UMAP.transform`` and its own epoch count.

    Attributes
    ----------
    coordinates_N_2 : np.ndarray or None
        The current map, one row per pool item.
    fit_rows : np.ndarray or None
        Pool positions UMAP was fitted on (the landmarks).
    alignment_r2 : float or None
        How well the last ``refresh`` could express the new features in the fitted ones
        (1 = perfectly). When it drops (below ~0.5), the map describes an old model: ``refit``.
    method : str or None
        ``"umap"`` or ``"pca"`` (pools under ``MIN_ROWS_FOR_UMAP`` rows).
    n_fits : int
        How many layouts were fitted so far (``refresh`` never adds one).
    """

    def __init__(
        self,
        *,
        fit_sample_size: int = 4000,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        seed: int | None = 0,
        transform_chunk_rows: int = 10_000,
        alignment_ridge: float = 1e-3,
        n_epochs: int | None = 200,
        transform_epochs: int = 20,
        pca_components: int | None = 32,
    ):
        if int(fit_sample_size) != fit_sample_size or fit_sample_size < 2:
            raise ValueError(f"fit_sample_size must be an integer >= 2, got {fit_sample_size!r}")
        if int(n_neighbors) != n_neighbors or n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
        if not 0 <= min_dist:
            raise ValueError(f"min_dist must be >= 0, got {min_dist!r}")
        if int(transform_chunk_rows) != transform_chunk_rows or transform_chunk_rows < 1:
            raise ValueError(
                f"transform_chunk_rows must be a positive integer, got {transform_chunk_rows!r}"
            )
        if alignment_ridge < 0:
            raise ValueError(f"alignment_ridge must be >= 0, got {alignment_ridge!r}")
        self.fit_sample_size = int(fit_sample_size)
        self.n_neighbors = int(n_neighbors)
        self.min_dist = float(min_dist)
        self.metric = metric
        self.seed = seed
        self.transform_chunk_rows = int(transform_chunk_rows)
        self.alignment_ridge = float(alignment_ridge)
        self.n_epochs = None if n_epochs is None else int(n_epochs)
        if int(transform_epochs) != transform_epochs or transform_epochs < 0:
            raise ValueError(f"transform_epochs must be an integer >= 0, got {transform_epochs!r}")
        self.transform_epochs = int(transform_epochs)
        if pca_components is not None and (
            int(pca_components) != pca_components or pca_components < 2
        ):
            raise ValueError(
                f"pca_components must be an integer >= 2 or None, got {pca_components!r}"
            )
        self.pca_components = None if pca_components is None else int(pca_components)
        self.coordinates_N_2: np.ndarray | None = None
        self.fit_rows: np.ndarray | None = None
        self.alignment_r2: float | None = None
        self.method: str | None = None
        self.n_fits = 0
        self._umap = None
        self._reference_features: np.ndarray | None = None  # features of fit_rows at fit time
        # UMAP's own frame -> the coordinates shown; a refit turns its new frame onto the old one.
        self._display = SimilarityTransform.identity()

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` has run, so ``refresh`` has a layout to keep."""
        return self.coordinates_N_2 is not None

    @property
    def n_items(self) -> int:
        """Rows in the current map (0 before the first fit)."""
        return 0 if self.coordinates_N_2 is None else int(self.coordinates_N_2.shape[0])

    def fit(self, embeddings_N_D, keep=None, *, on_sample=None, progress=None) -> np.ndarray:
        """Fit a new map on a sample of the rows and place all of them.

        Parameters
        ----------
        embeddings_N_D : array-like, shape (N, D), or StagedFeatures
            One feature row per pool item (a :class:`StagedFeatures` computes the sample's
            rows first, so ``on_sample`` comes before the whole pool's features are ready).
        keep : array-like of int or bool mask, optional
            Rows that must be in the fitted sample (labeled items, the current batch).
        on_sample : callable, optional
            ``on_sample(coordinates_N_2)`` once UMAP is fitted on the sample, before the other
            rows are placed: the sample's rows have their positions, the others are NaN. Lets
            a view draw the sample at once instead of waiting for the whole pool.
        progress : callable, optional
            ``progress(n_placed, n_to_place)`` after each block of rows placed on the map.

        Returns
        -------
        np.ndarray, shape (N, 2)
            The map coordinates (also stored as ``coordinates_N_2``).
        """
        features = (
            embeddings_N_D
            if isinstance(embeddings_N_D, StagedFeatures)
            else StagedFeatures(embeddings_N_D)
        )
        keep_rows = _as_row_indices(keep, features.n_rows, "keep")
        self._display = SimilarityTransform.identity()
        self.coordinates_N_2 = self._new_layout(features, keep_rows, on_sample, progress)
        return self.coordinates_N_2

    def refresh(self, embeddings_N_D, *, progress=None) -> np.ndarray:
        """Re-place every row after a retrain without moving the landmarks.

        The new features are mapped onto the fitted ones by a ridge least-squares fit on the
        landmark rows (the new model's feature basis is arbitrary), then transformed with the
        fitted UMAP. ``alignment_r2`` reports how much of the fitted features that map explains.

        Parameters
        ----------
        embeddings_N_D : array-like, shape (N, D')
            New features for the same rows in the same order; D' may differ from D.
        progress : callable, optional
            ``progress(n_placed, n_rows)`` after each block of rows placed.

        Returns
        -------
        np.ndarray, shape (N, 2)
        """
        if not self.is_fitted:
            raise RuntimeError("the map has not been fitted yet: call fit(embeddings) first")
        features = _as_feature_matrix(embeddings_N_D)
        if features.shape[0] != self.n_items:
            raise ValueError(
                f"refresh got {features.shape[0]} rows but the map holds {self.n_items}: the pool "
                "changed size, so call refit(embeddings) instead"
            )
        if self.method == "pca":
            return self.refit(features)
        alignment = fit_linear_alignment(
            features[self.fit_rows],
            self._reference_features,
            ridge=self.alignment_ridge,
        )
        self.alignment_r2 = alignment.r2
        self.coordinates_N_2 = self._display.apply(
            self._transform(alignment.apply(features), progress)
        )
        return self.coordinates_N_2

    def refit(self, embeddings_N_D, keep=None, *, progress=None) -> np.ndarray:
        """Fit UMAP afresh on the current features, turned to match the previous map.

        The new layout is rotated or reflected, scaled and shifted (a similarity transform,
        which leaves the picture's shape alone) to lie closest to the previous coordinates,
        so clusters that exist in both stay where the user saw them.

        Parameters
        ----------
        embeddings_N_D : array-like, shape (N, D)
        keep : array-like of int or bool mask, optional
            Rows that must be in the fitted sample.
        progress : callable, optional
            ``progress(n_placed, n_to_place)`` after each block of rows placed.

        Returns
        -------
        np.ndarray, shape (N, 2)
        """
        features = _as_feature_matrix(embeddings_N_D)
        keep_rows = _as_row_indices(keep, features.shape[0], "keep")
        previous = self.coordinates_N_2
        same_rows = previous is not None and previous.shape[0] == features.shape[0]
        raw = self._new_layout(features, keep_rows, progress=progress)
        self._display = (
            fit_similarity(raw, previous) if same_rows else SimilarityTransform.identity()
        )
        self.coordinates_N_2 = self._display.apply(raw)
        return self.coordinates_N_2

    # -- internals -------------------------------------------------------------------------

    def _choose_fit_rows(self, n_rows: int, keep_rows: np.ndarray) -> np.ndarray:
        if n_rows <= self.fit_sample_size:
            return np.arange(n_rows)
        n_extra = max(self.fit_sample_size - keep_rows.size, 0)
        others = np.setdiff1d(np.arange(n_rows), keep_rows, assume_unique=True)
        rng = np.random.default_rng(self.seed)
        extra = rng.choice(others, size=min(n_extra, others.size), replace=False)
        return np.union1d(keep_rows, extra)

    def _fit_umap(self, features: np.ndarray):
        umap = import_umap()
        n_neighbors = min(self.n_neighbors, features.shape[0] - 1)
        model = umap.UMAP(
            n_components=2,
            n_neighbors=n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            n_epochs=self.n_epochs,
            random_state=self.seed,
            n_jobs=1 if self.seed is not None else -1,
            transform_seed=42 if self.seed is None else int(self.seed),
        )
        with warnings.catch_warnings():
            # Tiny graphs make the spectral init fall back to random, and duplicate rows are
            # common in real pools; both are handled by umap-learn and not the user's concern.
            warnings.filterwarnings(
                "ignore", message=".*(disconnected|spectral|n_jobs|duplicate).*"
            )
            model.fit(features)
        return model

    def _transform(self, features: np.ndarray, progress=None) -> np.ndarray:
        """Place rows on the fitted map block by block (each block only meets the fixed
        landmarks, so blocks are independent), reporting progress after each."""
        chunks = []
        n_rows = features.shape[0]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(disconnected|n_jobs).*")
            for start in range(0, n_rows, self.transform_chunk_rows):
                block = features[start : start + self.transform_chunk_rows]
                if self.metric == "euclidean":
                    chunks.append(
                        place_on_map(
                            self._umap,
                            self._reference_features,
                            block,
                            n_epochs=self.transform_epochs,
                            seed=self.seed,
                            chunk_rows=self.transform_chunk_rows,
                        )
                    )
                else:
                    chunks.append(self._umap.transform(block))
                if progress is not None:
                    progress(min(start + block.shape[0], n_rows), n_rows)
        return np.concatenate(chunks).astype(np.float32)

    def _fit_reduction(self, sample: np.ndarray):
        """The fitted sample's leading principal components (when asked and the features are
        wider), the usual step before UMAP: a function projecting rows onto them."""
        n_components = self.pca_components
        if n_components is None or sample.shape[1] <= n_components:
            return lambda rows: rows
        sample = sample.astype(np.float64)
        mean = sample.mean(axis=0)
        with one_lapack_thread():
            _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        basis = vt[:n_components].T
        return lambda rows: ((rows - mean) @ basis).astype(np.float32)

    def _new_layout(self, features, keep_rows, on_sample=None, progress=None) -> np.ndarray:
        """Fit a layout and return every row's coordinates in UMAP's own frame.

        ``features`` is the (N, D) matrix, or a :class:`StagedFeatures` that computes the
        sample's rows first and the others only after the sample is drawn."""
        self.alignment_r2 = None
        self.n_fits += 1
        staged = features if isinstance(features, StagedFeatures) else StagedFeatures(features)
        n_rows = staged.n_rows
        if n_rows < MIN_ROWS_FOR_UMAP:
            everything = staged.rows(None)
            self._umap = None
            self.method = "pca"
            self.fit_rows = np.arange(n_rows)
            self._reference_features = everything.copy()
            return _principal_plane(everything)
        fit_rows = self._choose_fit_rows(n_rows, keep_rows)
        sample = staged.rows(fit_rows)
        reduce = self._fit_reduction(sample)
        sample = reduce(sample)
        self._umap = self._fit_umap(sample)
        self.method = "umap"
        self.fit_rows = fit_rows
        self._reference_features = np.array(sample, dtype=np.float32, copy=True)
        coords = np.full((n_rows, 2), np.nan, dtype=np.float32)
        coords[fit_rows] = self._umap.embedding_
        rest = np.setdiff1d(np.arange(n_rows), fit_rows, assume_unique=True)
        if on_sample is not None and rest.size:
            on_sample(self._display.apply(coords))
        if rest.size:
            coords[rest] = self._transform(reduce(staged.rows(None)[rest]), progress)
        return coords


class StagedFeatures:
    """The pool's features, for a fit that draws its sample before the rest is computed.

    Parameters
    ----------
    features : array-like (N, D), or callable
        The features, or ``features(rows)`` returning the features of those pool positions
        (``rows=None``: every item, in pool order). A model's features of a 4 000-item sample
        take a second where all 60 000 take a full pass over the pool.
    n_rows : int, optional
        Pool size; needed when ``features`` is a callable.
    """

    def __init__(self, features, n_rows: int | None = None):
        if callable(features):
            if n_rows is None or int(n_rows) != n_rows or n_rows < 1:
                raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
            self._compute, self.n_rows, self._all = features, int(n_rows), None
        else:
            self._all = _as_feature_matrix(features)
            self._compute, self.n_rows = None, self._all.shape[0]

    def rows(self, rows) -> np.ndarray:
        """Features of these pool positions (``None``: all), checked like any embeddings."""
        if self._all is not None:
            return self._all if rows is None else self._all[rows]
        computed = _as_feature_matrix(self._compute(rows))
        expected = self.n_rows if rows is None else len(rows)
        if computed.shape[0] != expected:
            raise ValueError(
                f"the features function returned {computed.shape[0]} rows for {expected} items"
            )
        if rows is None:
            self._all = computed
        return computed
