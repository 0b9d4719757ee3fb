"""Diversity selectors in embedding space: core-set, uncertainty-then-diversity, typicality.

Each follows the selector signature ``selector(scores_N, batch_size, inputs) -> Selection``;
extra options are keyword-only with defaults, so ``functools.partial`` can set them.
"""

from __future__ import annotations

import numpy as np

from .clustering import kmeans, knn_typicality
from .kcenter import as_points, greedy_k_center
from .selection import AcquisitionInputs, Selection, checked_scores

__all__ = [
    "labeled_embeddings",
    "require_embeddings",
    "select_coreset",
    "select_hybrid",
    "select_typicality",
]


def require_embeddings(inputs: AcquisitionInputs, strategy: str, n_items: int) -> np.ndarray:
    """The candidates' embeddings as float64, or a ValueError saying what is missing."""
    if inputs is None or inputs.embeddings_N_D is None:
        raise ValueError(
            f"strategy {strategy!r} needs inputs.embeddings_N_D (penultimate-layer features of "
            f"the {n_items} candidates), but none were given; compute embeddings with the "
            f"predictor or choose a strategy that needs no embeddings"
        )
    embeddings = as_points(inputs.embeddings_N_D, f"embeddings_N_D for {strategy!r}")
    if embeddings.shape[0] != n_items:
        raise ValueError(
            f"strategy {strategy!r}: embeddings_N_D has {embeddings.shape[0]} rows but there "
            f"are {n_items} scored candidates"
        )
    return embeddings


def labeled_embeddings(
    inputs: AcquisitionInputs, strategy: str, n_features: int
) -> np.ndarray | None:
    """The labeled items' embeddings, or None when there are none."""
    labeled = inputs.labeled_embeddings_L_D
    if labeled is None or np.asarray(labeled).size == 0:
        return None
    return as_points(labeled, f"labeled_embeddings_L_D for {strategy!r}", n_features)


def select_coreset(
    scores_N: np.ndarray,
    batch_size: int,
    inputs: AcquisitionInputs,
    *,
    first: str = "mean",
) -> Selection:
    """Core-set (Sener & Savarese 2018): greedy k-center over the candidates' embeddings.

    Each pick is the candidate farthest from every labeled item and every earlier pick, so
    the batch shrinks the largest gap in coverage. ``scores_N`` is ignored. With no labeled
    items the first pick is the candidate nearest the mean (``first="mean"``) or a random
    one drawn from ``inputs.rng`` (``first="random"``).

    Returns
    -------
    Selection
        ``scores`` are each pick's distance to the nearest labeled item or earlier pick
        (non-increasing); see :func:`alwidget.strategies.kcenter.greedy_k_center`.
    """
    scores, count = checked_scores(scores_N, batch_size)
    embeddings = require_embeddings(inputs, "coreset", scores.shape[0])
    labeled = labeled_embeddings(inputs, "coreset", embeddings.shape[1])
    picks, radii = greedy_k_center(embeddings, count, labeled, first=first, rng=inputs.rng)
    return Selection(indices=picks, scores=radii)


def select_hybrid(
    scores_N: np.ndarray,
    batch_size: int,
    inputs: AcquisitionInputs,
    *,
    num_candidates: int | None = None,
    candidate_factor: int = 10,
    diversity: str = "kcenter",
) -> Selection:
    """Most uncertain first, then diverse: top-M by score, then k items spread among them.

    Parameters
    ----------
    num_candidates : int or None
        ``M``, the size of the uncertain shortlist; default ``candidate_factor * batch_size``
        (kept between the batch size and the pool size).
    candidate_factor : int
        Shortlist size per requested item when ``num_candidates`` is None.
    diversity : {"kcenter", "kmeans"}
        ``"kcenter"``: greedy k-center inside the shortlist, starting from the labeled items
        (or from the most uncertain candidate when none are labeled). ``"kmeans"``: k-means
        with ``batch_size`` clusters on the shortlist, then the most uncertain member of each
        cluster (as in Zhdanov 2019's diverse mini-batch active learning).

    Returns
    -------
    Selection
        ``scores`` are the chosen items' uncertainty scores.
    """
    scores, count = checked_scores(scores_N, batch_size)
    embeddings = require_embeddings(inputs, "hybrid", scores.shape[0])
    if diversity not in ("kcenter", "kmeans"):
        raise ValueError(f"diversity must be 'kcenter' or 'kmeans', got {diversity!r}")
    shortlist_size = num_candidates if num_candidates is not None else candidate_factor * count
    if int(shortlist_size) != shortlist_size or shortlist_size < 1:
        raise ValueError(f"num_candidates must be a positive integer, got {shortlist_size!r}")
    shortlist_size = min(max(int(shortlist_size), count), scores.shape[0])
    shortlist = np.argsort(-scores, kind="stable")[:shortlist_size]
    shortlisted = embeddings[shortlist]
    if diversity == "kcenter":
        labeled = labeled_embeddings(inputs, "hybrid", embeddings.shape[1])
        picks, _ = greedy_k_center(shortlisted, count, labeled, first=0)
    else:
        _, clusters = kmeans(shortlisted, count, inputs.rng)
        # The shortlist is sorted by score, so a cluster's first member is its most uncertain.
        _, first_members = np.unique(clusters, return_index=True)
        picks = np.sort(first_members)
        if picks.shape[0] < count:  # coincident points can merge clusters; fill by score
            rest = np.setdiff1d(np.arange(shortlist_size), picks)[: count - picks.shape[0]]
            picks = np.concatenate([picks, rest])
    chosen = shortlist[picks]
    return Selection(indices=chosen, scores=scores[chosen])


