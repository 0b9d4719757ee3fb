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

__all__ = ["typical_diverse_selection", "typicality_N"]

# Neighbours behind an item's typicality (the paper's choice; smaller clusters use all).
TYPICALITY_NEIGHBOURS = 20


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
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n = len(candidates_N_D)
    batch_size = min(int(batch_size), n)
    if batch_size <= 0:
        return np.zeros(0, dtype=np.int64)
    everything = np.concatenate([candidates_N_D, labeled_L_D]).astype(np.float64, copy=False)
    n_clusters = int(min(len(labeled_L_D) + batch_size, max_clusters, len(everything)))
    if n_clusters <= 1:
        order = np.argsort(-typicality_N(candidates_N_D.astype(np.float64)))
        return order[:batch_size].astype(np.int64)
    kmeans = KMeans(
        n_clusters=n_clusters, n_init=1, max_iter=100, random_state=int(rng.integers(2**31 - 1))
    )
    with warnings.catch_warnings():
        # Identical items (a pool of copies) give fewer distinct clusters; that is fine here.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        cluster_of = kmeans.fit_predict(everything)
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
