"""Stochastic batch acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron, Gal 2021).

Taking the top-k of a single-item score fills a batch with redundant near-ties. Sampling
the batch without replacement with probabilities that favour high scores is as cheap as
top-k, adds diversity, and in that paper matches BatchBALD on many tasks. Sampling uses
the Gumbel-top-k trick: adding independent Gumbel noise to log-weights and taking the
top-k is an exact draw without replacement.
"""

from __future__ import annotations

import numpy as np

from .selection import AcquisitionInputs, Selection, checked_scores

__all__ = ["MODES", "select_stochastic"]

MODES = ("power", "softmax", "softrank")


def _log_weights(scores: np.ndarray, mode: str, beta: float) -> np.ndarray:
    if mode == "power":
        if (scores < 0).any():
            raise ValueError(
                "stochastic power acquisition samples proportionally to score**beta and needs "
                f"non-negative scores (min {scores.min():.3g}); use mode='softmax' or 'softrank'"
            )
        with np.errstate(divide="ignore"):
            return beta * np.log(scores)
    if mode == "softmax":
        return beta * scores
    ranks = np.empty(scores.shape[0])
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, scores.shape[0] + 1)
    return -beta * np.log(ranks)


def select_stochastic(
    scores_N: np.ndarray,
    batch_size: int,
    inputs: AcquisitionInputs,
    *,
    mode: str = "power",
    beta: float = 1.0,
) -> Selection:
    """Draw a batch without replacement, favouring high scores.

    Parameters
    ----------
    mode : {"power", "softmax", "softrank"}
        Item weights ``score**beta`` (needs scores >= 0; zero-score items come last, in
        random order), ``exp(beta * score)``, or ``rank**-beta`` (rank 1 = highest score).
    beta : float
        Inverse temperature, >= 0. ``beta = 0`` is uniform sampling; large ``beta``
        approaches top-k. Kirsch et al. use 1.

    Returns
    -------
    Selection
        Indices in draw order; ``scores`` are the chosen items' original scores.
    """
    scores, count = checked_scores(scores_N, batch_size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if not np.isfinite(scores).all():
        raise ValueError("scores_N must be finite for stochastic acquisition")
    keys = _log_weights(scores, mode, float(beta)) + inputs.rng.gumbel(size=scores.shape[0])
    # Items of weight 0 have key -inf; the random secondary key orders them uniformly.
    order = np.lexsort((inputs.rng.random(scores.shape[0]), -keys))[:count]
    return Selection(indices=order, scores=scores[order])
