"""Small numpy clustering tools for diversity selectors: D² seeding, k-means, kNN density.

Kept dependency-free (no scikit-learn) so the strategies layer stays pure numpy/scipy and
every random choice goes through the caller's ``np.random.Generator``.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from .kcenter import DEFAULT_MAX_CHUNK_ELEMENTS, as_points, nearest_distances

__all__ = ["d2_seeding", "draw_by_squared_distance", "kmeans", "knn_typicality"]


def _squared_distances_to(
    points: np.ndarray, center: np.ndarray, max_chunk_elements: int
) -> np.ndarray:
    result = np.empty(points.shape[0])
    step = max(1, max_chunk_elements // max(1, points.shape[1]))
    for start in range(0, points.shape[0], step):
        difference = points[start : start + step] - center
        result[start : start + step] = np.einsum("nd,nd->n", difference, difference)
    return result


def draw_by_squared_distance(
    min_squared: np.ndarray, chosen: np.ndarray, rng: np.random.Generator
) -> int:
    """One k-means++ draw: an unchosen index with probability ∝ its squared distance to the
    nearest chosen one; uniformly among the unchosen when every distance is zero."""
    weights = np.where(chosen, 0.0, min_squared)
    total = weights.sum()
    if total > 0:
        return int(rng.choice(len(weights), p=weights / total))
    return int(rng.choice(np.flatnonzero(~chosen)))


def d2_seeding(
    points_N_D,
    count: int,
    rng: np.random.Generator,
    *,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): ``count`` distinct point indices.

    The first point is uniform; each next one is drawn with probability proportional to its
    squared distance to the nearest point drawn so far. Once every remaining point sits on
    a drawn one (duplicates), the rest are drawn uniformly among the undrawn.
    """
    points = as_points(points_N_D, "points_N_D")
    n_points = points.shape[0]
    count = min(int(count), n_points)
    picks = np.empty(count, dtype=np.int64)
    if count == 0:
        return picks
    chosen = np.zeros(n_points, dtype=bool)
    min_squared = np.full(n_points, np.inf)
    for step in range(count):
        if step == 0:
            pick = int(rng.integers(n_points))
        else:
            pick = draw_by_squared_distance(min_squared, chosen, rng)
        picks[step] = pick
        chosen[pick] = True
        np.minimum(
            min_squared,
            _squared_distances_to(points, points[pick], max_chunk_elements),
            out=min_squared,
        )
    return picks


def kmeans(
    points_N_D,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    max_iter: int = 30,
    tol: float = 1e-4,
    max_fit_points: int | None = 20000,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
    blas_threads: int | None = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding.

    Parameters
    ----------
    points_N_D : array_like
    n_clusters : int
        Capped at the number of points.
    rng : np.random.Generator
    max_iter, tol : int, float
        Stop after ``max_iter`` rounds or when no center moves more than ``tol`` times the
        points' overall spread.
    max_fit_points : int or None
        Fit centers on a random subset of this size (every point is still assigned), which
        keeps 60k-point pools to a few seconds.
    blas_threads : int or None
        BLAS threads during the iterations (1, as scikit-learn's k-means: the loop's many
        mid-sized products ran 1.5x slower multi-threaded when other work shared the cores
        here). ``None`` leaves the BLAS setting alone.

    Returns
    -------
    centers_K_D : np.ndarray
    labels_N : np.ndarray
        Cluster index of every point.
    """
    points = as_points(points_N_D, "points_N_D")
    if points.shape[0] == 0:
        raise ValueError("k-means needs at least one point")
    limit = (
        nullcontext() if blas_threads is None else threadpool_limits(blas_threads, user_api="blas")
    )
    with limit:
        return _lloyd(points, n_clusters, rng, max_iter, tol, max_fit_points, max_chunk_elements)


def _lloyd(points, n_clusters, rng, max_iter, tol, max_fit_points, max_chunk_elements):
    n_points = points.shape[0]
    n_clusters = max(1, min(int(n_clusters), n_points))
    fit = points
    if max_fit_points is not None and n_points > max_fit_points:
        fit = points[np.sort(rng.choice(n_points, size=max_fit_points, replace=False))]
    centers = fit[d2_seeding(fit, n_clusters, rng, max_chunk_elements=max_chunk_elements)].copy()
    scale = float(np.sqrt(fit.var(axis=0).sum())) or 1.0
    for _ in range(max_iter):
        distances, labels = nearest_distances(
            fit, centers, return_indices=True, max_chunk_elements=max_chunk_elements
        )
        sums = np.zeros_like(centers)
        _grouped_sum(sums, labels, fit)
        sizes = np.bincount(labels, minlength=n_clusters)
        new_centers = centers.copy()
        filled = sizes > 0
        new_centers[filled] = sums[filled] / sizes[filled, None]
        # An empty cluster restarts at the point worst served by the current centers.
        for cluster in np.flatnonzero(~filled):
            worst = int(np.argmax(distances))
            new_centers[cluster] = fit[worst]
            distances[worst] = 0.0
        shift = float(np.sqrt(((new_centers - centers) ** 2).sum(axis=1)).max())
        centers = new_centers
        if shift <= tol * scale:
            break
    _, labels = nearest_distances(
        points, centers, return_indices=True, max_chunk_elements=max_chunk_elements
    )
    return centers, labels


def _grouped_sum(sums: np.ndarray, labels: np.ndarray, values: np.ndarray) -> None:
    """Per-cluster sums of ``values`` via a sparse one-hot product (fast for any k)."""
    one_hot = csr_matrix(
        (np.ones(labels.shape[0]), (labels, np.arange(labels.shape[0]))),
        shape=(sums.shape[0], labels.shape[0]),
    )
    sums[:] = one_hot @ values


def knn_typicality(
    points_N_D,
    n_neighbours: int = 20,
    *,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> np.ndarray:
    """Typicality ``1 / (mean distance to the n nearest other points + 1e-5)`` (TypiClust).

    ``n_neighbours`` is capped at ``N - 1``; a single point gets typicality 0 (it has no
    neighbours to vouch for it).
    """
    points = as_points(points_N_D, "points_N_D")
    n_points = points.shape[0]
    if n_points < 2:
        return np.zeros(n_points)
    k = max(1, min(int(n_neighbours), n_points - 1))
    norms = np.einsum("nd,nd->n", points, points)
    result = np.empty(n_points)
    step = max(1, max_chunk_elements // n_points)
    for start in range(0, n_points, step):
        block = points[start : start + step]
        squared = norms[start : start + step, None] + norms[None, :] - 2.0 * (block @ points.T)
        np.maximum(squared, 0.0, out=squared)
        rows = np.arange(block.shape[0])
        squared[rows, start + rows] = np.inf  # a point is not its own neighbour
        nearest = np.partition(squared, k - 1, axis=1)[:, :k]
        result[start : start + step] = 1.0 / (np.sqrt(nearest).mean(axis=1) + 1e-5)
    return result
