"""The map's data for one session: a stable layout, labels, predictions, scores and coverage.

No widgets here: :class:`alwidget.widget.map_view.MapView` puts this on screen and runs its
slow steps in a background thread; scripts can use it directly to save map figures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from .. import strategies
from ..strategies.kcenter import coverage_report
from .figure import MapLayers, build_map_figure
from .projection import MapProjector, StagedFeatures

__all__ = ["SessionMap", "coverage_title"]


def coverage_title(report: dict | None) -> str:
    """The coverage figures as two short lines of HTML for the figure title."""
    if report is None:
        return "coverage not computed yet"
    if report["n_labeled"] == 0:
        return "no labels yet: nothing is covered"
    return (
        f"labels cover {report['covered_fraction']:.0%} of items (within r = {report['radius']:.3g})"
        f"<br>k-center radius {report['k_center_radius']:.3g}: farthest item from any label"
    )


class SessionMap:
    """Layout and overlays of one session's pool, kept in step with its model and labels.

    Parameters
    ----------
    session : alwidget.Session
        Read through its public API (``embeddings``, ``coverage``, ``predict``,
        ``labeled_ids``, ``labels``, ``model_version``, ``pool``).
    projector : MapProjector, optional
        Defaults to ``MapProjector(seed=session.seed)``.
    feature_fn : callable, optional
        ``feature_fn(session) -> array (N, D)`` to map other features than the model's
        penultimate layer; coverage is then computed on those features too.
    coverage_radius : float, optional
        Radius for the coverage figures (default: fixed by the pool's density).
    n_farthest : int
        How many least covered items to ring on the map.
    prediction_sample_size : int or None
        Predictions and scores (for colouring) are computed for at most this many items (all
        labeled and batch items plus a seeded sample); ``None`` = the whole pool.
    """

    def __init__(
        self,
        session,
        *,
        projector: MapProjector | None = None,
        feature_fn: Callable | None = None,
        coverage_radius: float | None = None,
        n_farthest: int = 20,
        prediction_sample_size: int | None = 5000,
    ):
        self.session = session
        self.projector = projector or MapProjector(seed=getattr(session, "seed", 0))
        self.feature_fn = feature_fn
        self.coverage_radius = coverage_radius
        self.n_farthest = int(n_farthest)
        self.prediction_sample_size = prediction_sample_size
        self.layout_model_version: int | None = None
        self.coverage: dict | None = None
        self.batch_ids: list = []
        self._predictions: tuple | None = None  # (model_version, predicted_N, scores_N)
        self._hover: list[str] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ pool bookkeeping
    @property
    def n_items(self) -> int:
        return len(self.session.pool)

    def ids_at(self, rows) -> list:
        """Item ids of pool positions."""
        ids = self.session.pool.ids
        return [ids[int(row)] for row in np.asarray(rows).reshape(-1)]

    def rows_of(self, ids) -> np.ndarray:
        """Pool positions of item ids."""
        return np.asarray([self.session.pool.position(item_id) for item_id in ids], dtype=np.int64)

    def labels_N(self) -> np.ndarray:
        """Assigned class index per item, -1 where unlabeled."""
        labels = np.full(self.n_items, -1, dtype=np.int64)
        assigned = self.session.labels
        if assigned:
            classes = {name: index for index, name in enumerate(self.session.classes)}
            labels[self.rows_of(list(assigned))] = [classes[name] for name in assigned.values()]
        return labels

    def set_batch(self, ids) -> None:
        """The items of the current batch (drawn as diamonds, always kept in the fit sample)."""
        rows = self.rows_of(list(ids))  # raises on unknown ids before anything changes
        with self._lock:
            self.batch_ids = self.ids_at(rows)

    # ------------------------------------------------------------------------- updates
    def _features(self) -> np.ndarray:
        if self.feature_fn is not None:
            return np.asarray(self.feature_fn(self.session))
        return self.session.embeddings()

    def _pinned_features_of(self) -> Callable:
        """``features_of(rows)`` (``rows=None``: all) from one model version throughout.

        A fit reads the sample's features first and the whole pool's after; a retrain that
        ended between the two reads would put the sample in one feature space (say the
        untrained model's input features) and the rest in another. The model's features of
        the sample alone take one forward pass over those rows, so the sample can be drawn
        before the pass over the whole pool; encoder and input features are cached.
        """
        model_state = getattr(self.session, "model", None)
        if self.feature_fn is not None or not hasattr(model_state, "embedding_rows"):

            def features_of(rows):
                features = self._features()
                return features if rows is None else features[rows]

            return features_of
        snapshot = model_state.snapshot()

        def features_of(rows):
            if rows is None:
                return model_state.embeddings_of_snapshot(snapshot)
            return model_state.embedding_rows(np.asarray(rows), snapshot)

        return features_of

    def update(self, *, refit: bool = False, on_stage: Callable | None = None) -> str:
        """Bring layout and coverage up to date with the session.

        The layout is fitted the first time, refreshed in place when the model changed
        (no refit), and refitted only when ``refit`` is true or the pool changed size.

        Parameters
        ----------
        refit : bool
            Fit UMAP afresh even if a layout exists.
        on_stage : callable, optional
            ``on_stage(stage, info)`` as the work goes on, so a view can say what is happening
            and draw early: ``"features"`` (computing the features), ``"fitting"``
            (``info["n_fit"]`` sample rows of ``info["n_items"]``), ``"sample"`` (the sample
            is placed: ``info["coordinates_N_2"]``, NaN for rows not placed yet),
            ``"placing"`` (``info["done"]`` of ``info["total"]`` rows placed) and
            ``"coverage"``.

        Returns
        -------
        str
            ``"fitted"``, ``"refreshed"``, ``"refitted"`` or ``"unchanged"`` (layout), so
            callers and tests can see which path ran.
        """
        report = on_stage or (lambda stage, info: None)
        version = self.session.model_version
        labels = self.labels_N()
        with self._lock:
            batch_rows = self.rows_of(self.batch_ids)
        keep = np.union1d(np.flatnonzero(labels >= 0), batch_rows)
        if not self.projector.is_fitted:
            outcome = "fitted"
        elif refit or self.projector.n_items != self.n_items:
            outcome = "refitted"
        elif version != self.layout_model_version:
            outcome = "refreshed"
        else:
            outcome = "unchanged"
        features = None
        if outcome == "fitted":
            # The sample's features first; the whole pool's once the sample is drawn.
            features = StagedFeatures(self._pinned_features_of(), n_rows=self.n_items)
        elif outcome != "unchanged" or self.feature_fn is not None:
            report("features", {"n_items": self.n_items})
            features = self._features()

        def placing(done, total):
            report("placing", {"done": done, "total": total})

        if outcome in ("fitted", "refitted"):
            n_fit = min(max(self.projector.fit_sample_size, keep.size), self.n_items)
            report("fitting", {"n_fit": n_fit, "n_items": self.n_items})
        if outcome == "fitted":
            self.projector.fit(
                features,
                keep,
                on_sample=lambda coords: report("sample", {"coordinates_N_2": coords}),
                progress=placing,
            )
        elif outcome == "refitted":
            self.projector.refit(features, keep, progress=placing)
        elif outcome == "refreshed":
            report("placing", {"done": 0, "total": self.n_items})
            self.projector.refresh(features, progress=placing)
        self.layout_model_version = version
        report("coverage", {})
        if isinstance(features, StagedFeatures):
            features = features.rows(None)
        self.coverage = self._coverage(features, labels)
        return outcome

    def _coverage(self, features, labels) -> dict:
        if self.feature_fn is None:
            return self.session.coverage(self.coverage_radius, n_farthest=self.n_farthest)
        return coverage_report(
            features, labels >= 0, self.coverage_radius, n_farthest=self.n_farthest
        )

    def refresh_coverage(self) -> dict:
        """Recompute coverage only (after labels changed; the layout stays)."""
        features = self._features() if self.feature_fn is not None else None
        self.coverage = self._coverage(features, self.labels_N())
        return self.coverage

    # --------------------------------------------------------------------- predictions
    def _prediction_rows(self, labels: np.ndarray) -> np.ndarray:
        n = self.n_items
        if self.prediction_sample_size is None or n <= self.prediction_sample_size:
            return np.arange(n)
        with self._lock:
            must = np.union1d(np.flatnonzero(labels >= 0), self.rows_of(self.batch_ids))
        others = np.setdiff1d(np.arange(n), must, assume_unique=True)
        n_extra = max(self.prediction_sample_size - must.size, 0)
        rng = np.random.default_rng(getattr(self.session, "seed", 0))
        return np.union1d(must, rng.choice(others, size=min(n_extra, others.size), replace=False))

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(predicted_N, scores_N)``: class index (-1 where not predicted) and the
        strategy's score (NaN where not scored), cached per model version."""
        version = self.session.model_version
        cached = self._predictions
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        rows = self._prediction_rows(self.labels_N())
        log_probs, scores = self.session.score_items(self.ids_at(rows))
        predicted = np.full(self.n_items, -1, dtype=np.int64)
        predicted[rows] = strategies.mean_log_probs(log_probs).argmax(axis=-1)
        all_scores = np.full(self.n_items, np.nan)
        all_scores[rows] = scores
        self._predictions = (version, predicted, all_scores)
        return predicted, all_scores

    # ------------------------------------------------------------------------ drawing
    def hover_texts(self) -> list[str]:
        """Per-item hover header, as the pool's item kind writes it (built once)."""
        if self._hover is None:
            self._hover = self.session.pool.item_kind.hover_texts(self.session.pool)
        return self._hover

    def layers(self, color_by: str = "label", coordinates_N_2=None) -> MapLayers:
        """What to draw now (needs :meth:`update` to have run once, unless
        ``coordinates_N_2`` gives the positions, e.g. a sample placed while fitting)."""
        if coordinates_N_2 is None and not self.projector.is_fitted:
            raise RuntimeError("the map has no layout yet: call update() first")
        predicted = scores = None
        if color_by in ("predicted", "score"):
            predicted, scores = self.predictions()
        with self._lock:
            batch_rows = self.rows_of(self.batch_ids)
        report = self.coverage
        uncovered = (
            report["farthest_uncovered"] if report is not None else np.zeros(0, dtype=np.int64)
        )
        spec = strategies.get_strategy(self.session.strategy)
        return MapLayers(
            coordinates_N_2=(
                self.projector.coordinates_N_2 if coordinates_N_2 is None else coordinates_N_2
            ),
            class_names=list(self.session.classes),
            labels_N=self.labels_N(),
            predicted_N=predicted,
            scores_N=scores,
            batch_rows=batch_rows,
            uncovered_rows=uncovered,
            hover_N=self.hover_texts(),
            score_name=f"{spec.score_name} score",
            title=(
                f"{coverage_title(report)} · model v{self.layout_model_version}"
                if self.layout_model_version is not None
                else "placing the map…"
            ),
        )

    def figure(self, color_by: str = "label", **options):
        """A plotly figure of the current state (see :func:`build_map_figure`)."""
        return build_map_figure(self.layers(color_by), color_by=color_by, **options)
