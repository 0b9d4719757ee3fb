"""Per-seed table of the Gal-body fine-tune runs beside recipe (e) from scratch (issue 11).

Adapted from ../gal-body/table.py (session 11 sweep): --strategy chooses the runs' strategy, and
--compare FOLDER=NAME[@STRATEGY] (repeatable) adds another folder's runs (of --strategy, or of
STRATEGY) as a further table and its paired difference.

    python3 benchmarks/results/fine-tune/gal-body-10ep/table.py [--folder DIR] [--budget 150]
        [--checkpoints 20,50,100,120,150] [--thresholds 0.95,0.98] [--no-scratch] [--name NAME]
        [--strategy bald] [--compare DIR=NAME[@STRATEGY] ...]

Reads ``DIR/runs/mnist-STRATEGY-seed*.json`` (default: this folder) and, unless --no-scratch,
``benchmarks/results/semi-supervised/pseudo-fixmatch-averaged/runs/mnist-STRATEGY-seed*.json``
(recipe (e) from a randomly initialised Gal CNN: same flags without the encoder, and the same
20 initial labels per seed). Curves are cut at --budget. Prints Markdown: per seed the test
accuracy at each checkpoint, the labels (incl. the 20 initial) to first reach each threshold,
the largest step-to-step accuracy drop (percentage points, and where); then mean ± sd of the
accuracies and the median of the label counts ("> budget" counts as more than any number),
and the paired difference fine-tuned body − scratch per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRATCH = HERE.parents[1] / "semi-supervised" / "pseudo-fixmatch-averaged"


def load(folder: Path, budget: int, strategy: str = "bald") -> dict[int, list[dict]]:
    runs = {}
    for path in sorted((folder / "runs").glob(f"mnist-{strategy}-seed*.json")):
        run = json.loads(path.read_text())
        runs[run["seed"]] = [s for s in run["steps"] if s["n_labels"] <= budget]
    return runs


def first_reach(steps, threshold):
    return next((s["n_labels"] for s in steps if s["accuracy"] >= threshold), None)


def median(values):
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = ordered[len(ordered) // 2]
    if len(ordered) % 2 == 0:
        low = ordered[len(ordered) // 2 - 1]
        return None if low is None or middle is None else (low + middle) / 2
    return middle


def largest_drop(steps):
    drop, where = 0.0, None
    for a, b in zip(steps, steps[1:]):
        if a["accuracy"] - b["accuracy"] > drop:
            drop, where = a["accuracy"] - b["accuracy"], f"{a['n_labels']}→{b['n_labels']}"
    return drop, where


def accuracy_at(steps, count):
    return next((s["accuracy"] for s in steps if s["n_labels"] == count), None)


def table(name, runs, checkpoints, thresholds, budget):
    head = (
        ["run", "seed"]
        + [f"acc@{c}" for c in checkpoints]
        + [f"labels to {t:.0%}" for t in thresholds]
        + ["largest drop"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    drops = []
    for seed, steps in sorted(runs.items()):
        cells = [name, str(seed)]
        for c in checkpoints:
            value = accuracy_at(steps, c)
            cells.append("–" if value is None else f"{value:.4f}")
        for t in thresholds:
            value = first_reach(steps, t)
            cells.append(f"> {budget}" if value is None else str(value))
        drop, where = largest_drop(steps)
        drops.append(drop)
        cells.append(f"{100 * drop:.2f} pt ({where})" if where else "0.00 pt")
        lines.append("| " + " | ".join(cells) + " |")
    cells = [f"**{name} mean ± sd / median**", ",".join(str(s) for s in sorted(runs))]
    for c in checkpoints:
        values = [accuracy_at(steps, c) for steps in runs.values()]
        if None in values:
            cells.append("–")
        elif len(values) > 1:
            cells.append(f"**{statistics.mean(values):.4f}** ± {statistics.stdev(values):.4f}")
        else:
            cells.append(f"**{values[0]:.4f}**")
    for t in thresholds:
        value = median([first_reach(steps, t) for steps in runs.values()])
        cells.append(f"**> {budget}**" if value is None else f"**{value:g}**")
    cells.append(f"{100 * max(drops):.2f} worst / {100 * statistics.mean(drops):.2f} mean")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(body, scratch, checkpoints):
    seeds = sorted(set(body) & set(scratch))
    lines = [
        "| checkpoint | mean | per seed (" + " / ".join(str(s) for s in seeds) + ") |",
        "|---|---|---|",
    ]
    for c in checkpoints:
        diffs = []
        for s in seeds:
            a, b = accuracy_at(body[s], c), accuracy_at(scratch[s], c)
            diffs.append(None if a is None or b is None else 100 * (a - b))
        if None in diffs:
            continue
        lines.append(
            f"| acc@{c} | **{statistics.mean(diffs):+.2f} pt** | "
            + " / ".join(f"{d:+.2f}" for d in diffs)
            + " |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--checkpoints", default="20,50,100,120,150")
    parser.add_argument("--thresholds", default="0.95,0.98")
    parser.add_argument("--no-scratch", action="store_true")
    parser.add_argument("--name", default="fine-tuned body", help="row label of --folder's runs")
    parser.add_argument("--strategy", default="bald")
    parser.add_argument("--compare", action="append", default=[], metavar="DIR=NAME[@STRATEGY]")
    args = parser.parse_args()
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    body = load(args.folder, args.budget, args.strategy)
    print(table(args.name, body, checkpoints, thresholds, args.budget))
    for spec in args.compare:
        folder, name = spec.split("=", 1)
        name, _, strategy = name.partition("@")
        other = load(Path(folder), args.budget, strategy or args.strategy)
        print()
        print(table(name, other, checkpoints, thresholds, args.budget))
        print()
        print(f"{args.name} − {name}, same seed, accuracy points:")
        print()
        print(paired(body, other, checkpoints))
    if not args.no_scratch:
        scratch = load(SCRATCH, args.budget, args.strategy)
        print()
        print(table("from scratch", scratch, checkpoints, thresholds, args.budget))
        print()
        heading = args.name[:1].upper() + args.name[1:]  # starts a sentence
        print(f"{heading} − from scratch, same seed (same 20 initial labels), accuracy points:")
        print()
        print(paired(body, scratch, checkpoints))


if __name__ == "__main__":
    main()
