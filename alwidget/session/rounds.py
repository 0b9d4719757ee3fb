"""A training round: snapshot the labels, train, evaluate, record, measure coverage."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import NotEnoughClassesError, TrainingInProgressError
from ..training import TrainConfig, TrainReport
from .labels import LabelBook
from .model_state import ModelState
from .pseudo_labels import PseudoLabels, choose_pseudo_labels

__all__ = ["COVERAGE_HISTORY_KEYS", "TrainingRounds"]

# The coverage figures copied into the history entry of the model they describe.
COVERAGE_HISTORY_KEYS = (
    "radius",
    "k_center_radius",
    "covered_fraction",
    "unlabeled_covered_fraction",
    "n_labeled",
)


@dataclass
class TrainingRounds:
    """Runs :meth:`alwidget.Session.retrain` and keeps the learning history.

    ``history`` is the session's list (appended to in place); ``classes`` its shared names.
    ``pseudo_labels`` are those the current model was trained with (``None`` when off).
    """

    book: LabelBook
    model: ModelState
    link: object
    history: list[dict]
    classes: list[str]
    # Held for a whole round; independent of every other lock (never waited on).
    training_lock: threading.Lock = field(default_factory=threading.Lock)
    pseudo_labels: PseudoLabels | None = None

    def retrain(self, config: TrainConfig, *, cv_folds: int, track_coverage: bool,
                progress: Callable[[dict], None] | None,
                should_stop: Callable[[], bool] | None,
                cross_validate: bool = True) -> TrainReport:  # fmt: skip
        if not self.training_lock.acquire(blocking=False):
            raise TrainingInProgressError(
                "a training run is already in progress; wait for it to finish"
            )
        try:
            self.book.before_training()
            positions, targets = self.book.snapshot()
            present = sorted({self.classes[t] for t in targets.tolist()})
            if len(present) < 2:
                raise NotEnoughClassesError(
                    "training needs labels of at least two classes; labeled so far: "
                    f"{present or 'nothing'}"
                )
            run_seed = self.model.member_seed(0) + len(targets)
            pseudo = (
                choose_pseudo_labels(self.model, positions, config, run_seed)
                if config.pseudo_labels
                else None
            )
            report = self.model.train(
                positions, targets, config, progress=progress, should_stop=should_stop,
                cv_folds=cv_folds,
                cross_validation=cross_validate and self.model.held_out is None,
                pseudo=pseudo,
                unlabeled_positions=self._unlabeled_sample(config, positions, run_seed),
            )  # fmt: skip
            self.pseudo_labels = pseudo
            evaluation = self.model.evaluate()
            entry = {
                "model_version": self.model.version,
                "n_labels": int(len(targets)),
                "accuracy": None if evaluation is None else evaluation["accuracy"],
                "train_seconds": report.seconds,
                "steps": report.steps,
                "train_loss": report.train_loss,
                "time": time.time(),
            }
            if config.pseudo_labels:
                entry["n_pseudo_labels"] = report.n_pseudo_labels
            if config.semi_supervised:
                entry["consistency_steps"] = report.consistency_steps
            self.book.annotate_round(entry)
            self.history.append(entry)
            self.link.record_round(entry)
            self.link.save_model(entry["model_version"], self.model.members)
            if track_coverage:
                try:
                    self.coverage(None, n_farthest=10)
                except Exception as error:  # the new model is in place; keep it
                    warnings.warn(
                        f"coverage of model {self.model.version} could not be computed: {error}",
                        stacklevel=3,
                    )
            return report
        finally:
            self.training_lock.release()

    def cross_validate(self, config: TrainConfig, *, cv_folds: int,
                       progress: Callable[[dict], None] | None,
                       should_stop: Callable[[], bool] | None) -> dict | None:  # fmt: skip
        """Cross-validate the current model's recipe on the first labels, as many as it was
        trained on.

        The estimate goes into that model's history entry (and the store) as ``accuracy``.
        Returns None without labels enough (fewer than two per fold), with a held-out split,
        or when ``should_stop`` stopped it.
        """
        if self.model.held_out is not None or cv_folds < 2:
            return None
        with self.training_lock:  # never beside a training run: the two would share 2 cores
            version = self.model.version
            entry = next(
                (e for e in reversed(self.history) if e.get("model_version") == version), None
            )
            if version == 0 or entry is None:
                return None
            positions, targets = self.book.snapshot()
            positions, targets = positions[: entry["n_labels"]], targets[: entry["n_labels"]]
            result = self.model.cross_validate(
                self.model.pool.inputs(positions), targets, config, cv_folds=cv_folds,
                version=version, should_stop=should_stop, progress=progress,
            )  # fmt: skip
            if result is not None and self.model.version == version:
                entry["accuracy"] = result["accuracy"]
                self.link.update_round(entry)
            return result

    def _unlabeled_sample(self, config: TrainConfig, labeled, seed: int) -> np.ndarray | None:
        """A seeded random sample of the positions outside the training snapshot ``labeled``,
        for consistency training."""
        if config.semi_supervised is None:
            return None
        unlabeled = np.setdiff1d(np.arange(len(self.model.pool)), labeled)
        take = min(len(unlabeled), config.unlabeled_sample)
        chosen = np.random.default_rng(seed + 1).choice(unlabeled, size=take, replace=False)
        return np.sort(chosen)

    def coverage(self, radius: float | None, *, n_farthest: int) -> dict:
        """The model's coverage report, also recorded in its history entry and the store."""
        report = self.model.coverage(self.book.labeled_mask, radius, n_farthest)
        summary = {key: report[key] for key in COVERAGE_HISTORY_KEYS}
        for entry in reversed(self.history):
            if entry.get("model_version") == report["model_version"]:
                entry["coverage"] = summary
                self.link.update_round(entry)  # so a resumed history has it too
                break
        return report
