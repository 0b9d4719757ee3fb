"""Flags and entry point of ``python -m alwidget bench``.

The runner is :mod:`alwidget.experiments.bench`, the tables and figure
:mod:`alwidget.experiments.report`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import AlwidgetError
from .bench import DEFAULT_STRATEGIES, BenchSettings, run_bench

__all__ = ["SMOKE", "add_bench_arguments", "main_bench", "settings_from_args"]

_MNIST_TRAIN = 60_000  # training images in MNIST: the largest pool a benchmark can have

SMOKE = {
    "limit": 600,
    "test_limit": 300,
    "budget": 40,
    "train_steps": 20,
    "warm_steps": 10,
    "train_batch": 16,
    "mc_samples": 5,
    "score_subset": 200,
}


def encoder_training(settings) -> str:
    """How long the bench's self-supervised encoder trains, in words."""
    network = (
        "" if settings.encoder_architecture is None else f"{settings.encoder_architecture} body, "
    )
    if settings.encoder_epochs is not None:
        return f"{network}{settings.encoder_epochs:g} epochs"
    return f"{network}{settings.encoder_budget:g} s"


def add_bench_arguments(parser) -> None:
    """Flags of ``python -m alwidget bench``."""
    parser.add_argument("--dataset", choices=["mnist", "repeated-mnist"], default="mnist")
    parser.add_argument(
        "--data-root", required=True, help="folder with the MNIST idx files (e.g. ../shared/data)"
    )
    parser.add_argument(
        "--strategies", default=",".join(DEFAULT_STRATEGIES), help="comma-separated strategy names"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated integer seeds")
    parser.add_argument(
        "--budget", type=int, default=300, help="stop at this many labels (initial included)"
    )
    parser.add_argument("--initial", type=int, default=20, help="class-balanced initial labels")
    parser.add_argument("--batch", type=int, default=10, help="labels acquired per step")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout samples T")
    parser.add_argument(
        "--score-subset",
        type=int,
        default=2000,
        help="score a random subset of this many unlabeled items per step "
        "(Gal et al.: 2000; 0 = all)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="random subset of the training images as the pool "
        "(for repeated-mnist: before the 3 copies)",
    )
    parser.add_argument(
        "--test-limit", type=int, help="evaluate on a random subset of the 10 000 test images"
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=BenchSettings.train_steps,
        help="Adam steps per training run",
    )
    parser.add_argument(
        "--warm-steps",
        type=int,
        default=BenchSettings.warm_steps,
        help="continue from the previous model for this many steps after the first training "
        "(0: fresh weights and --train-steps every time, as in the papers)",
    )
    parser.add_argument(
        "--train-batch", type=int, default=BenchSettings.train_batch, help="items per training step"
    )
    parser.add_argument(
        "--augment",
        choices=["affine", "none"],
        default=BenchSettings.augment,
        help="mini-batch augmentation while training (the papers used none)",
    )
    parser.add_argument("--lr", type=float, default=BenchSettings.lr)
    parser.add_argument("--weight-decay", type=float, default=BenchSettings.weight_decay)
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="runs in parallel (worker processes, 1 torch thread each)",
    )
    parser.add_argument(
        "--out",
        help="results folder (default benchmarks/results/<dataset>, "
        "or benchmarks/results/smoke with --smoke)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep finished runs with identical settings"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: summarize the finished runs in --out that have these settings",
    )
    parser.add_argument(
        "--encoder",
        choices=["self-supervised", "svd"],
        default=None,
        help="a frozen encoder made from the unlabeled pool, with an MC-dropout head on its "
        "features (default: the Gal CNN trained on the images)",
    )
    parser.add_argument(
        "--encoder-budget",
        type=float,
        default=BenchSettings.encoder_budget,
        help="seconds of self-supervised encoder training (once, cached)",
    )
    parser.add_argument(
        "--encoder-epochs",
        type=float,
        default=None,
        help="passes over the pool for the self-supervised encoder instead of "
        "--encoder-budget (its quality then does not depend on the machine's load)",
    )
    parser.add_argument(
        "--encoder-architecture",
        choices=["gal_cnn"],
        default=None,
        help="with --encoder self-supervised: pretrain the Gal CNN's body (every layer before "
        "its output layer) instead of the small strided CNN; with --fine-tune the whole Gal "
        "CNN then trains from those weights",
    )
    parser.add_argument(
        "--fine-tune",
        action="store_true",
        help="with --encoder: train the encoder's weights too, from its pretrained ones, with the "
        "head on the images (with --augment); every step scores through the whole network",
    )
    parser.add_argument(
        "--pseudo-labels",
        action="store_true",
        help="train with pseudo-labels: confident unlabeled items with their predicted class",
    )
    parser.add_argument(
        "--pseudo-label-per-class",
        type=int,
        default=BenchSettings.pseudo_label_per_class,
        help="with --pseudo-labels: at most this many pseudo-labels per class and run",
    )
    parser.add_argument(
        "--pseudo-label-candidates",
        type=int,
        default=BenchSettings.pseudo_label_candidates,
        help="with --pseudo-labels: unlabeled items considered per run (a seeded sample)",
    )
    parser.add_argument(
        "--semi-supervised",
        choices=["fixmatch"],
        default=None,
        help="consistency training on unlabeled items (weak/strong views, no time budget)",
    )
    parser.add_argument(
        "--weight-averaging",
        type=float,
        default=None,
        help="keep a moving average of the weights with this decay per step (e.g. 0.98)",
    )
    parser.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        help="the simulated annotator answers wrongly at this rate (seeded), e.g. 0.2",
    )
    parser.add_argument(
        "--noise-kind",
        choices=["symmetric", "class-dependent"],
        default="symmetric",
        help="symmetric: any other class; class-dependent: always the next class",
    )
    parser.add_argument(
        "--relabel-fraction",
        type=float,
        default=0.0,
        help="share of each batch spent on label suspects (session.label_issues), answered "
        "again by the annotator; each run's JSON scores the final suspects against the wrong "
        "labels",
    )
    parser.add_argument("--no-png", action="store_true", help="skip the PNG export of the figure")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny CI version: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + ", seed 0",
    )


