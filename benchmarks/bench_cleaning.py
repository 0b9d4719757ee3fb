"""Cleaning in the loop on MNIST: do the suspects find the flipped labels, and is relabeling
them worth more than labeling new items?

For each seed, noise rate and label count: ``n`` random pool items are labeled by a noisy
annotator (symmetric noise: a wrong answer is any other class), then

* ``session.label_issues()`` (5-fold out-of-fold predictions + confident learning) is
  scored against the true flips (precision, recall), for each pruning method;
* a budget of 10 % of ``n`` is spent either on relabeling the top suspects (the same noisy
  annotator answers again) or on labeling as many new random items; the test accuracy of a
  model retrained on each is compared with no extra labels at all.

The model is the MC-dropout head on cached features (``encoder="svd"`` by default, see the
README's "Bring your own model"), so each training costs seconds.

    nice -n 10 .venv/bin/python benchmarks/bench_cleaning.py --data-root ../shared/data \\
        --seeds 0,1,2 --out benchmarks/results/cleaning

``--variants`` only scores stricter suspect lists against the flips (no accuracy runs): the
confident-learning suspects kept when at least ``k`` of the fold models that trained on the
item still disagree with its label (``label_issues(min_in_fold_disagreeing=k)``), or when
at least ``k`` of all fold models predict the suspected class (``Suspect.folds_agreeing``).
Results go to ``variants.json`` and ``variants.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import alwidget as al
from alwidget.experiments.oracle import LabelNoise
from alwidget.strategies.label_issues import ISSUE_METHODS


def precision_recall(suspect_ids, flipped) -> dict:
    found = set(suspect_ids)
    hits = len(found & flipped)
    return {
        "n_suspects": len(found),
        "n_flipped": len(flipped),
        "precision": hits / len(found) if found else None,
        "recall": hits / len(flipped) if flipped else None,
    }


def accuracy_after(session, labels: dict, config, encoder) -> float:
    """Test accuracy of a fresh session's model trained on ``labels`` (id -> class index)."""
    ids = list(labels)
    fresh = al.Session(
        session.pool, encoder=encoder, seed=session.seed, store=False,
        cv_folds=0, track_coverage=False, train_config=config, progress=False,
    )  # fmt: skip
    fresh.label(ids, [labels[i] for i in ids])
    fresh.retrain()
    return float(fresh.evaluate()["accuracy"])


