"""The issue-14 table: each recipe's runs beside the committed recipe (a), cut to one budget.

    .venv/bin/python benchmarks/results/semi-supervised/table.py [--budget 150] > summary.md

Reads ``<recipe>/runs/*.json`` under this folder and ``benchmarks/results/mnist/runs`` (recipe
a, the committed bench: same protocol, budget 250, cut here to ``--budget``). Per recipe and
strategy: seeds, median labels to 95/98/99% test accuracy (">B": not within the budget), mean
accuracy at 50/100/150/250 labels, the largest step-to-step accuracy drop (worst seed and
mean over seeds), pseudo-label precision against the hidden targets, mean train seconds per
step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = {
    "a: committed recipe": HERE.parents[0] / "mnist",
    "b: + pseudo-labels": HERE / "pseudo-labels",
    "c: + pseudo-labels + FixMatch": HERE / "pseudo-labels-fixmatch",
    "s: + weight averaging 0.98": HERE / "weight-averaging",
    "d: + pseudo-labels + weight averaging 0.98": HERE / "pseudo-labels-averaged",
    "e: + pseudo-labels + FixMatch + weight averaging 0.98": HERE / "pseudo-fixmatch-averaged",
}
THRESHOLDS = (0.95, 0.98, 0.99)
CHECKPOINTS = (50, 100, 150, 250)


def load(folder: Path, strategy: str, budget: int) -> list[dict]:
    runs = []
    for path in sorted((folder / "runs").glob(f"mnist-{strategy}-seed*.json")):
        run = json.loads(path.read_text())
        run["steps"] = [step for step in run["steps"] if step["n_labels"] <= budget]
        runs.append(run)
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


def largest_drop(steps) -> float:
    accuracies = [s["accuracy"] for s in steps]
    return max([0.0] + [a - b for a, b in zip(accuracies, accuracies[1:])])


def row(name: str, strategy: str, runs: list[dict], budget: int) -> str:
    cells = [name, strategy, str(len(runs))]
    for threshold in THRESHOLDS:
        value = median([first_reach(run["steps"], threshold) for run in runs])
        cells.append(f">{budget}" if value is None else f"{value:g}")
    for count in CHECKPOINTS:
        values = [s["accuracy"] for run in runs for s in run["steps"] if s["n_labels"] == count]
        cells.append(f"{sum(values) / len(values):.4f}" if len(values) == len(runs) else "–")
    drops = [largest_drop(run["steps"]) for run in runs]
    cells.append(f"{max(drops):.3f} / {sum(drops) / len(drops):.3f}")
    pseudo = [s["pseudo_labels"] for run in runs for s in run["steps"] if "pseudo_labels" in s]
    used = sum(entry["n"] for entry in pseudo)
    cells.append(
        f"{sum(e['correct'] for e in pseudo) / used:.4f} ({used / len(pseudo):.0f}/step)"
        if used
        else "–"
    )
    seconds = [s["train_seconds"] for run in runs for s in run["steps"]]
    cells.append(f"{sum(seconds) / len(seconds):.1f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150)
    args = parser.parse_args()
    print(
        f"MNIST, Gal protocol, curves cut at {args.budget} labels; medians over seeds "
        f"(load average when printed: {', '.join(f'{x:.1f}' for x in os.getloadavg())})\n"
    )
    print(
        "| recipe | strategy | seeds | 95% | 98% | 99% | acc@50 | acc@100 | acc@150 | acc@250 "
        "| largest drop (worst / mean) | pseudo-label precision | train s/step |"
    )
    print("|" + "---|" * 13)
    for name, folder in RECIPES.items():
        for strategy in ("bald", "entropy", "random"):
            runs = load(folder, strategy, args.budget)
            if runs:
                print(row(name, strategy, runs, args.budget))


if __name__ == "__main__":
    main()
