"""The active-learning session: a model, a pool, the labels, training and scoring.

Thread safety: ``label``/``unlabel``/``query`` may run while ``retrain`` trains in another
thread. Training works on fresh model copies and a snapshot of the labels; the new models
replace the old ones under a lock when training ends, so a failed run leaves the old model.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from . import strategies
from .data import Pool
from .errors import (
    NotEnoughClassesError,
    StrategyModelMismatchError,
    TrainingInProgressError,
)
from .labeling import LabelingMixin
from .persistence import PersistenceMixin
from .querying import QueryMixin
from .team import TeamMixin, team_settings
from .models import ModelFactory, add_output_unit, has_dropout
from .predict import Prediction, pick_device, predict
from .evaluation import classification_metrics, cross_validate
from .training import TrainConfig, TrainReport, combine_reports, train_model

__all__ = ["Session"]


def _default_mc_samples(spec: strategies.StrategySpec) -> int:
    # A BatchBALD batch can learn at most log K nats about the weights, so with K = 20 the
    # last picks of a batch of 10 are close to arbitrary; 50 keeps them informative.
    if spec.selector == "batchbald":
        return 50
    return 20 if spec.score in strategies.NEEDS_SAMPLES else 1


class Session(QueryMixin, LabelingMixin, PersistenceMixin, TeamMixin):
    """Active learning over one pool: query a batch, label it, retrain, repeat.

    Parameters
    ----------
    pool : Pool
        The items (see :class:`alwidget.Pool` and :mod:`alwidget.datasets`).
    model : str, nn.Module or callable, optional
        ``"small_cnn"``, ``"gal_cnn"``, ``"mlp"``, a module (copied and re-initialised for
        each training run), or a factory returning a module (given ``num_classes=`` when it
        accepts it). Defaults to ``"small_cnn"`` for images and ``"mlp"`` otherwise.
    strategy : str
        A name from :func:`alwidget.strategies.available`.
    mc_samples : int, optional
        MC-dropout samples per ensemble member. Defaults to 20 for strategies that need
        samples (BALD, variation ratios, mean STD), 50 for BatchBALD, else 1.
    ensemble : int
        Number of independently initialised members; they share the K axis with MC samples.
    seed : int
        Seeds initialisation, training, MC masks and random choices.
    batch_size : int
        Default size of :meth:`query`.
    train_config : TrainConfig, optional
        Training settings.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default CUDA when present.
    score_subset : int, optional
        Score only a random subset of this many unlabeled items per query (Gal et al.
        scored 2 000), to bound the cost on huge pools.
    chunk_size : int
        Items per forward pass when predicting.
    annotator : str, optional
        Recorded with each label (``"user"`` when omitted; required in team mode).
    cv_folds : int
        Without a held-out split, each retrain also estimates accuracy by this many folds of
        cross-validation on the labels (costs ``cv_folds`` extra trainings; 0 turns it off).
    track_coverage : bool, optional
        Record :meth:`coverage` in the history after each retrain (one deterministic pass
        over the pool). Defaults to on for pools of at most 20 000 items.
    store : None, False, str, path-like or alwidget.store.LabelStore
        Where labels are kept; each label is committed before :meth:`label` returns.
        ``"sqlite:///labels.db"``, a file path, or ``"postgresql://user@host/db"``; an
        existing store is resumed (labels, queue, history, last model). ``None``: the file
        ``./alwidget-<pool fingerprint[:8]>.db`` (or ``$ALWIDGET_STORE`` when set);
        ``False`` or ``":memory:"``: kept in memory only.
    team : bool
        Team mode: several annotators, each with their own session (kernel, machine) on
        one shared store (PostgreSQL, or a SQLite file on one machine), label one pool.
        :meth:`query` ranks the items still needing labels, publishes the ranking to the
        store's team queue and returns exactly the items the queue hands to this
        annotator, so annotators get distinct items. :attr:`labels` then holds the team's
        consensus (majority label per item, ties to the latest), which :meth:`retrain`
        reloads from the store so everyone's labels train everyone's model;
        :attr:`my_labels` holds this annotator's own, and :meth:`unlabel` undoes only
        those. The store's learning history and checkpoint are shared by the team.
        Default ``False``: one annotator, one label per item.
    overlap : int
        Team mode: how many distinct annotators label each item (2 or more gives
        :meth:`agreement` figures). Every session of a team should pass the same value.
    lease_seconds : float
        Team mode: how long queried items stay reserved for this annotator without a
        label; after that another annotator may get them (a late label is still kept).
    """

    def __init__(
        self,
        pool: Pool,
        model=None,
        *,
        strategy: str = "entropy",
        mc_samples: int | None = None,
        ensemble: int = 1,
        seed: int = 0,
        batch_size: int = 10,
        train_config: TrainConfig | None = None,
        device: str | None = None,
        score_subset: int | None = None,
        chunk_size: int = 512,
        annotator: str | None = None,
        cv_folds: int = 3,
        track_coverage: bool | None = None,
        store=None,
        team: bool = False,
        overlap: int = 1,
        lease_seconds: float = 600.0,
    ):
        if not isinstance(pool, Pool):
            raise TypeError(
                f"pool must be an alwidget.Pool, got {type(pool).__name__}; wrap items as "
                "alwidget.Pool(items, targets=... or classes=[...])"
            )
        self.pool = pool
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.train_config = train_config or TrainConfig()
        self.device = pick_device(device)
        self.score_subset = score_subset
        self.chunk_size = chunk_size
        self._team = team_settings(team, overlap, lease_seconds, annotator)  # checked before the store opens
        self.annotator = "user" if annotator is None else annotator
        if ensemble < 1 or int(ensemble) != ensemble:
            raise ValueError(f"ensemble must be a positive integer, got {ensemble!r}")
        self.ensemble = int(ensemble)
        self.classes: list[str] = list(pool.classes)
        if len(self.classes) < 2:
            raise ValueError(f"a classifier needs at least two classes; the pool has {self.classes}")
        default_model = "small_cnn" if pool.kind == "image" and len(pool.input_shape) == 3 else "mlp"
        self._factory = ModelFactory(default_model if model is None else model, pool.input_shape, len(self.classes))
        self._members = [self._factory.build(self._member_seed(i)) for i in range(self.ensemble)]
        self._check_output_width(self._members[0])

        self.strategy = strategy
        spec = strategies.get_strategy(strategy)
        self.mc_samples = _default_mc_samples(spec) if mc_samples is None else int(mc_samples)
        if self.mc_samples < 1:
            raise ValueError(f"mc_samples must be ≥ 1, got {mc_samples!r}")
        self._check_strategy_fits_model(spec)

        self._lock = threading.RLock()
        self._training_lock = threading.Lock()
        self._labels: dict[int, int] = {}  # pool position -> class index, in labeling order
        self._label_meta: dict[int, dict] = {}
        self._priority: list = []
        self._rng = np.random.default_rng(self.seed)
        self.model_version = 0
        self.history: list[dict] = []
        self.last_train_report: TrainReport | None = None
        self._labels_at_last_training = 0
        self._scored: dict | None = None  # cache of the last scoring pass (per model version)
        self._embedding_cache: tuple[int, np.ndarray] | None = None
        self._test = pool.test
        self.last_query_timings: dict = {}
        self.cv_folds = int(cv_folds)
        self.track_coverage = len(pool) <= 20_000 if track_coverage is None else bool(track_coverage)
        self._last_cross_validation: dict | None = None
        self._attach_store(store)  # resumes labels, queue, history and model when it has them
        if self._team is not None:
            self._join_team()

    @property
    def model_name(self) -> str:
        """A short name of the model architecture (a built-in name or the module's class)."""
        return self._factory.name

    # ------------------------------------------------------------------ configuration
    def _member_seed(self, member: int) -> int:
        return self.seed * 1_000_003 + 7_919 * member

    def _check_output_width(self, model) -> None:
        probe = self.pool.inputs(np.array([0]))
        model.eval()
        with torch.inference_mode():
            out = model(probe)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != len(self.classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"the model must output logits of shape (batch, {len(self.classes)}) for the pool's "
                f"{len(self.classes)} classes; it returned {shape} for input {tuple(probe.shape)}"
            )

    def _check_strategy_fits_model(self, spec: strategies.StrategySpec) -> None:
        n_samples = self.ensemble * (self.mc_samples if has_dropout(self._members[0]) else 1)
        if self.mc_samples > 1 and not has_dropout(self._members[0]):
            raise StrategyModelMismatchError(
                f"mc_samples={self.mc_samples} asks for MC dropout, but the model "
                f"{self._factory.name} has no dropout layers; use ensemble=5 or a model with dropout"
            )
        if (spec.score in strategies.NEEDS_SAMPLES or spec.selector == "batchbald") and n_samples < 2:
            reason = "the model has no dropout layers" if not has_dropout(self._members[0]) else "mc_samples=1"
            raise StrategyModelMismatchError(
                f"strategy {self.strategy!r} needs K > 1 stochastic predictions (MC dropout or an "
                f"ensemble), but {reason} and ensemble=1, so K = 1; add dropout, raise mc_samples, "
                "or pass ensemble=5"
            )

    def set_strategy(self, name: str, mc_samples: int | None = None) -> None:
        """Switch strategy (and optionally the MC sample count) for later queries."""
        spec = strategies.get_strategy(name)
        previous = (self.strategy, self.mc_samples)
        self.strategy = name
        self.mc_samples = _default_mc_samples(spec) if mc_samples is None else int(mc_samples)
        try:
            self._check_strategy_fits_model(spec)
        except StrategyModelMismatchError:
            self.strategy, self.mc_samples = previous
            raise
        with self._lock:
            self._scored = None

    def add_class(self, name: str) -> int:
        """Add a new class (e.g. typed by the annotator) and return its index.

        The current models get one more output, so queries keep working before the next
        retrain (the new class starts with probability ≈ 0); later trainings build models
        with the new width. The class list is saved in the store, so a resumed session has it.
        In team mode, classes teammates added are taken over first (a name one of them added
        just returns its index).

        Raises
        ------
        ValueError
            An empty or existing name, or a model whose output size cannot change (an
            ``nn.Module`` instance or a factory without a ``num_classes`` parameter).
        """
        name = str(name).strip()
        if not name:
            raise ValueError("a class name cannot be empty")
        if name in self.classes:
            raise ValueError(f"class {name!r} already exists")
        if not self._factory.can_change_classes:
            raise ValueError(
                f"the model {self._factory.name} has a fixed number of outputs, so a class cannot be "
                "added; pass a factory taking num_classes= (or a built-in model name)"
            )
        with self._lock:
            if self._team is not None:
                self._sync_team_classes()  # classes teammates added come first, in the store's order
                if name in self.classes:
                    return self.classes.index(name)
            self._grow_classes([name])
            self._persist_classes()
        return len(self.classes) - 1

    def _grow_classes(self, names: list[str]) -> None:
        for name in names:
            self.classes.append(name)
            self._factory.num_classes += 1
            for member in self._members:
                add_output_unit(member)
        self._scored = None
        self._embedding_cache = None

    # ------------------------------------------------------------------------ training
    def _labeled_snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            positions = np.fromiter(self._labels.keys(), dtype=np.int64, count=len(self._labels))
            targets = np.fromiter(self._labels.values(), dtype=np.int64, count=len(self._labels))
        return positions, targets

    @property
    def is_training(self) -> bool:
        return self._training_lock.locked()

    def retrain(
        self,
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainReport:
        """Train on the current labels (fresh weights unless ``train_config.warm_start``).

        Safe to call from a background thread while labeling goes on: it trains copies on a
        snapshot of the labels and swaps them in at the end. ``progress`` gets dicts with
        ``member``, ``step``, ``total_steps`` and ``loss``.

        Raises
        ------
        NotEnoughClassesError
            Fewer than two classes are labeled.
        TrainingInProgressError
            Another retrain is running.
        """
        if not self._training_lock.acquire(blocking=False):
            raise TrainingInProgressError("a training run is already in progress; wait for it to finish")
        try:
            if self._team is not None:
                self._refresh_before_training()  # everyone's labels train everyone's model
            positions, targets = self._labeled_snapshot()
            present = sorted({self.classes[t] for t in targets.tolist()})
            if len(present) < 2:
                raise NotEnoughClassesError(
                    f"training needs labels of at least two classes; labeled so far: {present or 'nothing'}"
                )
            started = time.perf_counter()
            inputs = self.pool.inputs(positions)
            members, reports = [], []
            for member_index in range(self.ensemble):
                model = self._factory.build(self._member_seed(member_index))
                if self.train_config.warm_start and self.model_version > 0:
                    model.load_state_dict(self._members[member_index].state_dict())
                member_progress = None if progress is None else (
                    lambda info, m=member_index: progress({"member": m, "members": self.ensemble, **info})
                )
                reports.append(
                    train_model(
                        model, inputs, targets, self.train_config,
                        seed=self._member_seed(member_index) + len(targets),
                        device=self.device, progress=member_progress, should_stop=should_stop,
                    )
                )
                members.append(model)
            report = reports[0] if len(reports) == 1 else combine_reports(reports, time.perf_counter() - started)
            with self._lock:
                self._members = members
                self.model_version += 1
                self._labels_at_last_training = len(targets)
                self._scored = None
                self._embedding_cache = None
                self.last_train_report = report
            if self._test is None and self.cv_folds >= 2:
                cross_validation = cross_validate(
                    self._factory, inputs, targets, self.train_config, folds=self.cv_folds,
                    seed=self._member_seed(0), device=self.device, should_stop=should_stop,
                )
                with self._lock:
                    self._last_cross_validation = cross_validation
            evaluation = self.evaluate()
            self.history.append(
                {
                    "model_version": self.model_version,
                    "n_labels": int(len(targets)),
                    "accuracy": None if evaluation is None else evaluation["accuracy"],
                    "train_seconds": report.seconds,
                    "steps": report.steps,
                    "train_loss": report.train_loss,
                    "time": time.time(),
                }
            )
            self._persist_round(self.history[-1], members)
            if self.track_coverage:
                self._record_coverage()
            return report
        finally:
            self._training_lock.release()

    # --------------------------------------------------------------------- prediction
    def _predict(self, positions: np.ndarray, *, mc_samples: int, embeddings: bool, inputs=None) -> Prediction:
        with self._lock:
            members, version = list(self._members), self.model_version
        return predict(
            members,
            inputs or self.pool.inputs,
            positions,
            mc_samples=mc_samples if has_dropout(members[0]) else 1,
            chunk_size=self.chunk_size,
            device=self.device,
            seed=self.seed * 1_000_033 + version,
            return_embeddings=embeddings,
        )

    def predict(self, ids=None, *, mc_samples: int | None = None) -> np.ndarray:
        """``log_probs_N_K_C`` for ``ids`` (default: the whole pool)."""
        positions = np.arange(len(self.pool)) if ids is None else np.array([self._resolve_position(i) for i in ids])
        samples = self.mc_samples if mc_samples is None else mc_samples
        return self._predict(positions, mc_samples=samples, embeddings=False).log_probs_N_K_C

    def embeddings(self, ids=None) -> np.ndarray:
        """Penultimate-layer features (dropout off, first member) for ``ids`` or the whole pool."""
        with self._lock:
            cached = self._embedding_cache
            version = self.model_version
        if cached is None or cached[0] != version:
            features = self._predict(np.arange(len(self.pool)), mc_samples=1, embeddings=True).embeddings_N_D
            with self._lock:
                if self.model_version == version:
                    self._embedding_cache = (version, features)
        else:
            features = cached[1]
        if ids is None:
            return features
        return features[[self._resolve_position(i) for i in ids]]

    def _record_coverage(self) -> None:
        try:
            self.coverage()
        except Exception as error:  # the new model is in place; a missing figure must not undo that
            warnings.warn(f"coverage of model {self.model_version} could not be computed: {error}", stacklevel=3)

    def coverage(self, radius: float | None = None, *, n_farthest: int = 10) -> dict:
        """How well the labels cover the pool in the model's embedding space.

        An item is covered when a labeled item lies within ``radius`` of it (Euclidean, on
        :meth:`embeddings`). The figures are also stored as ``"coverage"`` in the history
        entry of the current model version, so learning curves can show them per round.

        Parameters
        ----------
        radius : float, optional
            Defaults to a radius fixed by the pool's own density
            (:func:`alwidget.strategies.kcenter.default_coverage_radius`).
        n_farthest : int
            How many of the least covered unlabeled items to list.

        Returns
        -------
        dict
            ``k_center_radius`` (largest distance from any item to its nearest labeled
            item), ``covered_fraction``, ``radius``, ``farthest_uncovered`` (pool positions)
            and ``farthest_uncovered_ids``, ``model_version``, and the rest of
            :func:`alwidget.strategies.kcenter.coverage_report`.
        """
        from .coverage import session_coverage

        return session_coverage(self, radius, n_farthest=n_farthest)

    def evaluate(self) -> dict | None:
        """Accuracy and mean log-likelihood of the current model.

        On the pool's held-out split when it has one (``method == "held-out"``); otherwise
        the k-fold cross-validation computed at the last :meth:`retrain` (``cv_folds``), or
        ``None`` before there is one.
        """
        if self._test is None:
            with self._lock:
                result = self._last_cross_validation
            return None if result is None else {**result, "model_version": self.model_version}
        test = self._test
        prediction = self._predict(
            np.arange(len(test)), mc_samples=1, embeddings=False, inputs=lambda rows: test.inputs[rows]
        )
        return {**classification_metrics(prediction.log_probs_N_K_C, test.targets),
                "method": "held-out", "model_version": self.model_version}

    def __repr__(self) -> str:
        return (
            f"Session({self.pool!r}, model={self._factory.name}, strategy={self.strategy!r}, "
            f"mc_samples={self.mc_samples}, ensemble={self.ensemble}, labels={self.n_labels}, "
            f"model_version={self.model_version})"
        )

