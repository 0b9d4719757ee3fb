"""Embedding map on MNIST: first fit, refresh after a retrain, and how still the map stays.

Features are the Gal CNN's penultimate layer (``session.embeddings()``) from a real session:
model v1 is trained on ``--labels`` random labels, v2 and v3 each after one more acquired
batch of ``--batch`` items (entropy, scored on a 2 000-item subset), i.e. real consecutive
retrains. ``--features pca`` uses PCA-64 of the pixels instead and simulates the retrains by a
random rotation of the feature space plus 5 % Gaussian noise (say so when quoting).

For each pool size (a seeded subset of the 60 000 training images) it prints:

- ``fit_s``: ``MapProjector.fit`` (UMAP on a ``--fit-sample`` sample incl. the labeled items,
  ``transform`` of the rest), numba kernels already compiled/cached (see ``jit_s``);
- ``refresh_s``: ``refresh`` with v2 features (align to v1 features, transform everything);
- stability, each as Procrustes disparity (0 = same shape up to rotation/scale) and mean
  displacement / bounding-box diagonal: fit(v1) -> refresh(v2), refresh(v2) -> refresh(v3),
  and for comparison fit(v1) -> a full refit on v2 (oriented onto v1, as the Refit button does);
- ``knn_agree``: share of each item's 10 nearest map neighbours with the same true digit (on
  2 000 items), for the refreshed and the refitted v2 map: does the refresh keep the map useful.

``jit_s`` is what a new process pays before its first fit (umap import plus loading or
compiling numba kernels): with a warm ``NUMBA_CACHE_DIR`` it is seconds; ``--cold-cache``
points numba at an empty directory to show the worst case. First fit in a new process is
``jit_s + fit_s``.

Usage::

    NUMBA_CACHE_DIR=/work/.numba-cache python benchmarks/bench_embedding.py \\
        [--sizes 2000 10000 60000] [--features session|pca] [--cold-cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
TARGETS = {"fit_s_60000": 60.0, "refresh_s": 5.0}


def session_features(
    data_root: Path, n_labels: int, batch: int, seed: int, log
) -> tuple[list, np.ndarray, np.ndarray]:
    """Penultimate features of the Gal CNN for three consecutive model versions, the true
    classes and the positions labeled by the last version."""
    import torch

    import alwidget as al

    torch.set_num_threads(os.cpu_count() or 1)
    pool = al.datasets.load_mnist(data_root)
    session = al.Session(
        pool,
        model="gal_cnn",
        strategy="entropy",
        seed=seed,
        score_subset=2000,
        cv_folds=0,
        store=False,  # a benchmark must not leave (or resume) a label store
    )
    rng = np.random.default_rng(seed)
    first = rng.choice(len(pool), size=n_labels, replace=False)
    session.label([pool.ids[p] for p in first], [int(pool.targets[p]) for p in first])
    versions = []
    for round_index in range(3):
        if round_index:
            picked = session.query(batch_size=batch).ids
            session.label(picked, [int(pool.targets[pool.position(i)]) for i in picked])
        started = time.perf_counter()
        session.retrain()
        trained = time.perf_counter()
        versions.append(session.embeddings().astype(np.float32))
        accuracy = session.evaluate()["accuracy"]
        log(
            f"model v{session.model_version}: {session.n_labels} labels, train {trained - started:.0f} s, "
            f"embeddings {time.perf_counter() - trained:.0f} s, test accuracy {accuracy:.3f}"
        )
    labeled = np.asarray(sorted(pool.position(i) for i in session.labeled_ids))
    return versions, pool.targets.copy(), labeled


def pca_features(
    data_root: Path, n_labels: int, seed: int, log
) -> tuple[list, np.ndarray, np.ndarray]:
    """PCA-64 of the pixels; "retrains" are a random rotation plus 5 % noise (a simulation)."""
    from sklearn.decomposition import PCA

    import alwidget as al

    pool = al.datasets.load_mnist(data_root)
    pixels = pool.inputs(np.arange(len(pool))).numpy().reshape(len(pool), -1)
    base = PCA(64, random_state=seed).fit_transform(pixels).astype(np.float32)
    rng = np.random.default_rng(seed)
    versions = [base]
    for _ in range(2):
        rotation = np.linalg.qr(rng.normal(size=(64, 64)))[0]
        noise = 0.05 * base.std() * rng.normal(size=base.shape)
        versions.append((versions[-1] @ rotation + noise).astype(np.float32))
    log("features: PCA-64 of pixels; retrains simulated by rotation + 5% noise")
    labeled = np.sort(rng.choice(len(pool), size=n_labels, replace=False))
    return versions, pool.targets.copy(), labeled


def knn_agreement(
    coords: np.ndarray,
    classes: np.ndarray,
    n_items: int = 2000,
    k: int = 10,
    seed: int = 0,
) -> float:
    from sklearn.neighbors import NearestNeighbors

    rows = np.random.default_rng(seed).choice(
        len(coords), size=min(n_items, len(coords)), replace=False
    )
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords[rows])
    return float((classes[neighbours[:, 1:]] == classes[rows, None]).mean())


def measure_size(n_items, versions, classes, labeled, fit_sample, seed, pca_components) -> dict:
    from alwidget.embedding import MapProjector, mean_displacement, procrustes_disparity

    rng = np.random.default_rng(seed)
    rows = np.arange(len(classes))
    if n_items < len(classes):  # the labeled items plus a seeded sample of the others
        others = np.setdiff1d(rows, labeled)
        rows = np.union1d(
            labeled,
            rng.choice(others, size=max(n_items - labeled.size, 0), replace=False),
        )
    keep = np.flatnonzero(np.isin(rows, labeled))
    v1, v2, v3 = (features[rows] for features in versions)
    truth = classes[rows]
    settings = {
        "fit_sample_size": fit_sample,
        "seed": seed,
        "pca_components": pca_components,
    }
    projector = MapProjector(**settings)
    started = time.perf_counter()
    fitted = projector.fit(v1, keep=keep).copy()
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    refreshed = projector.refresh(v2).copy()
    refresh_s = time.perf_counter() - started
    r2_v2 = projector.alignment_r2
    started = time.perf_counter()
    refreshed_again = projector.refresh(v3).copy()
    refresh2_s = time.perf_counter() - started
    refit_projector = MapProjector(**settings)
    refit_projector.fit(v1, keep=keep)
    started = time.perf_counter()
    refitted = refit_projector.refit(v2, keep=keep)
    refit_s = time.perf_counter() - started

    def stability(first, second) -> dict:
        return {
            "disparity": procrustes_disparity(first, second),
            "displacement": mean_displacement(first, second),
        }

    return {
        "n_items": len(rows),
        "n_fitted": int(projector.fit_rows.size),
        "fit_s": fit_s,
        "refresh_s": refresh_s,
        "refresh2_s": refresh2_s,
        "refit_s": refit_s,
        "alignment_r2_v2": r2_v2,
        "alignment_r2_v3": projector.alignment_r2,
        "fit_to_refresh": stability(fitted, refreshed),
        "refresh_to_refresh": stability(refreshed, refreshed_again),
        "fit_to_refit": stability(fitted, refitted),
        "knn_agree_fit": knn_agreement(fitted, truth),
        "knn_agree_refresh": knn_agreement(refreshed, truth),
        "knn_agree_refit": knn_agreement(refitted, truth),
    }


def print_table(results: list[dict]) -> None:
    print(
        "\n| items | fitted | fit s | refresh s (v2, v3) | refit s | R² v2 | fit→refresh disp / move "
        "| refresh→refresh disp / move | fit→refit disp / move | 10-NN same digit fit / refresh / refit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a, b, c = r["fit_to_refresh"], r["refresh_to_refresh"], r["fit_to_refit"]
        print(
            f"| {r['n_items']:,} | {r['n_fitted']:,} | {r['fit_s']:.1f} | {r['refresh_s']:.1f}, {r['refresh2_s']:.1f} "
            f"| {r['refit_s']:.1f} | {r['alignment_r2_v2']:.3f} | {a['disparity']:.3f} / {a['displacement']:.3f} "
            f"| {b['disparity']:.3f} / {b['displacement']:.3f} | {c['disparity']:.3f} / {c['displacement']:.3f} "
            f"| {r['knn_agree_fit']:.3f} / {r['knn_agree_refresh']:.3f} / {r['knn_agree_refit']:.3f} |"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 60000])
    parser.add_argument("--features", choices=["session", "pca"], default="session")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--labels", type=int, default=300, help="random labels for model v1")
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="labels acquired before each further retrain",
    )
    parser.add_argument("--fit-sample", type=int, default=4000)
    parser.add_argument("--pca-components", type=int, default=32, help="0 = no PCA before UMAP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cold-cache", action="store_true", help="compile numba kernels from scratch"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--features-cache",
        type=Path,
        help="read the three feature versions from this .npz if it exists, else save them",
    )
    args = parser.parse_args(argv)
    if any(size < 10 for size in args.sizes):
        parser.error("--sizes must be at least 10 items each")
    if args.cold_cache:
        if "numba" in sys.modules:
            parser.error("--cold-cache must be decided before numba is imported")
        cold_cache = tempfile.TemporaryDirectory(prefix="alwidget-numba-cold-")
        os.environ["NUMBA_CACHE_DIR"] = cold_cache.name  # removed when the script ends
    elif "NUMBA_CACHE_DIR" not in os.environ:
        print(
            "note: NUMBA_CACHE_DIR is unset; numba caches in umap's __pycache__",
            flush=True,
        )

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    log(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.features_cache is not None and args.features_cache.exists():
        saved = np.load(args.features_cache)
        versions = [saved["v1"], saved["v2"], saved["v3"]]
        classes, labeled = saved["classes"], saved["labeled"]
        log(f"features read from {args.features_cache} ({saved['kind']})")
    else:
        if args.features == "session":
            versions, classes, labeled = session_features(
                args.data_root, args.labels, args.batch, args.seed, log
            )
        else:
            versions, classes, labeled = pca_features(args.data_root, args.labels, args.seed, log)
        if args.features_cache is not None:
            np.savez(
                args.features_cache,
                v1=versions[0],
                v2=versions[1],
                v3=versions[2],
                classes=classes,
                labeled=labeled,
                kind=args.features,
            )

    from alwidget.embedding import MapProjector
    from alwidget.embedding.umap_loader import import_umap

    started = time.perf_counter()
    import_umap()
    import_s = time.perf_counter() - started
    warm_up = np.random.default_rng(0).normal(size=(300, versions[0].shape[1])).astype(np.float32)
    MapProjector(fit_sample_size=200, seed=0).fit(warm_up)  # compiles or loads every kernel once
    jit_s = time.perf_counter() - started
    log(
        f"jit_s {jit_s:.1f} (import umap {import_s:.1f} s; cache {os.environ.get('NUMBA_CACHE_DIR', 'default')})"
    )

    results = []
    for size in args.sizes:
        result = measure_size(
            size,
            versions,
            classes,
            labeled,
            args.fit_sample,
            args.seed,
            args.pca_components or None,
        )
        results.append(result)
        log(
            f"{size:>6} items: fit {result['fit_s']:.1f} s, refresh {result['refresh_s']:.1f} s, "
            f"refit {result['refit_s']:.1f} s, load average {os.getloadavg()[0]:.1f}"
        )
    print_table(results)
    largest = max(results, key=lambda r: r["n_items"])
    print(
        f"\nfirst fit in a new process at {largest['n_items']:,} items: jit {jit_s:.1f} s + fit "
        f"{largest['fit_s']:.1f} s = {jit_s + largest['fit_s']:.1f} s (target ≤ {TARGETS['fit_s_60000']:.0f} s); "
        f"refresh {largest['refresh_s']:.1f} s (target ≤ {TARGETS['refresh_s']:.0f} s)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "features": args.features,
                    "jit_s": jit_s,
                    "import_s": import_s,
                    "fit_sample": args.fit_sample,
                    "pca_components": args.pca_components,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
