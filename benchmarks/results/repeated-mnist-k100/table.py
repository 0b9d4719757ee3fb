"""table-session12.md: labels to 90/95/98 % per seed at K=100 MC samples (this folder)
beside K=20 (../repeated-mnist), for bald, batchbald, hybrid. Run: python table.py"""

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOLDERS = {"K=100": HERE, "K=20": HERE.parent / "repeated-mnist"}
STRATEGIES = ["bald", "batchbald", "hybrid"]
LEVELS = ["0.9", "0.95", "0.98"]
INF = float("inf")


def show(value):
    return ">300" if value in (None, INF) else f"{value:g}"


def median(values):
    return statistics.median([INF if v is None else v for v in values])


def ratio(a, b):
    return "n/a" if INF in (a, b) else f"{a / b:.2f}x"


lines = [
    "# Repeated MNIST, K=100 vs K=20 MC-dropout samples (issue 14)",
    "",
    "Labels (incl. 20 initial) to first reach 90/95/98 % test accuracy, per seed 0-4, then the median "
    "(>300: not within the budget, counted as infinite for the median). Settings otherwise identical "
    "(limit 1000 x 3 copies, initial 20, batch 10, budget 300, 500 warm-started/100 steps, batch 32, "
    "affine augmentation, lr 1e-3, wd 1e-4, every unlabeled item scored, full test set).",
    "",
]
medians = {}
for name, folder in FOLDERS.items():
    summary = json.loads((folder / "results.json").read_text())["summary"]["repeated-mnist"]
    lines += [
        f"## {name} ({folder.name})",
        "",
        "| strategy | 90 % per seed | 95 % per seed | 98 % per seed | median 90/95/98 | "
        "final acc (mean) | copies per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy in STRATEGIES:
        s = summary[strategy]
        per = s["labels_to_per_seed"]
        assert s["seeds"] == [0, 1, 2, 3, 4], s["seeds"]
        med = {level: median(per[level]) for level in LEVELS}
        medians[name, strategy] = med
        runs = [
            json.loads((folder / "runs" / f"repeated-mnist-{strategy}-seed{seed}.json").read_text())
            for seed in s["seeds"]
        ]
        final = statistics.mean(r["final_accuracy"] for r in runs)
        cells = [" ".join(show(v) for v in per[level]) for level in LEVELS]
        lines.append(
            f"| {strategy} | {cells[0]} | {cells[1]} | {cells[2]} | "
            f"{'/'.join(show(med[level]) for level in LEVELS)} | {final:.4f} | "
            f"{'/'.join(str(c) for c in s.get('repeated_picks', []))} |"
        )
    lines.append("")
lines += [
    "## Ratios of medians at 95 %",
    "",
    "| K | BALD | BatchBALD | hybrid | BALD/BatchBALD | BALD/hybrid |",
    "|---|---|---|---|---|---|",
]
for name in FOLDERS:
    b, bb, h = (medians[name, s]["0.95"] for s in STRATEGIES)
    lines.append(
        f"| {name} | {show(b)} | {show(bb)} | {show(h)} | {ratio(b, bb)} | {ratio(b, h)} |"
    )
lines.append("")
READING = [
    "## Reading",
    "",
    "- K=100 does not bring the goal closer: the BALD/BatchBALD and BALD/hybrid ratios at 95 % fall from 1.89x (170/90) to 1.50x (150/100); the 2x target is not met.",
    "- The change comes mostly from BALD, which got better (150 vs 170 median; lower or equal on every seed, mean 150 vs 170), while BatchBALD (mean 98 vs 90) and hybrid (92 vs 86) got slightly worse at 95 %, within the seed spread and the 10-label step.",
    "- BatchBALD's repeated-copy picks are unchanged (48/51/49/49/42 vs 47/46/52/46/43), so the coarse 20-sample joint entropy was not what let copies through; at 98 % K=100 helps both batch-aware strategies (BatchBALD 240 vs 270, hybrid 210 vs 240).",
    "- Our BALD (150-170 to 95 %) is far stronger than Kirsch et al.'s (never within 300), presumably from augmentation and warm starts, which caps the ratio more than the MC-sample count does.",
    "- Cost: MC prediction per step about 3.2 s (bald/hybrid) to 4.3 s (batchbald) at K=100 vs about 1.5 s at K=20 (different load, so only roughly comparable).",
    "",
]
lines += READING
(HERE / "table-session12.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
