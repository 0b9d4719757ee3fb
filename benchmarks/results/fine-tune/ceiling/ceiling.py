"""Issue 14: is the 0.988 plateau of the best recipe the labels' limit or the training's?

Same settings as ../gal-body-10ep-warm600-pseudo1000-250 (10-epoch SimCLR Gal body from the
cache, fine-tuned, affine augmentation, weight averaging 0.98, batches of 32).

* Without ``--labels-from``: the whole 60 000-image pool is labeled with its true classes (no
  pseudo-labels, no unlabeled items) and one run of each ``--steps`` trains from the seeded
  start.
* With ``--labels-from RUN.json`` (a run file of that bench): only the items that run
  labeled (its ``acquired`` lists) are labeled. A first run trains as the bench's does, then
  one warm-started run of ``--steps`` steps (one value) continues from it, with that
  recipe's pseudo-labels and FixMatch.

Prints the test accuracy after each run.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/results/fine-tune/ceiling/ceiling.py \
        --data-root ../shared/data --steps 1000 1600 5000 --seed 1
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/results/fine-tune/ceiling/ceiling.py \
        --data-root ../shared/data --steps 5000 --seed 1 \
        --labels-from benchmarks/results/fine-tune/gal-body-10ep-warm600-pseudo1000-250/runs/mnist-bald-seed1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from alwidget.experiments.bench import BenchSettings, bench_session


def timed_retrain(session, config) -> float:
    session.train_config = config
    started = time.perf_counter()
    session.retrain(cross_validate=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 1600])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--labels-from", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    semi = args.labels_from is not None
    settings = BenchSettings(
        dataset="mnist", data_root=args.data_root, budget=250, score_subset=2000,
        train_steps=1000, warm_steps=600, train_batch=32, augment="affine", mc_samples=20,
        encoder="self-supervised", encoder_epochs=10, encoder_architecture="gal_cnn",
        fine_tune=True, weight_averaging=0.98, pseudo_labels=semi,
        pseudo_label_per_class=1000 if semi else 100,
        pseudo_label_candidates=20000 if semi else 2000,
        semi_supervised="fixmatch" if semi else None,
    )  # fmt: skip
    session = bench_session(settings, "random", args.seed)
    targets = np.asarray(session.pool.targets)
    if semi:
        run = json.loads(open(args.labels_from).read())
        positions = [p for step in run["steps"] for p in step["acquired"]]
        what = f"the {len(positions)} labels of {args.labels_from.rsplit('/', 1)[-1]}"
    else:
        positions = list(range(len(session.pool)))
        what = f"all {len(positions)} labels"
    session.label([session.pool.ids[p] for p in positions], [int(targets[p]) for p in positions])
    if not semi:
        for steps in args.steps:
            fresh = bench_session(settings, "random", args.seed)
            fresh.label(
                [fresh.pool.ids[p] for p in positions], [int(targets[p]) for p in positions]
            )
            config = dataclasses.replace(settings.train_config(first=True), min_steps=steps,
                                         max_steps=steps)  # fmt: skip
            seconds = timed_retrain(fresh, config)
            accuracy = fresh.evaluate()["accuracy"]
            print(f"{what}, {steps} steps: test accuracy {accuracy:.4f} ({seconds:.0f} s)",
                  flush=True)  # fmt: skip
        return
    seconds = timed_retrain(session, settings.train_config(first=True))
    accuracy = session.evaluate()["accuracy"]
    print(f"{what}, first run ({settings.train_steps} steps): {accuracy:.4f} ({seconds:.0f} s)",
          flush=True)  # fmt: skip
    session.query(10)  # the scoring pass the warm run's pseudo-labels come from, as in the bench
    (steps,) = args.steps
    config = dataclasses.replace(settings.train_config(first=False), min_steps=steps,
                                 max_steps=steps)  # fmt: skip
    seconds = timed_retrain(session, config)
    accuracy = session.evaluate()["accuracy"]
    n_pseudo = session.pseudo_labels(sample=0)["n"]
    print(f"{what}, first run + {steps} warm steps ({n_pseudo} pseudo-labels): test "
          f"accuracy {accuracy:.4f} ({seconds:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
