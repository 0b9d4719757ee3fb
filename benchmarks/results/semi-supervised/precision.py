"""How many pseudo-labels the default settings pick on MNIST, and how many are right.

    nice -n 10 .venv/bin/python benchmarks/results/semi-supervised/precision.py \
        --data-root ../shared/data --labels 20 50 100 --seed 0

For each label count: a session (Gal CNN, the bench's 500 Adam steps of 32, affine) on that
many class-balanced random labels, one BALD query scoring a random 2 000 unlabeled items with
T = 20 MC samples (as the bench does), then a retrain with ``pseudo_labels=True`` that picks
from that pass. Prints the count per class, precision against the hidden targets, the test
accuracy before and after, and the load average.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import alwidget as al
from alwidget.experiments.oracle import balanced_initial_ids, oracle_labels
from alwidget.experiments.simulate import pseudo_label_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pool = al.datasets.load_mnist(args.data_root, seed=0)
    for count in args.labels:
        started = time.perf_counter()
        config = al.TrainConfig(min_steps=500, max_steps=500, max_epochs=10**6, batch_size=32,
                                validation_fraction=0.0)  # fmt: skip
        session = al.Session(pool, "gal_cnn", strategy="bald", mc_samples=20, seed=args.seed,
                             score_subset=2000, train_config=config, store=False,
                             track_coverage=False)  # fmt: skip
        ids = balanced_initial_ids(pool, count, args.seed)
        session.label(ids, oracle_labels(pool, ids))
        session.retrain()
        before = session.history[-1]["accuracy"]
        session.query(10)
        config.pseudo_labels = True
        session.retrain()
        after = session.history[-1]["accuracy"]
        precision = pseudo_label_precision(session, pool)
        counts = session.pseudo_labels(sample=0)["counts"]
        print(
            f"{count} labels: {precision['n']} pseudo-labels of {session.pseudo_labels(0)['n_candidates']} "
            f"candidates, precision {precision['precision']:.4f}; per class {counts}; test "
            f"accuracy {before:.4f} -> {after:.4f} with them; {time.perf_counter() - started:.0f} s; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
