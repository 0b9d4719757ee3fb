"""Which given labels are probably wrong, and which items belong to no class: pure numpy.

Label issues follow confident learning (Northcutt, Jiang & Chuang 2021, "Confident
Learning: Estimating Uncertainty in Dataset Labels"), written here from the paper:

1. per-class thresholds ``t_j``: the mean probability of class ``j`` over the items *given*
   class ``j`` (the model's average self-confidence on that class);
2. the confident joint ``C[s, y]``: items given ``s`` whose probability of ``y`` reaches
   ``t_y`` (the likeliest such ``y`` when several do);
3. its calibration to the given label counts, an estimate of the joint of given and true
   labels, which says how many items of each given class are wrong;
4. pruning: that many items per class (``prune_by_class``: the lowest normalized margin) or
   per off-diagonal cell (``prune_by_noise_rate``: the largest margin of ``y`` over ``s``);
5. ranking the flagged items by self-confidence or normalized margin.

``probs_N_C`` must be *out-of-sample* (cross-validated) predictions: a model that trained on
an item has usually memorised its label, right or wrong. Every score here is "higher means
more suspect", like the acquisition scores.

Out-of-distribution scores read ``embeddings_N_D`` (the encoder's or the model's features):
an item far from its nearest neighbours, relative to how far neighbours typically are in the
pool, lies in a sparse region; one far from every labeled item is unlike anything labeled.
"""

from __future__ import annotations

import numpy as np

from .kcenter import nearest_distances
from .scores import mean_entropy, validate_log_probs

__all__ = [
    "ISSUE_METHODS",
    "RANKINGS",
    "check_probs",
    "class_thresholds_C",
    "confident_joint_C_C",
    "calibrated_joint_C_C",
    "self_confidence_scores_N",
    "normalized_margin_scores_N",
    "issue_scores_N",
    "find_label_issues_N",
    "rank_label_issues",
    "sample_disagreement_scores_N",
    "knn_distances_N",
    "ood_scores",
]

#: How :func:`find_label_issues_N` decides how many items are flagged, and which.
ISSUE_METHODS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_joint")
#: How flagged items are ordered (see :func:`issue_scores_N`).
RANKINGS = ("self_confidence", "normalized_margin")


