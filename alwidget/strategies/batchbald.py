"""BatchBALD (Kirsch, van Amersfoort, Gal 2019): greedy batches that are jointly informative.

BALD scores items one at a time, so a batch of near-duplicates all score high together.
BatchBALD scores the *batch*: the mutual information between the joint labels
``y_1..y_b`` and the model weights. Greedily, the next item ``x`` added to the chosen set
``A`` gains

    I(y_A, y_x; w) - I(y_A; w) = H(y_x | y_A) - E_k H(y_x | w_k)

so only the conditional entropy of the new label given the chosen labels is needed. With
``K`` consistent samples ``w_k`` (the same dropout masks for every item), a configuration
``m`` of the chosen labels turns the uniform prior over ``k`` into a posterior
``r_m(k) ∝ P_k(y_A = m)``, and ``H(y_x | y_A) = Σ_m p(m) H(Σ_k r_m(k) p_k(y_x))``.

The sum over ``m`` is exact while the ``C^|A|`` configurations number at most
``max_exact_configurations`` (each costs ``candidates x C`` entropies per step) and, times
``K``, fit in ``exact_budget`` elements. Beyond that, ``m`` is sampled from ``p(y_A)``
(each of the ``K`` samples draws the same number of configurations, as in the reference
implementation batchbald_redux), which makes the sum an unbiased Monte Carlo average;
repeated configurations are evaluated once, weighted by their count. The posterior form
keeps every quantity in ``[0, 1]``, so float32 is safe and products of many small
probabilities never underflow.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy.special import logsumexp, softmax
from threadpoolctl import threadpool_limits

from .scores import validate_log_probs
from .selection import AcquisitionInputs, Selection, checked_scores

__all__ = [
    "DEFAULT_EXACT_BUDGET",
    "DEFAULT_MAX_CANDIDATES",
    "DEFAULT_MAX_EXACT_CONFIGURATIONS",
    "DEFAULT_NUM_SAMPLES",
    "exact_joint_entropy",
    "sampled_joint_entropy",
    "select_batchbald",
]

DEFAULT_MAX_CANDIDATES = 2000
DEFAULT_NUM_SAMPLES = 4096
DEFAULT_EXACT_BUDGET = 2**20
DEFAULT_MAX_EXACT_CONFIGURATIONS = 2**14
# Elements of the (candidates x configurations x classes) block evaluated at once.
DEFAULT_CHUNK_ELEMENTS = 2**21


def _entropy_along_last(probs: np.ndarray) -> np.ndarray:
    floor = np.finfo(probs.dtype).tiny
    logs = np.maximum(probs, floor)
    np.log(logs, out=logs)
    # einsum fuses the product and the short sum over classes (several times faster than
    # (p * log p).sum(-1) for C = 10).
    return -np.einsum("...c,...c->...", probs, logs)


def _all_configurations(n_items: int, n_classes: int) -> np.ndarray:
    """Every label configuration of ``n_items`` items as rows of class indices."""
    grids = np.indices((n_classes,) * n_items).reshape(n_items, -1)
    return grids.T


def _config_log_probs(log_probs_B_K_C: np.ndarray, configs_M_B: np.ndarray) -> np.ndarray:
    """``log P_k(y = config)`` for every configuration and sample: ``M x K``."""
    n_configs = configs_M_B.shape[0]
    total = np.zeros((n_configs, log_probs_B_K_C.shape[1]))
    for item, log_probs_K_C in enumerate(log_probs_B_K_C):
        total += log_probs_K_C[:, configs_M_B[:, item]].T
    return total


def exact_joint_entropy(log_probs_B_K_C: np.ndarray) -> float:
    """Joint entropy ``H(y_1, ..., y_B)`` (nats) by summing over all ``C^B`` configurations.

    The labels are independent given a sample ``k``; the joint distribution is the mean
    over ``k`` of the product of per-item distributions. Meant for small ``B``.
    """
    array = validate_log_probs(log_probs_B_K_C)
    n_items, n_samples, n_classes = array.shape
    if n_items == 0:
        return 0.0
    if n_classes**n_items * n_samples > 2**26:
        raise ValueError(
            f"exact joint entropy over {n_items} items with {n_classes} classes needs "
            f"{n_classes}^{n_items} configurations; use sampled_joint_entropy instead"
        )
    configs = _all_configurations(n_items, n_classes)
    log_joint_M = logsumexp(_config_log_probs(array, configs), axis=1) - np.log(n_samples)
    joint = np.exp(log_joint_M)
    return float(-(joint * np.where(joint > 0, log_joint_M, 0.0)).sum())


def _draw_labels(probs_M_C: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row, drawn from that row's distribution (inverse CDF)."""
    cumulative = np.cumsum(probs_M_C, axis=1)
    uniform = rng.random(probs_M_C.shape[0]) * cumulative[:, -1]
    labels = (cumulative < uniform[:, None]).sum(axis=1)
    return np.minimum(labels, probs_M_C.shape[1] - 1)


