"""The engine behind :class:`alwidget.teaching.Race`: several strategies, several seeds, one pool.

Each (strategy, seed) pair is a *lane*: a fresh :class:`~alwidget.Session` driven by the same
simulated-oracle loop as :func:`alwidget.experiments.simulate`
(:func:`~alwidget.experiments.oracle.run_oracle`, a generator, advanced one trained model at a
time). Lanes of one seed start from the same balanced initial labels, so the strategies differ
only in what they pick. Nothing here imports ipywidgets: the race runs headless too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .. import strategies as strategy_registry
from ..data import Pool
from ..errors import InvalidArgumentError, InvalidArgumentTypeError
from ..experiments.bench import labels_to_threshold, median_labels
from ..experiments.oracle import run_oracle
from ..experiments.simulate import _check_plan
from ..session import Session
from ..session.checks import check_count, check_seed
from ..training import TrainConfig

__all__ = ["Lane", "RaceRun", "area_under_curve"]


def area_under_curve(n_labels, accuracies) -> float | None:
    """Mean accuracy over the label range (trapezoids, normalised by the range's width).

    One point gives its accuracy; no point gives ``None``. 1.0 means perfect from the first
    label on, so curves over the same label range compare directly.
    """
    x = np.asarray(n_labels, dtype=float)
    y = np.asarray(accuracies, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} label counts but {len(y)} accuracies")
    if len(x) == 0:
        return None
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


@dataclass
class Lane:
    """One strategy under one seed: its session, its loop and its learning curve.

    Attributes
    ----------
    strategy : str
    seed : int
    session : Session
    n_labels, accuracies : list
        The learning curve so far, one entry per trained model.
    acquired : list of list
        Pool ids labeled in each round (round 0: the initial labels).
    done : bool
        The loop has trained its last model.
    """

    strategy: str
    seed: int
    session: Session
    steps: object = field(repr=False)
    n_labels: list = field(default_factory=list)
    accuracies: list = field(default_factory=list)
    acquired: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    done: bool = False

    @property
    def labeled_positions(self) -> np.ndarray:
        """Pool positions of every label this lane has, in labeling order."""
        pool = self.session.pool
        return np.array(
            [pool.position(i) for batch in self.acquired for i in batch], dtype=np.int64
        )

    @property
    def last_batch_positions(self) -> np.ndarray:
        """Pool positions of the newest round's picks (empty before the first acquisition)."""
        if len(self.acquired) < 2:
            return np.zeros(0, dtype=np.int64)
        return np.array([self.session.pool.position(i) for i in self.acquired[-1]], dtype=np.int64)


def _check_strategy_names(names) -> list[str]:
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise InvalidArgumentTypeError(
            f"strategies must be a list of strategy names, e.g. ['random', 'bald'], got {names!r}"
        )
    names = list(names)
    if not names:
        raise InvalidArgumentError("strategies is empty: name at least one, e.g. ['random']")
    known = strategy_registry.available()
    for name in names:
        if name not in known:
            raise InvalidArgumentError(
                f"strategies: unknown strategy {name!r}; choose from {sorted(known)}"
            )
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"strategies lists a name twice: {names}")
    return names


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not hasattr(seeds, "__iter__"):
        raise InvalidArgumentTypeError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = [check_seed(seed, "seeds") for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise InvalidArgumentError(f"seeds must be distinct integers, at least one: got {seeds}")
    return seeds


class RaceRun:
    """Strategies raced with a simulated oracle on one pool, over the same seeds.

    Parameters
    ----------
    pool : Pool
        A pool with a target for every item (the oracle's answers) and, ideally, a held-out
        split (otherwise each retrain cross-validates, which is slower).
    strategies : list of str
        Names from :func:`alwidget.strategies.available`.
    seeds : list of int
        One lane per strategy and seed; the bands of the learning curves span the seeds.
    initial, batch_size, rounds : int
        Class-balanced initial labels, labels per acquisition and acquisitions per lane, as
        for :func:`alwidget.experiments.simulate`.
    model, mc_samples, train_config, score_subset
        As for :class:`alwidget.Session` (every lane gets the same).
    threshold : float, optional
        Accuracy for the "labels to reach" column (default 0.9).

    Raises
    ------
    OracleSetupError
        The plan asks for more labels than the pool has, or the pool has no targets.
    InvalidArgumentError
        An unknown strategy, repeated seeds, a threshold outside (0, 1].
    """

    def __init__(
        self,
        pool: Pool,
        strategies=("random", "entropy", "bald"),
        *,
        seeds=(0, 1, 2),
        initial: int = 20,
        batch_size: int = 10,
        rounds: int = 10,
        model=None,
        mc_samples: int | None = None,
        train_config: TrainConfig | None = None,
        score_subset: int | None = None,
        threshold: float = 0.9,
    ):
        _check_plan(pool, initial, batch_size, rounds)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
            raise InvalidArgumentTypeError(
                f"threshold must be an accuracy in (0, 1], got {threshold!r}"
            )
        if not 0 < threshold <= 1:
            raise InvalidArgumentError(
                f"threshold must be an accuracy in (0, 1], got {threshold!r}"
            )
        self.pool = pool
        self.strategies = _check_strategy_names(strategies)
        self.seeds = _check_seeds(seeds)
        self.initial = check_count(initial, "initial", 2)
        self.batch_size = check_count(batch_size, "batch_size", 1)
        self.rounds = check_count(rounds, "rounds", 0)
        self.threshold = float(threshold)
        self._lock = threading.Lock()
        self._stepping = threading.Lock()  # one lane trains at a time, whoever steps
        self.lanes: list[Lane] = []
        for seed in self.seeds:
            for name in self.strategies:
                session = Session(
                    pool, model, strategy=name, mc_samples=mc_samples, seed=seed,
                    batch_size=batch_size, train_config=train_config,
                    score_subset=score_subset, store=False, progress=False,
                    track_coverage=False,  # the race shows accuracy, not coverage
                )  # fmt: skip
                steps = run_oracle(
                    session, initial=initial, seed=seed, batch_size=batch_size, rounds=rounds
                )
                self.lanes.append(Lane(name, seed, session, steps))
        self._next_lane = 0

    # ------------------------------------------------------------------ stepping
    @property
    def done(self) -> bool:
        """Every lane has trained its last model."""
        with self._lock:
            return all(lane.done for lane in self.lanes)

    @property
    def rounds_done(self) -> int:
        """Rounds every lane has finished (round 0 = trained on the initial labels)."""
        with self._lock:
            return min(len(lane.n_labels) for lane in self.lanes)

    def step_lane(self) -> Lane | None:
        """Advance the lane that is furthest behind by one trained model; None when done.

        Lanes take turns, so every strategy and seed is at most one round apart and the race
        stays fair to watch.
        """
        with self._stepping:
            return self._step_lane()

    def _step_lane(self) -> Lane | None:
        with self._lock:
            waiting = [lane for lane in self.lanes if not lane.done]
            if not waiting:
                return None
            lane = min(waiting, key=lambda candidate: len(candidate.n_labels))
        record = next(lane.steps, None)
        with self._lock:
            if record is None:
                lane.done = True
                return lane
            lane.n_labels.append(record.n_labels)
            lane.accuracies.append(record.accuracy)
            lane.acquired.append(list(record.acquired))
            lane.seconds.append(record.retrain_seconds)
            if record.index == self.rounds:
                lane.done = True
        return lane

    def step(self) -> None:
        """Advance every lane by one round."""
        target = self.rounds_done + 1
        while not self.done and self.rounds_done < target:
            self.step_lane()

    def run(self) -> RaceRun:
        """Run to the end (headless); returns self."""
        while not self.done:
            self.step_lane()
        return self

    # ------------------------------------------------------------------ results
    def lanes_of(self, strategy: str) -> list[Lane]:
        return [lane for lane in self.lanes if lane.strategy == strategy]

    def lane(self, strategy: str, seed: int) -> Lane:
        for lane in self.lanes:
            if lane.strategy == strategy and lane.seed == seed:
                return lane
        raise InvalidArgumentError(
            f"no lane for strategy {strategy!r} and seed {seed!r}; strategies "
            f"{self.strategies}, seeds {self.seeds}"
        )

    def curve(self, strategy: str) -> dict:
        """Learning curve over seeds: ``n_labels``, ``mean``, ``low``, ``high`` (min and max over
        the seeds that have reached each round) and ``n_seeds`` per round."""
        with self._lock:
            curves = [(list(ln.n_labels), list(ln.accuracies)) for ln in self.lanes_of(strategy)]
        length = max(len(labels) for labels, _ in curves)
        n_labels, mean, low, high, count = [], [], [], [], []
        for index in range(length):
            values = [acc[index] for _, acc in curves if index < len(acc)]
            values = [value for value in values if value is not None]
            if not values:
                continue
            n_labels.append(next(labels[index] for labels, _ in curves if index < len(labels)))
            mean.append(float(np.mean(values)))
            low.append(float(np.min(values)))
            high.append(float(np.max(values)))
            count.append(len(values))
        return {"n_labels": n_labels, "mean": mean, "low": low, "high": high, "n_seeds": count}

    def summary(self) -> list[dict]:
        """One row per strategy, over the rounds every lane has finished.

        ``labels_to_threshold`` is the median over seeds of the labels at which held-out
        accuracy first reached :attr:`threshold` (``None``: the median seed has not yet);
        ``reached`` counts the seeds that did; ``auc`` is the mean over seeds of
        :func:`area_under_curve`; ``accuracy`` the mean accuracy at the last common round.
        """
        common = self.rounds_done
        rows = []
        with self._lock:
            for name in self.strategies:
                lanes = self.lanes_of(name)
                to_threshold, aucs, finals = [], [], []
                for lane in lanes:
                    labels, accs = lane.n_labels[:common], lane.accuracies[:common]
                    if not labels or any(value is None for value in accs):
                        continue
                    to_threshold.append(labels_to_threshold(labels, accs, self.threshold))
                    aucs.append(area_under_curve(labels, accs))
                    finals.append(accs[-1])
                rows.append({
                    "strategy": name,
                    "n_labels": lanes[0].n_labels[common - 1] if common else None,
                    "accuracy": float(np.mean(finals)) if finals else None,
                    "labels_to_threshold": median_labels(to_threshold) if to_threshold else None,
                    "reached": sum(value is not None for value in to_threshold),
                    "auc": float(np.mean(aucs)) if aucs else None,
                    "n_seeds": len(finals),
                })  # fmt: skip
        return rows

    def duplicate_picks(self, n_base: int) -> dict[str, float]:
        """Mean over seeds of acquisitions whose base item was already labeled, per strategy.

        For pools built by :func:`alwidget.datasets.repeated`, where copy ``k`` of item ``i``
        sits at position ``k * n_base + i``: a batch-unaware strategy labels the same image
        twice, which teaches the model nothing new.
        """
        n_base = check_count(n_base, "n_base", 1, "items before repetition")
        result = {}
        with self._lock:
            for name in self.strategies:
                counts = []
                for lane in self.lanes_of(name):
                    if not lane.acquired:
                        continue
                    base = lane.session.pool
                    seen = {base.position(i) % n_base for i in lane.acquired[0]}
                    repeats = 0
                    for batch in lane.acquired[1:]:
                        for item_id in batch:
                            original = base.position(item_id) % n_base
                            repeats += original in seen
                            seen.add(original)
                    counts.append(repeats)
                result[name] = float(np.mean(counts)) if counts else 0.0
        return result

    def close(self) -> None:
        """Close every lane's session (their in-memory stores)."""
        for lane in self.lanes:
            lane.session.close()
