"""One acquisition pipeline: predict → score → select, for every caller.

The solo query, the team ranking, the embedding map and the simulated oracle (through the
query) all call :func:`acquire`; what it computes follows the strategy's declared needs
(:class:`alwidget.strategies.StrategySpec`), so no caller names a strategy.

A row-wise strategy (``StrategySpec.row_wise``: per-item scores, a selector that reads only
the scores) is scored chunk by chunk. When the candidates' log-probs would take more than
:data:`STREAM_ABOVE_BYTES`, the pass is *streamed*: each chunk is predicted, scored and
dropped, and only ``scores_N`` and the log-probs of the best few candidates survive it, so
memory stays flat in pool size (a 1 000 000-item pool at K=20, C=10 would otherwise hold
800 MB of log-probs, and twice that as float64 while scoring).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import strategies
from ..strategies import AcquisitionInputs, Selection, StrategySpec
from .checks import check_score_subset
from .model_state import ModelState

__all__ = [
    "Acquisition",
    "AcquisitionSettings",
    "KeptLogProbs",
    "KEEP_AT_LEAST",
    "STREAM_ABOVE_BYTES",
    "ScoringProgress",
    "acquire",
]

#: A row-wise pass whose log-probs (float32) would exceed this many bytes is streamed.
STREAM_ABOVE_BYTES = 256 * 2**20

#: A streamed pass keeps the log-probs of at least this many best candidates: enough to
#: explain several batches served from its remembered scores without predicting again.
KEEP_AT_LEAST = 100


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

    def subsample(self, positions: np.ndarray, score_subset: int | None = None) -> np.ndarray:
        """``positions``, or ``score_subset`` of them (default: the session's) drawn at random
        (sorted) when more."""
        limit = self.score_subset if score_subset is None else score_subset
        if limit is None or len(positions) <= limit:
            return positions
        return np.sort(self.rng.choice(positions, size=limit, replace=False))


class KeptLogProbs:
    """The log-probs of a streamed pass, indexed like the full ``log_probs_N_K_C`` by rows.

    The pass keeps the rows with the highest scores; any other row is predicted again on
    demand by ``predict_rows`` (for a streamed pass: the same model, dropout masks and
    forward batch, so the very same numbers). Reading the whole array is refused: a
    streamed pass never holds it.

    Parameters
    ----------
    n_rows : int
        Candidates in the pass.
    predict_rows : callable
        ``rows -> log_probs`` of those rows from the model that made the pass.
    """

    def __init__(self, n_rows: int, predict_rows: Callable[[np.ndarray], np.ndarray]):
        self.n_rows = n_rows
        self._predict_rows = predict_rows
        self.rows = np.empty(0, dtype=np.int64)
        self.scores = np.empty(0)
        self.values: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        tail = () if self.values is None else self.values.shape[1:]
        return (self.n_rows, *tail)

    def __len__(self) -> int:
        return self.n_rows

    def offer(self, rows: np.ndarray, log_probs: np.ndarray, scores: np.ndarray, count: int):
        """Keep the ``count`` best of the kept rows and these (ties: the lower row first,
        as :func:`alwidget.strategies.select_top_k` breaks them)."""
        best = np.argsort(-scores, kind="stable")[:count]
        rows, log_probs, scores = rows[best], log_probs[best], scores[best]
        if self.values is not None:
            rows = np.concatenate([self.rows, rows])
            scores = np.concatenate([self.scores, scores])
            log_probs = np.concatenate([self.values, log_probs])
        order = np.lexsort((rows, -scores))[:count]
        self.rows, self.scores, self.values = rows[order], scores[order], log_probs[order]

    def __getitem__(self, index) -> np.ndarray:
        rows = np.asarray(index)
        if rows.dtype.kind not in "iu":
            raise TypeError(
                "a streamed pass's log-probs are read by row numbers (an int, a list or an "
                f"integer array), not {type(index).__name__} {rows.dtype}; pass stream=False "
                "to acquire() for the whole array"
            )
        flat = rows.reshape(-1).astype(np.int64)
        flat = np.where(flat < 0, flat + self.n_rows, flat)
        if len(flat) and (flat.min() < 0 or flat.max() >= self.n_rows):
            raise IndexError(f"row {index!r} is outside the pass's {self.n_rows} candidates")
        where = {int(row): k for k, row in enumerate(self.rows)}
        found = np.array([int(row) in where for row in flat], dtype=bool)
        missing = np.unique(flat[~found])
        fresh = self._predict_rows(missing) if len(missing) else None
        if self.values is None and fresh is None:
            return np.empty((0,), dtype=np.float32)
        tail = (self.values if self.values is not None else fresh).shape[1:]
        out = np.empty((len(flat), *tail), dtype=np.float32)
        for k, row in enumerate(flat):
            if found[k]:
                out[k] = self.values[where[int(row)]]
            else:
                out[k] = fresh[np.searchsorted(missing, row)]
        return out.reshape(rows.shape + tail)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            f"a streamed pass over {self.n_rows} candidates keeps the log-probs of its best "
            f"{len(self.rows)} only; index it by rows, or pass stream=False to acquire() "
            "for the whole array"
        )


@dataclass(frozen=True)
class ScoringProgress:
    """Where a chunked scoring pass stands; :func:`acquire` hands one to ``progress``
    after each chunk.

    Attributes
    ----------
    done : int
        Candidates scored so far: ``positions[:done]``.
    total : int
        Candidates in the pass.
    positions : np.ndarray
        Every candidate's pool position (the rows of the pass).
    scores_N : np.ndarray or None
        Scores of ``positions[:done]``; None for a strategy that is not row-wise (its
        scores come only once every candidate is predicted).
    log_probs_N_K_C : KeptLogProbs, np.ndarray or None
        Index it by rows below ``done`` (e.g. :meth:`best`) to explain those candidates.
    """

    done: int
    total: int
    positions: np.ndarray
    scores_N: np.ndarray | None
    log_probs_N_K_C: KeptLogProbs | np.ndarray | None

    def best(self, count: int) -> np.ndarray:
        """Rows of the ``count`` highest scores so far, best first (ties: the lower row),
        i.e. what a top-k batch of the scored part would be."""
        if self.scores_N is None:
            return np.empty(0, dtype=np.int64)
        return np.argsort(-self.scores_N, kind="stable")[:count]


@dataclass(frozen=True)
class Acquisition:
    """The result of one pass over ``positions`` (pool positions, aligned with the arrays).

    ``selection`` indexes into ``positions``; it is None when only scores were asked for.
    ``log_probs_N_K_C`` is the whole array, except after a streamed pass, where it is a
    :class:`KeptLogProbs` (index it by rows: the selection's are kept). ``timings`` has
    ``predict_seconds``, ``score_seconds``, ``select_seconds``, ``n_scored`` and ``streamed``.
    """

    positions: np.ndarray
    log_probs_N_K_C: np.ndarray | KeptLogProbs
    scores_N: np.ndarray
    selection: Selection | None
    timings: dict


def log_probs_bytes(model: ModelState, mc_samples: int, n_items: int) -> int:
    """Bytes of float32 log-probs a pass over ``n_items`` candidates produces."""
    per_member = mc_samples if model.has_dropout else 1
    return 4 * n_items * model.ensemble * per_member * int(model.factory.num_classes)


def acquire(
    model: ModelState,
    settings: AcquisitionSettings,
    positions: np.ndarray,
    *,
    batch_size: int | None = None,
    labeled_positions: np.ndarray | None = None,
    n_labels: int = 0,
    progress: Callable[[ScoringProgress], None] | None = None,
    stream: bool | None = None,
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
    progress : callable, optional
        ``progress(ScoringProgress)`` after each chunk of a new pass (chunks of
        ``ModelState.scoring_chunk_rows()`` candidates), and once with ``done == total``
        when a remembered pass is reused. For a row-wise strategy it carries the scores so
        far and :meth:`ScoringProgress.best`, so a caller can show a first batch from the
        scored part. An exception it raises stops the pass (nothing is cached).
    stream : bool, optional
        Stream the pass (keep only scores and the best rows' log-probs). None: when the
        strategy is row-wise, ``batch_size`` is given and the log-probs would exceed
        :data:`STREAM_ABOVE_BYTES`. True needs a row-wise strategy and ``batch_size``.

    Returns
    -------
    Acquisition
        The same scores and selection whether streamed or not.
    """
    spec = settings.spec
    positions = np.asarray(positions, dtype=np.int64)
    if stream and not (spec.row_wise and batch_size is not None):
        raise ValueError(
            f"acquire(stream=True): strategy {settings.strategy!r} "
            + ("is not row-wise" if not spec.row_wise else "needs batch_size to stream")
            + "; a streamed pass keeps only per-item scores and the selected rows' log-probs"
        )
    if stream is None:
        stream = (
            spec.row_wise
            and batch_size is not None
            and log_probs_bytes(model, settings.mc_samples, len(positions)) > STREAM_ABOVE_BYTES
        )
    if stream and len(positions):
        return _acquire_streamed(model, settings, positions, batch_size, n_labels, progress)
    return _acquire_whole(
        model, settings, positions, batch_size, labeled_positions, n_labels, progress
    )


def row_predictor(model: ModelState, positions: np.ndarray, mc_samples: int, snapshot):
    """``rows -> log_probs`` of ``positions[rows]``, exactly as a chunked pass predicted them.

    Each row's whole forward batch is predicted again, as the pass met it (batches of
    ``model.chunk_size`` from the first candidate): a batch of another size may round
    differently.
    """

    def predict_rows(rows: np.ndarray) -> np.ndarray:
        batch = model.chunk_size
        out = None
        for block in np.unique(rows // batch):
            start = int(block) * batch
            log_probs = model.predict(
                positions[start : start + batch], mc_samples=mc_samples, embeddings=False,
                snapshot=snapshot,
            ).log_probs_N_K_C  # fmt: skip
            inside = (rows // batch) == block
            if out is None:
                out = np.empty((len(rows), *log_probs.shape[1:]), dtype=np.float32)
            out[inside] = log_probs[rows[inside] - start]
        return out

    return predict_rows


def _acquire_whole(
    model, settings, positions, batch_size, labeled_positions, n_labels, progress
) -> Acquisition:
    """Predict every candidate into one array (cached for this model version), then select."""
    spec = settings.spec
    started = time.perf_counter()
    want_embeddings = spec.needs_embeddings and batch_size is not None
    total = len(positions)
    chunk_scores = np.empty(total) if (progress is not None and spec.row_wise) else None
    best = None
    if chunk_scores is not None:
        best = KeptLogProbs(
            total, row_predictor(model, positions, settings.mc_samples, model.snapshot())
        )
    score_seconds = 0.0
    scored_by_chunk = False

    def on_chunk(start, part):
        nonlocal score_seconds, scored_by_chunk
        stop = start + len(part.log_probs_N_K_C)
        if chunk_scores is not None:
            scored_by_chunk = True
            began = time.perf_counter()
            chunk_scores[start:stop] = strategies.score_with(
                spec, part.log_probs_N_K_C, settings.rng
            )
            best.offer(np.arange(start, stop), part.log_probs_N_K_C, chunk_scores[start:stop],
                       max(batch_size or 0, KEEP_AT_LEAST))  # fmt: skip
            score_seconds += time.perf_counter() - began
        progress(
            ScoringProgress(
                stop,
                total,
                positions,
                None if chunk_scores is None else chunk_scores[:stop],
                best,
            )  # fmt: skip
        )

    log_probs, embeddings = model.scoring_pass(
        positions, mc_samples=settings.mc_samples, want_embeddings=want_embeddings,
        n_labels=n_labels, on_chunk=on_chunk if progress is not None else None,
    )  # fmt: skip
    labeled_embeddings = None
    if want_embeddings and spec.needs_labeled_embeddings and labeled_positions is not None:
        if len(labeled_positions):
            labeled_embeddings = model.predict(
                labeled_positions, mc_samples=1, embeddings=True
            ).embeddings_N_D
    predicted = time.perf_counter()
    if scored_by_chunk:
        scores = chunk_scores
    else:
        scores = strategies.score_with(spec, log_probs, settings.rng)
        if progress is not None:  # a reused pass: everything is scored at once
            progress(ScoringProgress(total, total, positions, scores, log_probs))
    scored = time.perf_counter()
    selection = None
    if batch_size is not None:
        inputs = AcquisitionInputs(log_probs, embeddings, labeled_embeddings, settings.rng)
        selection = spec.selector_function(scores, batch_size, inputs)
    timings = {
        "predict_seconds": predicted - started - score_seconds,
        "score_seconds": scored - predicted + score_seconds,
        "select_seconds": time.perf_counter() - scored,
        "n_scored": total,
        "streamed": False,
    }
    return Acquisition(positions, log_probs, scores, selection, timings)


def _acquire_streamed(model, settings, positions, batch_size, n_labels, progress) -> Acquisition:
    """Predict, score and drop chunk by chunk; keep scores and the best rows' log-probs."""
    spec = settings.spec
    started = time.perf_counter()
    snapshot = model.snapshot()
    mc_samples = settings.mc_samples
    total, keep = len(positions), max(int(batch_size), KEEP_AT_LEAST)

    kept = KeptLogProbs(total, row_predictor(model, positions, mc_samples, snapshot))
    # A score that draws random numbers must draw them anew each query, as an unstreamed
    # pass would; only deterministic scores are remembered.
    score_function = None if strategies.score_uses_rng(spec) else spec.score_function
    remembered = None
    if score_function is not None:
        remembered = model.remembered_scores(
            snapshot, mc_samples=mc_samples, positions=positions,
            score_function=score_function, n_labels=n_labels,
        )  # fmt: skip
    score_seconds = 0.0
    if remembered is not None:
        scores, kept_positions, kept_log_probs = remembered
        row_of = np.full(len(model.pool), -1, dtype=np.int64)
        row_of[positions] = np.arange(total)
        rows = row_of[kept_positions]
        present = rows >= 0
        if present.any():
            kept.offer(rows[present], kept_log_probs[present], scores[rows[present]], keep)
        if progress is not None:
            progress(ScoringProgress(total, total, positions, scores, kept))
    else:
        scores = np.empty(total)
        for start, part in model.predict_chunks(
            positions, mc_samples=mc_samples, embeddings=False, snapshot=snapshot
        ):
            began = time.perf_counter()
            stop = start + len(part.log_probs_N_K_C)
            scores[start:stop] = strategies.score_with(spec, part.log_probs_N_K_C, settings.rng)
            kept.offer(np.arange(start, stop), part.log_probs_N_K_C, scores[start:stop], keep)
            score_seconds += time.perf_counter() - began
            if progress is not None:
                progress(ScoringProgress(stop, total, positions, scores[:stop], kept))
        model.remember_scores(
            snapshot, mc_samples=mc_samples, positions=positions, scores_N=scores,
            score_function=score_function, kept_positions=positions[kept.rows],
            kept_log_probs_M_K_C=kept.values, n_labels=n_labels,
        )  # fmt: skip
    scored = time.perf_counter()
    inputs = AcquisitionInputs(kept, None, None, settings.rng)
    selection = spec.selector_function(scores, batch_size, inputs)
    timings = {
        "predict_seconds": scored - started - score_seconds,
        "score_seconds": score_seconds,
        "select_seconds": time.perf_counter() - scored,
        "n_scored": total,
        "streamed": True,
        "reused_scores": remembered is not None,
    }
    return Acquisition(positions, kept, scores, selection, timings)
