"""One shared 2-D layout of a pool, computed once: where each strategy's labels went.

2-D pools (the toys) are drawn as they are; other pools are projected from their model inputs
with PCA (instant) or UMAP (through :class:`alwidget.embedding.MapProjector`, seconds).
"""

from __future__ import annotations

import numpy as np

from ..blas_threads import one_lapack_thread
from ..data import Pool
from ..errors import InvalidArgumentError

__all__ = ["LAYOUTS", "pool_layout"]

LAYOUTS = ("auto", "data", "pca", "umap")


def _pool_inputs(pool: Pool) -> np.ndarray:
    rows = [
        pool.inputs(np.arange(start, min(start + 4096, len(pool))))
        .numpy()
        .reshape(min(4096, len(pool) - start), -1)
        for start in range(0, len(pool), 4096)
    ]
    return np.concatenate(rows).astype(np.float32)


def _pca_2d(features_N_D: np.ndarray) -> np.ndarray:
    centred = features_N_D - features_N_D.mean(axis=0)
    # the leading right singular vectors of the centred rows are the principal axes
    with one_lapack_thread():
        _, _, axes = np.linalg.svd(centred[:: max(1, len(centred) // 5000)], full_matrices=False)
    return (centred @ axes[:2].T).astype(np.float32)


def pool_layout(pool: Pool, layout="auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """Coordinates ``N×2`` of every pool item, and the name of how they were made.

    Parameters
    ----------
    pool : Pool
    layout : {"auto", "data", "pca", "umap"} or array of shape (N, 2)
        ``"data"``: the items themselves (2-D tabular pools); ``"pca"``: the two leading
        principal components of the model inputs; ``"umap"``: a UMAP map of them (seeded);
        ``"auto"``: ``"data"`` for 2-D pools, else ``"pca"``. An array is used as given.
    seed : int
        Seeds UMAP.

    Raises
    ------
    InvalidArgumentError
        An unknown layout name, ``"data"`` for a pool that is not 2-D, or an array of the
        wrong shape.
    """
    if isinstance(layout, np.ndarray) or (
        not isinstance(layout, str) and hasattr(layout, "__len__")
    ):
        coordinates = np.asarray(layout, dtype=np.float32)
        if coordinates.shape != (len(pool), 2) or not np.isfinite(coordinates).all():
            raise InvalidArgumentError(
                f"layout as an array must be finite with shape ({len(pool)}, 2), one row per "
                f"pool item; got shape {coordinates.shape}"
            )
        return coordinates, "given"
    if layout not in LAYOUTS:
        raise InvalidArgumentError(
            f"layout must be one of {LAYOUTS} or an N×2 array, got {layout!r}"
        )
    is_plane = pool.kind == "tabular" and pool.input_shape == (2,)
    if layout == "auto":
        layout = "data" if is_plane else "pca"
    if layout == "data":
        if not is_plane:
            raise InvalidArgumentError(
                f"layout='data' needs a pool of 2-D points; pool {pool.name!r} has inputs of "
                f"shape {pool.input_shape}: use layout='pca' or 'umap'"
            )
        return np.stack([np.asarray(pool.item(i), dtype=np.float32) for i in pool.ids]), "data"
    features = _pool_inputs(pool)
    if layout == "pca":
        return _pca_2d(features), "pca"
    from ..embedding import MapProjector

    return MapProjector(seed=seed).fit(features).astype(np.float32), "umap"
