"""BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

The gradient of the cross-entropy loss at the model's own predicted label, with respect to
the last linear layer, is ``g = (p - onehot(argmax p)) ⊗ h`` for mean prediction ``p`` and
penultimate features ``h``. Its norm grows with uncertainty and its direction encodes what
the item looks like, so D² sampling on ``g`` trades the two off without a tuning knob.

``g`` has ``C * D`` dimensions (60k x 10 x 128 float32 is ~300 MB), but it is never built:
``|g_n - g_m|^2 = |a_n|^2 |h_n|^2 + |a_m|^2 |h_m|^2 - 2 (a_n . a_m)(h_n . h_m)`` with
``a = p - onehot``, so each step costs ``O(N (C + D))`` and memory stays ``O(N (C + D))``.
"""

from __future__ import annotations

import numpy as np

from .clustering import draw_by_squared_distance
from .diversity import require_embeddings
from .scores import mean_log_probs
from .selection import AcquisitionInputs, Selection, checked_scores

__all__ = ["gradient_embedding_factors", "gradient_squared_distances", "select_badge"]

# Squared distances below this fraction of the two squared norms are rounding noise of the
# expansion above, i.e. the two gradient embeddings coincide.
_COINCIDENT = 1e-9
_ROWS_PER_CHUNK = 4096


def gradient_embedding_factors(log_probs_N_K_C, embeddings_N_D) -> tuple[np.ndarray, np.ndarray]:
    """The two factors of ``g = a ⊗ h``: ``a_N_C = p - onehot(argmax p)`` and ``h_N_D``."""
    log_probs = np.asarray(log_probs_N_K_C)
    # In row chunks: validating all of a 60k x K x C array at once makes large float64 copies.
    chunks = [
        np.exp(mean_log_probs(log_probs[start : start + _ROWS_PER_CHUNK]))
        for start in range(0, max(1, log_probs.shape[0]), _ROWS_PER_CHUNK)
    ]
    probs_N_C = np.concatenate(chunks)
    residual_N_C = probs_N_C.copy()
    residual_N_C[np.arange(probs_N_C.shape[0]), probs_N_C.argmax(axis=1)] -= 1.0
    return residual_N_C, np.asarray(embeddings_N_D, dtype=np.float64)


def gradient_squared_distances(
    residual_N_C: np.ndarray, features_N_D: np.ndarray, center: int, squared_norms_N: np.ndarray
) -> np.ndarray:
    """``|g_n - g_center|^2`` for every ``n`` without forming any ``g``."""
    cross = (residual_N_C @ residual_N_C[center]) * (features_N_D @ features_N_D[center])
    squared = squared_norms_N + squared_norms_N[center] - 2.0 * cross
    noise = _COINCIDENT * (squared_norms_N + squared_norms_N[center])
    return np.where(squared <= noise, 0.0, squared)


def select_badge(scores_N: np.ndarray, batch_size: int, inputs: AcquisitionInputs) -> Selection:
    """BADGE batch: the largest gradient embedding first, then D² sampling with ``inputs.rng``.

    ``scores_N`` is ignored; the prediction comes from ``inputs.log_probs_N_K_C`` (averaged
    over ``K``) and the features from ``inputs.embeddings_N_D``. Items whose gradient
    embedding coincides with a chosen one have probability 0, so duplicates are taken only
    when nothing else is left (then uniformly among the rest).

    Returns
    -------
    Selection
        ``scores`` are each pick's squared gradient-embedding distance to the nearest earlier
        pick when drawn (for the first: its squared norm, the distance to a fully confident
        prediction's zero gradient).
    """
    scores, count = checked_scores(scores_N, batch_size)
    features = require_embeddings(inputs, "badge", scores.shape[0])
    log_probs = np.asarray(inputs.log_probs_N_K_C)
    if log_probs.ndim != 3 or log_probs.shape[0] != scores.shape[0]:
        raise ValueError(
            f"strategy 'badge' needs log_probs_N_K_C with one row per candidate "
            f"({scores.shape[0]}); got shape {log_probs.shape}"
        )
    residual, features = gradient_embedding_factors(log_probs, features)
    squared_norms = np.einsum("nc,nc->n", residual, residual) * np.einsum(
        "nd,nd->n", features, features
    )
    n_items = scores.shape[0]
    chosen = np.zeros(n_items, dtype=bool)
    min_squared = np.full(n_items, np.inf)
    picks = np.empty(count, dtype=np.int64)
    values = np.empty(count)
    for step in range(count):
        if step == 0:
            pick = int(np.argmax(squared_norms))
        else:
            pick = draw_by_squared_distance(min_squared, chosen, inputs.rng)
        picks[step] = pick
        values[step] = squared_norms[pick] if step == 0 else min_squared[pick]
        chosen[pick] = True
        np.minimum(
            min_squared,
            gradient_squared_distances(residual, features, pick, squared_norms),
            out=min_squared,
        )
    return Selection(indices=picks, scores=values)
