"""Acquisition scores: pure functions from ``log_probs_N_K_C`` to ``scores_N``.

Shapes are spelled in names: ``N`` pool items, ``K`` stochastic forward passes (MC-dropout
samples or ensemble members: both feed the same axis), ``C`` classes. Every score is
"higher means more worth labeling", so one selector serves all of them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "validate_log_probs",
    "mean_log_probs",
    "entropy_of_mean",
    "mean_entropy",
    "random_scores",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "variation_ratios",
    "mean_std",
    "vote_counts",
]


def validate_log_probs(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Check that ``log_probs_N_K_C`` is a 3-D array of finite log-probabilities.

    Returns the array as float64 so sums over many samples stay accurate.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, an empty axis, NaN/inf entries, or rows whose
        probabilities do not sum to one.
    """
    array = np.asarray(log_probs_N_K_C)
    if array.ndim != 3:
        raise ValueError(
            f"log_probs_N_K_C must have 3 dimensions (items, samples, classes); "
            f"got shape {array.shape}"
        )
    n_items, n_samples, n_classes = array.shape
    if n_samples == 0 or n_classes == 0:
        raise ValueError(f"log_probs_N_K_C has an empty axis: shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    if np.isnan(array).any() or np.isposinf(array).any():
        raise ValueError("log_probs_N_K_C contains NaN or +inf")
    if n_items:
        total = _logsumexp(array, axis=-1)
        if not np.allclose(total, 0.0, atol=1e-3):
            worst = float(np.abs(total).max())
            raise ValueError(
                "log_probs_N_K_C rows must be log-probabilities (logsumexp over classes = 0); "
                f"largest deviation {worst:.3g}. Pass log_softmax outputs, not logits."
            )
    return array


def _logsumexp(array: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(array)))`` along ``axis``, stable, for finite or ``-inf`` entries.

    scipy's version handles weights, complex values and signs; this one is 3-5x faster on
    the million-entry arrays a full-pool query scores.
    """
    peak = array.max(axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # a row of -inf stays -inf, never NaN
    with np.errstate(divide="ignore"):
        return np.log(np.exp(array - peak).sum(axis=axis)) + np.squeeze(peak, axis=axis)


def _mean_log_probs(array: np.ndarray) -> np.ndarray:
    return _logsumexp(array, axis=1) - np.log(array.shape[1])


def _entropy_from_log_probs(log_probs: np.ndarray) -> np.ndarray:
    probs = np.exp(log_probs)
    # 0 * log 0 = 0: -inf log-probabilities carry no mass.
    safe = np.where(probs > 0, log_probs, 0.0)
    return -(probs * safe).sum(axis=-1)


def _entropy_of_mean(array: np.ndarray) -> np.ndarray:
    return _entropy_from_log_probs(_mean_log_probs(array))


def _mean_entropy(array: np.ndarray) -> np.ndarray:
    return _entropy_from_log_probs(array).mean(axis=1)


def mean_log_probs(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Log of the predictive distribution averaged over ``K``: ``log_probs_N_C``."""
    return _mean_log_probs(validate_log_probs(log_probs_N_K_C))


def entropy_of_mean(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the mean predictive distribution, ``H[E_k p_k]``: ``scores_N``."""
    return _entropy_of_mean(validate_log_probs(log_probs_N_K_C))


def mean_entropy(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Mean over ``K`` of each sample's entropy, ``E_k H[p_k]``: ``scores_N``."""
    return _mean_entropy(validate_log_probs(log_probs_N_K_C))


def random_scores(
    log_probs_N_K_C: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Uniform random scores: the baseline every strategy must beat."""
    array = validate_log_probs(log_probs_N_K_C)
    generator = rng if rng is not None else np.random.default_rng()
    return generator.random(array.shape[0])


def least_confidence(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """``1 - max_c p(c)`` of the mean prediction."""
    return 1.0 - np.exp(mean_log_probs(log_probs_N_K_C)).max(axis=-1)


def margin(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Negative gap between the two most probable classes of the mean prediction.

    Smaller margins are more ambiguous, so the score is ``-(p_top1 - p_top2)``
    (in ``[-1, 0]``); with a single class the margin is taken as 1.
    """
    probs_N_C = np.exp(mean_log_probs(log_probs_N_K_C))
    if probs_N_C.shape[1] < 2:
        return -np.ones(probs_N_C.shape[0])
    top_two = np.sort(probs_N_C, axis=-1)[:, -2:]
    return -(top_two[:, 1] - top_two[:, 0])


def entropy(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Max-entropy acquisition: entropy of the mean prediction (nats)."""
    return entropy_of_mean(log_probs_N_K_C)


def bald(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """BALD mutual information ``H[E_k p_k] - E_k H[p_k]`` (Houlsby et al. 2011).

    Non-negative by Jensen's inequality; exactly 0 when ``K == 1``. Tiny negative values
    from rounding are clipped to 0.
    """
    array = validate_log_probs(log_probs_N_K_C)
    if array.shape[1] == 1:
        return np.zeros(array.shape[0])
    return np.clip(_entropy_of_mean(array) - _mean_entropy(array), 0.0, None)


def vote_counts(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """How many of the ``K`` samples vote for each class: ``votes_N_C`` (ints)."""
    array = validate_log_probs(log_probs_N_K_C)
    n_items, _, n_classes = array.shape
    winners_N_K = array.argmax(axis=-1)
    votes = np.zeros((n_items, n_classes), dtype=np.int64)
    rows = np.repeat(np.arange(n_items), winners_N_K.shape[1])
    np.add.at(votes, (rows, winners_N_K.ravel()), 1)
    return votes


def variation_ratios(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """``1 - (votes for the modal class) / K`` (Freeman 1965, as used by Gal et al. 2017).

    With ``K == 1`` every item scores 0, so the score only ranks anything with MC samples or
    an ensemble; ties are broken by least confidence of the mean prediction (scaled below
    one vote) so a single-sample model still gets a meaningful order.
    """
    votes_N_C = vote_counts(log_probs_N_K_C)
    n_samples = votes_N_C.sum(axis=1)
    ratio = 1.0 - votes_N_C.max(axis=1) / n_samples
    tie_break = least_confidence(log_probs_N_K_C) / (n_samples + 1.0) * 1e-3
    return ratio + tie_break


def mean_std(log_probs_N_K_C: np.ndarray) -> np.ndarray:
    """Mean over classes of the standard deviation of ``p_k(c)`` across ``K`` (Kampffmeyer 2016)."""
    array = validate_log_probs(log_probs_N_K_C)
    # Deviations from the mean, not E[p^2] - E[p]^2: equal samples then give exactly 0
    # whatever their order, where the difference of moments left rounding noise under sqrt.
    return np.exp(array).std(axis=1).mean(axis=-1)
