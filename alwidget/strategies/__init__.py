"""Acquisition strategies as pure functions over arrays.

``SCORES`` maps a name to a function ``log_probs_N_K_C -> scores_N``; ``STRATEGIES`` maps a
strategy name to the score and the selector it combines. Nothing here imports torch or
ipywidgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

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
from .selection import AcquisitionInputs, Selection, check_batch_size, select_top_k
from .badge import select_badge
from .batchbald import select_batchbald
from .diversity import select_coreset, select_hybrid, select_typicality
from .kcenter import coverage_report, covered_fraction, k_center_radius, nearest_distances
from .stochastic import select_stochastic

SCORES = {
    "random": random_scores,
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "bald": bald,
    "variation_ratios": variation_ratios,
    "mean_std": mean_std,
}

# Selectors share one signature: ``selector(scores_N, batch_size, inputs) -> Selection``.
# Options (e.g. ``num_candidates`` for hybrid, ``beta`` for stochastic) are keyword-only
# with defaults: ``functools.partial(SELECTORS["hybrid"], num_candidates=500)``.
SELECTORS = {
    "top_k": select_top_k,
    "batchbald": select_batchbald,
    "coreset": select_coreset,
    "badge": select_badge,
    "hybrid": select_hybrid,
    "stochastic": select_stochastic,
    "stochastic_power": partial(select_stochastic, mode="power"),
    "stochastic_softmax": partial(select_stochastic, mode="softmax"),
    "stochastic_softrank": partial(select_stochastic, mode="softrank"),
    "typicality": select_typicality,
}

# Scores that only separate items when K > 1 (MC dropout or an ensemble).
NEEDS_SAMPLES = frozenset({"bald", "variation_ratios", "mean_std"})


@dataclass(frozen=True)
class StrategySpec:
    """How a named strategy is computed.

    Attributes
    ----------
    score : str
        Key into ``SCORES``.
    selector : str
        ``"top_k"`` or the name of a batch-aware selector.
    description : str
        One line shown to users.
    needs_embeddings : bool
        The selector reads ``AcquisitionInputs.embeddings_N_D`` (and labeled embeddings
        when present). Selectors that ignore scores (coreset, badge, typicality) still name
        a cheap score so the UI can show one.
    """

    score: str
    selector: str
    description: str
    needs_embeddings: bool = False


STRATEGIES: dict[str, StrategySpec] = {
    "random": StrategySpec("random", "top_k", "uniformly at random (baseline)"),
    "least_confidence": StrategySpec("least_confidence", "top_k", "lowest top-class probability"),
    "margin": StrategySpec("margin", "top_k", "smallest gap between the two likeliest classes"),
    "entropy": StrategySpec("entropy", "top_k", "highest predictive entropy"),
    "bald": StrategySpec("bald", "top_k", "highest mutual information between label and weights (MC dropout)"),
    "variation_ratios": StrategySpec("variation_ratios", "top_k", "most disagreement among MC votes"),
    "mean_std": StrategySpec("mean_std", "top_k", "largest spread of class probabilities across MC samples"),
    "batchbald": StrategySpec(
        "bald", "batchbald", "jointly most informative batch: BatchBALD (needs consistent MC samples)"
    ),
    "coreset": StrategySpec(
        "entropy", "coreset", "k-center core-set: items farthest from everything labeled", True
    ),
    "badge": StrategySpec(
        "entropy", "badge", "BADGE: diverse large-gradient items (k-means++ on gradient embeddings)", True
    ),
    "hybrid": StrategySpec(
        "entropy", "hybrid", "most uncertain shortlist (10x batch), then spread out by k-center", True
    ),
    "stochastic_bald": StrategySpec(
        "bald", "stochastic_power", "BALD sampled without replacement, probability proportional to score"
    ),
    "typicality": StrategySpec(
        "entropy", "typicality", "cold start: typical items of clusters no label covers yet (TypiClust)", True
    ),
}


def available() -> list[str]:
    """Names of every registered strategy, sorted."""
    return sorted(STRATEGIES)


def get_strategy(name: str) -> StrategySpec:
    """Look a strategy up by name, with the list of valid names in the error."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(available())}") from None


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
    "SCORES",
    "STRATEGIES",
    "NEEDS_SAMPLES",
    "StrategySpec",
    "SELECTORS",
    "AcquisitionInputs",
    "Selection",
    "available",
    "get_strategy",
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
