"""``python -m alwidget bench``: the Gal et al. (2017) active-learning protocol on real MNIST.

20 class-balanced initial labels, 10 acquired per step, the Gal CNN, T MC-dropout samples,
test accuracy after every step; several strategies and seeds, run in worker processes with
one torch thread each. Results go to ``<out>/runs/*.json`` as each run finishes (so an
interrupted benchmark keeps what it did and ``--resume`` skips it), then to
``<out>/results.json``, a printed table and a plotly figure (see
:mod:`alwidget.experiments.report`).

Training is not the papers' Keras set-up: a fixed number of Adam steps on class-balanced,
by default affinely augmented mini-batches, optionally warm-started after the first run, and
no validation split (every acquired label trains; Gal et al. early-stopped on 100 extra
validation labels that their budget does not count). The settings are recorded in the JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from .oracle import run_oracle

__all__ = [
    "DEFAULT_STRATEGIES",
    "THRESHOLDS",
    "BenchSettings",
    "bench_session",
    "labels_to_threshold",
    "run_bench",
    "run_one",
    "same_settings",
]

THRESHOLDS = (0.90, 0.95, 0.98)
DEFAULT_STRATEGIES = ("random", "entropy", "bald", "batchbald", "coreset", "badge", "hybrid")

# glibc malloc settings that stop the big conv activations from being mapped and unmapped on
# every pass (measured: a deterministic MNIST pass 10-14 s -> 5.5 s). They only take effect
# in a new process, so they are set for the workers.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


@dataclass
class BenchSettings:
    """Everything a benchmark run depends on (stored in the results JSON).

    Attributes
    ----------
    dataset : str
        ``"mnist"`` or ``"repeated-mnist"`` (each image 3x with Gaussian noise sigma 0.1).
    data_root : str
        Folder with the MNIST idx files.
    limit, test_limit : int or None
        Random subsets of the pool / the 10 000 test images (``None`` = all). For Repeated
        MNIST ``limit`` counts original images, before the 3 copies.
    initial, batch_size, budget : int
        Balanced initial labels, labels per acquisition step, labels to stop at.
    mc_samples : int
        MC-dropout samples T for scoring (consistent masks, head-only sampling).
    score_subset : int or None
        Score a random subset of this many unlabeled items per step (Gal et al.: 2 000).
    train_steps, train_batch : int
        Adam steps per training run and items per step.
    warm_steps : int or None
        When set, only the first training starts from fresh weights; every later one
        continues from the previous model for this many steps (cheaper on a CPU; not the
        papers' protocol, which retrains from scratch).
    lr, weight_decay : float
        Adam settings.
    augment : str
        Mini-batch augmentation (``"affine"`` or ``"none"``, see :mod:`alwidget.augment`);
        the papers trained without any. Not used with a frozen encoder (the head sees
        features); used with ``fine_tune`` (the network sees the images).
    encoder : str or None
        ``"self-supervised"`` or ``"svd"``: a frozen encoder made from the unlabeled pool
        (once, before the runs, cached on disk) with an MC-dropout head trained on its
        features, instead of ``model`` trained on the images.
    fine_tune : bool
        With ``encoder``: train the encoder's weights too (``Session(fine_tune=True)``): each
        training run starts the encoder from its self-supervised weights (warm-started runs
        from the previous run's), the model sees the images, and every step scores through
        the whole network.
    encoder_budget : float
        Seconds of self-supervised training (seed 0, the same encoder for every run).
    encoder_epochs : float or None
        Passes over the pool for the self-supervised encoder instead of a time budget, so its
        quality does not depend on the machine's load (``encoder_budget`` is then ignored).
    encoder_architecture : str or None
        With ``encoder="self-supervised"``: the network it trains
        (``self_supervised(architecture=...)``). ``None``: the small strided CNN;
        ``"gal_cnn"``: the body of ``model``'s Gal CNN (every layer before its output layer),
        so that ``fine_tune`` trains the network that learns best from labels.
    pseudo_labels : bool
        Train each run with pseudo-labels too (``TrainConfig.pseudo_labels``).
    pseudo_label_per_class : int
        At most this many pseudo-labels per class and run
        (``TrainConfig.pseudo_label_per_class``).
    pseudo_label_candidates : int
        Unlabeled items considered for pseudo-labels per run, a seeded random sample
        (``TrainConfig.pseudo_label_candidates``).
    semi_supervised : str or None
        ``"fixmatch"``: consistency training on unlabeled items
        (``TrainConfig.semi_supervised``), with no time budget so runs repeat exactly.
    weight_averaging : float or None
        Keep a moving average of the weights with this decay (``TrainConfig.weight_averaging``).
    label_noise : float
        The simulated annotator answers wrongly at this rate (seeded per run; 0 = never).
    noise_kind : str
        ``"symmetric"`` (any other class) or ``"class-dependent"`` (always the next class);
        see :class:`alwidget.experiments.oracle.LabelNoise`.
    relabel_fraction : float
        Share of each acquired batch spent on label suspects (``Session.query(relabel=)``),
        answered again by the same annotator.
    """

    dataset: str = "mnist"
    data_root: str = "../shared/data"
    limit: int | None = None
    test_limit: int | None = None
    initial: int = 20
    batch_size: int = 10
    budget: int = 300
    mc_samples: int = 20
    score_subset: int | None = 2000
    train_steps: int = 500
    train_batch: int = 32
    warm_steps: int | None = 100
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: str = "affine"
    model: str = "gal_cnn"
    encoder: str | None = None
    encoder_budget: float = 300.0
    encoder_epochs: float | None = None
    encoder_architecture: str | None = None
    fine_tune: bool = False
    pseudo_labels: bool = False
    pseudo_label_per_class: int = 100
    pseudo_label_candidates: int = 2000
    semi_supervised: str | None = None
    weight_averaging: float | None = None
    label_noise: float = 0.0
    noise_kind: str = "symmetric"
    relabel_fraction: float = 0.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.fine_tune and self.encoder is None:
            raise InvalidArgumentError(
                "bench: fine_tune=True (--fine-tune) trains an encoder's weights, but no "
                "encoder is set; add --encoder self-supervised (or svd), or drop --fine-tune"
            )
        if self.encoder_architecture is not None and self.encoder != "self-supervised":
            raise InvalidArgumentError(
                f"bench: encoder_architecture={self.encoder_architecture!r} "
                "(--encoder-architecture) chooses the network of the self-supervised encoder, "
                f"but the encoder is {self.encoder!r}; add --encoder self-supervised, or drop "
                "--encoder-architecture"
            )

    @property
    def features_only(self) -> bool:
        """Whether the model is a head on frozen encoder features (no augmentation)."""
        return self.encoder is not None and not self.fine_tune

    @property
    def rounds(self) -> int:
        """Acquisition steps after the initial labels."""
        return max(0, math.ceil((self.budget - self.initial) / self.batch_size))

    def train_config(self, first: bool = True):
        """Fixed-length training, no validation split; warm-started after the first run
        when ``warm_steps`` is set."""
        from ..training import TrainConfig

        warm = not first and self.warm_steps is not None
        steps = self.warm_steps if warm else self.train_steps
        return TrainConfig(
            min_steps=steps,
            max_steps=steps,
            max_epochs=10**6,
            batch_size=self.train_batch,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=0.0,
            warm_start=warm,
            augment=None if self.features_only else self.augment,
            pseudo_labels=self.pseudo_labels,
            pseudo_label_per_class=self.pseudo_label_per_class,
            pseudo_label_candidates=self.pseudo_label_candidates,
            semi_supervised=self.semi_supervised,
            consistency_seconds=None,
            weight_averaging=self.weight_averaging,
        )


def labels_to_threshold(n_labels, accuracies, threshold: float) -> int | None:
    """Labels at the first step whose test accuracy reaches ``threshold``, else ``None``.

    Parameters
    ----------
    n_labels, accuracies : sequence
        The learning curve, in step order (labels non-decreasing).
    threshold : float
        Accuracy in [0, 1].

    Raises
    ------
    ValueError
        If the sequences differ in length or the labels decrease.
    """
    n_labels, accuracies = list(n_labels), list(accuracies)
    if len(n_labels) != len(accuracies):
        raise ValueError(f"{len(n_labels)} label counts but {len(accuracies)} accuracies")
    if any(later < earlier for earlier, later in pairwise(n_labels)):
        raise ValueError("label counts must not decrease along a learning curve")
    for count, accuracy in zip(n_labels, accuracies):
        if accuracy is not None and accuracy >= threshold:
            return int(count)
    return None


def labels_to_threshold_interpolated(n_labels, accuracies, threshold: float) -> float | None:
    """Labels at which the learning curve first reaches ``threshold``, interpolated linearly
    between the step below it and the step that reaches it; ``None`` when no step does.

    :func:`labels_to_threshold` answers on the grid of steps. With batches of 10, 90 against
    100 labels is an 11 % difference, so ratios of label counts need the finer answer.

    Parameters
    ----------
    n_labels, accuracies : sequence
        The learning curve, in step order (labels non-decreasing).
    threshold : float
        Accuracy in [0, 1].
    """
    if labels_to_threshold(n_labels, accuracies, threshold) is None:  # also checks the curve
        return None
    n_labels, accuracies = list(n_labels), list(accuracies)
    first = next(i for i, a in enumerate(accuracies) if a is not None and a >= threshold)
    if first == 0 or accuracies[first - 1] is None:
        return float(n_labels[first])
    (low_labels, low), (high_labels, high) = zip(
        n_labels[first - 1 : first + 1], accuracies[first - 1 : first + 1], strict=True
    )
    return low_labels + (threshold - low) * (high_labels - low_labels) / (high - low)


def median_labels(values: list) -> float | None:
    """Median over seeds where ``None`` (never reached) counts as larger than any number;
    ``None`` when the median itself is "never"."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    return None if low is None or high is None else (low + high) / 2


_POOL_CACHE: dict = {}


def load_bench_pool(settings: BenchSettings):
    """The benchmark pool; the same for every seed so runs differ only in the AL seed."""
    from .. import datasets

    key = (settings.dataset, settings.data_root, settings.limit, settings.test_limit)
    if key not in _POOL_CACHE:
        pool = datasets.load_mnist(
            settings.data_root, limit=settings.limit, test_limit=settings.test_limit, seed=0
        )
        if settings.dataset == "repeated-mnist":
            pool = datasets.repeated(pool, repeats=3, noise_std=0.1, seed=0)
        elif settings.dataset != "mnist":
            raise InvalidArgumentError(
                f"unknown benchmark dataset {settings.dataset!r}; use mnist or repeated-mnist"
            )
        _POOL_CACHE.clear()
        _POOL_CACHE[key] = pool
    return _POOL_CACHE[key]


def bench_encoder(settings: BenchSettings, progress=False):
    """The frozen encoder of ``settings`` (trained or loaded from the disk cache), or None."""
    if settings.encoder is None:
        return None
    from .. import encoders

    pool = load_bench_pool(settings)
    if settings.encoder == "svd":
        return encoders.svd(pool)
    if settings.encoder == "self-supervised":
        if settings.encoder_epochs is not None:
            return encoders.self_supervised(
                pool, time_budget=None, max_epochs=settings.encoder_epochs, seed=0,
                progress=progress, architecture=settings.encoder_architecture,
            )  # fmt: skip
        return encoders.self_supervised(
            pool, time_budget=settings.encoder_budget, seed=0, progress=progress,
            architecture=settings.encoder_architecture,
        )  # fmt: skip
    raise InvalidArgumentError(
        f"unknown benchmark encoder {settings.encoder!r}; use self-supervised or svd"
    )


def prepare_encoder(settings: BenchSettings, log) -> None:
    """Train the encoder and encode the pool once, so worker processes find both cached
    (fine-tuning runs never read the features, so the pool is not encoded for them)."""
    if settings.encoder is None:
        return
    from ..encoders import encode_pool

    started = time.perf_counter()
    encoder = bench_encoder(settings, progress=None)
    report = getattr(encoder, "report", None)
    origin = (
        ""
        if report is None
        else " (loaded from the cache)"
        if report.loaded
        else f" (trained for {report.epochs:.1f} epochs)"
    )
    if settings.fine_tune:
        log(
            f"encoder {settings.encoder}: ready in {time.perf_counter() - started:.0f} s"
            f"{origin}; fine-tuned in every run"
        )
        return
    cache = encode_pool(load_bench_pool(settings), encoder, progress=None)
    log(
        f"encoder {settings.encoder}: ready in {time.perf_counter() - started:.0f} s{origin}, "
        f"{cache.shape[1]} features per item"
    )


def bench_session(settings: BenchSettings, strategy: str, seed: int):
    """The untrained :class:`alwidget.Session` one benchmark run labels."""
    from ..session import Session

    encoder = bench_encoder(settings)
    return Session(
        load_bench_pool(settings),
        "head" if encoder is not None else settings.model,
        encoder=encoder,
        fine_tune=settings.fine_tune,
        progress=False,
        strategy=strategy,
        mc_samples=settings.mc_samples,
        seed=seed,
        batch_size=settings.batch_size,
        train_config=settings.train_config(),
        score_subset=settings.score_subset,
        device="cpu",
        store=False,
    )


def run_one(settings: BenchSettings, strategy: str, seed: int, threads: int = 1, log=None) -> dict:
    """One active-learning run: the learning curve and per-step timings.

    Returns
    -------
    dict
        ``{"dataset", "strategy", "seed", "steps": [{"n_labels", "accuracy", "train_seconds",
        "predict_seconds", "score_seconds", "select_seconds", "eval_seconds", "acquired"}, ...],
        "labels_to": {"0.9": n or None, ...}, "total_seconds"}``. Step 0 is the model
        trained on the initial labels; the query timings and ``acquired`` pool ids of a
        step are those of the query that acquired its new labels (step 0: the initial ids).
        With ``label_noise`` each step also has ``labels_wrong`` (labels that differ from
        the truth) and the run ``"cleaning"``: precision and recall of the final
        ``label_issues()`` against those (see
        :func:`alwidget.experiments.simulate.cleaning_scores`).
    """
    import torch

    from .oracle import LabelNoise
    from .simulate import cleaning_scores, pseudo_label_precision

    torch.set_num_threads(threads)
    started = time.perf_counter()
    pool = load_bench_pool(settings)
    session = bench_session(settings, strategy, seed)
    steps = []
    noise = (
        LabelNoise(settings.label_noise, settings.noise_kind, seed)
        if settings.label_noise
        else None
    )
    oracle_rounds = run_oracle(
        session,
        initial=settings.initial,
        seed=seed,
        batch_size=settings.batch_size,
        budget=settings.budget,
        train_config_for_round=lambda index: settings.train_config(first=index == 0),
        noise=noise,
        relabel=settings.relabel_fraction,
    )
    for step in oracle_rounds:
        steps.append(
            {
                "n_labels": step.n_labels,
                "accuracy": round(step.accuracy, 5),
                "train_seconds": round(step.train.seconds, 3),
                "eval_seconds": round(step.eval_seconds, 3),
                **step.query_seconds(),
                "acquired": [_plain(item_id) for item_id in step.acquired],
            }
        )
        if settings.pseudo_labels:
            steps[-1]["pseudo_labels"] = pseudo_label_precision(session, pool)
        if noise is not None:
            steps[-1]["labels_wrong"] = len(noise.flipped & set(session.labeled_ids))
        if log is not None:
            log(
                f"  {settings.dataset} {strategy} seed {seed}: {step.n_labels} labels, "
                f"accuracy {step.accuracy:.4f}, train {step.train.seconds:.1f} s"
            )
    curve = ([s["n_labels"] for s in steps], [s["accuracy"] for s in steps])
    cleaning = None if noise is None else cleaning_scores(session, noise)
    return {
        "dataset": settings.dataset,
        "strategy": strategy,
        "seed": seed,
        "pool_size": len(pool),
        "test_size": len(pool.test),
        "steps": steps,
        "labels_to": {str(t): labels_to_threshold(*curve, t) for t in THRESHOLDS},
        "final_accuracy": steps[-1]["accuracy"],
        "cleaning": cleaning,
        "total_seconds": round(time.perf_counter() - started, 2),
    }


def same_settings(recorded: dict | None, settings: BenchSettings) -> bool:
    """Whether a finished run's recorded settings are ``settings``; a setting added after
    the run was recorded counts with its default (runs from before ``label_noise`` existed
    had no noise)."""
    if recorded is None:
        return False
    return {**asdict(BenchSettings()), **recorded} == asdict(settings)


def _plain(item_id):
    """Pool ids as JSON values (numpy integers become ints)."""
    return int(item_id) if isinstance(item_id, (int, np.integer)) else str(item_id)


def _run_job(settings_dict: dict, strategy: str, seed: int, threads: int) -> dict:
    return run_one(
        BenchSettings(**settings_dict),
        strategy,
        seed,
        threads,
        log=lambda text: print(text, file=sys.stderr, flush=True),
    )


def run_file_name(dataset: str, strategy: str, seed: int) -> str:
    return f"{dataset}-{strategy}-seed{seed}.json"


def run_bench(
    settings: BenchSettings,
    strategies,
    seeds,
    out: Path,
    *,
    jobs: int = 1,
    resume: bool = False,
    report_only: bool = False,
    log=None,
) -> list[dict]:
    """Run every (seed, strategy) pair, seed-major so a cut-short benchmark still holds
    whole seeds; each finished run is written to ``out/runs/`` at once.

    Returns
    -------
    list of dict
        The run results (from :func:`run_one`), including those found when resuming.
        With ``report_only`` nothing runs: the finished runs with identical settings.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    runs_dir = Path(out) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    results, todo = [], []
    for seed in seeds:
        for strategy in strategies:
            path = runs_dir / run_file_name(settings.dataset, strategy, seed)
            if (resume or report_only) and path.is_file():
                previous = json.loads(path.read_text())
                if same_settings(previous.get("settings"), settings):
                    results.append(previous)
                    log(f"resume: kept {path.name}")
                    continue
            todo.append((strategy, seed))

    if report_only:
        if todo:
            log(
                f"report only: {len(todo)} runs missing: "
                + ", ".join(f"{name} seed {seed}" for name, seed in todo)
            )
        return results
    total = len(results) + len(todo)

    def finished(result: dict) -> None:
        result["settings"] = asdict(settings)
        path = runs_dir / run_file_name(settings.dataset, result["strategy"], result["seed"])
        path.write_text(json.dumps(result, indent=1))
        results.append(result)
        reached = ", ".join(f"{float(t):.0%}: {n or '-'}" for t, n in result["labels_to"].items())
        log(
            f"[{len(results)}/{total}] {settings.dataset} "
            f"{result['strategy']} seed {result['seed']}: final {result['final_accuracy']:.4f}, "
            f"labels to {reached}, "
            f"{result['total_seconds']:.0f} s"
        )

    if todo:
        prepare_encoder(settings, log)
    # Always in spawned workers: the malloc settings apply only at process start, and every
    # run then has the same process setting whatever --jobs is.
    with (
        _environment(MALLOC_ENV),
        ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=get_context("spawn")) as executor,
    ):
        futures = [
            executor.submit(_run_job, asdict(settings), strategy, seed, 1)
            for strategy, seed in todo
        ]
        for future in as_completed(futures):
            finished(future.result())
    return results


@contextmanager
def _environment(values: dict):
    """Set environment variables (unless already set) for child processes started inside."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
