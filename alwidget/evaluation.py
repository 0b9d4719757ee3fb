"""How good is the model: held-out metrics, and k-fold cross-validation on the labels when
there is no held-out split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .models import ModelFactory
from .predict import predict
from .training import TrainConfig, train_model

__all__ = ["classification_metrics", "cross_validate"]


def classification_metrics(log_probs_N_K_C: np.ndarray, targets: np.ndarray) -> dict:
    """Accuracy and mean negative log-likelihood of the mean prediction over ``K``."""
    mean_probs = np.exp(np.asarray(log_probs_N_K_C, dtype=np.float64)).mean(axis=1)
    targets = np.asarray(targets, dtype=np.int64)
    picked = np.clip(mean_probs[np.arange(len(targets)), targets], 1e-12, None)
    return {
        "accuracy": float((mean_probs.argmax(axis=1) == targets).mean()),
        "nll": float(-np.log(picked).mean()),
        "n_test": int(len(targets)),
    }


def cross_validate(
    factory: ModelFactory,
    inputs: torch.Tensor,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    folds: int,
    seed: int,
    device: torch.device,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict | None:
    """Stratified ``folds``-fold estimate of accuracy from the labeled items alone.

    Returns ``None`` with fewer than two items per fold. Folds whose training part has a
    single class are left out (their items are not counted). ``progress`` gets
    ``{"fold", "folds", "step", "total_steps"}`` as the folds train.
    """
    if len(targets) < 2 * folds:
        return None
    rng = np.random.default_rng(seed + len(targets))
    fold_of = np.empty(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        fold_of[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    predictions, truths = [], []
    for fold in range(folds):
        train_rows, test_rows = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        if len(test_rows) == 0 or len(np.unique(targets[train_rows])) < 2:
            continue
        model = factory.build(seed)
        fold_progress = None
        if progress is not None:

            def fold_progress(info, fold=fold):
                progress({**info, "fold": fold, "folds": folds})

        train_model(
            model,
            inputs[train_rows],
            targets[train_rows],
            config,
            seed=seed + fold,
            device=device,
            should_stop=should_stop,
            progress=fold_progress,
        )
        if should_stop is not None and should_stop():
            return None  # a half-trained fold would understate the accuracy
        held_out = inputs[test_rows]
        predictions.append(
            predict(
                model, held_out.__getitem__, np.arange(len(test_rows)), device=device
            ).log_probs_N_K_C
        )
        truths.append(targets[test_rows])
    if not predictions:
        return None
    metrics = classification_metrics(np.concatenate(predictions), np.concatenate(truths))
    return {**metrics, "method": f"{folds}-fold cross-validation on the labels"}
