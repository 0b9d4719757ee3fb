"""Acquisition strategies as pure functions over arrays.

``SCORES`` maps a name to a function ``log_probs_N_K_C -> scores_N``; ``SELECTORS`` maps a
name to ``selector(scores_N, batch_size, inputs) -> Selection``; ``STRATEGIES`` maps a
strategy name to the :class:`StrategySpec` that combines one of each and declares what the
strategy needs (K > 1 samples, embeddings, the labeled items' embeddings).
:func:`register_strategy` adds one. Nothing here imports torch or ipywidgets.
"""

from __future__ import annotations

import numpy as np

from .badge import select_badge
from .batchbald import select_batchbald
from .diversity import select_coreset, select_hybrid, select_typicality
from .kcenter import coverage_report, covered_fraction, k_center_radius, nearest_distances
from .registry import (
    NEEDS_SAMPLES,
    SCORES,
    SELECTORS,
    STRATEGIES,
    StrategySpec,
    available,
    get_strategy,
    register_strategy,
    score_uses_rng,
    score_with,
    unregister_strategy,
)
from .scores import (
    bald,
    entropy,
    entropy_of_mean,
    least_confidence,
    margin,
    mean_entropy,
    mean_log_probs,
    mean_std,
    random_scores,
    validate_log_probs,
    variation_ratios,
    vote_counts,
)
from .selection import AcquisitionInputs, Selection, check_batch_size, checked_scores, select_top_k
from .stochastic import select_stochastic


def explain(log_probs_N_K_C) -> dict:
    """Per-item parts of the scores, so a UI can say why an item was picked.

    Returns a dict of arrays: ``probs_N_C`` (mean prediction), ``predicted_N``,
    ``entropy_of_mean_N``, ``mean_entropy_N``, ``bald_N`` and ``votes_N_C``.
    """
    array = validate_log_probs(log_probs_N_K_C)
    probs_N_C = np.exp(mean_log_probs(array))
    h_mean = entropy_of_mean(array)
    mean_h = mean_entropy(array)
    return {
        "probs_N_C": probs_N_C,
        "predicted_N": probs_N_C.argmax(axis=-1),
        "entropy_of_mean_N": h_mean,
        "mean_entropy_N": mean_h,
        "bald_N": bald(array),
        "votes_N_C": vote_counts(array),
    }


__all__ = [
    "bald",
    "entropy",
    "entropy_of_mean",
    "least_confidence",
    "margin",
    "mean_entropy",
    "mean_log_probs",
    "mean_std",
    "random_scores",
    "validate_log_probs",
    "variation_ratios",
    "vote_counts",
    "SCORES",
    "STRATEGIES",
    "NEEDS_SAMPLES",
    "StrategySpec",
    "SELECTORS",
    "AcquisitionInputs",
    "Selection",
    "available",
    "get_strategy",
    "register_strategy",
    "unregister_strategy",
    "score_with",
    "score_uses_rng",
    "checked_scores",
    "explain",
    "select_top_k",
    "check_batch_size",
    "select_batchbald",
    "select_coreset",
    "select_badge",
    "select_hybrid",
    "select_stochastic",
    "select_typicality",
    "nearest_distances",
    "k_center_radius",
    "covered_fraction",
    "coverage_report",
]