def check_probs(probs_N_C, given_labels_N) -> tuple[np.ndarray, np.ndarray]:
    """``probs_N_C`` as float64 rows of probabilities and ``given_labels_N`` as class indices.

    Raises
    ------
    ValueError
        Wrong shapes, rows that are not probabilities, or labels outside ``0..C-1``.
    """
    probs = np.asarray(probs_N_C, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"probs_N_C must be (items, classes) with at least 2 classes; got shape {probs.shape}"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("probs_N_C must hold finite, non-negative probabilities")
    if len(probs) and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs_N_C rows must sum to 1 (pass softmax outputs, not logits)")
    labels = np.asarray(given_labels_N)
    if labels.shape != (len(probs),):
        raise ValueError(
            f"given_labels_N must have one label per row of probs_N_C ({len(probs)}); "
            f"got shape {labels.shape}"
        )
    if len(labels) and (
        not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() >= probs.shape[1]
    ):
        raise ValueError(
            f"given_labels_N must be class indices in 0..{probs.shape[1] - 1}; got {labels[:5]}..."
        )
    return probs, labels.astype(np.int64)


def class_thresholds_C(probs_N_C, given_labels_N) -> np.ndarray:
    """Mean probability of each class over the items given that class.

    A class nobody was given gets ``inf``: no item can be confidently counted as it.
    """
    probs, labels = check_probs(probs_N_C, given_labels_N)
    n_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    return thresholds


def confident_joint_C_C(probs_N_C, given_labels_N) -> tuple[np.ndarray, np.ndarray]:
    """Confident joint of given (rows) and likely true (columns) labels.

    Returns
    -------
    joint_C_C : np.ndarray
        ``joint[s, y]`` counts items given ``s`` whose probability of ``y`` reaches the
        threshold of ``y`` (the likeliest such class when several do).
    confident_labels_N : np.ndarray
        That class per item, ``-1`` when no class reaches its threshold.
    """
    probs, labels = check_probs(probs_N_C, given_labels_N)
    n_classes = probs.shape[1]
    above = probs >= class_thresholds_C(probs, labels)[None, :]
    masked = np.where(above, probs, -1.0)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((n_classes, n_classes), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, confident


def calibrated_joint_C_C(probs_N_C, given_labels_N) -> np.ndarray:
    """The confident joint rescaled so each row sums to that class's given count.

    An estimate of how many items given ``s`` truly belong to ``y``; its off-diagonal
    entries sum to the estimated number of wrong labels.
    """
    probs, labels = check_probs(probs_N_C, given_labels_N)
    joint, _ = confident_joint_C_C(probs, labels)
    given_counts = np.bincount(labels, minlength=probs.shape[1]).astype(np.float64)
    row_sums = joint.sum(axis=1).astype(np.float64)
    calibrated = np.zeros_like(joint, dtype=np.float64)
    filled = row_sums > 0
    calibrated[filled] = joint[filled] / row_sums[filled, None] * given_counts[filled, None]
    return calibrated


def self_confidence_scores_N(probs_N_C, given_labels_N) -> np.ndarray:
    """``1 - p(given label)``: how little the model believes the given label."""
    probs, labels = check_probs(probs_N_C, given_labels_N)
    return 1.0 - probs[np.arange(len(labels)), labels]


def normalized_margin_scores_N(probs_N_C, given_labels_N) -> np.ndarray:
    """``(max other p - p(given) + 1) / 2`` in [0, 1]: above 0.5 the model prefers another class."""
    probs, labels = check_probs(probs_N_C, given_labels_N)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = -np.inf
    return (others.max(axis=1) - given + 1.0) / 2.0 if len(labels) else np.zeros(0)


def issue_scores_N(probs_N_C, given_labels_N, rank_by: str = "self_confidence") -> np.ndarray:
    """The ranking score named by ``rank_by`` (one of :data:`RANKINGS`); higher = more suspect."""
    if rank_by == "self_confidence":
        return self_confidence_scores_N(probs_N_C, given_labels_N)
    if rank_by == "normalized_margin":
        return normalized_margin_scores_N(probs_N_C, given_labels_N)
    raise ValueError(f"rank_by must be one of {RANKINGS}, got {rank_by!r}")


def _prune_by_class(probs, labels, counts_per_class) -> np.ndarray:
    flagged = np.zeros(len(labels), dtype=bool)
    margins = normalized_margin_scores_N(probs, labels)
    for given, count in enumerate(counts_per_class):
        members = np.flatnonzero(labels == given)
        count = min(int(count), max(len(members) - 1, 0))  # never empty a class
        if count > 0:
            order = members[np.argsort(-margins[members], kind="stable")]
            flagged[order[:count]] = True
    return flagged


def _prune_by_noise_rate(probs, labels, calibrated) -> np.ndarray:
    flagged = np.zeros(len(labels), dtype=bool)
    n_classes = probs.shape[1]
    for given in range(n_classes):
        members = np.flatnonzero(labels == given)
        budget = max(len(members) - 1, 0)  # never empty a class
        for true in range(n_classes):
            count = min(int(round(calibrated[given, true])), budget)
            if true == given or count <= 0:
                continue
            margin = probs[members, true] - probs[members, given]
            order = members[np.argsort(-margin, kind="stable")]
            flagged[order[:count]] = True
    return flagged


def find_label_issues_N(
    probs_N_C, given_labels_N, method: str = "prune_by_noise_rate"
) -> np.ndarray:
    """Boolean mask of items whose given label is probably wrong.

    Parameters
    ----------
    probs_N_C : array_like
        Out-of-sample class probabilities of the labeled items.
    given_labels_N : array_like of int
        Their given labels.
    method : str
        One of :data:`ISSUE_METHODS`: ``"prune_by_noise_rate"`` (default, the paper's
        best), ``"prune_by_class"``, ``"both"`` (flagged by both) or ``"confident_joint"``
        (every item off the confident joint's diagonal).

    Returns
    -------
    np.ndarray of bool
        An item whose given label is also the model's likeliest class is never flagged.
    """
    probs, labels = check_probs(probs_N_C, given_labels_N)
    if method not in ISSUE_METHODS:
        raise ValueError(f"method must be one of {ISSUE_METHODS}, got {method!r}")
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    if method == "confident_joint":
        _, confident = confident_joint_C_C(probs, labels)
        flagged = (confident >= 0) & (confident != labels)
    else:
        calibrated = calibrated_joint_C_C(probs, labels)
        off_diagonal = calibrated.sum(axis=1) - np.diag(calibrated)
        by_class = _prune_by_class(probs, labels, np.round(off_diagonal))
        by_noise = _prune_by_noise_rate(probs, labels, calibrated)
        flagged = {"prune_by_class": by_class, "prune_by_noise_rate": by_noise}.get(
            method, by_class & by_noise
        )
    return flagged & (probs.argmax(axis=1) != labels)


def rank_label_issues(
    probs_N_C,
    given_labels_N,
    *,
    method: str = "prune_by_noise_rate",
    rank_by: str = "self_confidence",
) -> np.ndarray:
    """Indices of the flagged items (:func:`find_label_issues_N`), most suspect first."""
    flagged = np.flatnonzero(find_label_issues_N(probs_N_C, given_labels_N, method))
    scores = issue_scores_N(probs_N_C, given_labels_N, rank_by)[flagged]
    return flagged[np.argsort(-scores, kind="stable")]


def sample_disagreement_scores_N(log_probs_N_K_C, given_labels_N) -> np.ndarray:
    """Share of the K MC-dropout samples or ensemble members whose top class is not the given one.

    Read it from members that did not train on the item (out-of-fold predictions), or it
    mostly measures memorisation.
    """
    log_probs = validate_log_probs(log_probs_N_K_C)
    labels = np.asarray(given_labels_N, dtype=np.int64)
    if labels.shape != (log_probs.shape[0],):
        raise ValueError(
            f"given_labels_N must have one label per item ({log_probs.shape[0]}); got {labels.shape}"
        )
    return (log_probs.argmax(axis=2) != labels[:, None]).mean(axis=1)


def knn_distances_N(points_N_D, reference_M_D, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """Mean distance from each point to its ``k`` nearest reference points.

    ``exclude_self`` drops each point's own zero distance when the points are the reference.
    """
    points = np.asarray(points_N_D, dtype=np.float64)
    reference = np.asarray(reference_M_D, dtype=np.float64)
    if points.ndim != 2 or reference.ndim != 2 or points.shape[1] != reference.shape[1]:
        raise ValueError(
            f"points_N_D {points.shape} and reference_M_D {reference.shape} must be 2-D "
            "with the same number of columns"
        )
    take = int(k) + (1 if exclude_self else 0)
    if k < 1 or take > len(reference):
        raise ValueError(f"k={k} needs at least {take} reference points; got {len(reference)}")
    if len(points) == 0:
        return np.zeros(0)
    result = np.empty(len(points))
    squared_reference = (reference**2).sum(axis=1)
    chunk = max(1, 4_000_000 // max(len(reference), 1))
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        squared = (block**2).sum(axis=1)[:, None] + squared_reference[None, :]
        squared -= 2.0 * block @ reference.T
        nearest = np.sort(np.partition(np.maximum(squared, 0.0), take - 1, axis=1)[:, :take])
        nearest = nearest[:, 1:] if exclude_self else nearest
        result[start : start + len(block)] = np.sqrt(nearest).mean(axis=1)
    return result


def ood_scores(
    embeddings_N_D,
    labeled_mask_N,
    *,
    log_probs_N_K_C=None,
    k: int = 10,
    reference_size: int = 5_000,
    seed: int = 0,
) -> dict:
    """How unlike the pool's bulk and the labeled items each item looks.

    Parameters
    ----------
    embeddings_N_D : array_like
        Features of every pool item.
    labeled_mask_N : array_like of bool
        The labeled items.
    log_probs_N_K_C : array_like, optional
        Predictions; adds the mean entropy (high when every sample is unsure).
    k : int
        Neighbours for the density estimate.
    reference_size : int
        The pool's bulk is a random sample of this many items (bounds the cost).
    seed : int
        Seeds that sample.

    Returns
    -------
    dict
        ``sparsity_N``: mean distance to the ``k`` nearest items of the bulk, divided by
        the median of that over the bulk (2 = twice as far from its neighbours as a typical
        item); ``labeled_distance_N``: distance to the nearest labeled item on the same
        scale (``nan`` without labels); ``mean_entropy_N`` (``nan`` without predictions) in
        units of ``log C``; ``scores_N``: ``sparsity`` plus half of ``labeled_distance``
        plus ``mean_entropy`` (missing parts count 0), higher = more out of distribution.
    """
    points = np.asarray(embeddings_N_D, dtype=np.float64)
    labeled = np.asarray(labeled_mask_N, dtype=bool)
    if points.ndim != 2 or labeled.shape != (len(points),):
        raise ValueError(
            f"embeddings_N_D must be 2-D and labeled_mask_N one flag per row; got "
            f"{points.shape} and {labeled.shape}"
        )
    n_items = len(points)
    if n_items < 3:
        raise ValueError(f"out-of-distribution scores need at least 3 items; got {n_items}")
    k = max(1, min(int(k), n_items - 2))
    rng = np.random.default_rng(seed)
    bulk = np.arange(n_items)
    if n_items > reference_size:
        bulk = np.sort(rng.choice(n_items, size=reference_size, replace=False))
    in_bulk = np.zeros(n_items, dtype=bool)
    in_bulk[bulk] = True
    distances = np.empty(n_items)
    distances[bulk] = knn_distances_N(points[bulk], points[bulk], k, exclude_self=True)
    if (~in_bulk).any():
        distances[~in_bulk] = knn_distances_N(points[~in_bulk], points[bulk], k)
    scale = float(np.median(distances[bulk])) or 1.0
    sparsity = distances / scale
    labeled_distance = np.full(n_items, np.nan)
    if labeled.any():
        labeled_distance = nearest_distances(points, points[labeled]) / scale
    entropy = np.full(n_items, np.nan)
    if log_probs_N_K_C is not None:
        log_probs = validate_log_probs(log_probs_N_K_C)
        if len(log_probs) != n_items:
            raise ValueError(
                f"log_probs_N_K_C has {len(log_probs)} items, embeddings_N_D {n_items}"
            )
        entropy = mean_entropy(log_probs) / np.log(log_probs.shape[2])
    scores = sparsity + 0.5 * np.nan_to_num(labeled_distance) + np.nan_to_num(entropy)
    return {
        "scores_N": scores,
        "sparsity_N": sparsity,
        "labeled_distance_N": labeled_distance,
        "mean_entropy_N": entropy,
    }
