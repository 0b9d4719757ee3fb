"""Tables of issue 14's ablation matrix (``benchmarks/run_bench_semi_supervised.sh``).

    .venv/bin/python benchmarks/results/semi-supervised-matrix/table.py [--folder DIR] [--budget 250]

Reads ``DIR/<recipe>/runs/mnist-<strategy>-seed<k>.json`` for the recipes of the script and
prints Markdown:

1. one row per recipe and strategy: mean test accuracy over seeds at the checkpoints, the
   labels (initial 20 included) at which each seed first reaches 95 / 98 / 99 % (median, then
   per seed; "-" = not within the budget), the largest step-to-step fall of any seed, the
   pseudo-label precision against the hidden targets pooled over all steps and seeds (with
   the mean number per step), and the median seconds of a run;
2. each AL strategy minus random, paired by seed (same 20 initial labels), per recipe;
3. what each part bought: recipe minus the recipe before it, paired by strategy and seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from alwidget.experiments.bench import labels_to_threshold, median_labels

HERE = Path(__file__).resolve().parent
RECIPES = ["a-plain", "a-averaged", "b-pseudo", "c-fixmatch"]
STRATEGIES = ["random", "entropy", "bald", "batchbald", "badge"]
CHECKPOINTS = [20, 50, 100, 120, 150, 250]
THRESHOLDS = [0.95, 0.98, 0.99]


def load(folder: Path, recipe: str, strategy: str, budget: int) -> dict[int, dict]:
    runs = {}
    for path in sorted((folder / recipe / "runs").glob(f"mnist-{strategy}-seed*.json")):
        run = json.loads(path.read_text())
        run["steps"] = [s for s in run["steps"] if s["n_labels"] <= budget]
        runs[run["seed"]] = run
    return runs


def accuracy_at(steps: list[dict], n_labels: int) -> float | None:
    return next((s["accuracy"] for s in steps if s["n_labels"] == n_labels), None)


def first_reach(steps: list[dict], threshold: float) -> int | None:
    return labels_to_threshold(
        [s["n_labels"] for s in steps], [s["accuracy"] for s in steps], threshold
    )


def median_count(counts: list[int | None]) -> str:
    """Median label count; a run that never reached the mark counts as the most ("-")."""
    median = median_labels(counts)
    return "-" if median is None else f"{median:g}"


def largest_drop(steps: list[dict]) -> float:
    return max((a["accuracy"] - b["accuracy"] for a, b in zip(steps, steps[1:])), default=0.0)


def main_table(folder: Path, budget: int) -> list[str]:
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    lines = [
        "| recipe | strategy | seeds | "
        + " | ".join(f"acc@{c}" for c in checkpoints)
        + " | "
        + " | ".join(f"to {t:.0%}" for t in THRESHOLDS)
        + " | largest drop | pseudo-label precision (per step) | run s |",
        "|" + "---|" * (6 + len(checkpoints) + len(THRESHOLDS)),
    ]
    for recipe in RECIPES:
        for strategy in STRATEGIES:
            runs = load(folder, recipe, strategy, budget)
            if not runs:
                continue
            cells = [recipe, strategy, str(len(runs))]
            for c in checkpoints:
                values = [v for r in runs.values() if (v := accuracy_at(r["steps"], c)) is not None]
                cells.append(f"{statistics.fmean(values):.4f}" if values else "")
            for t in THRESHOLDS:
                counts = [first_reach(r["steps"], t) for r in runs.values()]
                per_seed = " / ".join("-" if c is None else str(c) for c in counts)
                cells.append(f"{median_count(counts)} ({per_seed})")
            cells.append(f"{100 * max(largest_drop(r['steps']) for r in runs.values()):.2f} pt")
            pseudo = [s["pseudo_labels"] for r in runs.values() for s in r["steps"]
                      if s.get("pseudo_labels") and s["pseudo_labels"]["n"]]  # fmt: skip
            if pseudo:
                n = sum(p["n"] for p in pseudo)
                correct = sum(p["correct"] for p in pseudo)
                cells.append(f"{correct / n:.4f} ({n / len(pseudo):.0f})")
            else:
                cells.append("-")
            cells.append(f"{statistics.median(r['total_seconds'] for r in runs.values()):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def paired(a: dict, b: dict, n_labels: int) -> list[float]:
    """Accuracy points of run a minus run b at n_labels, seed by seed (seeds in both)."""
    out = []
    for seed in sorted(set(a) & set(b)):
        x, y = accuracy_at(a[seed]["steps"], n_labels), accuracy_at(b[seed]["steps"], n_labels)
        if x is not None and y is not None:
            out.append(100 * (x - y))
    return out


def format_paired(values: list[float]) -> str:
    if not values:
        return ""
    per_seed = " / ".join(f"{v:+.2f}" for v in values)
    return f"{statistics.fmean(values):+.2f} ({per_seed})"


def versus_random(folder: Path, budget: int, at: list[int]) -> list[str]:
    lines = [
        "| recipe | strategy − random | " + " | ".join(f"@{c}" for c in at) + " |",
        "|" + "---|" * (2 + len(at)),
    ]
    for recipe in RECIPES:
        random_runs = load(folder, recipe, "random", budget)
        for strategy in STRATEGIES[1:]:
            runs = load(folder, recipe, strategy, budget)
            if runs and random_runs:
                cells = [format_paired(paired(runs, random_runs, c)) for c in at]
                lines.append(f"| {recipe} | {strategy} | " + " | ".join(cells) + " |")
    return lines


def recipe_gains(folder: Path, budget: int, at: list[int]) -> list[str]:
    lines = [
        "| part (recipe − the one before) | strategy | " + " | ".join(f"@{c}" for c in at) + " |",
        "|" + "---|" * (2 + len(at)),
    ]
    for before, after in zip(RECIPES, RECIPES[1:]):
        for strategy in STRATEGIES:
            a = load(folder, after, strategy, budget)
            b = load(folder, before, strategy, budget)
            if a and b:
                cells = [format_paired(paired(a, b, c)) for c in at]
                lines.append(f"| {after} − {before} | {strategy} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE)
    parser.add_argument("--budget", type=int, default=250)
    args = parser.parse_args()
    at = [c for c in (50, 100, 120, 250) if c <= args.budget]
    print("\n".join(main_table(args.folder, args.budget)))
    print()
    print("Accuracy points, mean over seeds (per seed), paired by seed:\n")
    print("\n".join(versus_random(args.folder, args.budget, at)))
    print()
    print("\n".join(recipe_gains(args.folder, args.budget, at)))


if __name__ == "__main__":
    main()
