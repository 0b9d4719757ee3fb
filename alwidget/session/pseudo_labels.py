"""Pseudo-labels (CEAL, Wang et al. 2016): unlabeled items the model is sure of, trained on
with their predicted class.

Chosen afresh before every training run from the current model's MC samples (the last
query's scoring pass when it belongs to that model, else a pass over a random sample of
unlabeled items): the mean probability of the predicted class must be high *and* the
samples must agree (low BALD), and each predicted class keeps only its most confident
items, so a class the model over-predicts cannot flood the training set. They live only in
memory, never in the label book or the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..strategies.scores import bald, mean_log_probs

__all__ = ["PseudoLabels", "select_pseudo_labels", "choose_pseudo_labels"]


def select_pseudo_labels(
    log_probs_N_K_C: np.ndarray,
    *,
    min_confidence: float,
    max_bald: float,
    per_class: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``log_probs_N_K_C`` confident enough to pseudo-label.

    Parameters
    ----------
    log_probs_N_K_C : np.ndarray
        Log-probabilities of ``N`` candidates under ``K`` MC samples / members.
    min_confidence : float
        Least mean probability of the predicted class.
    max_bald : float
        Largest BALD score (nats) — the samples' disagreement.
    per_class : int
        At most this many rows per predicted class: the most confident (ties: lower BALD,
        then the earlier row).

    Returns
    -------
    rows_M, classes_M, confidence_M, bald_M : np.ndarray
        The chosen rows (ascending), their predicted class, mean probability and BALD.
    """
    mean_probs_N_C = np.exp(mean_log_probs(log_probs_N_K_C))
    classes_N = mean_probs_N_C.argmax(axis=1)
    confidence_N = mean_probs_N_C.max(axis=1)
    bald_N = bald(log_probs_N_K_C) if log_probs_N_K_C.shape[1] > 1 else np.zeros(len(classes_N))
    eligible = np.flatnonzero((confidence_N >= min_confidence) & (bald_N <= max_bald))
    chosen = []
    for label in np.unique(classes_N[eligible]):
        members = eligible[classes_N[eligible] == label]
        order = np.lexsort((members, bald_N[members], -confidence_N[members]))
        chosen.append(members[order[:per_class]])
    rows = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return rows, classes_N[rows], confidence_N[rows], bald_N[rows]


@dataclass(frozen=True)
class PseudoLabels:
    """The pseudo-labels of one training run.

    Attributes
    ----------
    chosen_by_version : int
        The model version whose predictions chose them.
    positions : np.ndarray
        Pool positions.
    classes : np.ndarray
        Predicted class index of each.
    confidence, bald : np.ndarray
        Mean probability of that class and the BALD score.
    n_candidates : int
        Unlabeled items that were considered.
    """

    chosen_by_version: int
    positions: np.ndarray
    classes: np.ndarray
    confidence: np.ndarray
    bald: np.ndarray
    n_candidates: int

    def __len__(self) -> int:
        return len(self.positions)

    def summary(self, pool, class_names: list[str], sample: int, seed: int) -> dict:
        """Counts per class and a random sample, with pool ids and class names."""
        counts = {name: 0 for name in class_names}
        for index in self.classes.tolist():
            counts[class_names[index]] += 1
        rows = np.random.default_rng(seed).permutation(len(self))[:sample]
        # Listed in pool order, so a sample of everything reads like the pool.
        return {
            "n": len(self),
            "n_candidates": self.n_candidates,
            "chosen_by_version": self.chosen_by_version,
            "counts": counts,
            "sample": [
                {
                    "id": pool.ids[int(self.positions[row])],
                    "predicted": class_names[int(self.classes[row])],
                    "confidence": float(self.confidence[row]),
                    "bald": float(self.bald[row]),
                }
                for row in sorted(rows.tolist())
            ],
        }


def choose_pseudo_labels(model_state, labeled_positions: np.ndarray, config, seed: int):
    """Pseudo-labels for the next run of ``model_state`` (``None`` before a first model).

    Reuses the current model's last scoring pass when there is one (the same MC samples the
    query ranked by), else predicts ``config.pseudo_label_candidates`` random unlabeled items
    with ``config.pseudo_label_mc_samples`` MC samples.
    """
    with model_state.lock:
        version = model_state.version
    if version == 0:
        return None
    labeled = np.zeros(len(model_state.pool), dtype=bool)
    labeled[labeled_positions] = True
    unlabeled = np.flatnonzero(~labeled)
    take = min(len(unlabeled), config.pseudo_label_candidates)
    cached = model_state.cached_scoring()
    positions = np.zeros(0, dtype=np.int64)
    if cached is not None:
        positions = np.flatnonzero((cached.row_of >= 0) & ~labeled)
    # A pass that kept log-probs for fewer items (e.g. a streamed one) is not enough to pick from.
    if len(positions) >= take:
        log_probs = cached.log_probs_N_K_C[cached.row_of[positions]]
    else:
        rng = np.random.default_rng(seed)
        positions = np.sort(rng.choice(unlabeled, size=take, replace=False))
        log_probs = model_state.predict(
            positions, mc_samples=config.pseudo_label_mc_samples, embeddings=False
        ).log_probs_N_K_C
    if len(positions) == 0:
        return None
    rows, classes, confidence, bald_scores = select_pseudo_labels(
        log_probs,
        min_confidence=config.pseudo_label_confidence,
        max_bald=config.pseudo_label_max_bald,
        per_class=config.pseudo_label_per_class,
    )
    return PseudoLabels(version, positions[rows], classes, confidence, bald_scores, len(positions))
