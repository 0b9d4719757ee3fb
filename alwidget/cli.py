"""Command line: ``python -m alwidget simulate``, ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _int_at_least(minimum: int):
    """An argparse type: an integer ≥ ``minimum``, with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _seed(text: str) -> int:
    """An argparse type: a seed, an integer from 0 to 2**32 - 1 (what Session accepts)."""
    from .session.checks import MAX_SEED

    value = _non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be ≤ {MAX_SEED} (2**32 - 1), got {value}")
    return value


_seed.__name__ = "seed"


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``/``--data-root``/``--limit``: shared by every subcommand that needs a pool."""
    parser.add_argument(
        "--dataset", choices=["digits", "mnist", "repeated-mnist"], default="digits"
    )
    parser.add_argument("--data-root", help="folder with the MNIST idx files (for --dataset mnist)")
    parser.add_argument(
        "--limit", type=_positive_int, help="use a random subset of this many pool items"
    )
    parser.add_argument(
        "--test-limit",
        type=_positive_int,
        help="evaluate on a random subset of this many held-out items",
    )


def load_pool(args, parser: argparse.ArgumentParser):
    """The pool the arguments name; bad combinations exit with code 2 and the usage."""
    from . import datasets

    if args.dataset == "digits":
        if args.data_root:
            parser.error("--data-root is only used with --dataset mnist")
        if args.limit or args.test_limit:
            parser.error("--limit/--test-limit are only used with the MNIST datasets")
        return datasets.load_digits(seed=args.seed)
    if not args.data_root:
        parser.error(
            f"--dataset {args.dataset} needs --data-root PATH (a folder with the MNIST idx files)"
        )
    try:
        pool = datasets.load_mnist(
            args.data_root, limit=args.limit, test_limit=args.test_limit, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as error:  # missing, unreadable or corrupt files
        parser.error(f"--data-root {args.data_root}: {error}")
    return datasets.repeated(pool, seed=args.seed) if args.dataset == "repeated-mnist" else pool


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    from .strategies import available

    parser = argparse.ArgumentParser(
        prog="python -m alwidget", description="Deep active learning, headless."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser(
        "simulate",
        help="run the active-learning loop with the ground truth as oracle",
        description="Label an initial balanced set, then repeat: query a batch, let the "
        "ground truth answer, retrain, evaluate on the held-out split.",
    )
    add_pool_arguments(simulate)
    simulate.add_argument("--strategy", choices=available(), default="entropy")
    simulate.add_argument(
        "--model", default=None, help="small_cnn, gal_cnn or mlp (default: by data kind)"
    )
    simulate.add_argument(
        "--initial", type=_positive_int, default=20, help="class-balanced initial labels"
    )
    simulate.add_argument(
        "--batch", type=_positive_int, default=10, help="items acquired per round"
    )
    simulate.add_argument("--rounds", type=_non_negative_int, default=5)
    simulate.add_argument("--seed", type=_seed, default=0)
    simulate.add_argument("--mc-samples", type=_positive_int, default=None)
    simulate.add_argument("--ensemble", type=_positive_int, default=1)
    simulate.add_argument(
        "--score-subset",
        type=_positive_int,
        default=None,
        help="score a random subset of this many unlabeled items per round",
    )
    simulate.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        help="cap gradient steps per training run (default: the TrainConfig default)",
    )
    simulate.add_argument(
        "--augment",
        choices=["auto", "affine", "none"],
        default="auto",
        help="training mini-batch augmentation: small random rotation, zoom and shift "
        "(auto: for image pools only)",
    )
    simulate.add_argument(
        "--pseudo-labels",
        action="store_true",
        help="train with pseudo-labels (confident unlabeled items with their predicted class); "
        "the JSON reports their precision against the hidden targets",
    )
    simulate.add_argument(
        "--semi-supervised",
        choices=["fixmatch"],
        default=None,
        help="consistency training on unlabeled items (weak/strong views)",
    )
    simulate.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch CPU threads (default: 1, which is fastest for these small models)",
    )
    simulate.add_argument(
        "--encoder",
        choices=["svd", "self-supervised"],
        default=None,
        help="a frozen encoder made from the unlabeled pool (cached on disk) with an "
        "MC-dropout head on its features; --model then names the head (default: head)",
    )
    simulate.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        help="the oracle answers wrongly at this rate (seeded), e.g. 0.2",
    )
    simulate.add_argument(
        "--noise-kind",
        choices=["symmetric", "class-dependent"],
        default="symmetric",
        help="symmetric: any other class; class-dependent: always the next class",
    )
    simulate.add_argument(
        "--relabel-fraction",
        type=float,
        default=0.0,
        help="share of each batch spent on label suspects (session.label_issues), answered "
        "again by the oracle; the JSON scores the final suspects against the wrong labels",
    )
    simulate.add_argument(
        "--json", action="store_true", help="print one JSON object (the only stdout output)"
    )

    demo = commands.add_parser(
        "demo",
        help="compare strategies on the embedded digits with a simulated oracle",
        description="Runs random, entropy and BALD side by side on scikit-learn's digits and "
        "prints test accuracy against the number of labels.",
    )
    demo.add_argument(
        "--strategies", default="random,entropy,bald", help="comma-separated strategy names"
    )
    demo.add_argument("--rounds", type=_non_negative_int, default=8)
    demo.add_argument("--batch", type=_positive_int, default=10)
    demo.add_argument("--seed", type=_seed, default=0)

    from .experiments.bench_cli import add_bench_arguments

    bench = commands.add_parser(
        "bench",
        help="benchmark strategies on real MNIST (Gal et al. 2017 protocol)",
        description="Runs strategies x seeds on MNIST or Repeated MNIST and reports labels to "
        "90/95/98%% test accuracy beside the papers' figures; JSON and a plotly figure go "
        "to --out.",
    )
    add_bench_arguments(bench)
    # Errors found after parsing are reported with the subcommand's own usage.
    for command in (simulate, demo, bench):
        command.set_defaults(command_parser=command)
    return parser


def _train_config(args, config_type):
    steps = (
        {}
        if args.max_steps is None
        else {"max_steps": args.max_steps, "min_steps": min(args.max_steps, config_type.min_steps)}
    )
    return config_type(
        augment=args.augment,
        pseudo_labels=getattr(args, "pseudo_labels", False),
        semi_supervised=getattr(args, "semi_supervised", None),
        **steps,
    )


def _run_simulate(args, parser) -> int:
    import torch
    from tqdm import tqdm

    from .errors import AlwidgetError
    from .experiments.simulate import simulate
    from .models import MODELS
    from .training import TrainConfig

    if args.model is not None and args.model not in MODELS:
        parser.error(f"unknown --model {args.model!r}; choose one of {', '.join(sorted(MODELS))}")
    torch.set_num_threads(args.threads or 1)
    pool = load_pool(args, parser)
    progress = tqdm(
        total=args.rounds + 1, desc=f"{args.strategy} on {pool.name}", file=sys.stderr, unit="round"
    )

    def on_round(record):
        progress.update(1)
        progress.set_postfix(labels=record["n_labels"], accuracy=record["accuracy"])

    try:
        result = simulate(
            pool,
            strategy=args.strategy,
            initial=args.initial,
            batch_size=args.batch,
            rounds=args.rounds,
            seed=args.seed,
            model=args.model,
            mc_samples=args.mc_samples,
            ensemble=args.ensemble,
            score_subset=args.score_subset,
            encoder=args.encoder,
            on_round=on_round,
            train_config=_train_config(args, TrainConfig),
            label_noise=args.label_noise,
            noise_kind=args.noise_kind,
            relabel_fraction=args.relabel_fraction,
        )
    except AlwidgetError as error:  # a setting the pool or the session refused
        progress.close()
        parser.error(str(error))
    progress.close()
    if args.json:
        print(json.dumps(result))
    else:
        for record in result["rounds"]:
            print(
                f"round {record['round']:3d}  labels {record['n_labels']:5d}  "
                f"accuracy {record['accuracy']:.4f}"
            )
    return 0


def _run_demo(args, parser) -> int:
    import torch
    from tqdm import tqdm

    from . import datasets
    from .errors import AlwidgetError
    from .experiments.simulate import simulate
    from .strategies import available

    names = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in names if name not in available()]
    if unknown or not names:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(available())}")
    torch.set_num_threads(1)
    pool = datasets.load_digits(seed=args.seed)
    print(
        f"{pool}: 20 balanced initial labels, +{args.batch} per round, oracle = ground truth",
        file=sys.stderr,
    )
    results = {}
    for name in names:
        with tqdm(total=args.rounds + 1, desc=name, file=sys.stderr, unit="round") as bar:
            try:
                results[name] = simulate(
                    pool,
                    strategy=name,
                    initial=20,
                    batch_size=args.batch,
                    rounds=args.rounds,
                    seed=args.seed,
                    on_round=lambda record: bar.update(1),
                )
            except AlwidgetError as error:  # e.g. more rounds than the digits allow
                bar.close()
                parser.error(str(error))
    header = "labels  " + "".join(f"{name:>18}" for name in names)
    print("test accuracy on the held-out digits")
    print(header)
    for row in range(args.rounds + 1):
        n_labels = results[names[0]]["rounds"][row]["n_labels"]
        cells = "".join(f"{results[name]['rounds'][row]['accuracy']:>18.3f}" for name in names)
        print(f"{n_labels:>6}  {cells}")
    print("\nNext: label by hand in JupyterLab: open notebooks/quickstart.ipynb (see README).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command_parser = getattr(args, "command_parser", parser)
    if args.command == "simulate":
        return _run_simulate(args, command_parser)
    if args.command == "demo":
        return _run_demo(args, command_parser)
    if args.command == "bench":
        from .experiments.bench_cli import main_bench

        return main_bench(args, command_parser)
    parser.error(f"unknown command {args.command}")
    return 2
