"""Learning curves of the issue-14 runs from the workers' log lines, finished or not.

    .venv/bin/python benchmarks/results/semi-supervised/partial.py LOG [LOG ...]

A bench run writes its JSON only when it ends; on the shared machine the runs did not end
in the session, so the per-step lines the workers print (``mnist bald seed 0: 40 labels,
accuracy 0.9097, train 401.2 s``) are the record. Two recipes wrote into one log, one line
per step each: a line continues the run whose last step had 10 fewer labels, and a
``20 labels`` line starts the next run named in ``--order``. Prints each run's curve beside
the committed recipe (a) (``benchmarks/results/mnist/runs``, same strategy and seed).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

LINE = re.compile(
    r"mnist (?P<strategy>\w+) seed (?P<seed>\d+): (?P<n>\d+) labels, accuracy "
    r"(?P<accuracy>[\d.]+), train (?P<train>[\d.]+) s"
)
COMMITTED = Path(__file__).resolve().parents[1] / "mnist" / "runs"


def curves(path: Path, order: list[str]) -> dict:
    runs: dict[str, list] = {}
    pending = list(order)
    for line in path.read_text(errors="replace").replace("\0", "").splitlines():
        match = LINE.search(line)
        if not match:
            continue
        n = int(match["n"])
        step = (n, float(match["accuracy"]), float(match["train"]))
        owner = next(
            (name for name, steps in runs.items()
             if steps[-1][0] + 10 == n and name.endswith(f"{match['strategy']} seed {match['seed']}")),
            None,
        )  # fmt: skip
        if owner is None:
            owner = f"{pending.pop(0)} {match['strategy']} seed {match['seed']}"
            runs[owner] = []
        runs[owner].append(step)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="+", type=Path)
    parser.add_argument(
        "--order", nargs="+", required=True, help="recipe of each run, in the order they start"
    )
    args = parser.parse_args()
    order = list(args.order)
    for log in args.log:
        found = curves(log, order)
        order = order[len(found) :]
        for name, steps in found.items():
            strategy, seed = name.split()[-3], name.split()[-1]
            committed = json.loads((COMMITTED / f"mnist-{strategy}-seed{seed}.json").read_text())
            reference = {s["n_labels"]: s["accuracy"] for s in committed["steps"]}
            accuracies = [a for _, a, _ in steps]
            drop = max([0.0] + [a - b for a, b in zip(accuracies, accuracies[1:])])
            print(f"{name}: {len(steps)} steps, largest step-to-step drop {drop:.4f}")
            print("| labels | accuracy | recipe (a) | train s (wall, shared machine) |")
            print("|---|---|---|---|")
            for n, accuracy, train in steps:
                print(
                    f"| {n} | {accuracy:.4f} | {reference.get(n, float('nan')):.4f} | {train:.0f} |"
                )
            print()


if __name__ == "__main__":
    main()