def _sample_configurations(
    log_probs_B_K_C: np.ndarray, num_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw configurations from ``p(y_1..y_B)``, the same number from each sample ``k``.

    Returns ``configs_M_B`` and ``source_M`` (the sample each row was drawn under), so the
    configurations can later be extended by one more item without redrawing.
    """
    n_samples = log_probs_B_K_C.shape[1]
    per_sample = max(1, -(-num_samples // n_samples))
    source_M = np.repeat(np.arange(n_samples), per_sample)
    configs_M_B = np.empty((source_M.shape[0], log_probs_B_K_C.shape[0]), dtype=np.int64)
    for item, log_probs_K_C in enumerate(log_probs_B_K_C):
        configs_M_B[:, item] = _draw_labels(np.exp(log_probs_K_C)[source_M], rng)
    return configs_M_B, source_M


def sampled_joint_entropy(
    log_probs_B_K_C: np.ndarray,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    rng: np.random.Generator | None = None,
) -> float:
    """Monte Carlo estimate of ``H(y_1, ..., y_B)``: ``-mean_m log p(y = m)``, ``m ~ p``.

    Configurations are drawn stratified over the ``K`` samples (``num_samples / K`` each),
    which is a draw from the mixture ``p = mean_k P_k``.
    """
    array = validate_log_probs(log_probs_B_K_C)
    if array.shape[0] == 0:
        return 0.0
    generator = rng if rng is not None else np.random.default_rng(0)
    configs, _ = _sample_configurations(array, num_samples, generator)
    log_joint_M = logsumexp(_config_log_probs(array, configs), axis=1) - np.log(array.shape[1])
    return float(-log_joint_M.mean())


class _ChosenLabels:
    """The chosen items' label configurations: exact enumeration, then samples."""

    def __init__(self, n_samples: int, max_exact: int, num_samples: int, rng):
        self.n_samples = n_samples
        self.max_exact = max_exact
        self.num_samples = num_samples
        self.rng = rng
        self.chosen_log_probs: list[np.ndarray] = []
        self.exact = True
        # Exact mode: log P_k(m) per configuration and its probability weight.
        self.log_joint_M_K = np.zeros((1, n_samples))
        self.configs_M_B = np.zeros((1, 0), dtype=np.int64)
        self.source_M = None

    def add(self, log_probs_K_C: np.ndarray) -> None:
        self.chosen_log_probs.append(log_probs_K_C)
        n_classes = log_probs_K_C.shape[1]
        grown = self.log_joint_M_K.shape[0] * n_classes
        if self.exact and grown <= self.max_exact:
            log_joint = self.log_joint_M_K[:, None, :] + log_probs_K_C.T[None, :, :]
            log_joint = log_joint.reshape(grown, self.n_samples)
            # Configurations impossible under every sample carry no weight.
            self.log_joint_M_K = log_joint[np.isfinite(log_joint).any(axis=1)]
            return
        if self.exact:
            self.exact = False
            stacked = np.stack(self.chosen_log_probs)
            self.configs_M_B, self.source_M = _sample_configurations(
                stacked, self.num_samples, self.rng
            )
        else:
            new_labels = _draw_labels(np.exp(log_probs_K_C)[self.source_M], self.rng)
            self.configs_M_B = np.column_stack([self.configs_M_B, new_labels])
        self._collapse_samples()

    def _collapse_samples(self) -> None:
        # Repeated configurations (common when the model is confident) are evaluated
        # once with their multiplicity as weight: the same estimate, less work.
        unique, counts = np.unique(self.configs_M_B, axis=0, return_counts=True)
        stacked = np.stack(self.chosen_log_probs)
        self.log_joint_M_K = _config_log_probs(stacked, unique)
        self.sample_weights_M = counts / counts.sum()

    def posterior_and_weights(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """``r_M_K`` (posterior over samples per configuration) and the weights ``w_M``."""
        posterior = softmax(self.log_joint_M_K, axis=1)
        if self.exact:
            weights = np.exp(logsumexp(self.log_joint_M_K, axis=1) - np.log(self.n_samples))
        else:
            weights = self.sample_weights_M
        return posterior.astype(dtype), weights.astype(dtype)


def _conditional_entropies(
    probs_B_K_C: np.ndarray,
    posterior_M_K: np.ndarray,
    weights_M: np.ndarray,
    chunk_elements: int,
) -> np.ndarray:
    """``H(y_x | y_A)`` for every candidate ``x``, in chunks of candidates."""
    n_candidates, n_samples, n_classes = probs_B_K_C.shape
    n_configs = posterior_M_K.shape[0]
    per_chunk = max(1, chunk_elements // (n_configs * n_classes))
    result = np.empty(n_candidates)
    for start in range(0, n_candidates, per_chunk):
        block = probs_B_K_C[start : start + per_chunk]
        width = block.shape[0]
        # (M x K) @ (K x width*C): predictive of each candidate under each configuration.
        flat = block.transpose(1, 0, 2).reshape(n_samples, width * n_classes)
        predictive = (posterior_M_K @ flat).reshape(n_configs, width, n_classes)
        result[start : start + width] = weights_M @ _entropy_along_last(predictive)
    return result


def select_batchbald(
    scores_N: np.ndarray,
    batch_size: int,
    inputs: AcquisitionInputs,
    *,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    exact_budget: int = DEFAULT_EXACT_BUDGET,
    max_exact_configurations: int = DEFAULT_MAX_EXACT_CONFIGURATIONS,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    dtype=np.float32,
    blas_threads: int | None = 1,
) -> Selection:
    """Greedy BatchBALD batch.

    Parameters
    ----------
    scores_N : np.ndarray
        Per-item scores (BALD for the registered strategy), used to keep the
        ``max_candidates`` best items before the joint computation, as the reference
        implementations do on large pools, and to break ties between equal gains (with
        ``K == 1`` every gain is 0 and the batch is the top of ``scores_N``).
    batch_size : int
        Items to choose; at most the pool size.
    inputs : AcquisitionInputs
        ``log_probs_N_K_C`` must come from consistent samples: axis ``K`` means the same
        weights (dropout masks, ensemble member) for every item.
    max_candidates : int or None
        Pre-filter size (``None`` = every item). The joint step costs
        ``candidates x configurations x C`` per chosen item.
    num_samples : int
        Sampled configurations once exact enumeration no longer fits.
    exact_budget : int
        Memory bound: enumerate configurations exactly only while ``C^|chosen| * K``
        stays at or below this many elements.
    max_exact_configurations : int
        Time bound: ... and while ``C^|chosen|`` stays at or below this.
    chunk_elements : int
        Bound on the temporary (candidates x configurations x C) block.
    dtype : numpy dtype
        Precision of the bulk products (float32 halves memory and time).
    blas_threads : int or None
        BLAS threads for the many thin (configurations x K) products. One by default, as
        scikit-learn's k-means does for its chunked loops: measured here, a multi-threaded
        OpenBLAS made the whole selection 3x slower whenever other work shared the cores.
        ``None`` leaves the BLAS setting alone.

    Returns
    -------
    Selection
        Indices in acquisition order; ``scores`` are the BatchBALD gains
        ``I(y_A, y_x; w) - I(y_A; w)`` (nats), so the first equals its BALD score.

    Notes
    -----
    The ``K`` samples stand for the weight posterior, so a batch can reveal at most
    ``log K`` nats about it: the gains sum to at most ``log K`` and, once a batch pins the
    sample down, the remaining gains are near 0 and the choice is close to arbitrary. More
    samples let larger batches stay diverse (a test here: 40 items each repeated 3 times,
    batch 10, gave 10 distinct originals with K = 100, 6-9 with K = 10).
    """
    scores, count = checked_scores(scores_N, batch_size)
    log_probs = np.asarray(inputs.log_probs_N_K_C)
    if log_probs.ndim != 3 or log_probs.shape[0] != scores.shape[0]:
        raise ValueError(
            f"batchbald needs log_probs_N_K_C with one row per scored item "
            f"({scores.shape[0]}); got shape {log_probs.shape}"
        )
    # Candidates in score order, so argmax over equal gains prefers the higher score.
    candidates = np.argsort(-scores, kind="stable")
    if max_candidates is not None:
        candidates = candidates[: max(int(max_candidates), count)]
    log_probs_B_K_C = validate_log_probs(log_probs[candidates])
    probs_B_K_C = np.exp(log_probs_B_K_C)
    mean_entropy_B = (
        -(probs_B_K_C * np.where(probs_B_K_C > 0, log_probs_B_K_C, 0.0)).sum(-1).mean(1)
    )
    bulk_probs = probs_B_K_C.astype(dtype)

    n_samples = log_probs_B_K_C.shape[1]
    if n_samples == 1:
        # One sample: the labels say nothing about the weights, every gain is exactly 0.
        return Selection(indices=candidates[:count], scores=np.zeros(count))
    max_exact = min(int(max_exact_configurations), int(exact_budget) // n_samples)
    chosen_labels = _ChosenLabels(n_samples, max_exact, num_samples, inputs.rng)
    blas_limit = (
        nullcontext() if blas_threads is None else threadpool_limits(blas_threads, user_api="blas")
    )
    available = np.ones(candidates.shape[0], dtype=bool)
    picked: list[int] = []
    gains: list[float] = []
    with blas_limit:
        for step in range(count):
            posterior, weights = chosen_labels.posterior_and_weights(dtype)
            conditional_B = _conditional_entropies(bulk_probs, posterior, weights, chunk_elements)
            gain_B = np.where(available, conditional_B - mean_entropy_B, -np.inf)
            best = int(np.argmax(gain_B))
            picked.append(best)
            gains.append(max(float(gain_B[best]), 0.0))
            available[best] = False
            if step + 1 < count:
                chosen_labels.add(log_probs_B_K_C[best])
    return Selection(indices=candidates[np.array(picked, dtype=np.int64)], scores=np.array(gains))
