"""Typical and diverse picks for a cold start (TypiClust, Hacohen et al. 2022).

With few or no labels a model's uncertainty is noise: BALD on an untrained network asks
about whatever its random weights find odd, and can go dozens of labels without meeting a
class. Early batches are better spent on items that are *typical* (in a dense part of the
feature space, so their label says something about many neighbours) and *diverse* (each
from a different region, preferring regions no label covers yet). TypiClust does exactly
that: cluster the pool into ``n_labeled + batch_size`` groups, then take the most typical
item of each uncovered group, largest groups first.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["kmeans_plus_plus_seeds", "typical_diverse_selection", "typicality_N"]

# Neighbours behind an item's typicality (the paper's choice; smaller clusters use all).
TYPICALITY_NEIGHBOURS = 20
# Lloyd iterations after k-means++ seeding (no early stop in scipy; a few thousand rows of 32
# features take milliseconds each).
KMEANS_ITERATIONS = 30


def typicality_N(features_N_D: np.ndarray, neighbours: int = TYPICALITY_NEIGHBOURS) -> np.ndarray:
    """Inverse mean distance to each item's ``neighbours`` nearest others (higher = denser).

    Parameters
    ----------
    features_N_D : np.ndarray
        Items of one cluster.
    neighbours : int
        How many neighbours to average over (fewer when the cluster is smaller).

    Returns
    -------
    np.ndarray
        ``typicality_N``; a single item gets 0.
    """
    n = len(features_N_D)
    if n < 2:
        return np.zeros(n)
    k = min(neighbours, n - 1)
    squared = np.sum(features_N_D**2, axis=1)
    distances_N_N = np.sqrt(
        np.maximum(squared[:, None] + squared[None, :] - 2 * features_N_D @ features_N_D.T, 0.0)
    )
    np.fill_diagonal(distances_N_N, np.inf)
    nearest_N_k = np.partition(distances_N_N, k - 1, axis=1)[:, :k]
    return 1.0 / (nearest_N_k.mean(axis=1) + 1e-12)


def kmeans_plus_plus_seeds(points_N_D: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` initial centroids by k-means++ (Arthur & Vassilvitskii 2007).

    scipy's ``minit="++"`` recomputes every distance to every chosen seed at each step
    (1.3 s for 210 seeds over 3 200 rows); keeping each point's distance to its nearest seed
    makes it linear in ``k``.

    Parameters
    ----------
    points_N_D : np.ndarray
        The points, with at least ``k`` distinct rows.
    k : int
        How many seeds.
    rng : np.random.Generator
        Draws the seeds.

    Returns
    -------
    np.ndarray
        ``seeds_k_D``, rows of ``points_N_D``.
    """
    n = len(points_N_D)
    chosen = [int(rng.integers(n))]
    nearest_squared_N = np.sum((points_N_D - points_N_D[chosen[0]]) ** 2, axis=1)
    for _ in range(1, k):
        total = nearest_squared_N.sum()
        if total <= 0:  # every point sits on a seed already
            break
        chosen.append(int(rng.choice(n, p=nearest_squared_N / total)))
        squared = np.sum((points_N_D - points_N_D[chosen[-1]]) ** 2, axis=1)
        np.minimum(nearest_squared_N, squared, out=nearest_squared_N)
    return points_N_D[chosen]


def typical_diverse_selection(
    candidates_N_D: np.ndarray,
    labeled_L_D: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    *,
    max_clusters: int = 500,
    max_cluster_rows: int = 2000,
) -> np.ndarray:
    """Pick ``batch_size`` candidate rows: the most typical item of each uncovered cluster.

    Parameters
    ----------
    candidates_N_D : np.ndarray
        Features of the unlabeled candidates.
    labeled_L_D : np.ndarray
        Features of the labeled items (``L`` may be 0); clusters holding one are covered.
    batch_size : int
        How many rows to return (at most ``N``).
    rng : np.random.Generator
        Seeds k-means.
    max_clusters : int
        Upper bound on the number of clusters (k-means cost grows with it).
    max_cluster_rows : int
        Typicality is computed on at most this many rows of a cluster (a random sample).

    Returns
    -------
    np.ndarray
        ``batch_size`` distinct row indices into ``candidates_N_D``, in pick order.
    """
    # scipy's k-means, not scikit-learn's: scipy is loaded with the strategies already, and
    # importing sklearn.cluster costs the widget's cell ~2 s before its first batch.
    from scipy.cluster.vq import kmeans2

    n = len(candidates_N_D)
    batch_size = min(int(batch_size), n)
    if batch_size <= 0:
        return np.zeros(0, dtype=np.int64)
    everything = np.concatenate([candidates_N_D, labeled_L_D]).astype(np.float64, copy=False)
    # No more clusters than distinct rows: k-means++ seeding has nothing left to draw from.
    n_distinct = len(np.unique(everything, axis=0))
    n_clusters = int(min(len(labeled_L_D) + batch_size, max_clusters, n_distinct))
    if n_clusters <= 1:
        order = np.argsort(-typicality_N(candidates_N_D.astype(np.float64)))
        return order[:batch_size].astype(np.int64)
    with warnings.catch_warnings():
        # A cluster can end empty (Lloyd moved its points away); the loop below skips it.
        warnings.simplefilter("ignore", category=UserWarning)
        _centroids, cluster_of = kmeans2(
            everything,
            kmeans_plus_plus_seeds(everything, n_clusters, rng),
            iter=KMEANS_ITERATIONS,
            minit="matrix",
            missing="warn",
        )
    candidate_cluster_N = cluster_of[:n]
    labeled_per_cluster = np.bincount(cluster_of[n:], minlength=n_clusters)
    size_per_cluster = np.bincount(candidate_cluster_N, minlength=n_clusters)
    taken = np.zeros(n, dtype=bool)
    picks: list[int] = []
    while len(picks) < batch_size:
        # Fewest labels (then picks) first; among those the largest cluster.
        open_clusters = np.flatnonzero(size_per_cluster > 0)
        order = np.lexsort((-size_per_cluster[open_clusters], labeled_per_cluster[open_clusters]))
        cluster = int(open_clusters[order[0]])
        members = np.flatnonzero((candidate_cluster_N == cluster) & ~taken)
        sample = members
        if len(members) > max_cluster_rows:
            sample = np.sort(rng.choice(members, size=max_cluster_rows, replace=False))
        best = int(sample[int(np.argmax(typicality_N(candidates_N_D[sample].astype(np.float64))))])
        picks.append(best)
        taken[best] = True
        labeled_per_cluster[cluster] += 1  # the pick covers its cluster from now on
        size_per_cluster[cluster] -= 1
    return np.array(picks, dtype=np.int64)
