"""Label store timings: commit latency, reading labels back, resuming, claiming.

    python benchmarks/bench_store.py [--labels 60000] [--postgres-url postgresql://...]

Without --postgres-url only SQLite is measured; with ``--start-postgres`` a throwaway
server is started from Debian's binaries (as in the tests).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from alwidget.store import open_store

CLASSES = [str(digit) for digit in range(10)]


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(0.95 * (len(samples) - 1))]
    return f"median {statistics.median(samples) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms"


def gal_cnn_state() -> dict:
    """State dict of the Gal et al. MNIST CNN (about 0.6 M parameters)."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 4), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3872, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )  # fmt: skip
    return model.state_dict()


def bench(url: str, n_labels: int) -> None:
    print(f"\n== {url.split('@')[-1]}")
    store = open_store(url, pool_fingerprint="bench", classes=CLASSES, annotator="bench")
    latencies = []
    for i in range(200):
        started = time.perf_counter()
        store.add_label(str(i), CLASSES[i % 10], model_version=1, strategy="bald", score=0.5)
        latencies.append(time.perf_counter() - started)
    print(f"add_label, committed one by one (200): {percentiles(latencies)}")

    started = time.perf_counter()
    for start in range(200, n_labels, 1000):
        store.add_labels(
            [
                {"item_key": str(i), "label": CLASSES[i % 10], "model_version": 1}
                for i in range(start, min(start + 1000, n_labels))
            ]
        )
    print(f"bulk add_labels up to {n_labels} labels: {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    labels = store.current_labels()
    print(f"current_labels() with {len(labels)} labels: {time.perf_counter() - started:.2f} s")

    state = gal_cnn_state()
    started = time.perf_counter()
    store.save_checkpoint(1, [state] * 5)
    print(f"save_checkpoint, 5 x Gal CNN: {time.perf_counter() - started:.2f} s")
    store.close()

    started = time.perf_counter()
    store = open_store(url, pool_fingerprint="bench", classes=CLASSES, annotator="bench")
    store.current_labels()
    store.rounds()
    store.load_queue()
    store.load_checkpoint()
    print(f"resume (open + labels + history + queue + checkpoint): "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip

    store.enqueue([(f"q{i}", float(i % 97)) for i in range(5000)])
    claims, labels_after_claim = [], []
    for _ in range(50):
        started = time.perf_counter()
        keys = store.claim(10, lease_seconds=600)
        claims.append(time.perf_counter() - started)
        started = time.perf_counter()
        for key in keys:
            store.add_label(key, CLASSES[0])
        labels_after_claim.append((time.perf_counter() - started) / len(keys))
    print(f"claim(10) on a 5000-item team queue: {percentiles(claims)}")
    print(f"add_label of a claimed item: {percentiles(labels_after_claim)}")
    store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=60_000)
    parser.add_argument("--postgres-url")
    parser.add_argument("--start-postgres", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        bench(f"sqlite:///{Path(folder) / 'bench.db'}", args.labels)
    if args.postgres_url:
        bench(args.postgres_url, args.labels)
    elif args.start_postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from fixtures.postgres import PostgresServer, _admin, find_postgres_bindir

        bindir = find_postgres_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries: run scripts/install-postgres.sh")
        server = PostgresServer(bindir)
        server.start()
        try:
            _admin(server, "CREATE DATABASE bench")
            bench(server.url("bench"), args.labels)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
