"""Headless active learning with a ground-truth oracle: compare strategies, teach, benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..data import Pool
from ..session import Session
from ..training import TrainConfig

__all__ = ["balanced_initial_ids", "simulate"]


def balanced_initial_ids(pool: Pool, count: int, seed: int) -> list:
    """``count`` pool ids spread evenly over the classes (the usual cold start, e.g. 2 per
    class for 20 MNIST labels); the remainder goes to randomly chosen classes."""
    if not pool.has_targets:
        raise ValueError("simulation needs ground truth for every pool item (pool.targets)")
    if count < 2:
        raise ValueError(f"the initial labeled set needs at least 2 items, got {count}")
    rng = np.random.default_rng(seed)
    present = np.unique(pool.targets)
    per_class = np.full(len(present), count // len(present))
    per_class[rng.choice(len(present), size=count % len(present), replace=False)] += 1
    chosen = []
    for label, take in zip(present, per_class):
        members = np.flatnonzero(pool.targets == label)
        chosen.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return [pool.ids[p] for p in sorted(chosen)]


def simulate(
    pool: Pool,
    *,
    strategy: str = "entropy",
    initial: int = 20,
    batch_size: int = 10,
    rounds: int = 5,
    seed: int = 0,
    model=None,
    mc_samples: int | None = None,
    ensemble: int = 1,
    train_config: TrainConfig | None = None,
    score_subset: int | None = None,
    device: str | None = None,
    on_round: Callable[[dict], None] | None = None,
) -> dict:
    """Run the loop: label ``initial`` balanced items, then ``rounds`` × (query, oracle, retrain).

    Returns
    -------
    dict
        ``{"dataset", "strategy", "seed", ..., "rounds": [{"round", "n_labels",
        "accuracy", "train_seconds", "score_seconds", "select_seconds"}, ...],
        "total_seconds"}``. Round 0 is the model trained on the initial labels.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be ≥ 0, got {rounds}")
    started = time.perf_counter()
    session = Session(
        pool, model, strategy=strategy, mc_samples=mc_samples, ensemble=ensemble, seed=seed,
        batch_size=batch_size, train_config=train_config, score_subset=score_subset, device=device,
        store=False,  # an oracle's labels need no file, and a rerun must not resume this one
    )
    initial_ids = balanced_initial_ids(pool, initial, seed)
    session.label(initial_ids, [int(pool.targets[pool.position(i)]) for i in initial_ids])
    records = []
    query_timings: dict = {}
    for round_index in range(rounds + 1):
        report = session.retrain()
        evaluation = session.evaluate()
        record = {
            "round": round_index,
            "n_labels": session.n_labels,
            "accuracy": None if evaluation is None else evaluation["accuracy"],
            "train_seconds": round(report.seconds, 3),
            **{key: round(value, 4) for key, value in query_timings.items() if key.endswith("seconds")},
            "train_steps": report.steps,
        }
        records.append(record)
        if on_round is not None:
            on_round(record)
        if round_index == rounds:
            break
        batch = session.query(batch_size)
        query_timings = session.last_query_timings  # timings of the query that led to the next round
        session.label(batch.ids, [int(pool.targets[pool.position(i)]) for i in batch.ids])
    return {
        "dataset": pool.name,
        "strategy": strategy,
        "seed": seed,
        "initial": initial,
        "batch_size": batch_size,
        "mc_samples": session.mc_samples,
        "ensemble": ensemble,
        "model": session.model_name,
        "rounds": records,
        "final_accuracy": records[-1]["accuracy"],
        "total_seconds": round(time.perf_counter() - started, 3),
    }