def run_one(pool, *, encoder, seed, noise, n_labels, budget_share, config, folds) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng([seed, n_labels])
    annotator = LabelNoise(noise, "symmetric", seed=seed * 1000 + n_labels)
    order = rng.permutation(len(pool))
    ids = [pool.ids[p] for p in order[:n_labels]]
    spare = [pool.ids[p] for p in order[n_labels:]]
    session = al.Session(
        pool, encoder=encoder, seed=seed, store=False, cv_folds=0, track_coverage=False,
        train_config=config, progress=False,
    )  # fmt: skip
    answers = annotator.answer(pool, ids)
    session.label(ids, answers)
    flipped = set(annotator.flipped)
    result = {
        "seed": seed, "noise": noise, "noise_kind": "symmetric", "n_labels": n_labels,
        "n_flipped": len(flipped), "folds": folds,
    }  # fmt: skip
    issue_started = time.perf_counter()
    by_method = {}
    for method in ISSUE_METHODS:
        suspects = session.label_issues(folds=folds, method=method)
        by_method[method] = precision_recall([s.id for s in suspects], flipped)
    result["label_issues_seconds"] = round(time.perf_counter() - issue_started, 1)
    result["issues"] = by_method
    suspects = session.label_issues(folds=folds)

    budget = int(round(budget_share * n_labels))
    labels = dict(zip(ids, answers))
    result["budget"] = budget
    result["accuracy_no_extra"] = accuracy_after(session, labels, config, encoder)

    relabeled = dict(labels)
    reviewed = [s.id for s in suspects[:budget]]
    for item_id, answer in zip(reviewed, annotator.answer(pool, reviewed)):
        relabeled[item_id] = answer
    result["relabel"] = {
        "reviewed": len(reviewed),
        "flips_among_reviewed": len(set(reviewed) & flipped),
        "flips_left": len(set(annotator.flipped) & set(relabeled)),
        "accuracy": accuracy_after(session, relabeled, config, encoder),
    }
    grown = dict(labels)
    fresh_ids = spare[:budget]
    grown.update(zip(fresh_ids, annotator.answer(pool, fresh_ids)))
    result["new_labels"] = {
        "added": len(fresh_ids),
        "flips_in_added": len(set(fresh_ids) & annotator.flipped),
        "accuracy": accuracy_after(session, grown, config, encoder),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def run_variants(pool, *, encoder, seed, noise, n_labels, config, folds) -> dict:
    """Precision/recall of stricter suspect lists on the labels of :func:`run_one`."""
    rng = np.random.default_rng([seed, n_labels])
    annotator = LabelNoise(noise, "symmetric", seed=seed * 1000 + n_labels)
    ids = [pool.ids[p] for p in rng.permutation(len(pool))[:n_labels]]
    session = al.Session(
        pool, encoder=encoder, seed=seed, store=False, cv_folds=0, track_coverage=False,
        train_config=config, progress=False,
    )  # fmt: skip
    session.label(ids, annotator.answer(pool, ids))
    flipped = set(annotator.flipped)
    started = time.perf_counter()
    suspects = session.label_issues(folds=folds)
    result = {
        "seed": seed, "noise": noise, "n_labels": n_labels, "n_flipped": len(flipped),
        "label_issues_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    for k in range(folds):
        strict = session.label_issues(folds=folds, min_in_fold_disagreeing=k)
        result[f"in_fold_disagreeing>={k}"] = precision_recall([s.id for s in strict], flipped)
    for k in range(1, folds + 1):
        agreeing = [s.id for s in suspects if s.folds_agreeing >= k]
        result[f"folds_agreeing>={k}"] = precision_recall(agreeing, flipped)
    return result


def variants_markdown(data: dict) -> str:
    """Mean precision / recall (and suspects) over seeds for each variant."""
    runs = data["runs"]
    names = [key for key in runs[0] if ">=" in key]
    lines = [
        "# Stricter suspect lists (benchmarks/bench_cleaning.py --variants)",
        "",
        f"settings: `{json.dumps(data['settings'])}`",
        "",
        "`in_fold_disagreeing>=k`: `label_issues(min_in_fold_disagreeing=k)` (k of the fold "
        "models that trained on the item still predict another class; 0 = the default list). "
        "`folds_agreeing>=k`: k of all fold models predict the suspected class. Mean over "
        "seeds: precision / recall (suspects).",
        "",
        "| noise | labels | seeds | flipped | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["noise"], run["n_labels"]), []).append(run)
    for (noise, n_labels), group in sorted(groups.items()):
        cells = []
        for name in names:
            p = np.mean([r[name]["precision"] or 0.0 for r in group])
            r_ = np.mean([r[name]["recall"] or 0.0 for r in group])
            n = np.mean([r[name]["n_suspects"] for r in group])
            cells.append(f"{p:.2f} / {r_:.2f} ({n:.0f})")
        flipped = np.mean([r["n_flipped"] for r in group])
        lines.append(
            f"| {noise:.0%} | {n_labels} | {len(group)} | {flipped:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    loads = [run["load_average"][0] for run in runs]
    lines += ["", f"1-minute load average during the runs: {min(loads)}–{max(loads)} on 2 cores."]
    return "\n".join(lines) + "\n"


def summary_markdown(data: dict) -> str:
    """Mean over seeds per (noise, labels): suspects' precision/recall, accuracy by budget use."""
    runs = data["runs"]
    lines = [
        "# Cleaning in the loop on MNIST (benchmarks/bench_cleaning.py)",
        "",
        f"settings: `{json.dumps(data['settings'])}`",
        "",
        "Suspects: `session.label_issues()` (5-fold out-of-fold predictions, confident "
        "learning, prune by noise rate) against the labels the noisy annotator got wrong. "
        "Accuracy on the 10 000 test images after retraining with the labels as given "
        "(none), after spending 10 % of the labels on reviewing the top suspects (relabel), "
        "or on as many new random items (new).",
        "",
        "| noise | labels | seeds | flipped | suspects | precision | recall | "
        "acc none | acc relabel | acc new | relabel − new |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for run in runs:
        groups.setdefault((run["noise"], run["n_labels"]), []).append(run)
    for (noise, n_labels), group in sorted(groups.items()):
        issues = [run["issues"]["prune_by_noise_rate"] for run in group]

        def mean(values):
            values = [v for v in values if v is not None]
            return sum(values) / len(values) if values else float("nan")

        relabel = mean([run["relabel"]["accuracy"] for run in group])
        new = mean([run["new_labels"]["accuracy"] for run in group])
        lines.append(
            f"| {noise:.0%} | {n_labels} | {len(group)} | {mean([r['n_flipped'] for r in group]):.0f} "
            f"| {mean([i['n_suspects'] for i in issues]):.0f} | {mean([i['precision'] for i in issues]):.3f} "
            f"| {mean([i['recall'] for i in issues]):.3f} | "
            f"{mean([r['accuracy_no_extra'] for r in group]):.4f} | {relabel:.4f} | {new:.4f} "
            f"| {relabel - new:+.4f} |"
        )
    lines += ["", "Other pruning methods (precision / recall, mean over seeds):", ""]
    lines.append("| noise | labels | " + " | ".join(ISSUE_METHODS) + " |")
    lines.append("|---|---|" + "---|" * len(ISSUE_METHODS))
    for (noise, n_labels), group in sorted(groups.items()):
        cells = []
        for method in ISSUE_METHODS:
            p = [r["issues"][method]["precision"] or 0.0 for r in group]
            r_ = [r["issues"][method]["recall"] or 0.0 for r in group]
            cells.append(f"{sum(p) / len(p):.2f} / {sum(r_) / len(r_):.2f}")
        lines.append(f"| {noise:.0%} | {n_labels} | " + " | ".join(cells) + " |")
    loads = [run["load_average"][0] for run in runs]
    lines += ["", f"1-minute load average during the runs: {min(loads)}–{max(loads)} on 2 cores."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--noise", default="0.1,0.2,0.4")
    parser.add_argument("--labels", default="250,1000")
    parser.add_argument("--budget-share", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--encoder", default="svd", help="svd, or self-supervised (loaded from the cache)"
    )
    parser.add_argument(
        "--self-supervised-budget", type=float, default=1200.0,
        help="time_budget of the cached self-supervised encoder to load (or train)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/cleaning")
    parser.add_argument(
        "--summarize", action="store_true", help="only rewrite summary.md from results.json"
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="only score stricter suspect lists (variants.json / variants.md), no accuracy runs",
    )
    args = parser.parse_args()
    if args.summarize:
        data = json.loads((Path(args.out) / "results.json").read_text())
        (Path(args.out) / "summary.md").write_text(summary_markdown(data))
        print(summary_markdown(data))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pool = al.datasets.load_mnist(args.data_root)
    config = al.TrainConfig(max_steps=args.max_steps)
    encoder = args.encoder
    if encoder == "self-supervised":
        encoder = al.encoders.self_supervised(
            pool, time_budget=args.self_supervised_budget, progress=False
        )
        print("self-supervised encoder:", encoder.report, flush=True)
    settings = {
        "dataset": "mnist (60k pool, 10k test)", "encoder": args.encoder,
        "encoder_report": str(getattr(encoder, "report", "")),
        "model": "head (one hidden layer, MC dropout)", "acquisition": "random",
        "train_config": {"max_steps": config.max_steps, "min_steps": config.min_steps},
        "budget_share": args.budget_share, "folds": args.folds, "threads": args.threads,
        "relabel_oracle": "the same noisy annotator answers again",
    }  # fmt: skip
    print("settings:", json.dumps(settings), "load:", os.getloadavg(), flush=True)
    runs = []
    if args.variants:
        settings.pop("budget_share")
        settings.pop("relabel_oracle")
        for seed in [int(s) for s in args.seeds.split(",")]:
            for noise in [float(x) for x in args.noise.split(",")]:
                for n_labels in [int(x) for x in args.labels.split(",")]:
                    run = run_variants(
                        pool, encoder=encoder, seed=seed, noise=noise, n_labels=n_labels,
                        config=config, folds=args.folds,
                    )  # fmt: skip
                    run["load_average"] = [round(x, 1) for x in os.getloadavg()]
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    data = {"settings": settings, "runs": runs}
                    (out / "variants.json").write_text(json.dumps(data, indent=1))
        (out / "variants.md").write_text(variants_markdown(data))
        print(variants_markdown(data))
        return
    results_path = out / "results.json"
    for seed in [int(s) for s in args.seeds.split(",")]:
        for noise in [float(x) for x in args.noise.split(",")]:
            for n_labels in [int(x) for x in args.labels.split(",")]:
                run = run_one(
                    pool, encoder=encoder, seed=seed, noise=noise, n_labels=n_labels,
                    budget_share=args.budget_share, config=config, folds=args.folds,
                )  # fmt: skip
                run["load_average"] = [round(x, 1) for x in os.getloadavg()]
                runs.append(run)
                pr = run["issues"]["prune_by_noise_rate"]
                print(
                    f"seed {seed} noise {noise:.0%} n {n_labels}: flipped {run['n_flipped']}, "
                    f"suspects {pr['n_suspects']} precision {pr['precision']:.3f} recall "
                    f"{pr['recall']:.3f} | acc none {run['accuracy_no_extra']:.4f} relabel "
                    f"{run['relabel']['accuracy']:.4f} new {run['new_labels']['accuracy']:.4f} "
                    f"({run['seconds']} s, load {run['load_average']})",
                    flush=True,
                )
                results_path.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