def _parse_list(text: str, convert, flag: str, parser) -> list:
    try:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"{flag} must be a comma-separated list, got {text!r}")
    if not values:
        parser.error(f"{flag} is empty")
    return values


def _check_out_folder(out: Path, parser) -> None:
    """``--out`` must be a folder, or a path where one can be made, that can be written."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder; give a folder for the results")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        parser.error(f"--out {out}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        parser.error(f"--out {out}: {existing} is not writable; give a folder you can write")


def settings_from_args(args, parser) -> tuple[BenchSettings, list, list, Path]:
    """Checked settings, strategies, seeds and output folder from parsed flags."""
    from ..strategies import available

    strategies = _parse_list(args.strategies, str, "--strategies", parser)
    unknown = [name for name in strategies if name not in available()]
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(available())}")
    seeds = _parse_list(
        "0" if args.smoke and args.seeds == "0,1,2" else args.seeds, int, "--seeds", parser
    )
    from ..session.checks import MAX_SEED

    if any(not 0 <= seed <= MAX_SEED for seed in seeds):
        parser.error(f"--seeds must be integers from 0 to {MAX_SEED} (2**32 - 1), got {seeds}")
    values = {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "limit": args.limit,
        "test_limit": args.test_limit,
        "initial": args.initial,
        "batch_size": args.batch,
        "budget": args.budget,
        "mc_samples": args.mc_samples,
        "score_subset": args.score_subset or None,
        "train_steps": args.train_steps,
        "warm_steps": args.warm_steps or None,
        "train_batch": args.train_batch,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "augment": args.augment,
        "encoder": args.encoder,
        "encoder_budget": args.encoder_budget,
        "encoder_epochs": args.encoder_epochs,
        "encoder_architecture": args.encoder_architecture,
        "fine_tune": args.fine_tune,
        "pseudo_labels": args.pseudo_labels,
        "pseudo_label_per_class": args.pseudo_label_per_class,
        "pseudo_label_candidates": args.pseudo_label_candidates,
        "semi_supervised": args.semi_supervised,
        "weight_averaging": args.weight_averaging,
        "label_noise": args.label_noise,
        "noise_kind": args.noise_kind,
        "relabel_fraction": args.relabel_fraction,
    }
    if args.smoke:
        values.update(SMOKE)
    at_least_one = ("initial", "batch_size", "budget", "mc_samples", "train_steps", "train_batch",
                    "pseudo_label_per_class", "pseudo_label_candidates")  # fmt: skip
    for name in at_least_one:
        if values[name] < 1:
            flag = "batch" if name == "batch_size" else name.replace("_", "-")
            parser.error(f"--{flag} must be ≥ 1, got {values[name]}")
    for name in ("limit", "test_limit"):
        if values[name] is not None and values[name] < 1:
            parser.error(f"--{name.replace('_', '-')} must be ≥ 1, got {values[name]}")
    if args.score_subset < 0:
        parser.error(f"--score-subset must be ≥ 0 (0 scores every item), got {args.score_subset}")
    if values["initial"] < 2:
        parser.error(
            f"--initial must be ≥ 2 (one label of each of two classes), got {values['initial']}"
        )
    if args.warm_steps < 0:
        parser.error(f"--warm-steps must be ≥ 0, got {args.warm_steps}")
    if not (0 < values["lr"] < float("inf")):
        parser.error(f"--lr must be a finite number > 0 (e.g. 1e-3), got {values['lr']}")
    if not (0 <= values["weight_decay"] < float("inf")):
        parser.error(
            f"--weight-decay must be a finite number ≥ 0 (e.g. 1e-4), got {values['weight_decay']}"
        )
    if values["budget"] < values["initial"]:
        parser.error(f"--budget {values['budget']} is below --initial {values['initial']}")
    if values["mc_samples"] < 2:
        parser.error("--mc-samples must be ≥ 2: BALD and BatchBALD need several MC samples")
    try:  # the settings' own checks of flags that only make sense together (--fine-tune)
        settings = BenchSettings(**values)
    except AlwidgetError as error:
        parser.error(str(error))
    if values["encoder_epochs"] is not None and not 0 < values["encoder_epochs"] < float("inf"):
        parser.error(f"--encoder-epochs must be a number > 0, got {args.encoder_epochs}")
    if not (0 < values["encoder_budget"] < float("inf")):
        parser.error(f"--encoder-budget must be a number of seconds > 0, got {args.encoder_budget}")
    if not 0 <= values["label_noise"] < 1:
        parser.error(f"--label-noise must be a rate in [0, 1), e.g. 0.2; got {args.label_noise}")
    if not 0 <= values["relabel_fraction"] <= 1:
        parser.error(
            f"--relabel-fraction must be a share of the batch in [0, 1], e.g. 0.1; got "
            f"{args.relabel_fraction}"
        )
    if values["relabel_fraction"] and values["relabel_fraction"] * values["batch_size"] < 0.5:
        parser.error(
            f"--relabel-fraction {args.relabel_fraction} of a batch of {values['batch_size']} "
            "rounds to no suspect per batch; raise it or --batch"
        )
    if not values["pseudo_labels"] and (
        values["pseudo_label_per_class"] != BenchSettings.pseudo_label_per_class
        or values["pseudo_label_candidates"] != BenchSettings.pseudo_label_candidates
    ):
        parser.error(
            "--pseudo-label-per-class and --pseudo-label-candidates tune pseudo-labels, which "
            "are off; add --pseudo-labels"
        )
    if args.jobs < 1:
        parser.error(f"--jobs must be ≥ 1, got {args.jobs}")
    pool_size = min(values["limit"] or _MNIST_TRAIN, _MNIST_TRAIN)
    pool_size *= 3 if values["dataset"] == "repeated-mnist" else 1
    if values["budget"] > pool_size:
        parser.error(
            f"--budget {values['budget']} exceeds the {pool_size} items of the pool "
            "(--limit, times 3 for repeated-mnist); lower --budget or raise --limit"
        )
    if not Path(args.data_root).is_dir():
        parser.error(f"--data-root {args.data_root} is not a folder")
    out = (
        Path(args.out)
        if args.out
        else Path("benchmarks/results") / ("smoke" if args.smoke else args.dataset)
    )
    _check_out_folder(out, parser)
    try:  # --lr, --weight-decay, ... as the training will see them
        settings.train_config(first=True)
        settings.train_config(first=False)
    except AlwidgetError as error:
        parser.error(str(error))
    return settings, strategies, seeds, out


def main_bench(args, parser) -> int:
    """Run the benchmark the flags describe, write JSON/figure, print the tables."""
    from .report import (
        format_accuracy_at,
        format_paired_ratios,
        format_table,
        format_timings,
        summarize,
        write_figure,
    )

    settings, strategies, seeds, out = settings_from_args(args, parser)
    test_note = (
        "the full 10 000-image test set"
        if settings.test_limit is None
        else f"a random {settings.test_limit}-image subset of the test set (not the full 10 000)"
    )
    pool_note = (
        "every unlabeled item"
        if settings.score_subset is None
        else f"a random {settings.score_subset} unlabeled items per step "
        "(as Gal et al. scored 2000)"
    )
    training_note = (
        f"{settings.train_steps} Adam steps of {settings.train_batch} per training run"
        + (
            ""
            if settings.warm_steps is None
            else f", later runs warm-started for {settings.warm_steps} steps"
        )
        + (
            ", no augmentation (the head sees features)"
            if settings.features_only
            else f", augmentation {settings.augment}"
        )
        + ", no validation split"
        + (
            f", pseudo-labels (≤ {settings.pseudo_label_per_class} per class of "
            f"{settings.pseudo_label_candidates} candidates)"
            if settings.pseudo_labels
            else ""
        )
        + (f", {settings.semi_supervised} consistency" if settings.semi_supervised else "")
        + (
            f", weights averaged (decay {settings.weight_averaging:g})"
            if settings.weight_averaging is not None
            else ""
        )
        + (
            f", {settings.label_noise:.0%} {settings.noise_kind} label noise"
            + (
                f", {settings.relabel_fraction:.0%} of each batch spent on relabeling suspects"
                if settings.relabel_fraction
                else ""
            )
            if settings.label_noise
            else ""
        )
    )
    model_note = (
        settings.model
        if settings.encoder is None
        else f"{settings.encoder} encoder ({encoder_training(settings)}, once) + MC-dropout head"
        + (", encoder fine-tuned with the head on the images" if settings.fine_tune else "")
    )
    print(
        f"bench {settings.dataset}: {len(strategies)} strategies x seeds {seeds}, "
        f"{settings.initial} balanced initial labels, +{settings.batch_size} per step up to "
        f"{settings.budget}; {model_note}, "
        f"T={settings.mc_samples}; scoring {pool_note}; evaluated on {test_note}; {training_note}; "
        f"{args.jobs} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    try:
        runs = run_bench(
            settings,
            strategies,
            seeds,
            out,
            jobs=args.jobs,
            resume=args.resume,
            report_only=args.report_only,
        )
    except (AlwidgetError, FileNotFoundError) as error:  # e.g. corrupt MNIST files
        parser.error(str(error))
    if not runs:
        parser.error(f"no finished runs with these settings in {out / 'runs'}")
    seeds = sorted({run["seed"] for run in runs})
    strategies = [name for name in strategies if any(run["strategy"] == name for run in runs)]
    summary = summarize(runs)
    results = {
        "settings": asdict(settings),
        "strategies": strategies,
        "seeds": seeds,
        "jobs": args.jobs,
        "model": model_note,
        "evaluated_on": test_note,
        "scored": pool_note,
        "training": training_note,
        # A report-only pass runs nothing: its wall time would say nothing about the benchmark.
        "wall_seconds": None if args.report_only else round(time.perf_counter() - started, 1),
        "run_seconds_total": round(sum(run["total_seconds"] for run in runs), 1),
        "summary": summary,
        "runs": runs,
    }
    figure = write_figure(summary, out, png=not args.no_png)
    results["figure"] = figure
    (out / "results.json").write_text(json.dumps(results, indent=1))
    checkpoints = [
        n for n in (50, 100, 150, 180, 200, 250, 300) if settings.initial <= n < settings.budget
    ] + [settings.budget]
    table = "\n".join(
        [
            format_table(summary, {settings.dataset: settings.budget}),
            format_accuracy_at(summary, checkpoints),
            format_paired_ratios(summary, {settings.dataset: settings.budget}),
            format_timings(summary),
        ]
    )
    (out / "summary.md").write_text(
        f"Model: {model_note}. Evaluated on {test_note}; scoring {pool_note}; "
        f"{training_note}.\n\n{table}\n"
    )
    print(table)
    timing = "report only" if args.report_only else f"wall time {results['wall_seconds']:.0f} s"
    print(
        f"\n{timing}; runs took {results['run_seconds_total']:.0f} s in all; "
        f"results in {out / 'results.json'}; figure {figure['html']}"
        + (f" and {figure['png']}" if figure["png"] else f" (no PNG: {figure['png_error']})")
    )
    return 0
