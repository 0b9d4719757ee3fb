"""Self-supervised encoder: what training costs on this machine and how good the features are.

For each dataset (scikit-learn's 1 797 digits; the 60 000 MNIST training images) and each
time budget it trains :func:`alwidget.encoders.self_supervised` from scratch (a fresh cache
directory, so nothing is loaded) and prints

- training cost: seconds, epochs, pool items per second (each item is seen in two views), peak
  RSS of the process, and the time to encode the pool and the test split once;
- probe accuracy on the held-out split (MNIST: the full 10 000 test images) of frozen
  features: a logistic-regression probe and a cosine 5-NN on 100 (10 per class) and 1 000
  (100 per class) labels (mean ± sd over ``--draws`` label draws) and on all pool labels.

``--baselines`` also probes the raw pixels and the PCA-128 encoder (``alwidget.encoders.svd``)
the same way, so the numbers say what training buys.

Usage::

    nice -n 10 python benchmarks/bench_self_supervised.py --dataset mnist --budgets 120 300 \\
        [--threads 2] [--baselines] [--recipe temperature=0.1 batch_size=256]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Float32 matmul rate at this moment, the yardstick for the training rate."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def forward_macs(encoder, input_shape) -> int:
    """Multiply-adds of one forward pass of one item through the convolutions and linears."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            total += output.numel() * per_output
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in encoder.modules()]
    with torch.inference_mode():
        encoder.eval()(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encode(encoder, inputs: torch.Tensor, batch: int = 2048) -> np.ndarray:
    encoder.eval()
    with torch.inference_mode():
        return np.concatenate(
            [encoder(inputs[i : i + batch]).reshape(min(batch, len(inputs) - i), -1).numpy()
             for i in range(0, len(inputs), batch)]
        )  # fmt: skip


def balanced_draw(targets: np.ndarray, per_class: int, rng) -> np.ndarray:
    return np.concatenate(
        [rng.choice(np.flatnonzero(targets == c), per_class, replace=False)
         for c in np.unique(targets)]
    )  # fmt: skip


def linear_probe(train_x, train_y, test_x, test_y, weight_decay: float) -> float:
    """Multinomial logistic regression, full-batch L-BFGS, on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std).float()
    t = torch.from_numpy((test_x - mean) / std).float()
    y = torch.from_numpy(train_y).long()
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    layer = torch.nn.Linear(x.shape[1], n_classes)
    optimiser = torch.optim.LBFGS(layer.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y)
        loss = loss + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return float((layer(t).argmax(1).numpy() == test_y).mean())


def knn_probe(train_x, train_y, test_x, test_y, k: int = 5) -> float:
    """Cosine k-NN with similarity-weighted votes."""
    a = train_x / (np.linalg.norm(train_x, axis=1, keepdims=True) + 1e-9)
    b = test_x / (np.linalg.norm(test_x, axis=1, keepdims=True) + 1e-9)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start in range(0, len(b), 1000):
        sims = b[start : start + 1000] @ a.T
        top = np.argpartition(-sims, min(k, len(a) - 1), axis=1)[:, :k]
        votes = np.zeros((len(top), n_classes))
        rows = np.arange(len(top))[:, None]
        np.add.at(votes, (np.repeat(rows, top.shape[1], 1), train_y[top]), sims[rows, top])
        correct += int((votes.argmax(1) == test_y[start : start + 1000]).sum())
    return correct / len(b)


def probes(train_x, train_y, test_x, test_y, draws: int, seed: int = 0) -> dict:
    out = {}
    rng = np.random.default_rng(seed)
    for per_class in (10, 100):
        if per_class * 2 > np.bincount(train_y).min():
            continue
        lin, knn = [], []
        for _ in range(draws):
            chosen = balanced_draw(train_y, per_class, rng)
            # Stronger weight decay for fewer labels (chosen once on MNIST pixels, not tuned
            # per encoder).
            decay = 1e-2 if per_class == 10 else 1e-3
            lin.append(linear_probe(train_x[chosen], train_y[chosen], test_x, test_y, decay))
            knn.append(knn_probe(train_x[chosen], train_y[chosen], test_x, test_y))
        labels = per_class * len(np.unique(train_y))
        out[f"linear@{labels}"] = (float(np.mean(lin)), float(np.std(lin)))
        out[f"knn@{labels}"] = (float(np.mean(knn)), float(np.std(knn)))
    out["linear@all"] = (linear_probe(train_x, train_y, test_x, test_y, 1e-5), 0.0)
    out["knn@all"] = (knn_probe(train_x, train_y, test_x, test_y), 0.0)
    return out


def fmt_probes(result: dict) -> str:
    return "  ".join(
        f"{name} {mean:.4f}" + (f"±{sd:.4f}" if sd else "") for name, (mean, sd) in result.items()
    )


def load(dataset: str, data_root: Path, limit: int | None):
    import alwidget as al

    if dataset == "digits":
        return al.datasets.load_digits()
    return al.datasets.load_mnist(data_root, limit=limit)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], nargs="+", default=["digits"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[10.0])
    parser.add_argument("--max-epochs", type=float, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="MNIST pool subset size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--recipe", nargs="*", default=[], help="Recipe overrides, key=value")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import alwidget.encoders.self_supervised  # noqa: F401 - the module, not the function

    ss = sys.modules["alwidget.encoders.self_supervised"]

    torch.set_num_threads(args.threads)
    overrides = {}
    fields = {f.name: f for f in dataclasses.fields(ss.Recipe)}
    for item in args.recipe:
        key, value = item.split("=", 1)
        overrides[key] = (
            tuple(int(v) for v in value.split(",")) if key == "widths" else type(fields[key].default)(value)
        )  # fmt: skip
    recipe = ss.Recipe(**overrides)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; recipe {recipe}")
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; float32 matmul "
        f"{matmul_gflops(args.threads):.0f} GFLOP/s now"
    )
    results = []
    for dataset in args.dataset:
        pool = load(dataset, args.data, args.limit)
        train_y = pool.targets
        test = pool.test
        train_inputs = pool.inputs(np.arange(len(pool)))
        print(
            f"\n== {dataset}: pool {len(pool)}, test {len(test)}, inputs {tuple(train_inputs.shape)}"
        )
        if args.baselines:
            from alwidget.encoders import svd

            flat_train = train_inputs.reshape(len(pool), -1).numpy()
            flat_test = test.inputs.reshape(len(test), -1).numpy()
            result = probes(flat_train, train_y, flat_test, test.targets, args.draws)
            print(f"raw pixels     {fmt_probes(result)}", flush=True)
            results.append({"dataset": dataset, "encoder": "pixels", **result})
            started = time.perf_counter()
            pca = svd(pool, 128, seed=args.seed)
            fit = time.perf_counter() - started
            result = probes(encode(pca, train_inputs), train_y, encode(pca, test.inputs),
                            test.targets, args.draws)  # fmt: skip
            print(f"svd-128 ({fit:.1f} s) {fmt_probes(result)}", flush=True)
            results.append({"dataset": dataset, "encoder": "svd-128", "seconds": fit, **result})
        for budget in args.budgets:
            with tempfile.TemporaryDirectory() as cache:
                started = time.perf_counter()
                encoder = ss.self_supervised(
                    pool, time_budget=budget, max_epochs=args.max_epochs, seed=args.seed,
                    feature_dim=args.feature_dim, cache_dir=cache, progress=False, recipe=recipe,
                )  # fmt: skip
                wall = time.perf_counter() - started
            report = encoder.report
            # Training ≈ 3 forward passes' work (forward, two backward products) per view,
            # two views per item; the projection head adds little.
            train_flop = 3 * 2 * 2 * forward_macs(encoder, train_inputs.shape[1:])
            achieved = report.items_per_second * train_flop / 1e9
            peak_now = matmul_gflops(args.threads)
            started = time.perf_counter()
            train_x = encode(encoder, train_inputs)
            test_x = encode(encoder, test.inputs)
            encode_s = time.perf_counter() - started
            result = probes(train_x, train_y, test_x, test.targets, args.draws)
            row = {
                "dataset": dataset, "budget": budget, "train_s": report.seconds, "wall_s": wall,
                "epochs": report.epochs, "steps": report.steps, "loss": report.loss,
                "items_per_s": report.items_per_second, "peak_rss_mb": peak_rss_mb(),
                "encode_s": encode_s, "train_gflops": achieved, "matmul_gflops": peak_now,
                "load_average": os.getloadavg()[0], **result,
            }  # fmt: skip
            results.append(row)
            print(
                f"budget {budget:6.0f} s: trained {report.seconds:6.1f} s (call {wall:6.1f} s), "
                f"{report.epochs:5.1f} epochs, {report.items_per_second:6.0f} items/s, "
                f"loss {report.loss:.3f}, peak RSS {peak_rss_mb():.0f} MB, "
                f"encode pool+test {encode_s:.1f} s",
                flush=True,
            )
            print(
                f"    ≈ {achieved:.1f} GFLOP/s in training ({train_flop / 1e6:.1f} MFLOP per "
                f"item); matmul {peak_now:.0f} GFLOP/s right after; load average "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
            print(f"    {fmt_probes(result)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
