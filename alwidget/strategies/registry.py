"""The strategy table: each named strategy is a score, a selector and what they need.

A strategy's needs are declared once, on its :class:`StrategySpec`; the session reads them
to decide how many MC samples to draw, whether to compute embeddings and whether the model
can serve the strategy at all. Nothing else names a strategy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from .badge import select_badge
from .batchbald import select_batchbald
from .diversity import select_coreset, select_hybrid, select_typicality
from .scores import (
    bald,
    entropy,
    least_confidence,
    margin,
    mean_std,
    random_scores,
    variation_ratios,
)
from .selection import select_top_k
from .stochastic import select_stochastic

__all__ = [
    "NEEDS_SAMPLES",
    "SCORES",
    "SELECTORS",
    "STRATEGIES",
    "StrategySpec",
    "available",
    "get_strategy",
    "register_strategy",
    "score_uses_rng",
    "score_with",
    "unregister_strategy",
]

SCORES: dict[str, Callable] = {
    "random": random_scores,
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "bald": bald,
    "variation_ratios": variation_ratios,
    "mean_std": mean_std,
}

# Selectors share one signature: ``selector(scores_N, batch_size, inputs) -> Selection``.
# Options (e.g. ``num_candidates`` for hybrid, ``beta`` for stochastic) are keyword-only
# with defaults: ``functools.partial(SELECTORS["hybrid"], num_candidates=500)``.
SELECTORS: dict[str, Callable] = {
    "top_k": select_top_k,
    "batchbald": select_batchbald,
    "coreset": select_coreset,
    "badge": select_badge,
    "hybrid": select_hybrid,
    "stochastic": select_stochastic,
    "stochastic_power": partial(select_stochastic, mode="power"),
    "stochastic_softmax": partial(select_stochastic, mode="softmax"),
    "stochastic_softrank": partial(select_stochastic, mode="softrank"),
    "typicality": select_typicality,
}

# MC samples drawn when a strategy needs K > 1 and does not say how many.
DEFAULT_MC_SAMPLES = 20


@dataclass(frozen=True)
class StrategySpec:
    """How a named strategy is computed, and what it needs.

    Attributes
    ----------
    score : str or callable
        A key of ``SCORES``, or ``f(log_probs_N_K_C[, rng=]) -> scores_N``.
    selector : str or callable
        A key of ``SELECTORS`` (``"top_k"`` or a batch-aware selector), or a callable with
        the selector signature. Selectors that ignore scores (coreset, badge, typicality)
        still name a cheap score so the UI can show one.
    description : str
        One line shown to users.
    needs_embeddings : bool
        The selector reads ``AcquisitionInputs.embeddings_N_D`` (penultimate-layer features
        of the candidates; BADGE builds its gradient embeddings from them).
    needs_samples : bool
        The strategy only separates items with K > 1 stochastic predictions (MC dropout or
        an ensemble); a session refuses it for a model that cannot give them.
    needs_labeled_embeddings : bool
        The selector also reads ``AcquisitionInputs.labeled_embeddings_L_D``, the features
        of the items already labeled (the set a core-set must cover).
    mc_samples : int, optional
        MC samples per member to draw by default; ``None`` means 20 when
        ``needs_samples`` and 1 otherwise.
    row_wise : bool
        Each item's score depends on that item's log-probs alone, and the selector reads
        only ``scores_N`` (and ``inputs.rng``). A pool is then scored chunk by chunk and a
        large pool's ``log_probs_N_K_C`` need never be held whole (see
        :func:`alwidget.session.acquire.acquire`). Strategies whose selector reads the
        candidates' log-probs or embeddings (BatchBALD, BADGE, core-set) are not row-wise.
    """

    score: str | Callable
    selector: str | Callable
    description: str
    needs_embeddings: bool = False
    needs_samples: bool = False
    needs_labeled_embeddings: bool = False
    mc_samples: int | None = None
    row_wise: bool = False

    def __post_init__(self) -> None:
        if self.row_wise and (self.needs_embeddings or self.needs_labeled_embeddings):
            raise ValueError(
                "StrategySpec: a row-wise strategy scores chunk by chunk and keeps no "
                "embeddings, so it cannot also need them; drop row_wise or the embeddings"
            )

    @property
    def default_mc_samples(self) -> int:
        """MC samples per member a session draws when the user does not say."""
        if self.mc_samples is not None:
            return self.mc_samples
        return DEFAULT_MC_SAMPLES if self.needs_samples else 1

    @property
    def score_name(self) -> str:
        """The score's name, for labels such as a map's colour bar."""
        return self.score if isinstance(self.score, str) else self.score.__name__

    @property
    def score_function(self) -> Callable:
        return SCORES[self.score] if isinstance(self.score, str) else self.score

    @property
    def selector_function(self) -> Callable:
        return SELECTORS[self.selector] if isinstance(self.selector, str) else self.selector


STRATEGIES: dict[str, StrategySpec] = {
    "random": StrategySpec("random", "top_k", "uniformly at random (baseline)", row_wise=True),
    "least_confidence": StrategySpec(
        "least_confidence", "top_k", "lowest top-class probability", row_wise=True
    ),
    "margin": StrategySpec(
        "margin", "top_k", "smallest gap between the two likeliest classes", row_wise=True
    ),
    "entropy": StrategySpec("entropy", "top_k", "highest predictive entropy", row_wise=True),
    "bald": StrategySpec(
        "bald",
        "top_k",
        "highest mutual information between label and weights (MC dropout)",
        needs_samples=True,
        row_wise=True,
    ),
    "variation_ratios": StrategySpec(
        "variation_ratios",
        "top_k",
        "most disagreement among MC votes",
        needs_samples=True,
        row_wise=True,
    ),
    "mean_std": StrategySpec(
        "mean_std",
        "top_k",
        "largest spread of class probabilities across MC samples",
        needs_samples=True,
        row_wise=True,
    ),
    # A BatchBALD batch can learn at most log K nats about the weights, so with K = 20 the
    # last picks of a batch of 10 are close to arbitrary; 50 keeps them informative.
    "batchbald": StrategySpec(
        "bald",
        "batchbald",
        "jointly most informative batch: BatchBALD (needs consistent MC samples)",
        needs_samples=True,
        mc_samples=50,
    ),
    "coreset": StrategySpec(
        "entropy",
        "coreset",
        "k-center core-set: items farthest from everything labeled",
        needs_embeddings=True,
        needs_labeled_embeddings=True,
    ),
    "badge": StrategySpec(
        "entropy",
        "badge",
        "BADGE: diverse large-gradient items (k-means++ on gradient embeddings)",
        needs_embeddings=True,
    ),
    "hybrid": StrategySpec(
        "entropy",
        "hybrid",
        "most uncertain shortlist (10x batch), then spread out by k-center",
        needs_embeddings=True,
        needs_labeled_embeddings=True,
    ),
    "stochastic_bald": StrategySpec(
        "bald",
        "stochastic_power",
        "BALD sampled without replacement, probability proportional to score",
        needs_samples=True,
        row_wise=True,
    ),
    "typicality": StrategySpec(
        "entropy",
        "typicality",
        "cold start: typical items of clusters no label covers yet (TypiClust)",
        needs_embeddings=True,
        needs_labeled_embeddings=True,
    ),
}

#: Names of the built-in scores that need K > 1 (kept for scripts written against 0.1;
#: the session reads ``StrategySpec.needs_samples``).
NEEDS_SAMPLES = frozenset(
    spec.score for spec in STRATEGIES.values() if spec.needs_samples and spec.selector == "top_k"
)


def available() -> list[str]:
    """Names of every registered strategy, sorted."""
    return sorted(STRATEGIES)


def get_strategy(name: str) -> StrategySpec:
    """Look a strategy up by name, with the list of valid names in the error."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(available())} "
            "or add one with alwidget.strategies.register_strategy()"
        ) from None


