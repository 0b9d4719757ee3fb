"""The active-learning session: a model, a pool, the labels, training and scoring.

:class:`Session` is a facade over explicit parts, each handed what it needs when built:
a label book (:mod:`.labels`, or :mod:`.team_labels` in team mode), the model state
(:mod:`.model_state`), the store link (:mod:`.persistence`) and a query path (:mod:`.queries`
or :mod:`.team_queue`), all ranking through one :func:`.acquire.acquire`.

``label``, ``unlabel`` and ``query`` may run while ``retrain`` trains in another thread
(see :mod:`.model_state`). Lock order: team queue, then label book, then model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..acquisition import build_batch
from ..data import Pool
from ..errors import InvalidArgumentTypeError
from ..strategies import Selection
from ..training import TrainConfig, TrainReport
from .acquire import acquire
from .checks import (
    MAX_ENSEMBLE,
    MAX_MC_SAMPLES,
    auto_score_subset,
    check_annotator,
    check_callback,
    check_count,
    check_device,
    check_flag,
    check_id_list,
    check_radius,
    check_score_subset,
    check_seed,
    check_train_config,
)  # fmt: skip
from .cleaning import Cleaning, Suspect
from .encoding import set_up_encoder
from .parts import assemble, switch_strategy
from .team_labels import team_settings
from .team_queue import TeamQueue
from .team_view import TeamView

__all__ = ["Session"]


class Session:
    """Active learning over one pool: query a batch, label it, retrain, repeat.

    Parameters
    ----------
    pool : Pool
        The items (see :class:`alwidget.Pool` and :mod:`alwidget.datasets`).
    model : str, nn.Module or callable, optional
        ``"small_cnn"``, ``"gal_cnn"``, ``"mlp"``, ``"head"``, a module (each training run
        starts from a copy of its weights, see ``reset_weights``), or a factory returning a
        module (given ``num_classes=`` when it accepts it). Defaults to what the pool's item
        kind suggests (``"small_cnn"`` for images, ``"mlp"`` otherwise; ``"head"`` with an
        ``encoder``). ``"small_cnn"`` is the Gal et al. MNIST CNN, after an average pool
        that brings images larger than 32 px a side down to 32 (``"gal_cnn"`` keeps the
        full size).
    strategy : str
        A name from :func:`alwidget.strategies.available` (or one added with
        :func:`alwidget.strategies.register_strategy`).
    mc_samples : int, optional
        MC-dropout samples per ensemble member. Defaults to the strategy's own
        (:attr:`StrategySpec.default_mc_samples`: 20 when it needs samples, 50 for
        BatchBALD, else 1).
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
    score_subset : int, "auto" or None
        Score only a random subset of this many unlabeled items per query (Gal et al.
        scored 2 000), to bound the cost on huge pools. ``"auto"`` (the default) scores
        a random 10 000 when the pool holds more than 20 000 items and the model runs on
        raw inputs, and every item otherwise (a head over cached encoder features scores
        a million items in seconds); ``None`` scores every unlabeled item.
    cold_start : bool
        Until the model is trained and every class has two labels, queries pick typical,
        diverse items (clusters of the encoder's features or of the inputs, see
        :mod:`alwidget.session.cold_start`) instead of the strategy's ranking, which is
        noise for an untrained model. :attr:`last_query_timings` says when a batch was one.
        Once the model is trained, a class the pool may lack ends it at 10 labels per class
        on average; a model built from scratch keeps it until its first training run, and
        until then the map and coverage use the same pooled-input features (no forward pass
        over the pool with random weights).
    chunk_size : int, optional
        Items per forward pass when predicting: 512 by default, 16 384 for a head over
        encoder features (small rows; fewer, larger passes are much faster).
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
        Team mode: several annotators, each with a session on one shared store, label one
        pool; :meth:`query` hands out items through the store's team queue and
        :attr:`labels` is the team's consensus (see :mod:`alwidget.session.team_labels`).
    overlap : int
        Team mode: how many distinct annotators label each item.
    lease_seconds : float
        Team mode: how long queried items stay reserved for this annotator without a label.
    encoder : nn.Module, ItemFunction or str, optional
        A feature extractor (any module mapping the pool's model inputs to ``(batch, D)``
        features, e.g. a pretrained backbone without its classifier), or ``"svd"`` (principal
        components of the inputs) or ``"self-supervised"`` (contrastive training on the
        pool, see :func:`alwidget.encoders.self_supervised`). It runs once over the pool,
        cached on disk (see :func:`alwidget.encoders.encode_pool`); ``model`` is then the
        head trained on the features (default ``"head"``: one hidden layer with MC
        dropout), so a retrain and a full-pool rescore cost only the head.
    fine_tune : bool
        With ``encoder``: train the encoder too (the model is the encoder followed by the
        head, on the raw inputs; slower, and every rescore runs the encoder once per item).
    reset_weights : bool
        Re-initialise a module given as ``model`` before each training run instead of
        fine-tuning from its weights (the default keeps them).
    cache_dir : path-like, optional
        Where encoder features are cached (``$ALWIDGET_CACHE`` or ``~/.cache/alwidget``).
    progress : callable or bool, optional
        Progress of the one-time encoder pass: ``None`` shows a tqdm bar (a widget in a
        notebook), ``False`` nothing, or a callable receiving ``{"done", "total", ...}``.
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
        score_subset: int | str | None = "auto",
        chunk_size: int | None = None,
        annotator: str | None = None,
        cv_folds: int = 3,
        track_coverage: bool | None = None,
        store=None,
        team: bool = False,
        overlap: int = 1,
        lease_seconds: float = 600.0,
        encoder=None,
        fine_tune: bool = False,
        reset_weights: bool = False,
        cache_dir=None,
        progress=None,
        cold_start: bool = True,
    ):
        if not isinstance(pool, Pool):
            raise InvalidArgumentTypeError(
                f"pool must be an alwidget.Pool, got {type(pool).__name__}; wrap items as "
                "alwidget.Pool(items, targets=... or classes=[...])"
            )
        self.pool = pool
        self.seed = check_seed(seed)
        self.batch_size = check_count(batch_size, "batch_size", 1, "items per query")
        self.train_config = check_train_config(train_config)
        self.cv_folds = check_count(cv_folds, "cv_folds", 0, "cross-validation folds, 0 = off")
        track_coverage = check_flag(track_coverage, "track_coverage", allow_none=True)
        self.track_coverage = len(pool) <= 20_000 if track_coverage is None else track_coverage
        annotator = check_annotator(annotator)
        checked_team = team_settings(team, overlap, lease_seconds, annotator)
        self.annotator = "user" if annotator is None else annotator
        self.ensemble = check_count(
            ensemble, "ensemble", 1, "independently trained members", MAX_ENSEMBLE
        )
        if chunk_size is not None:
            chunk_size = check_count(chunk_size, "chunk_size", 1, "items per forward pass")
        device = check_device(device)
        self.encoding = set_up_encoder(
            pool, model, encoder, fine_tune=bool(fine_tune), seed=self.seed, device=device,
            cache_dir=cache_dir, progress=progress, n_classes=len(pool.classes),
        )  # fmt: skip
        cold_start = check_flag(cold_start, "cold_start")
        score_subset = auto_score_subset(
            score_subset, len(pool), on_features=self.encoding.cache is not None
        )
        parts = assemble(
            self.encoding.pool, self.encoding.model, reset_weights=reset_weights,
            cold_start=cold_start,
            strategy=strategy, mc_samples=mc_samples, ensemble=self.ensemble,
            seed=self.seed, device=device, score_subset=score_subset,
            chunk_size=chunk_size or (16_384 if self.encoding.cache is not None else 512),
            annotator=self.annotator, store=store, team=checked_team,
        )  # fmt: skip
        self.parts = parts
        self.classes: list[str] = parts.classes.names
        self.model, self.settings, self.book = parts.model, parts.settings, parts.book
        self.rounds, self.team_view, self._link = parts.rounds, parts.team_view, parts.link
        self.history: list[dict] = parts.history
        self.last_query_timings: dict = {}
        self.cleaning = Cleaning(self)  # takes over the store's "not a class" marks and keeps

    # ------------------------------------------------------------ configuration
    @property
    def model_name(self) -> str:
        """A short name of the model architecture (a built-in name or the module's class)."""
        return self.model.factory.name

    @property
    def strategy(self) -> str:
        """The strategy later queries use (change it with :meth:`set_strategy`)."""
        return self.settings.strategy

    @property
    def mc_samples(self) -> int:
        return self.settings.mc_samples

    score_subset = property(lambda self: self.settings.score_subset)
    device = property(lambda self: self.model.device)

    @property
    def model_version(self) -> int:  # trainings behind the current model (0 = untrained)
        return self.model.version

    @property
    def last_train_report(self) -> TrainReport | None:
        return self.model.last_train_report

    def set_strategy(self, name: str, mc_samples: int | None = None) -> None:
        """Switch strategy (and optionally the MC sample count) for later queries."""
        switch_strategy(self.model, self.settings, name, mc_samples)

    def add_class(self, name: str) -> int:
        """Add a new class (e.g. typed by the annotator) and return its index.

        The current models get one more output, so queries keep working before the next
        retrain; the class list is saved in the store. In team mode, classes teammates
        added are taken over first (a name one of them added just returns its index).

        Raises
        ------
        ValueError
            An empty or existing name, or a model whose output size cannot change.
        """
        return self.parts.classes.add(name, self.book, self._link.store)

    # ------------------------------------------------------------------- labels
    @property
    def labels(self) -> dict:
        """Item id → class name, in labeling order (a copy): the labels training uses.

        In team mode, the team's consensus as of the last :meth:`refresh_labels` plus this
        session's own labels since; :attr:`my_labels` holds this annotator's own.
        """
        return self.book.named()

    @property
    def my_labels(self) -> dict:
        """Item id → class name of the labels this session's annotator gave."""
        return self.book.mine()

    @property
    def labeled_ids(self) -> list:
        return [self.pool.ids[p] for p in self.book.snapshot()[0]]

    @property
    def unlabeled_ids(self) -> list:
        return [self.pool.ids[p] for p in self.book.unlabeled_positions()]

    @property
    def n_labels(self) -> int:
        return len(self.book)

    @property
    def labels_since_retrain(self) -> int:
        """Labels added since the data of the last training run was taken."""
        return max(0, len(self.book) - self.model.labels_at_last_training)

    @property
    def stale(self) -> bool:
        """Whether labels arrived after the last scoring (the ranking no longer reflects them)."""
        cached = self.model.cached_scoring()
        return cached is not None and cached.n_labels != len(self.book)

    def label_counts(self) -> dict:
        """Class name → number of labels (every class present, zeros included)."""
        return self.book.counts()

    def class_index(self, label) -> int:
        """Class index of a class name or index, with a clear error for anything else."""
        return self.book.class_index(label)

    def label(self, ids, labels, *, annotator: str | None = None) -> None:
        """Record labels: ``label(id, "cat")`` or ``label([id1, id2], ["cat", 3])``.

        Every id and label is checked before anything is stored, so a bad entry stores
        nothing; each label is committed to the store before this returns.

        Raises
        ------
        UnknownItemError, UnknownLabelError, AlreadyLabeledError, ValueError
        """
        self.book.label(
            ids, labels, annotator=annotator or self.annotator,
            model_version=self.model.version, strategy=self.strategy,
        )  # fmt: skip

    def unlabel(self, item_id) -> str:
        """Undo the label of ``item_id``; returns the class name it had.

        In team mode only this annotator's own label is undone; teammates' stay. When this
        session's last action on the item was a :meth:`relabel` or :meth:`keep`, that is
        undone instead (a change gives the item its label before the change back).
        """
        if self.cleaning.undoes_review(item_id):
            return self.cleaning.undo_review(item_id)
        return self.book.unlabel(item_id)

    def prioritize(self, ids) -> None:
        """Put unlabeled items at the front of the next batches ("label these next")."""
        self.book.prioritize(check_id_list(ids))

    # ------------------------------------------------------------------ queries
    def query(
        self,
        batch_size: int | None = None,
        *,
        score_subset: int | None = None,
        relabel: float | None = None,
        progress: Callable | None = None,
    ):
        """The next batch to label, ranked by the session's strategy, with explanations.

        In team mode, exactly the items the team queue handed to this annotator. Raises
        :class:`PoolExhaustedError` when nothing is left (team mode: its subclass
        :class:`alwidget.session.TeamQueueEmptyError`). ``relabel`` (a share, default
        :attr:`relabel_fraction`) puts that many label suspects (:meth:`label_issues`, each a
        :class:`~alwidget.session.cleaning.SuspectDetail`) in front of the batch once the
        model is trained; at least one item stays new (while a widget checks the labels in
        the background, only once that check is done). ``score_subset`` scores a random
        subset of that many items for this query only (a quick first batch; solo mode).
        While the cold start lasts (see ``cold_start``) the batch holds typical, diverse
        items; ``last_query_timings["mode"]`` is then ``"cold start"``. ``progress`` receives
        a :class:`alwidget.session.acquire.ScoringProgress` (``done``, ``total``) after each
        chunk of a new scoring pass (solo mode).
        """
        check_callback(progress, "progress")
        size = self.batch_size if batch_size is None else check_count(batch_size, "batch_size")
        # ``relabel``: this share of the batch goes to label suspects (see label_issues).
        n_suspects = self.cleaning.query_slots(size, relabel)
        size -= n_suspects
        if score_subset is not None:
            score_subset = check_score_subset(score_subset)
        if self.team:
            batch, timings = self.parts.querier.query(size)
        else:
            batch, timings = self.parts.querier.query(size, score_subset, progress)
        self.last_query_timings = timings
        batch = self.cleaning.mix(batch, n_suspects)
        self._link.remember_batch(batch, self.book.priority_ids())
        return batch

    def explain(self, ids) -> list:
        """:class:`alwidget.ItemDetail` of ``ids`` under the current model and strategy (their
        ``pool_rank`` counts among ``ids`` only), e.g. to refresh an item in hand after a
        retrain."""
        ids = check_id_list(ids)
        positions = self._positions(ids)
        if not len(positions):
            return []
        result = acquire(self.model, self.settings, positions, n_labels=len(self.book))
        order = Selection(np.arange(len(positions)), result.scores_N.astype(np.float64))
        return build_batch(
            ids, result.log_probs_N_K_C, result.scores_N, order, self.classes, self.strategy,
            self.model.version,
        ).items  # fmt: skip

    @property
    def scores_on_features(self) -> bool:
        """Whether the model is a head on cached encoder features, so that scoring the whole
        pool costs seconds (no subset, no quick first pass needed)."""
        return self.encoding.cache is not None

    @property
    def missing_classes(self) -> list[str]:
        """Classes with no label yet (the model cannot learn them; accuracy ignores them)."""
        return [name for name, count in self.book.counts().items() if count == 0]

    def score_items(self, ids=None) -> tuple[np.ndarray, np.ndarray]:
        """``(log_probs_N_K_C, scores_N)`` of ``ids`` (default: the whole pool) under the
        session's strategy, as a query would score them (no selection)."""
        positions = self._positions(ids)
        result = acquire(self.model, self.settings, positions, n_labels=len(self.book))
        return result.log_probs_N_K_C, result.scores_N

    def _positions(self, ids) -> np.ndarray:
        if ids is None:
            return np.arange(len(self.pool))
        return np.array([self.book.position(i) for i in check_id_list(ids)], dtype=np.int64)

    def predict(self, ids=None, *, mc_samples: int | None = None) -> np.ndarray:
        """``log_probs_N_K_C`` for ``ids`` (default: the whole pool)."""
        samples = (
            self.mc_samples
            if mc_samples is None
            else check_count(mc_samples, "mc_samples", 1, "MC-dropout samples", MAX_MC_SAMPLES)
        )
        prediction = self.model.predict(self._positions(ids), mc_samples=samples, embeddings=False)
        return prediction.log_probs_N_K_C

    def embeddings(self, ids=None) -> np.ndarray:
        """Penultimate-layer features (dropout off, first member) for ``ids`` or the pool."""
        features = self.model.embeddings()
        return features if ids is None else features[self._positions(ids)]

    # ----------------------------------------------------------------- training
    @property
    def is_training(self) -> bool:
        return self.rounds.training_lock.locked()

    def retrain(
        self,
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        cross_validate: bool = True,
    ) -> TrainReport:
        """Train on the current labels (fresh weights unless ``train_config.warm_start``).

        Safe to call from a background thread while labeling goes on: it trains new members
        on a snapshot of the labels and swaps them in at the end. ``progress`` gets dicts
        with ``member``, ``step``, ``total_steps`` and ``loss``. ``cross_validate=False``
        leaves the accuracy estimate for a later :meth:`cross_validate` (the widget shows the
        new batch first).

        Raises
        ------
        NotEnoughClassesError, TrainingInProgressError
        """
        check_callback(progress, "progress")
        check_callback(should_stop, "should_stop")
        return self.rounds.retrain(
            check_train_config(self.train_config), cv_folds=self.cv_folds,
            track_coverage=self.track_coverage, progress=progress, should_stop=should_stop,
            cross_validate=check_flag(cross_validate, "cross_validate"),
        )  # fmt: skip

    def cross_validate(
        self,
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict | None:
        """Estimate the current model's accuracy by ``cv_folds``-fold cross-validation.

        Needed only after ``retrain(cross_validate=False)``; the result becomes
        :meth:`evaluate`'s answer and the model's ``accuracy`` in :attr:`history`. ``None``
        with a held-out split, ``cv_folds`` < 2, too few labels, or when stopped. ``progress``
        gets ``fold``, ``folds``, ``step`` and ``total_steps``.
        """
        check_callback(progress, "progress")
        check_callback(should_stop, "should_stop")
        return self.rounds.cross_validate(
            check_train_config(self.train_config), cv_folds=self.cv_folds,
            progress=progress, should_stop=should_stop,
        )  # fmt: skip

    def evaluate(self) -> dict | None:
        """Accuracy and mean log-likelihood of the current model.

        On the pool's held-out split when it has one (``method == "held-out"``); otherwise
        the k-fold cross-validation computed at the last :meth:`retrain`, or ``None``.
        """
        return self.model.evaluate()

    def coverage(self, radius: float | None = None, *, n_farthest: int = 10) -> dict:
        """How well the labels cover the pool in the model's embedding space.

        An item is covered when a labeled item lies within ``radius`` of it (Euclidean, on
        :meth:`embeddings`; default: a radius fixed by the pool's own density). The figures
        are also stored as ``"coverage"`` in the current model's history entry.

        Returns ``k_center_radius``, ``covered_fraction``, ``radius``,
        ``farthest_uncovered`` (the ``n_farthest`` least covered pool positions),
        ``farthest_uncovered_ids``, ``model_version`` and the rest of
        :func:`alwidget.strategies.kcenter.coverage_report`.
        """
        n_farthest = check_count(n_farthest, "n_farthest", 0, "items to list")
        return self.rounds.coverage(check_radius(radius), n_farthest=n_farthest)

    # -------------------------------------------------------------- store, team
    @property
    def store(self):
        """The session's :class:`alwidget.store.LabelStore`."""
        return self._link.store

    def export(self, path, *, history: bool = False):
        """Write the labels with their metadata to ``.csv``, ``.json`` or ``.jsonl``;
        ``history=True`` adds undone labels and undo events. Returns the path written."""
        return self._link.export(path, history=history)

    def to_dataframe(self, *, history: bool = False):
        """The labels with annotator, time, model version, strategy and score (pandas)."""
        return self._link.to_dataframe(history=history)

    def close(self) -> None:
        """Close the label store (the session can still be used for reading)."""
        self._link.close()

    # Team mode: each answer lives on the TeamView (which has its documentation).
    team = property(lambda self: self.team_view.team, doc=TeamView.team.__doc__)
    overlap = property(lambda self: self.team_view.overlap, doc=TeamView.overlap.__doc__)

    def refresh_labels(self) -> int:
        """Team mode: reload every annotator's labels; see :meth:`TeamView.refresh_labels`."""
        return self.team_view.refresh_labels()

    def agreement(self):
        """Agreement between annotators; see :meth:`TeamView.agreement`."""
        return self.team_view.agreement()

    def conflicts(self) -> list[dict]:
        """Items whose annotators disagree; see :meth:`TeamView.conflicts`."""
        return self.team_view.conflicts()

    def team_progress(self) -> dict[str, int]:
        """The team queue's counts: items, live leases, items by number of labels."""
        return self.team_view.team_progress()

    def release(self) -> int:
        """Team mode: give back the items held but not labeled; see :meth:`TeamView.release`."""
        return self.team_view.release()

    @property
    def team_publish_size(self) -> int:
        """Team mode: items of a ranking one publish puts in the team queue."""
        return getattr(self.parts.querier, "publish_size", TeamQueue.publish_size)

    @team_publish_size.setter
    def team_publish_size(self, value: int) -> None:
        self.parts.querier.publish_size = int(value)

    # ------------------------------------------------------------------ cleaning
    def label_issues(
        self, *, folds: int = 5, method: str = "prune_by_noise_rate",
        rank_by: str = "self_confidence", include_kept: bool = False, refresh: bool = False,
        progress: Callable[[dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        min_in_fold_disagreeing: int = 0,
    ) -> list[Suspect] | None:  # fmt: skip
        """Labeled items whose label is probably wrong, most suspect first.

        The labels are split into ``folds`` stratified parts; a fresh model (the session's
        architecture and training settings) trained on the others predicts each part, and
        confident learning (:mod:`alwidget.strategies.label_issues`) flags the labels those
        out-of-fold predictions contradict. The folds are trained once per model version
        (``refresh=True`` trains them again); items reviewed since drop out. In team mode,
        items whose annotators disagree come first.

        Parameters
        ----------
        folds : int
            Cross-validation folds (each costs one training on the labels).
        method : str
            ``"prune_by_noise_rate"``, ``"prune_by_class"``, ``"both"`` or
            ``"confident_joint"``.
        rank_by : str
            ``"self_confidence"`` (1 − p(given label)) or ``"normalized_margin"``.
        include_kept : bool
            Also list suspects the user kept (:meth:`keep`) with the same label.
        refresh : bool
            Train the folds again even if this model version has them.
        progress : callable, optional
            Gets ``fold``, ``folds``, ``step``, ``total_steps`` and ``folds_done`` as the
            folds train (the widget shows "checking labels: fold 2 / 5").
        should_stop : callable, optional
            Polled between training steps; True stops the check (the result is then None).
        min_in_fold_disagreeing : int
            Keep only suspects that at least this many of the fold models that *trained* on
            the item (with its given label) still predict differently (0 = all). On MNIST at
            20 % noise, 1 raised the precision from 0.64 to 0.77 at 250 labels (recall 0.85
            to 0.83) and from 0.83 to 0.86 at 1 000 (recall unchanged); a model that
            memorises its labels (long training, no dropout) disagrees with none of them.

        Returns
        -------
        list of Suspect or None
            Each with the given label, the model's label and probabilities, how many fold
            models agree and the reason (``"you said 3 · model says 8, p = 0.97, 4 of 5 folds
            agree"``); None when ``should_stop`` stopped the check.
        """
        check_callback(progress, "progress")
        check_callback(should_stop, "should_stop")
        return self.cleaning.label_issues(
            folds=folds, method=method, rank_by=rank_by, include_kept=include_kept,
            refresh=refresh, progress=progress, should_stop=should_stop,
            min_in_fold_disagreeing=min_in_fold_disagreeing,
        )  # fmt: skip

    def relabel(self, item_id, label, *, annotator: str | None = None, reason: str | None = None):
        """Change the label of a labeled item after review (the same label records a keep).

        The change is one event in the store's log (who, when, from what to what, why);
        :meth:`unlabel` right after undoes it and the earlier label returns. Returns the
        :class:`alwidget.store.cleaning_log.CleaningRecord`.
        """
        return self.cleaning.relabel(item_id, label, annotator=annotator, reason=reason)

    def keep(self, item_id, *, annotator: str | None = None, reason: str | None = None):
        """Record that a suspect's label is right, so :meth:`label_issues` stops asking."""
        return self.cleaning.keep(item_id, annotator=annotator, reason=reason)

    @property
    def relabel_fraction(self) -> float:
        """Share of each :meth:`query` batch given to label suspects when ``relabel`` is not
        passed (0 by default; the widget's batches follow it)."""
        return self.cleaning.relabel_fraction

    @relabel_fraction.setter
    def relabel_fraction(self, value: float) -> None:
        self.cleaning.suspect_slots(10, value)  # the same check as query(relabel=)
        self.cleaning.relabel_fraction = float(value)

    def out_of_distribution(self, n: int = 20, *, k: int = 10) -> list[dict]:
        """The ``n`` unlabeled items least like the pool's bulk and the labeled items.

        Scored on the encoder's features (or the model's penultimate layer): distance to
        the ``k`` nearest items relative to a typical item's (``sparsity``), distance to the
        nearest labeled item on that scale, and the model's mean entropy once trained.
        Mark the ones that belong to no class with :meth:`mark_not_a_class`.
        """
        n = check_count(n, "n", 1, "items to list")
        k = check_count(k, "k", 1, "neighbours")
        return self.cleaning.out_of_distribution(n, k=k)

    def mark_not_a_class(self, ids, *, reason: str | None = None) -> None:
        """Mark unlabeled items as belonging to no class: stored, never queried again, and
        refused by :meth:`label`, so they never train the model."""
        self.cleaning.mark_not_a_class(check_id_list(ids), reason=reason)

    def unmark_not_a_class(self, ids) -> None:
        """Undo :meth:`mark_not_a_class` (recorded as an undo event in the store)."""
        self.cleaning.unmark_not_a_class(check_id_list(ids))

    @property
    def not_a_class_ids(self) -> list:
        """Items marked "not a class"."""
        return self.cleaning.not_a_class_ids()

    def __repr__(self) -> str:
        return (
            f"Session({self.pool!r}, model={self.model_name}, strategy={self.strategy!r}, "
            f"mc_samples={self.mc_samples}, ensemble={self.ensemble}, labels={self.n_labels}, "
            f"model_version={self.model_version})"
        )

    # ------------------------------------------------------------ pseudo-labels
    def pseudo_labels(self, sample: int | None = 12) -> dict:
        """The pseudo-labels the current model was trained with (``TrainConfig(pseudo_labels=True)``).

        They are never labels: not in :attr:`labels`, not in the store, and chosen afresh
        for every training run (see :mod:`alwidget.session.pseudo_labels`).

        Parameters
        ----------
        sample : int or None
            How many to list, drawn at random (a quick way to spot a systematic mistake);
            ``None`` lists them all.

        Returns
        -------
        dict
            ``{"n", "n_candidates", "chosen_by_version", "model_version", "counts": {class:
            n}, "sample": [{"id", "predicted", "confidence", "bald"}, ...]}``; ``n`` is 0
            when pseudo-labels are off or the current model was trained without any.
        """
        chosen = self.rounds.pseudo_labels
        if sample is None:
            sample = 0 if chosen is None else len(chosen)
        sample = check_count(sample, "sample", 0, "pseudo-labels to list, or None for all")
        if chosen is None:
            summary = {"n": 0, "n_candidates": 0, "chosen_by_version": None,
                       "counts": dict.fromkeys(self.classes, 0), "sample": []}  # fmt: skip
        else:
            summary = chosen.summary(self.pool, self.classes, sample, seed=self.seed)
        return {**summary, "model_version": self.model_version}
