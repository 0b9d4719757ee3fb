"""Random vs BALD at the same recipe (issue 14): per-seed table of this folder's random runs beside
the BALD runs of the same seeds in ../gal-body-10ep-steps1000, and BALD − random per seed.

    python3 benchmarks/results/fine-tune/gal-body-10ep-steps1000-random/table.py

Reuses the functions of ../gal-body-10ep/table.py (load, table, paired); only the seeds present in
both folders are shown, so the BALD mean/median is over the same seeds as random.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location(
    "galtable", HERE.parent / "gal-body-10ep" / "table.py"
)
galtable = importlib.util.module_from_spec(spec)
spec.loader.exec_module(galtable)

BUDGET = 150
CHECKPOINTS = [20, 50, 100, 120, 150]
THRESHOLDS = [0.95, 0.98]


def main():
    rand = galtable.load(HERE, BUDGET, "random")
    bald = galtable.load(HERE.parent / "gal-body-10ep-steps1000", BUDGET, "bald")
    seeds = sorted(set(rand) & set(bald))
    rand = {s: rand[s] for s in seeds}
    bald = {s: bald[s] for s in seeds}
    print(galtable.table("random", rand, CHECKPOINTS, THRESHOLDS, BUDGET))
    print()
    print(
        galtable.table("BALD (../gal-body-10ep-steps1000)", bald, CHECKPOINTS, THRESHOLDS, BUDGET)
    )
    print()
    print("BALD − random, same seed (same 20 initial labels), accuracy points:")
    print()
    print(galtable.paired(bald, rand, CHECKPOINTS))


if __name__ == "__main__":
    main()