def _check_part(value, table: dict, what: str, name: str) -> None:
    if callable(value):
        return
    if not isinstance(value, str) or value not in table:
        raise ValueError(
            f"register_strategy({name!r}): {what}={value!r} is neither a callable nor one of "
            f"{', '.join(sorted(table))}"
        )


def register_strategy(
    name: str,
    score: str | Callable,
    selector: str | Callable = "top_k",
    *,
    description: str = "",
    needs_samples: bool = False,
    needs_embeddings: bool = False,
    needs_labeled_embeddings: bool = False,
    mc_samples: int | None = None,
    row_wise: bool = False,
    replace: bool = False,
) -> StrategySpec:
    """Add a strategy under ``name``; sessions can then use ``strategy=name``.

    Parameters
    ----------
    name : str
        The new strategy's name.
    score : str or callable
        A key of ``SCORES`` or ``f(log_probs_N_K_C) -> scores_N`` (higher = ask first);
        it may take ``rng=`` (a ``numpy.random.Generator``) for its randomness.
    selector : str or callable
        A key of ``SELECTORS`` or ``f(scores_N, batch_size, inputs) -> Selection``.
    description : str
        One line for users.
    needs_samples, needs_embeddings, needs_labeled_embeddings, mc_samples
        What the strategy needs (see :class:`StrategySpec`).
    row_wise : bool
        Declare that ``score`` scores each item from its own log-probs and ``selector``
        reads only the scores, so large pools are scored chunk by chunk (see
        :class:`StrategySpec`). Leave False when unsure: a row-wise pass of a score that
        compares items (e.g. normalises over the pool) would score each chunk alone.
    replace : bool
        Allow replacing an existing strategy of that name.

    Returns
    -------
    StrategySpec
        The registered spec.

    Examples
    --------
    >>> import numpy as np
    >>> from alwidget import strategies
    >>> def spread(log_probs_N_K_C):
    ...     return np.exp(log_probs_N_K_C).std(axis=1).max(axis=-1)
    >>> spec = strategies.register_strategy("spread", spread, needs_samples=True)
    >>> strategies.unregister_strategy("spread")
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_strategy: name must be a non-empty string, got {name!r}")
    if name in STRATEGIES and not replace:
        raise ValueError(
            f"register_strategy: a strategy named {name!r} exists; pick another name or pass "
            "replace=True"
        )
    _check_part(score, SCORES, "score", name)
    _check_part(selector, SELECTORS, "selector", name)
    if mc_samples is not None and (int(mc_samples) != mc_samples or mc_samples < 1):
        raise ValueError(
            f"register_strategy({name!r}): mc_samples must be >= 1, got {mc_samples!r}"
        )
    spec = StrategySpec(
        score,
        selector,
        description or f"custom strategy {name}",
        needs_embeddings=bool(needs_embeddings or needs_labeled_embeddings),
        needs_samples=bool(needs_samples),
        needs_labeled_embeddings=bool(needs_labeled_embeddings),
        mc_samples=None if mc_samples is None else int(mc_samples),
        row_wise=bool(row_wise),
    )
    STRATEGIES[name] = spec
    return spec


def unregister_strategy(name: str) -> None:
    """Remove a strategy added with :func:`register_strategy`."""
    get_strategy(name)
    del STRATEGIES[name]


def score_uses_rng(spec: StrategySpec) -> bool:
    """Whether the strategy's score takes ``rng=`` (so it differs from call to call)."""
    try:
        return "rng" in inspect.signature(spec.score_function).parameters
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        return False


def score_with(spec: StrategySpec, log_probs_N_K_C, rng: np.random.Generator) -> np.ndarray:
    """Run a strategy's score, giving it ``rng`` when it takes one, and check what it returns.

    Raises
    ------
    ValueError
        The score returned something other than one finite number per item.
    """
    function = spec.score_function
    raw = function(log_probs_N_K_C, rng=rng) if score_uses_rng(spec) else function(log_probs_N_K_C)
    scores = np.asarray(raw, dtype=np.float64)
    n_items = np.shape(log_probs_N_K_C)[0]
    if scores.shape != (n_items,) or not np.isfinite(scores).all():
        raise ValueError(
            f"the score {spec.score_name!r} must return one finite number per item, shape "
            f"({n_items},); it returned shape {scores.shape}"
            + ("" if scores.shape != (n_items,) else " with NaN or inf entries")
        )
    return scores
