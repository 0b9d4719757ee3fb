"""Retrain → fresh ranked batch with a frozen encoder and a head, against the from-scratch CNN.

    python benchmarks/bench_encoder_loop.py --data-root ../shared/data [--limit N]
        [--encoder conv|self-supervised] [--skip-scratch] [--million]

On the MNIST pool (60 000 images by default) it prints, from one run:
  * the one-time encoder pass: seconds, items/s, its GFLOP/s beside a 2048² float32 matmul
    measured in the same run (the machine's practical peak), and the peak RSS;
  * a second session on the same pool and encoder (the cache is found: no encoder pass);
  * with 100 labels: head retrain + ``query(10)`` with full-pool BALD at T=20 (seconds);
  * the same for the from-scratch Gal CNN (unless ``--skip-scratch``);
  * ``--million``: a synthetic 1 000 000 × 128 feature pool scored by the head (BALD T=20).
  * ``--memory``: peak RSS of the encoder pass at several pool sizes, each in its own process.
  * ``--variants``: the encoder's throughput on 4 096 items in float32, channels-last, bf16
    autocast and ``torch.compile``, with how far each moves the features.
Absolute times on shared 2-core machines are noisy; quote the ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from machine import matmul_gflops  # benchmarks/machine.py, beside this script
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import alwidget as al


def conv_encoder(seed: int = 0) -> nn.Module:
    """A small convolutional backbone (random weights: the cost does not depend on them)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encoder_flops_per_item(encoder: nn.Module, pool) -> float:
    batch = pool.inputs(np.arange(64))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        encoder(batch)
    return counter.get_total_flops() / 64


