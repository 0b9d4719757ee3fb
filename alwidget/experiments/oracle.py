"""The simulated oracle loop shared by ``simulate`` and ``bench``.

The ground truth answers whatever the session asks: label a class-balanced initial set, then
repeat (train, evaluate, query a batch, label it from the pool's targets). Only the public
:class:`~alwidget.Session` API is used, so the loop measures what a user of the product gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..data import Pool
from ..errors import AlwidgetError
from ..training import TrainConfig, TrainReport

__all__ = [
    "LabelNoise",
    "OracleRound",
    "OracleSetupError",
    "balanced_initial_ids",
    "oracle_labels",
    "run_oracle",
]


class OracleSetupError(AlwidgetError, ValueError):
    """An oracle run that cannot start: no ground truth, or too small an initial set."""


def balanced_initial_ids(pool: Pool, count: int, seed: int) -> list:
    """``count`` pool ids spread evenly over the classes (the usual cold start, e.g. 2 per
    class for 20 MNIST labels); the remainder goes to randomly chosen classes.

    Raises
    ------
    OracleSetupError
        The pool has no targets, or ``count`` is below 2.
    """
    if not pool.has_targets:
        raise OracleSetupError(
            f"pool {pool.name!r} has no ground truth: a simulated oracle needs a target for "
            "every item; build it as alwidget.Pool(items, targets=...)"
        )
    if count < 2:
        raise OracleSetupError(
            f"initial must be at least 2 (one label per class for two classes), got {count}"
        )
    rng = np.random.default_rng(seed)
    present = np.unique(pool.targets)
    per_class = np.full(len(present), count // len(present))
    per_class[rng.choice(len(present), size=count % len(present), replace=False)] += 1
    chosen = []
    for label, take in zip(present, per_class):
        members = np.flatnonzero(pool.targets == label)
        chosen.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return [pool.ids[p] for p in sorted(chosen)]


def oracle_labels(pool: Pool, ids) -> list[int]:
    """The ground-truth class index of each id: what a perfect annotator would answer."""
    return [int(pool.targets[pool.position(item_id)]) for item_id in ids]


NOISE_KINDS = ("symmetric", "class-dependent")


class LabelNoise:
    """A noisy annotator: answers wrongly with probability ``rate`` (seeded).

    ``"symmetric"``: a wrong answer is any other class, uniformly. ``"class-dependent"``:
    class ``c`` is always mistaken for the next class ``c + 1`` (mod C), as when two
    classes look alike. :attr:`flipped` holds the ids whose current answer is wrong.
    """

    def __init__(self, rate: float, kind: str = "symmetric", seed: int = 0) -> None:
        if not 0 <= float(rate) < 1:
            raise OracleSetupError(f"label noise must be a rate in [0, 1), got {rate!r}")
        if kind not in NOISE_KINDS:
            raise OracleSetupError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
        self.rate, self.kind = float(rate), kind
        self.rng = np.random.default_rng([seed, 15])
        self.flipped: set = set()

    def settings(self) -> dict:
        return {"label_noise": self.rate, "noise_kind": self.kind}

    def answer(self, pool: Pool, ids) -> list[int]:
        """The annotator's answer for each id (the truth, or a wrong class at ``rate``)."""
        truth = oracle_labels(pool, ids)
        n_classes = len(pool.classes)
        answers = []
        for item_id, true in zip(ids, truth):
            given = true
            if self.rng.random() < self.rate:
                offset = 1 if self.kind == "class-dependent" else self.rng.integers(1, n_classes)
                given = (true + int(offset)) % n_classes
            (self.flipped.add if given != true else self.flipped.discard)(item_id)
            answers.append(given)
        return answers


