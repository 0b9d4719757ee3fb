"""Retrain → fresh ranked batch with a frozen encoder and a head, against the from-scratch CNN.

    python benchmarks/bench_encoder_loop.py --data-root ../shared/data [--limit N]
        [--encoder conv|self-supervised] [--skip-scratch] [--million] [--only-million]

On the MNIST pool (60 000 images by default) it prints, from one run:
  * the one-time encoder pass: seconds, items/s, its GFLOP/s beside a 2048² float32 matmul
    measured in the same run (the machine's practical peak), and the peak RSS;
  * a second session on the same pool and encoder (the cache is found: no encoder pass);
  * with 100 labels: head retrain + ``query(10)`` with full-pool BALD at T=20 (seconds);
  * the same for the from-scratch Gal CNN (unless ``--skip-scratch``);
  * ``--million``: synthetic 250 000 / 500 000 / 1 000 000 × 128 feature pools (each in its
    own process) through a real session: head retrain, then a full-pool BALD T=20
    ``query(10)`` (streamed: chunk by chunk, only scores kept), its peak RSS over the RSS
    before it, the time to the first scored chunk, and a second query of the same model
    (remembered scores); at 250 000 also the unstreamed pass, for the ratio.
    ``--only-million`` skips the MNIST part.
  * ``--memory``: peak RSS of the encoder pass at several pool sizes, each in its own process.
  * ``--variants``: the encoder's throughput on 4 096 items in float32, channels-last, bf16
    autocast and ``torch.compile``, with how far each moves the features.
Absolute times on shared 2-core machines are noisy; quote the ratios.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
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


def cpu_seconds() -> float:
    """User + system CPU time of this process (on a shared machine, steadier than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Highest resident set size seen (every 10 ms) while the block runs."""

    def __enter__(self):
        self.before = self.peak = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, current_rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())


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
    parser.add_argument("--only-million", action="store_true")
    parser.add_argument("--million-sizes", default="250000,500000,1000000")
    parser.add_argument(
        "--stream", choices=["auto", "always"], default="always",
        help="--million: stream every size (always) or only above STREAM_ABOVE_BYTES (auto)",
    )  # fmt: skip
    parser.add_argument("--million-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.data_root, args.memory_child)
        return
    if args.million_child is not None:
        print(json.dumps(million_child(args.million_child, stream=args.stream == "always")))
        return
    if args.only_million:
        print(f"torch {torch.__version__}, {args.threads} threads")
        million(args)
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
        million(args)
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


def million_child(n_items: int, width: int = 128, stream: bool = True) -> dict:
    """A synthetic pool of ``n_items`` feature vectors through a real session (one process)."""
    acquire_module = importlib.import_module("alwidget.session.acquire")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, width)).astype(np.float32) * 3
    targets = rng.integers(10, size=n_items)
    features = centres[targets] + rng.normal(size=(n_items, width)).astype(np.float32)
    pool = al.Pool(features, targets=targets, name=f"synthetic-{n_items}")
    del features
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache_dir:
        session = al.Session(
            pool, encoder=nn.Identity(), strategy="bald", mc_samples=20, store=False,
            cache_dir=cache_dir, progress=False, track_coverage=False, score_subset=None, cv_folds=0,
        )  # fmt: skip
        ready = time.perf_counter() - started
        label_balanced(session, pool, 100, seed=1)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        session.retrain()
        trained, trained_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        first_chunk = []
        unlabeled = session.book.unlabeled_positions()
        started, cpu_started = time.perf_counter(), cpu_seconds()

        def note_first(update):
            if not first_chunk:
                first_chunk.append((time.perf_counter() - started, update.done))

        with RssSampler() as rss:
            result = acquire_module.acquire(
                session.model, session.settings, unlabeled, batch_size=10,
                n_labels=len(session.book), progress=note_first, stream=stream or None,
            )  # fmt: skip
        acquired, acquired_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        started = time.perf_counter()
        session.query(10)
        query_after = time.perf_counter() - started
        row = {
            "n_items": n_items, "ready_s": ready, "retrain_s": trained, "acquire_s": acquired,
            "retrain_cpu_s": trained_cpu, "acquire_cpu_s": acquired_cpu,
            "first_chunk_s": first_chunk[0][0], "first_chunk_items": first_chunk[0][1],
            "timings": result.timings, "rss_before_mb": rss.before, "rss_peak_mb": rss.peak,
            "second_query_s": query_after, "second_query": session.last_query_timings,
            "selected": [int(p) for p in unlabeled[result.selection.indices]],
        }  # fmt: skip
        if n_items <= 250_000:
            session.model.forget_predictions()
            started, cpu_started = time.perf_counter(), cpu_seconds()
            with RssSampler() as whole_rss:
                whole = acquire_module.acquire(
                    session.model, session.settings, unlabeled, batch_size=10, stream=False
                )
            row["unstreamed_s"] = time.perf_counter() - started
            row["unstreamed_cpu_s"] = cpu_seconds() - cpu_started
            row["unstreamed_rss_peak_mb"] = whole_rss.peak
            row["unstreamed_rss_before_mb"] = whole_rss.before
            row["same_selection"] = bool(
                np.array_equal(whole.selection.indices, result.selection.indices)
                and np.array_equal(whole.scores_N, result.scores_N)
            )
    return row


def million(args) -> None:
    """:func:`million_child` at each size, each in its own process (its own peak RSS)."""
    print(f"matmul 2048² float32: {matmul_gflops():.1f} GFLOP/s; load average {os.getloadavg()}")
    for size in (int(text) for text in args.million_sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--million-child", str(size), "--threads",
             str(args.threads), "--stream", args.stream],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        timing = row["timings"]
        print(
            f"{size:>9,} × 128 features: session ready {row['ready_s']:.1f} s, head retrain "
            f"{row['retrain_s']:.1f} s ({row['retrain_cpu_s']:.1f} CPU s); full-pool BALD T=20 "
            f"acquire(10) {row['acquire_s']:.1f} s, {row['acquire_cpu_s']:.1f} CPU s "
            f"(streamed={timing['streamed']}: predict {timing['predict_seconds']:.1f} s, score "
            f"{timing['score_seconds']:.1f} s), first {row['first_chunk_items']} scored after "
            f"{row['first_chunk_s']:.2f} s; RSS {row['rss_before_mb']:.0f} MB before, peak "
            f"{row['rss_peak_mb']:.0f} MB during (+{row['rss_peak_mb'] - row['rss_before_mb']:.0f}"
            f" MB); next query(10) of the same model {row['second_query_s']:.2f} s; load "
            f"average {os.getloadavg()[0]:.1f}"
        )
        if "unstreamed_s" in row:
            print(
                f"{'':>9}   same pool unstreamed (whole log-probs array): "
                f"{row['unstreamed_s']:.1f} s, {row['unstreamed_cpu_s']:.1f} CPU s, peak +"
                f"{row['unstreamed_rss_peak_mb'] - row['unstreamed_rss_before_mb']:.0f} MB; "
                f"identical scores and selection: {row['same_selection']}"
            )


if __name__ == "__main__":
    main()