def label_balanced(session, pool, n_labels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    per_class = n_labels // len(pool.classes)
    for index in range(len(pool.classes)):
        members = np.flatnonzero(pool.targets == index)
        for position in rng.choice(members, per_class, replace=False):
            session.label(pool.ids[position], pool.classes[index])


def loop_seconds(session, pool) -> dict:
    label_balanced(session, pool, 100, seed=1)
    started = time.perf_counter()
    report = session.retrain()
    trained = time.perf_counter()
    batch = session.query(10)
    done = time.perf_counter()
    accuracy = session.evaluate()["accuracy"]
    return {
        "retrain_s": trained - started, "query_s": done - trained, "total_s": done - started,
        "steps": report.steps, "accuracy_100_labels": accuracy, "batch": list(batch.ids[:3]),
    }  # fmt: skip


def memory_child(data_root: str, limit: int) -> None:
    pool = al.datasets.load_mnist(data_root, limit=limit)
    pool.inputs(np.arange(2))  # fixes the input scaling, as any session does first
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as cache:
        al.encoders.encode_pool(pool, conv_encoder(), cache_dir=cache, progress=False)
    print(json.dumps({"limit": limit, "rss_before_mb": before, "peak_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--encoder", default="conv", choices=["conv", "self-supervised"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-scratch", action="store_true")
    parser.add_argument("--million", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.data_root, args.memory_child)
        return
    pool = al.datasets.load_mnist(args.data_root, limit=args.limit)
    print(f"pool: {len(pool)} MNIST images; torch {torch.__version__}, {args.threads} threads")
    peak = matmul_gflops()
    print(f"matmul 2048² float32: {peak:.1f} GFLOP/s (this run's practical peak)")
    cache_dir = tempfile.mkdtemp(prefix="bench-encoder-")
    if args.encoder == "conv":
        encoder = conv_encoder()
    else:
        started = time.perf_counter()
        encoder = al.encoders.self_supervised(pool, cache_dir=cache_dir)
        print(f"self-supervised encoder ready in {time.perf_counter() - started:.1f} s")
    flops = encoder_flops_per_item(encoder, pool)
    common = dict(strategy="bald", mc_samples=20, store=False, seed=0, cache_dir=cache_dir)
    started = time.perf_counter()
    session = al.Session(pool, encoder=encoder, progress=False, **common)
    first = time.perf_counter() - started
    encode_s = session.encoding.cache.seconds
    print(
        f"encoder pass: {encode_s:.1f} s, {len(pool) / encode_s:.0f} items/s, "
        f"{flops * len(pool) / encode_s / 1e9:.1f} GFLOP/s = "
        f"{flops * len(pool) / encode_s / 1e9 / peak:.0%} of the matmul peak; session ready "
        f"in {first:.1f} s; peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.perf_counter()
    again = al.Session(pool, encoder=encoder, progress=False, **common)
    print(
        f"second session, same pool and encoder (cache hit): {time.perf_counter() - started:.2f} s"
    )
    del again
    head = loop_seconds(session, pool)
    print(
        f"encoder + head, 100 labels: retrain {head['retrain_s']:.2f} s + full-pool BALD T=20 "
        f"query {head['query_s']:.2f} s = {head['total_s']:.2f} s "
        f"(accuracy {head['accuracy_100_labels']:.3f})"
    )
    if not args.skip_scratch:
        scratch = al.Session(pool, model="gal_cnn", **common)
        cnn = loop_seconds(scratch, pool)
        print(
            f"from-scratch Gal CNN, 100 labels: retrain {cnn['retrain_s']:.1f} s + query "
            f"{cnn['query_s']:.1f} s = {cnn['total_s']:.1f} s (accuracy "
            f"{cnn['accuracy_100_labels']:.3f}); ratio {cnn['total_s'] / head['total_s']:.0f}×"
        )
    if args.variants:
        variants(encoder, pool, peak, flops)
    if args.million:
        million(cache_dir)
    if args.memory:
        for limit in (10_000, 30_000, 60_000):
            out = subprocess.run(
                [sys.executable, __file__, "--data-root", args.data_root, "--memory-child",
                 str(limit), "--threads", str(args.threads)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"encoder pass over {limit:>6} items: peak RSS {row['peak_mb']:.0f} MB "
                f"({row['peak_mb'] - row['rss_before_mb']:+.0f} MB over the loaded pool)"
            )


def variants(encoder: nn.Module, pool, peak: float, flops: float, n_items: int = 4096) -> None:
    """Throughput of the encoder pass under the usual CPU speed-ups, and what they change."""
    batches = [pool.inputs(np.arange(start, start + 512)) for start in range(0, n_items, 512)]

    def run(model, prepare=lambda x: x, context=None):
        outputs = []
        model(prepare(batches[0]))  # warm-up (and compilation)
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                if context is None:
                    outputs.append(model(prepare(batch)).float())
                else:
                    with context():
                        outputs.append(model(prepare(batch)).float())
        seconds = time.perf_counter() - started
        return torch.cat(outputs), seconds

    with torch.inference_mode():
        reference, base_s = run(encoder)
    rows = [("float32", reference, base_s)]
    last = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        rows.append(
            ("channels-last", *run(last, lambda x: x.to(memory_format=torch.channels_last)))
        )
        rows.append(("bf16 autocast", *run(
            encoder, context=lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        )))  # fmt: skip
    try:
        compiled = torch.compile(copy.deepcopy(encoder))
        with torch.inference_mode():
            rows.append(("torch.compile", *run(compiled)))
    except Exception as error:  # no C++ compiler, or an unsupported op
        print(f"torch.compile: unavailable ({type(error).__name__}: {str(error)[:80]})")
    for name, output, seconds in rows:
        moved = (output - reference).abs().max().item() / reference.abs().max().item()
        print(
            f"  {name:<14} {n_items / seconds:7.0f} items/s  "
            f"{flops * n_items / seconds / 1e9 / peak:5.0%} of peak  "
            f"max feature change {moved:.1e} (relative)"
        )


def million(cache_dir: str, n_items: int = 1_000_000, width: int = 128) -> None:
    """A synthetic pool of feature vectors, scored by the head through a real session."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, width)).astype(np.float32) * 3
    targets = rng.integers(10, size=n_items)
    features = centres[targets] + rng.normal(size=(n_items, width)).astype(np.float32)
    pool = al.Pool(features, targets=targets, name="synthetic-1M")
    started = time.perf_counter()
    session = al.Session(
        pool, encoder=nn.Identity(), strategy="bald", mc_samples=20, store=False,
        cache_dir=cache_dir, progress=False, track_coverage=False,
    )  # fmt: skip
    ready = time.perf_counter() - started
    label_balanced(session, pool, 100, seed=1)
    started = time.perf_counter()
    session.retrain()
    trained = time.perf_counter() - started
    started = time.perf_counter()
    session.query(10)
    scored = time.perf_counter() - started
    print(
        f"1 000 000 × {width} features: session ready {ready:.1f} s (encoding = caching), head "
        f"retrain {trained:.2f} s, full-pool BALD T=20 query {scored:.1f} s; peak RSS "
        f"{peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    main()
