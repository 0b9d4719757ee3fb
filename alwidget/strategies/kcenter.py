"""Covering geometry in embedding space: nearest distances, k-center greedy, coverage.

Shared by the core-set selector (Sener & Savarese 2018) and by coverage reports for the
embedding map. A pool is "covered at radius r" when every item has a labeled item within
distance r; the smallest such r for the current labels is the k-center radius, which the
core-set bound ties to the gap between the loss on labeled items and on the whole pool.

All distances are Euclidean and computed in row chunks, so memory stays bounded by
``max_chunk_elements`` whatever the pool and center counts.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_points",
    "coverage_report",
    "covered_fraction",
    "default_coverage_radius",
    "greedy_k_center",
    "k_center_radius",
    "nearest_distances",
]

DEFAULT_MAX_CHUNK_ELEMENTS = 2**22
DEFAULT_NEIGHBOURHOOD_FRACTION = 0.01
MIN_NEIGHBOURHOOD_SIZE = 5


def as_points(array, name: str, n_features: int | None = None) -> np.ndarray:
    """``array`` as a finite float64 ``(rows, features)`` matrix, or a ValueError naming it."""
    points = np.asarray(array, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"{name} must be 2-D (items, features); got shape {points.shape}")
    if n_features is not None and points.shape[1] != n_features:
        raise ValueError(
            f"{name} has {points.shape[1]} features but the other points have {n_features}"
        )
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or inf")
    return points


def _rows_per_chunk(n_columns: int, max_chunk_elements: int) -> int:
    return max(1, max_chunk_elements // max(1, n_columns))


def nearest_distances(
    points_N_D,
    centers_M_D,
    *,
    return_indices: bool = False,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
):
    """Distance from every point to its nearest center.

    Candidates are ranked with ``|x|^2 + |c|^2 - 2 x.c`` (one matrix product per chunk of
    points); the winning center's distance is then recomputed from the difference vector,
    so duplicates of a center get exactly 0 and no cancellation error survives.

    Parameters
    ----------
    points_N_D, centers_M_D : array_like
        Points and centers with the same number of features.
    return_indices : bool
        Also return the index of each point's nearest center.
    max_chunk_elements : int
        Bound on the temporary ``chunk x M`` distance block.

    Returns
    -------
    distances_N : np.ndarray
        ``inf`` for every point when there are no centers.
    indices_N : np.ndarray, optional
        Nearest center per point (``-1`` when there are no centers).
    """
    points = as_points(points_N_D, "points_N_D")
    centers = as_points(centers_M_D, "centers_M_D", points.shape[1])
    n_points = points.shape[0]
    distances = np.full(n_points, np.inf)
    indices = np.full(n_points, -1, dtype=np.int64)
    if centers.shape[0] and n_points:
        center_norms = np.einsum("md,md->m", centers, centers)
        step = _rows_per_chunk(centers.shape[0], max_chunk_elements)
        for start in range(0, n_points, step):
            block = points[start : start + step]
            squared = center_norms[None, :] - 2.0 * (block @ centers.T)
            nearest = squared.argmin(axis=1)
            difference = block - centers[nearest]
            distances[start : start + step] = np.sqrt(np.einsum("nd,nd->n", difference, difference))
            indices[start : start + step] = nearest
    if return_indices:
        return distances, indices
    return distances


def k_center_radius(points_N_D, labeled_L_D, **chunking) -> float:
    """Largest distance from any point to its nearest labeled point.

    ``inf`` when nothing is labeled (no radius covers the pool), 0.0 for an empty pool.
    """
    distances = nearest_distances(points_N_D, labeled_L_D, **chunking)
    return float(distances.max()) if distances.size else 0.0


def covered_fraction(points_N_D, labeled_L_D, radius: float, **chunking) -> float:
    """Fraction of points with a labeled point within ``radius`` (0.0 when none is labeled).

    An empty pool counts as fully covered (1.0): nothing is left uncovered.
    """
    if not radius >= 0:
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    distances = nearest_distances(points_N_D, labeled_L_D, **chunking)
    return float((distances <= radius).mean()) if distances.size else 1.0


def default_coverage_radius(
    points_N_D,
    *,
    neighbourhood_fraction: float = DEFAULT_NEIGHBOURHOOD_FRACTION,
    max_queries: int = 256,
    seed: int = 0,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> float:
    """A radius at which one label speaks for a typical item's ``neighbourhood_fraction``.

    Median, over items, of the distance to the item's ``k``-th nearest other item, with
    ``k = max(5, round(neighbourhood_fraction * N))`` (at most ``N - 1``). So a labeled item
    "covers" roughly its ``k`` nearest neighbours in a region of typical density: with the
    default 1%, about a hundred well-spread labels could cover the pool, and an item is
    covered only if a labeled item is among its nearest 1% of the pool. The radius depends
    on the points only (not on the labels), so it stays fixed while labels are added.
    The median is estimated from at most ``max_queries`` items drawn with ``seed``, so the
    value is reproducible. Returns 0.0 when there are fewer than two items.
    """
    points = as_points(points_N_D, "points_N_D")
    n_points = points.shape[0]
    if n_points < 2:
        return 0.0
    if not 0 < neighbourhood_fraction <= 1:
        raise ValueError(f"neighbourhood_fraction must be in (0, 1], got {neighbourhood_fraction}")
    k = min(n_points - 1, max(MIN_NEIGHBOURHOOD_SIZE, round(neighbourhood_fraction * n_points)))
    rng = np.random.default_rng(seed)
    queries = np.arange(n_points)
    if n_points > max_queries:
        queries = np.sort(rng.choice(n_points, size=max_queries, replace=False))
    norms = np.einsum("nd,nd->n", points, points)
    kth = np.empty(queries.shape[0])
    step = _rows_per_chunk(n_points, max_chunk_elements)
    for start in range(0, queries.shape[0], step):
        rows = queries[start : start + step]
        squared = norms[rows, None] + norms[None, :] - 2.0 * (points[rows] @ points.T)
        np.maximum(squared, 0.0, out=squared)
        # Column k of the partition is the k-th nearest other item (column 0 is itself).
        kth[start : start + step] = np.sqrt(np.partition(squared, k, axis=1)[:, k])
    return float(np.median(kth))


def coverage_report(
    points_N_D,
    labeled_mask_N,
    radius: float | None = None,
    *,
    n_farthest: int = 10,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> dict:
    """How well the labeled items cover all items in embedding space.

    Parameters
    ----------
    points_N_D : array_like
        Embeddings of every item, labeled or not.
    labeled_mask_N : array_like of bool
        Which items are labeled.
    radius : float or None
        Coverage radius; ``None`` uses :func:`default_coverage_radius` (see there for why).
    n_farthest : int
        How many of the farthest uncovered unlabeled items to list.

    Returns
    -------
    dict
        ``radius``; ``k_center_radius`` (largest distance to the nearest labeled item, ``inf``
        with no labels); ``covered_fraction`` over all items (labeled items count as covered)
        and ``unlabeled_covered_fraction`` over unlabeled ones only (both 0.0 with no labels);
        ``n_items``; ``n_labeled``; ``distances_N`` (to the nearest labeled item, 0 for
        labeled items, ``inf`` with no labels); ``nearest_labeled_N`` (item index, -1 with no
        labels); ``covered_mask_N``; ``farthest_uncovered`` (indices of unlabeled items beyond
        the radius, farthest first; empty when nothing is labeled since every item is then
        infinitely far and there is no order).
    """
    points = as_points(points_N_D, "points_N_D")
    mask = np.asarray(labeled_mask_N)
    if mask.shape != (points.shape[0],) or mask.dtype != bool:
        raise ValueError(
            f"labeled_mask_N must be a boolean array of length {points.shape[0]}; "
            f"got dtype {mask.dtype} and shape {mask.shape}"
        )
    if radius is None:
        radius = default_coverage_radius(points, max_chunk_elements=max_chunk_elements)
    elif not radius >= 0:
        raise ValueError(f"radius must be a non-negative number or None, got {radius!r}")
    labeled_indices = np.flatnonzero(mask)
    distances, nearest = nearest_distances(
        points, points[labeled_indices], return_indices=True, max_chunk_elements=max_chunk_elements
    )
    distances[labeled_indices] = 0.0
    nearest_labeled = np.full(points.shape[0], -1, dtype=np.int64)
    if labeled_indices.size:
        nearest_labeled = labeled_indices[nearest]
        nearest_labeled[labeled_indices] = labeled_indices
    covered = distances <= radius
    unlabeled = ~mask
    has_labels = labeled_indices.size > 0
    if has_labels:
        beyond = np.flatnonzero(unlabeled & ~covered)
        farthest = beyond[np.argsort(-distances[beyond], kind="stable")[:n_farthest]]
    else:
        farthest = np.array([], dtype=np.int64)
    n_items = points.shape[0]
    return {
        "radius": float(radius),
        "k_center_radius": float(distances.max()) if n_items else 0.0,
        "covered_fraction": float(covered.mean()) if n_items else 1.0,
        "unlabeled_covered_fraction": float(covered[unlabeled].mean()) if unlabeled.any() else 1.0,
        "n_items": int(n_items),
        "n_labeled": int(labeled_indices.size),
        "distances_N": distances,
        "nearest_labeled_N": nearest_labeled,
        "covered_mask_N": covered,
        "farthest_uncovered": farthest.astype(np.int64),
    }


def greedy_k_center(
    points_N_D,
    count: int,
    labeled_L_D=None,
    *,
    first: str | int = "mean",
    rng: np.random.Generator | None = None,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: repeatedly add the point farthest from every center so far.

    A 2-approximation of the minimax cover (Gonzalez 1985). Centers start as
    ``labeled_L_D``; with none, the first pick is the point nearest the mean
    (``first="mean"``, deterministic), a uniformly random one (``first="random"``) or the
    given point index (``first=<int>``).

    Returns
    -------
    indices : np.ndarray
        ``count`` distinct point indices in pick order (``count`` is capped at N).
    radii : np.ndarray
        For each pick, its distance to the nearest earlier center: the k-center radius
        just before it was added, so the sequence is non-increasing. A first pick made with
        no centers gets the radius right after it is added (its distance to the farthest
        point) instead of ``inf``.
    """
    points = as_points(points_N_D, "points_N_D")
    n_points = points.shape[0]
    count = min(int(count), n_points)
    if count <= 0:
        return np.array([], dtype=np.int64), np.array([])
    if isinstance(first, (int, np.integer)):
        if not 0 <= first < n_points:
            raise ValueError(f"first index {first} is outside the {n_points} points")
    elif first not in ("mean", "random"):
        raise ValueError(f"first must be 'mean', 'random' or a point index, got {first!r}")
    has_centers = labeled_L_D is not None and np.asarray(labeled_L_D).size > 0
    if has_centers:
        labeled = as_points(labeled_L_D, "labeled_embeddings_L_D", points.shape[1])
        min_distances = nearest_distances(points, labeled, max_chunk_elements=max_chunk_elements)
    else:
        min_distances = np.full(n_points, np.inf)
    chosen = np.zeros(n_points, dtype=bool)
    picks = np.empty(count, dtype=np.int64)
    radii = np.empty(count)
    step_rows = _rows_per_chunk(points.shape[1], max_chunk_elements)
    for step in range(count):
        if not has_centers and step == 0:
            if isinstance(first, (int, np.integer)):
                pick = int(first)
            elif first == "mean":
                pick = int(np.argmin(nearest_distances(points, points.mean(axis=0, keepdims=True))))
            else:
                pick = int((rng if rng is not None else np.random.default_rng()).integers(n_points))
        else:
            # Chosen points sit at distance 0; mask them so duplicates of a chosen point
            # (also at 0) are taken only once everything else is covered.
            candidates = np.where(chosen, -1.0, min_distances)
            pick = int(np.argmax(candidates))
        radii[step] = min_distances[pick]
        picks[step] = pick
        chosen[pick] = True
        for start in range(0, n_points, step_rows):
            difference = points[start : start + step_rows] - points[pick]
            np.minimum(
                min_distances[start : start + step_rows],
                np.sqrt(np.einsum("nd,nd->n", difference, difference)),
                out=min_distances[start : start + step_rows],
            )
        if not has_centers and step == 0:
            radii[0] = float(min_distances.max())
    return picks, radii
