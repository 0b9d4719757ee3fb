"""Selection: turn scores into a batch. Separate from scoring so diversity-aware selectors
(core-set, BADGE, BatchBALD) are just other entries in the same table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Selection", "AcquisitionInputs", "select_top_k", "check_batch_size", "checked_scores"]


@dataclass(frozen=True)
class Selection:
    """Chosen pool positions in acquisition order, with the score each had when chosen.

    Attributes
    ----------
    indices : np.ndarray
        Positions into the scored arrays, most informative first.
    scores : np.ndarray
        The score of each chosen position (for greedy selectors: its marginal gain).
    """

    indices: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class AcquisitionInputs:
    """Everything a selector may look at, all aligned on the ``N`` unlabeled candidates.

    Attributes
    ----------
    log_probs_N_K_C : np.ndarray
        Log-probabilities of each candidate under ``K`` stochastic passes.
    embeddings_N_D : np.ndarray or None
        Penultimate-layer features of the candidates (needed by core-set, BADGE, typicality).
    labeled_embeddings_L_D : np.ndarray or None
        The same features for the already-labeled items (core-set starts from them).
    rng : np.random.Generator
        The only source of randomness a selector may use, so runs repeat under a seed.
    """

    log_probs_N_K_C: np.ndarray
    embeddings_N_D: np.ndarray | None = None
    labeled_embeddings_L_D: np.ndarray | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def check_batch_size(n_items: int, batch_size: int) -> int:
    """Return how many items can be chosen, with a clear error for impossible requests."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size!r}")
    if n_items == 0:
        raise ValueError("the unlabeled pool is empty: nothing left to query")
    return min(int(batch_size), n_items)


def checked_scores(scores_N, batch_size: int) -> tuple[np.ndarray, int]:
    """``scores_N`` as a 1-D float array without NaN, and how many items to choose.

    Every selector starts here, so a bad score array fails the same way whichever
    strategy meets it.
    """
    scores = np.asarray(scores_N, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores_N must be 1-D, got shape {scores.shape}")
    count = check_batch_size(scores.shape[0], batch_size)
    if np.isnan(scores).any():
        raise ValueError("scores_N contains NaN")
    return scores, count


def select_top_k(
    scores_N: np.ndarray, batch_size: int, inputs: AcquisitionInputs | None = None
) -> Selection:
    """The ``batch_size`` highest scores, ties broken by position (stable).

    ``inputs`` is accepted (and ignored) so every selector shares one signature:
    ``selector(scores_N, batch_size, inputs) -> Selection``.
    """
    scores, count = checked_scores(scores_N, batch_size)
    order = np.argsort(-scores, kind="stable")[:count]
    return Selection(indices=order, scores=scores[order])
