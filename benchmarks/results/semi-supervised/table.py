"""The issue-14 table: each recipe's runs beside the committed recipe (a), cut to one budget.

    .venv/bin/python benchmarks/results/semi-supervised/table.py [--budget 150] [--per-seed e]

Reads ``<recipe>/runs/*.json`` under this folder and ``benchmarks/results/mnist/runs`` (recipe
a, the committed bench: same protocol, budget 250, cut here to ``--budget``). Per recipe and
strategy: seeds, median labels to 95/98/99% test accuracy (">B": not within the budget), mean
accuracy at 50/100/120/150/250 labels, the largest step-to-step accuracy drop (worst seed and
mean over seeds), pseudo-label precision against the hidden targets (the ``pseudo_labels``
counts each run recorded), mean train and score seconds per step.

``--per-seed e`` adds, for that recipe, every seed side by side (accuracy, labels to 95/98%,
largest drop, precision), each strategy minus random and minus BALD on the same seed (paired:
every strategy starts from the same 20 labels per seed), and the seconds per step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
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
CHECKPOINTS = (50, 100, 120, 150, 250)
STRATEGIES = ("bald", "batchbald", "badge", "entropy", "random")
SEED_CHECKPOINTS = (20, 50, 100, 120, 150)


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
    for key in ("train_seconds", "score_seconds"):
        seconds = [s[key] for run in runs for s in run["steps"] if key in s]
        cells.append(f"{sum(seconds) / len(seconds):.2f}" if seconds else "–")
    return "| " + " | ".join(cells) + " |"


def accuracy_at(run: dict, count: int) -> float | None:
    return next((s["accuracy"] for s in run["steps"] if s["n_labels"] == count), None)


def worst_drop(steps) -> tuple[float, str]:
    """The largest step-to-step fall and where it happened ("" if accuracy never fell)."""
    drop, where = 0.0, ""
    for before, after in zip(steps, steps[1:]):
        if before["accuracy"] - after["accuracy"] > drop:
            drop = before["accuracy"] - after["accuracy"]
            where = f" ({before['n_labels']}→{after['n_labels']})"
    return drop, where


def precision_cell(runs: list[dict]) -> str:
    pseudo = [s["pseudo_labels"] for run in runs for s in run["steps"] if "pseudo_labels" in s]
    used = sum(entry["n"] for entry in pseudo)
    if not used:
        return "–"
    return f"{sum(e['correct'] for e in pseudo) / used:.4f} ({used / len(pseudo):.0f})"


def per_seed(name: str, folder: Path, budget: int) -> None:
    runs = {strategy: load(folder, strategy, budget) for strategy in STRATEGIES}
    runs = {strategy: group for strategy, group in runs.items() if group}
    labels = lambda value: f"> {budget}" if value is None else str(value)  # noqa: E731
    print(f"\n## Recipe {name}, per seed\n")
    print("Test accuracy (10 000 test images); labels include the 20 initial ones.\n")
    head = " | ".join(f"acc@{count}" for count in SEED_CHECKPOINTS)
    print(
        f"| strategy | seed | {head} | labels to 95 % | labels to 98 % | largest drop "
        "| pseudo-label precision (per step) |"
    )
    print("|" + "---|" * (len(SEED_CHECKPOINTS) + 6))
    for strategy, group in runs.items():
        for run in group:
            drop, where = worst_drop(run["steps"])
            cells = [f"{accuracy_at(run, count):.4f}" for count in SEED_CHECKPOINTS]
            print(
                f"| {strategy} | {run['seed']} | " + " | ".join(cells)
                + f" | {labels(first_reach(run['steps'], 0.95))}"
                + f" | {labels(first_reach(run['steps'], 0.98))}"
                + f" | {100 * drop:.2f} pt{where} | {precision_cell([run])} |"
            )  # fmt: skip
        cells = []
        for count in SEED_CHECKPOINTS:
            values = [accuracy_at(run, count) for run in group]
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            cells.append(f"**{statistics.mean(values):.4f}**{spread}")
        drops = [worst_drop(run["steps"])[0] for run in group]
        print(
            f"| **{strategy} mean ± sd / median** | {','.join(str(r['seed']) for r in group)} | "
            + " | ".join(cells)
            + f" | {labels(median([first_reach(r['steps'], 0.95) for r in group]))}"
            + f" | {labels(median([first_reach(r['steps'], 0.98) for r in group]))}"
            + f" | {100 * max(drops):.2f} worst / {100 * statistics.mean(drops):.2f} mean"
            + f" | {precision_cell(group)} |"
        )  # fmt: skip
    for base in ("random", "bald"):
        if base not in runs:
            continue
        by_seed = {run["seed"]: run for run in runs[base]}
        print(f"\nStrategy − {base}, same seed, accuracy points (mean over the seeds both ran):\n")
        print("| strategy | " + " | ".join(f"@{c} per seed" for c in SEED_CHECKPOINTS[1:]) + " |")
        print("|" + "---|" * len(SEED_CHECKPOINTS))
        for strategy, group in runs.items():
            if strategy in (base, "random"):  # strategy − random is already above
                continue
            cells = []
            for count in SEED_CHECKPOINTS[1:]:
                diffs = [
                    100 * (accuracy_at(run, count) - accuracy_at(by_seed[run["seed"]], count))
                    for run in group
                    if run["seed"] in by_seed
                ]
                per = " / ".join(f"{d:+.2f}" for d in diffs)
                cells.append(f"**{statistics.mean(diffs):+.2f}** ({per})" if diffs else "–")
            print(f"| {strategy} | " + " | ".join(cells) + " |")
    print(f"\nMean seconds per step (one worker, one torch thread, niced; run to {budget} labels"
          " = whole run, per seed):\n")  # fmt: skip
    print(
        "| strategy | first training (20 labels) | later trainings | predict (MC) | score "
        "| select | evaluate | run (per seed) |"
    )
    print("|" + "---|" * 8)
    for strategy, group in runs.items():
        first = [run["steps"][0]["train_seconds"] for run in group]
        later = [s["train_seconds"] for run in group for s in run["steps"][1:]]

        def mean_of(key, group=group):
            values = [s[key] for run in group for s in run["steps"] if key in s]
            return f"{statistics.mean(values):.2f}" if values else "–"

        totals = " / ".join(f"{run['total_seconds']:.0f}" for run in group)
        print(
            f"| {strategy} | {statistics.mean(first):.1f} | {statistics.mean(later):.1f} "
            f"(median {statistics.median(later):.1f}, max {max(later):.0f}) | "
            f"{mean_of('predict_seconds')} | {mean_of('score_seconds')} | "
            f"{mean_of('select_seconds')} | {mean_of('eval_seconds')} | {totals} s |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument(
        "--per-seed", choices=[name.split(":")[0] for name in RECIPES], help="recipe letter"
    )
    args = parser.parse_args()
    print(
        f"MNIST, Gal protocol, curves cut at {args.budget} labels; medians over seeds "
        f"(load average when printed: {', '.join(f'{x:.1f}' for x in os.getloadavg())})\n"
    )
    accuracies = " | ".join(f"acc@{count}" for count in CHECKPOINTS)
    print(
        f"| recipe | strategy | seeds | 95% | 98% | 99% | {accuracies} "
        "| largest drop (worst / mean) | pseudo-label precision | train s/step | score s/step |"
    )
    print("|" + "---|" * (len(CHECKPOINTS) + 10))
    for name, folder in RECIPES.items():
        for strategy in STRATEGIES:
            runs = load(folder, strategy, args.budget)
            if runs:
                print(row(name, strategy, runs, args.budget))
    if args.per_seed:
        (name,) = [name for name in RECIPES if name.split(":")[0] == args.per_seed]
        per_seed(name, RECIPES[name], args.budget)


if __name__ == "__main__":
    main()