@dataclass(frozen=True)
class OracleRound:
    """One trained model of an oracle run and how it came about.

    Attributes
    ----------
    index : int
        0 for the model trained on the initial labels, then one per acquisition.
    n_labels : int
        Labels the model was trained on.
    accuracy : float or None
        The session's evaluation after training (``None`` when it has none yet).
    train : TrainReport
        The training run.
    retrain_seconds : float
        Wall time of the retrain, evaluation included.
    query_timings : dict
        ``session.last_query_timings`` of the query that acquired this round's new labels
        (empty for round 0).
    acquired : list
        The pool ids labeled since the previous round (round 0: the initial ids).
    """

    index: int
    n_labels: int
    accuracy: float | None
    train: TrainReport
    retrain_seconds: float
    query_timings: dict = field(default_factory=dict)
    acquired: list = field(default_factory=list)

    @property
    def eval_seconds(self) -> float:
        """The part of the retrain spent after training (evaluation, bookkeeping)."""
        return self.retrain_seconds - self.train.seconds

    def query_seconds(self) -> dict:
        """The query's ``*_seconds`` timings, rounded for a results file."""
        return {
            key: round(value, 4)
            for key, value in self.query_timings.items()
            if key.endswith("seconds")
        }


def run_oracle(
    session,
    *,
    initial: int,
    seed: int,
    batch_size: int,
    rounds: int | None = None,
    budget: int | None = None,
    train_config_for_round: Callable[[int], TrainConfig] | None = None,
    noise: LabelNoise | None = None,
    relabel: float = 0.0,
) -> Iterator[OracleRound]:
    """Label ``initial`` balanced items, then alternate training and oracle-answered queries.

    Parameters
    ----------
    session : Session
        A fresh session on a pool with targets (``store=False`` so a rerun starts afresh).
    initial : int
        Class-balanced initial labels (see :func:`balanced_initial_ids`).
    seed : int
        Seed of the initial choice.
    batch_size : int
        Labels acquired per round (fewer when the budget leaves fewer).
    rounds : int, optional
        Stop after this many acquisitions (``rounds + 1`` models).
    budget : int, optional
        Stop once this many labels are reached; the last query is cut to fit.
    train_config_for_round : callable, optional
        ``round index -> TrainConfig`` set on the session before each retrain (e.g. a long
        first training, then short warm-started ones).
    noise : LabelNoise, optional
        A noisy annotator answers instead of the ground truth.
    relabel : float
        Share of each queried batch given to label suspects (``session.query(relabel=)``);
        the annotator answers each again and the session relabels (or keeps) it.

    Yields
    ------
    OracleRound
        One per trained model, before the next query is made.
    """
    if rounds is None and budget is None:
        raise OracleSetupError("run_oracle needs rounds or budget, or it would never stop")
    pool = session.pool
    acquired = balanced_initial_ids(pool, initial, seed)
    answer = oracle_labels if noise is None else noise.answer
    session.label(acquired, answer(pool, acquired))
    query_timings: dict = {}
    index = 0
    while True:
        if train_config_for_round is not None:
            session.train_config = train_config_for_round(index)
        started = time.perf_counter()
        report = session.retrain()  # evaluates the new model into session.history
        retrain_seconds = time.perf_counter() - started
        yield OracleRound(
            index=index,
            n_labels=session.n_labels,
            accuracy=session.history[-1]["accuracy"],
            train=report,
            retrain_seconds=retrain_seconds,
            query_timings=query_timings,
            acquired=acquired,
        )
        remaining = batch_size if budget is None else budget - session.n_labels
        if index == rounds or remaining <= 0:
            return
        batch = session.query(min(batch_size, remaining), relabel=relabel)
        query_timings = dict(session.last_query_timings)
        reviewed = [item.id for item in batch.items if getattr(item, "suspect", None)]
        for item_id, class_index in zip(reviewed, answer(pool, reviewed)):
            session.relabel(item_id, class_index)  # the same answer records a keep
        acquired = [item_id for item_id in batch.ids if item_id not in set(reviewed)]
        session.label(acquired, answer(pool, acquired))
        index += 1
