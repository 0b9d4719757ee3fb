"""Time the batch-aware and diversity selectors on a synthetic pool.

    python benchmarks/bench_selectors.py [--n 60000] [--batch 10] [--batchbald-candidates 2000]

The pool imitates a 10-class classifier's output: embeddings from a mixture of Gaussians
(one per class, plus noise), log-probabilities from a noisy linear read-out with K
*consistent* MC samples (one weight perturbation per sample, shared by every item), as the
predictor provides for BatchBALD. Prints seconds and peak extra memory (tracemalloc) per
selector. BatchBALD pre-filters to the top ``--batchbald-candidates`` items by BALD, as the
reference implementations do on large pools (its joint step costs
candidates x configurations x C per chosen item).
"""

from __future__ import annotations

import argparse
import functools
import time
import tracemalloc

import numpy as np
from scipy.special import log_softmax

from alwidget.strategies import SCORES, SELECTORS, AcquisitionInputs, coverage_report, get_strategy

STRATEGIES = ["batchbald", "coreset", "badge", "hybrid", "stochastic_bald", "typicality"]


def synthetic_pool(n_items, n_samples, n_classes, n_features, n_labeled, seed, logit_scale=1.0):
    rng = np.random.default_rng(seed)
    class_means = rng.normal(size=(n_classes, n_features)) * 1.5
    classes = rng.integers(n_classes, size=n_items + n_labeled)
    embeddings = (class_means[classes] + rng.normal(size=(classes.size, n_features))).astype(
        np.float32
    )
    readout = class_means.T / n_features**0.5
    logits = embeddings[:n_items] @ readout  # N x C
    perturbations = rng.normal(size=(n_samples, n_features, n_classes)) * 0.1
    logits_N_K_C = logits[:, None, :] + np.einsum(
        "nd,kdc->nkc", embeddings[:n_items], perturbations
    )
    log_probs = log_softmax(logits_N_K_C * logit_scale, axis=-1).astype(np.float32)
    return log_probs, embeddings[:n_items], embeddings[n_items:]


def measure(function):
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000, help="pool size")
    parser.add_argument("--k", type=int, default=20, help="MC samples")
    parser.add_argument("--c", type=int, default=10, help="classes")
    parser.add_argument("--d", type=int, default=128, help="embedding features")
    parser.add_argument("--labeled", type=int, default=20, help="labeled items")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--batchbald-candidates", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--logit-scale",
        type=float,
        default=0.2,
        help="multiply logits: 0.2 gives a mean top-class probability near 0.9, 0.05 an unsure "
        "early model (more label configurations for BatchBALD)",
    )
    parser.add_argument("--only", nargs="*", default=STRATEGIES, help="subset of strategies")
    args = parser.parse_args(argv)

    log_probs, embeddings, labeled = synthetic_pool(
        args.n, args.k, args.c, args.d, args.labeled, args.seed, args.logit_scale
    )
    mean_confidence = float(np.exp(log_probs).mean(axis=1).max(axis=1).mean())
    print(
        f"pool N={args.n} K={args.k} C={args.c} D={args.d}, labeled={args.labeled}, batch={args.batch}, "
        f"mean top-class probability {mean_confidence:.2f}"
    )
    for name in args.only:
        spec = get_strategy(name)
        selector = SELECTORS[spec.selector]
        if name == "batchbald":
            selector = functools.partial(selector, max_candidates=args.batchbald_candidates)
        scores, score_seconds, _ = measure(functools.partial(SCORES[spec.score], log_probs))
        inputs = AcquisitionInputs(log_probs, embeddings, labeled, np.random.default_rng(args.seed))
        selection, seconds, peak = measure(functools.partial(selector, scores, args.batch, inputs))
        extra = f" (top {args.batchbald_candidates} by BALD)" if name == "batchbald" else ""
        print(
            f"{name:16s} select {seconds:7.2f} s  peak +{peak:7.1f} MiB   "
            f"score '{spec.score}' {score_seconds:5.2f} s   picks {selection.indices[:5].tolist()}...{extra}"
        )
    mask = np.zeros(args.n, dtype=bool)
    mask[: args.batch * 5] = True
    report, seconds, peak = measure(lambda: coverage_report(embeddings, mask))
    print(
        f"{'coverage_report':16s} total  {seconds:7.2f} s  peak +{peak:7.1f} MiB   "
        f"radius {report['radius']:.2f}, k-center radius {report['k_center_radius']:.2f}, "
        f"covered {report['covered_fraction']:.3f} with {mask.sum()} labels"
    )


if __name__ == "__main__":
    main()
