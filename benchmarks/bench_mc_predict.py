"""Cost of MC-dropout scoring on the 60k MNIST pool: one deterministic pass vs BALD at T=20,
with and without running the deterministic trunk only once.

    python benchmarks/bench_mc_predict.py --data-root ../shared/data [--samples 20] [--limit N]

Prints seconds and ratios from one run (absolute times on shared machines are noisy; the
ratios are the figure to quote). Weights do not change the cost, so the Gal CNN is used as
initialised. glibc malloc settings change absolute times a lot for big activations (see
../shared/FACTS.md); all methods here run in the same process with the same settings.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

import alwidget as al
from alwidget.predict import predict
from alwidget.strategies import bald


def timed(label, function):
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None, help="pool size (default: all 60 000)")
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-full", action="store_true", help="skip the slow no-caching path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = al.datasets.load_mnist(args.data_root, limit=args.limit)
    torch.manual_seed(0)
    model = al.models.GalCNN(1, 28, 10)
    positions = np.arange(len(pool))
    print(
        f"pool: {len(pool)} MNIST images, Gal CNN, chunk {args.chunk_size}, {args.threads} torch threads, "
        f"MALLOC_MMAP_MAX_={os.environ.get('MALLOC_MMAP_MAX_', 'unset')}"
    )

    def run(samples, cache_trunk):
        return predict(
            model,
            pool.inputs,
            positions,
            mc_samples=samples,
            chunk_size=args.chunk_size,
            cache_trunk=cache_trunk,
            seed=0,
        )

    run(1, True) if len(pool) <= 2048 else predict(
        model, pool.inputs, positions[:2048], chunk_size=args.chunk_size
    )
    _, deterministic = timed("deterministic pass (K=1)", lambda: run(1, True))
    cached, with_cache = timed(
        f"BALD T={args.samples}, trunk once + head x{args.samples}", lambda: run(args.samples, True)
    )
    _, scoring = timed("BALD score on log_probs_N_K_C", lambda: bald(cached.log_probs_N_K_C))
    print(
        f"ratio cached MC / deterministic: {with_cache / deterministic:.2f}x "
        f"(+ scoring {scoring / deterministic:.3f}x)"
    )
    if not args.skip_full:
        full, without_cache = timed(
            f"BALD T={args.samples}, full model x{args.samples}", lambda: run(args.samples, False)
        )
        same = np.allclose(full.log_probs_N_K_C, cached.log_probs_N_K_C, atol=1e-4)
        print(f"ratio full MC / deterministic:   {without_cache / deterministic:.2f}x")
        print(
            f"speed-up from trunk caching:     {without_cache / with_cache:.2f}x (identical samples: {same})"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