def select_typicality(
    scores_N: np.ndarray,
    batch_size: int,
    inputs: AcquisitionInputs,
    *,
    n_neighbours: int = 20,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
) -> Selection:
    """TypiClust-style cold start (Hacohen, Dekel, Weinshall 2022): typical points of uncovered clusters.

    Candidates and labeled items are clustered together by k-means into
    ``min(L + batch_size, max_clusters)`` clusters. Each pick goes to the cluster with the
    fewest labeled-or-picked members (ties: the largest cluster), ignoring clusters smaller
    than ``min_cluster_size`` while larger ones remain; within it the candidate with the
    highest typicality ``1 / mean distance to its n nearest cluster-mates`` is chosen. So
    the batch covers distinct dense regions that no label speaks for yet, and avoids
    outliers. Needs no labels or scores (``scores_N`` is ignored).

    Returns
    -------
    Selection
        ``scores`` are the chosen items' typicality values (inverse distance units).
    """
    scores, count = checked_scores(scores_N, batch_size)
    embeddings = require_embeddings(inputs, "typicality", scores.shape[0])
    labeled = labeled_embeddings(inputs, "typicality", embeddings.shape[1])
    n_candidates = embeddings.shape[0]
    n_labeled = 0 if labeled is None else labeled.shape[0]
    everything = embeddings if labeled is None else np.vstack([embeddings, labeled])
    n_clusters = min(n_labeled + count, max_clusters, everything.shape[0])
    _, clusters = kmeans(everything, n_clusters, inputs.rng)
    sizes = np.bincount(clusters, minlength=n_clusters)
    claimed = np.bincount(clusters[n_candidates:], minlength=n_clusters)
    candidate_clusters = clusters[:n_candidates]
    remaining = np.bincount(candidate_clusters, minlength=n_clusters)
    typicality_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    available = np.ones(n_candidates, dtype=bool)
    picks = np.empty(count, dtype=np.int64)
    values = np.empty(count)
    for step in range(count):
        open_clusters = np.flatnonzero(remaining > 0)
        big_enough = open_clusters[sizes[open_clusters] >= min_cluster_size]
        pool = big_enough if big_enough.size else open_clusters
        # Fewest claims first, then the biggest cluster, then the lowest id.
        cluster = int(pool[np.lexsort((pool, -sizes[pool], claimed[pool]))[0]])
        if cluster not in typicality_cache:
            members = np.flatnonzero(clusters == cluster)
            # Neighbours are counted within the cluster (half its size at most, as TypiClust).
            neighbours = min(n_neighbours, max(1, members.shape[0] // 2))
            typicality_cache[cluster] = (members, knn_typicality(everything[members], neighbours))
        members, member_typicality = typicality_cache[cluster]
        is_candidate = members < n_candidates
        is_candidate[is_candidate] &= available[members[is_candidate]]
        best = int(np.argmax(np.where(is_candidate, member_typicality, -np.inf)))
        pick = int(members[best])
        picks[step] = pick
        values[step] = member_typicality[best]
        available[pick] = False
        claimed[cluster] += 1
        remaining[cluster] -= 1
    return Selection(indices=picks, scores=values)
