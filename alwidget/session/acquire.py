"""One acquisition pipeline: predict → score → select, for every caller.

The solo query, the team ranking, the embedding map and the simulated oracle (through the
query) all call :func:`acquire`; what it computes follows the strategy's declared needs
(:class:`alwidget.strategies.StrategySpec`), so no caller names a strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import strategies
from ..strategies import AcquisitionInputs, Selection, StrategySpec
from .checks import check_score_subset
from .model_state import ModelState

__all__ = ["Acquisition", "AcquisitionSettings", "acquire"]


@dataclass
class AcquisitionSettings:
    """What the session acquires with; changed by :meth:`alwidget.Session.set_strategy`."""

    strategy: str
    spec: StrategySpec
    mc_samples: int
    score_subset: int | None
    rng: np.random.Generator = field(repr=False)

    def __post_init__(self) -> None:
        # Checked here, where every caller's setting arrives: 0 or a negative count would
        # otherwise fail inside numpy at the first query.
        self.score_subset = check_score_subset(self.score_subset)

    def subsample(self, positions: np.ndarray) -> np.ndarray:
        """``positions``, or ``score_subset`` of them drawn at random (sorted) when more."""
        if self.score_subset is None or len(positions) <= self.score_subset:
            return positions
        return np.sort(self.rng.choice(positions, size=self.score_subset, replace=False))


@dataclass(frozen=True)
class Acquisition:
    """The result of one pass over ``positions`` (pool positions, aligned with the arrays).

    ``selection`` indexes into ``positions``; it is None when only scores were asked for.
    """

    positions: np.ndarray
    log_probs_N_K_C: np.ndarray
    scores_N: np.ndarray
    selection: Selection | None
    timings: dict


def acquire(
    model: ModelState,
    settings: AcquisitionSettings,
    positions: np.ndarray,
    *,
    batch_size: int | None = None,
    labeled_positions: np.ndarray | None = None,
    n_labels: int = 0,
) -> Acquisition:
    """Score ``positions`` with the session's strategy and, given ``batch_size``, select.

    Parameters
    ----------
    model : ModelState
        Predicts (reusing its cached pass of the current version).
    settings : AcquisitionSettings
        Strategy, MC samples and the random generator.
    positions : np.ndarray
        Pool positions of the candidates.
    batch_size : int, optional
        How many to select; None scores only (the map, explaining a handed-out batch).
    labeled_positions : np.ndarray, optional
        The labeled items, read when the strategy needs their embeddings.
    n_labels : int
        Labels the session holds now (recorded with the cached pass).
    """
    spec = settings.spec
    started = time.perf_counter()
    want_embeddings = spec.needs_embeddings and batch_size is not None
    log_probs, embeddings = model.scoring_pass(
        positions, mc_samples=settings.mc_samples, want_embeddings=want_embeddings,
        n_labels=n_labels,
    )  # fmt: skip
    labeled_embeddings = None
    if want_embeddings and spec.needs_labeled_embeddings and labeled_positions is not None:
        if len(labeled_positions):
            labeled_embeddings = model.predict(
                labeled_positions, mc_samples=1, embeddings=True
            ).embeddings_N_D
    predicted = time.perf_counter()
    scores = strategies.score_with(spec, log_probs, settings.rng)
    scored = time.perf_counter()
    selection = None
    if batch_size is not None:
        inputs = AcquisitionInputs(log_probs, embeddings, labeled_embeddings, settings.rng)
        selection = spec.selector_function(scores, batch_size, inputs)
    timings = {
        "predict_seconds": predicted - started,
        "score_seconds": scored - predicted,
        "select_seconds": time.perf_counter() - scored,
        "n_scored": len(positions),
    }
    return Acquisition(positions, log_probs, scores, selection, timings)
