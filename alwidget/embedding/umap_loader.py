"""Import umap-learn once, with its uncached numba kernels made cacheable.

umap-learn 0.5 compiles a few numba kernels without ``cache=True`` (the neighbour-graph
weights, exact neighbours, the layout epoch). Compiling them costs 10–50 s in *every* new
process on a 2-core machine, before any real work. We wrap exactly those kernels again with
``cache=True`` (same Python function, same options), so numba stores the machine code in
``NUMBA_CACHE_DIR`` (or umap's ``__pycache__``) and later processes load it in well under a
second. umap-learn's own code keeps calling them by module-global name, so nothing else
changes. Kernels that are missing or already cached are left alone, so a newer umap-learn
only loses the speed-up, never correctness.

Set ``NUMBA_CACHE_DIR`` to a writable folder before the first import when the site-packages
folder is read-only.

Second, below 4 096 rows umap-learn computes exact distances with scikit-learn's
``pairwise_distances`` but hands it its numba ``euclidean`` function, which scikit-learn can
only call once per pair from Python: 45 s for 2 000 x 2 000 rows on 2 cores, hours for a
60 000-row transform. We pass scikit-learn the name ``"euclidean"`` instead, which it computes
with BLAS (same distances, in float64 for float32 input) in milliseconds.

Third, umap-learn then finds each row's nearest neighbours in that distance matrix by sorting
the whole row (``fast_knn_indices``): 1.6 s of a 4 000-row fit on 2 cores, a third of it.
:func:`exact_knn_indices` finds each row's k-th distance with ``np.partition`` and sorts only
the columns at most that far, with the same order for equal distances (lower index first, as
the stable sort): 0.3 s.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["CACHED_KERNELS", "exact_knn_indices", "import_umap"]

# (module, attribute) of each kernel to make cacheable; one entry per name umap calls it by.
CACHED_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.umap_", "submatrix"),
    ("umap.utils", "submatrix"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch_parallel"),
)

_lock = threading.Lock()
_state: dict = {}


def _cacheable_copy(dispatcher):
    import numba

    options = dict(dispatcher.targetoptions)
    for option in (
        "cache",
        "nopython",
    ):  # nopython is implied by njit and warns if repeated
        options.pop(option, None)
    return numba.njit(cache=True, locals=dict(dispatcher.locals), **options)(dispatcher.py_func)


def import_umap():
    """Return the ``umap`` module, patched as described in the module docstring (once)."""
    with _lock:
        if "module" in _state:
            return _state["module"]
        import importlib
        import warnings

        with warnings.catch_warnings():
            # umap announces that its optional TensorFlow-based ParametricUMAP is unavailable.
            warnings.filterwarnings("ignore", message=".*ParametricUMAP.*")
            import umap
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher

        replacements: dict[int, object] = {}
        patched = []
        for module_name, attribute in CACHED_KERNELS:
            module = importlib.import_module(module_name)
            original = getattr(module, attribute, None)
            if not isinstance(original, CPUDispatcher) or not isinstance(
                original._cache, NullCache
            ):
                continue
            if id(original) not in replacements:
                replacements[id(original)] = _cacheable_copy(original)
            setattr(module, attribute, replacements[id(original)])
            patched.append(f"{module_name}.{attribute}")
        _use_named_euclidean(umap.umap_)
        umap.umap_.fast_knn_indices = exact_knn_indices
        _state["module"] = umap
        _state["patched"] = patched
        return umap


def patched_kernels() -> list[str]:
    """Names of the kernels :func:`import_umap` made cacheable (empty before the import)."""
    return list(_state.get("patched", []))


def _use_named_euclidean(umap_module) -> None:
    from umap.distances import euclidean as numba_euclidean

    original = umap_module.pairwise_distances
    if getattr(original, "_alwidget_named_euclidean", False):
        return

    def pairwise_distances(X, Y=None, metric="euclidean", **kwds):
        if metric is numba_euclidean and not kwds:
            metric = "euclidean"
        return original(X, Y, metric=metric, **kwds)

    pairwise_distances._alwidget_named_euclidean = True
    umap_module.pairwise_distances = pairwise_distances


def exact_knn_indices(distances_N_M, n_neighbors: int) -> np.ndarray:
    """The ``n_neighbors`` columns of smallest distance in each row, nearest first.

    Equal distances are ordered by column (as a stable sort of the whole row orders them),
    so the result is ``np.argsort(row, kind="stable")[:n_neighbors]`` for every row, found
    by selecting instead of sorting. Rows with NaN distances are sorted whole.

    Returns
    -------
    np.ndarray of int32, shape (N, n_neighbors)
    """
    distances_N_M = np.asarray(distances_N_M)
    n_rows, n_columns = distances_N_M.shape
    k = int(n_neighbors)
    if k <= 0 or n_columns == 0:
        return np.empty((n_rows, max(k, 0)), dtype=np.int32)
    if k >= n_columns:
        return np.argsort(distances_N_M, axis=1, kind="stable")[:, :k].astype(np.int32)
    kth_N = np.partition(distances_N_M, k - 1, axis=1)[:, k - 1]
    nearest_N_k = np.empty((n_rows, k), dtype=np.int32)
    for row, (distances_M, kth) in enumerate(zip(distances_N_M, kth_N)):
        # Every column at most as far as the k-th distance: the k nearest and their ties.
        candidates = np.flatnonzero(distances_M <= kth)
        if candidates.size < k:  # NaN distances compare false: sort the whole row
            nearest_N_k[row] = np.argsort(distances_M, kind="stable")[:k]
            continue
        order = np.lexsort((candidates, distances_M[candidates]))
        nearest_N_k[row] = candidates[order[:k]]
    return nearest_N_k
