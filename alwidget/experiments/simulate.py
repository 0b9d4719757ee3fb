"""Headless active learning with a ground-truth oracle: compare strategies, teach, benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..data import Pool
from ..errors import AlwidgetError
from ..session import Session
from ..training import TrainConfig
from .oracle import LabelNoise, OracleSetupError, run_oracle

__all__ = ["cleaning_scores", "pseudo_label_precision", "simulate"]


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
    encoder=None,
    on_round: Callable[[dict], None] | None = None,
    label_noise: float = 0.0,
    noise_kind: str = "symmetric",
    relabel_fraction: float = 0.0,
) -> dict:
    """Run the loop: label ``initial`` balanced items, then ``rounds`` × (query, oracle, retrain).

    Parameters
    ----------
    pool : Pool
        A pool with a target for every item (the oracle's answers).
    strategy, model, mc_samples, ensemble, train_config, score_subset, device, encoder
        As for :class:`~alwidget.Session` (with ``encoder``, ``model`` is the head over the
        cached features; the encoder's progress bar is not shown).
    initial : int
        Class-balanced initial labels.
    batch_size : int
        Labels acquired per round.
    rounds : int
        Acquisition rounds after the initial labels.
    seed : int
        Seed of the session and of the initial choice.
    on_round : callable, optional
        Called with each round's record as soon as it is known (e.g. a progress bar).
    label_noise, noise_kind : float, str
        The oracle answers wrongly at this rate (seeded by ``seed``): ``"symmetric"`` (any
        other class) or ``"class-dependent"`` (always the next class), see
        :class:`~alwidget.experiments.oracle.LabelNoise`.
    relabel_fraction : float
        Share of each batch given to label suspects, answered again by the oracle. With
        ``label_noise``, the result's ``"cleaning"`` scores the final
        :meth:`~alwidget.Session.label_issues` against the labels still wrong.

    Returns
    -------
    dict
        ``{"dataset", "strategy", "seed", ..., "rounds": [{"round", "n_labels",
        "accuracy", "train_seconds", "score_seconds", "select_seconds"}, ...],
        "total_seconds"}``. Round 0 is the model trained on the initial labels. With
        ``train_config.pseudo_labels``, each round has ``"pseudo_labels": {"n", "correct",
        "precision"}`` (checked against the hidden targets) and the result
        ``"pseudo_label_precision"`` over all rounds (``None`` when none were used);
        ``"pseudo_labels"`` and ``"semi_supervised"`` record the training settings.

    Raises
    ------
    OracleSetupError
        ``rounds`` is negative, ``initial`` below 2, the pool has no targets, or the labels
        asked for (``initial + batch_size × rounds``) exceed the pool's items.
    """
    _check_plan(pool, initial, batch_size, rounds)
    started = time.perf_counter()
    session = Session(
        pool,
        model,
        strategy=strategy,
        mc_samples=mc_samples,
        ensemble=ensemble,
        seed=seed,
        batch_size=batch_size,
        train_config=train_config,
        score_subset=score_subset,
        device=device,
        encoder=encoder,
        progress=False,
        store=False,  # an oracle's labels need no file, and a rerun must not resume this one
    )
    records = []
    noise = LabelNoise(label_noise, noise_kind, seed) if label_noise else None
    for step in run_oracle(
        session, initial=initial, seed=seed, batch_size=batch_size, rounds=rounds,
        noise=noise, relabel=relabel_fraction,
    ):  # fmt: skip
        record = {
            "round": step.index,
            "n_labels": step.n_labels,
            "accuracy": step.accuracy,
            "train_seconds": round(step.train.seconds, 3),
            **step.query_seconds(),
            "train_steps": step.train.steps,
        }
        if session.train_config.pseudo_labels:
            record["pseudo_labels"] = pseudo_label_precision(session, pool)
        records.append(record)
        if on_round is not None:
            on_round(record)
    return {
        "dataset": pool.name,
        "strategy": strategy,
        "seed": seed,
        # What was labeled: fewer than asked when a class has fewer items than its share.
        "initial": records[0]["n_labels"],
        "batch_size": batch_size,
        "mc_samples": session.mc_samples,
        "ensemble": ensemble,
        "model": session.model_name,
        "encoder": encoder
        if encoder is None or isinstance(encoder, str)
        else type(encoder).__name__,
        "pseudo_labels": session.train_config.pseudo_labels,
        "semi_supervised": session.train_config.semi_supervised,
        "rounds": records,
        "pseudo_label_precision": _overall_precision(records),
        "label_noise": label_noise,
        "noise_kind": noise_kind,
        "relabel_fraction": relabel_fraction,
        "cleaning": None if noise is None else cleaning_scores(session, noise),
        "final_accuracy": records[-1]["accuracy"],
        "total_seconds": round(time.perf_counter() - started, 3),
    }


def pseudo_label_precision(session, pool: Pool) -> dict:
    """How many of the current model's pseudo-labels the hidden targets agree with."""
    chosen = session.pseudo_labels(sample=None)["sample"]
    correct = sum(
        session.classes[pool.targets[pool.position(item["id"])]] == item["predicted"]
        for item in chosen
    )
    return {
        "n": len(chosen),
        "correct": int(correct),
        "precision": correct / len(chosen) if chosen else None,
    }


def cleaning_scores(session, noise: LabelNoise) -> dict:
    """Precision and recall of ``session.label_issues()`` against the labels still wrong."""
    wrong = noise.flipped & set(session.labeled_ids)
    try:
        found = {suspect.id for suspect in session.label_issues()}
    except AlwidgetError as error:  # too few labels for the folds
        return {"labels_wrong": len(wrong), "error": str(error)}
    hits = len(found & wrong)
    return {
        "labels_wrong": len(wrong),
        "suspects": len(found),
        "precision": hits / len(found) if found else None,
        "recall": hits / len(wrong) if wrong else None,
    }


def _overall_precision(records: list[dict]) -> float | None:
    used = [record["pseudo_labels"] for record in records if "pseudo_labels" in record]
    total = sum(entry["n"] for entry in used)
    return sum(entry["correct"] for entry in used) / total if total else None


def _check_plan(pool: Pool, initial, batch_size, rounds) -> None:
    """Refuse a run that would ask for more labels than the pool has, before any training."""
    if not isinstance(pool, Pool):
        raise OracleSetupError(
            f"pool must be an alwidget.Pool with targets, got {type(pool).__name__}"
        )
    for value, name, minimum in ((initial, "initial", 2), (batch_size, "batch_size", 1),
                                 (rounds, "rounds", 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise OracleSetupError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    wanted = initial + batch_size * rounds
    if wanted > len(pool):
        most = max(0, (len(pool) - initial) // batch_size)
        fix = (
            f"lower initial to at most {len(pool)}"
            if initial > len(pool)
            else f"use at most {most} rounds of {batch_size}"
        )
        raise OracleSetupError(
            f"initial={initial} + batch_size={batch_size} × rounds={rounds} = {wanted} labels, "
            f"but pool {pool.name!r} has only {len(pool)} items; {fix}"
        )
