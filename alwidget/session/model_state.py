"""The session's model: its members, their version, training, prediction and what they see.

Training builds fresh members on a snapshot of the labels and swaps them in under
:attr:`ModelState.lock` when it ends, so labeling and querying go on meanwhile and a failed
run leaves the old model in place.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..encoders import FeaturePool
from ..errors import StrategyModelMismatchError, TrainingRejectedError
from ..evaluation import classification_metrics, cross_validate
from ..models import ModelFactory, add_output_unit, has_dropout
from ..predict import Prediction, predict
from ..strategies import StrategySpec
from ..strategies.kcenter import coverage_report
from ..training import TrainConfig, TrainReport, combine_reports, train_model
from .input_features import InputFeatures

__all__ = ["ModelState", "ScoringCache", "MAX_FIT_DROP", "SCORING_CHUNK_ROWS"]

#: How much worse (accuracy on the labels) a new model may fit than the current one.
MAX_FIT_DROP = 0.25

#: Items per step of a chunked scoring pass (rounded up to whole forward passes, so every item
#: meets the same forward-pass batches as in one unchunked call and gets the same log-probs).
SCORING_CHUNK_ROWS = 32_768


@dataclass
class ScoringCache:
    """The last scoring pass of one model version, reused until the model changes.

    ``row_of`` maps a pool position to its row in the arrays (-1: not scored);
    ``n_labels`` is how many labels the session had when the ranking was last served,
    which tells the widget whether labels arrived since (``Session.stale``).

    A streamed pass (a row-wise strategy on a large pool) keeps log-probs for a few rows
    only, and instead ``scores_by_position`` (NaN: not scored) from ``score_function``, so a
    second query of the same model selects again without predicting the pool again.
    """

    model_version: int
    mc_samples: int
    row_of: np.ndarray
    log_probs_N_K_C: np.ndarray
    embeddings_N_D: np.ndarray | None
    n_labels: int
    scores_by_position: np.ndarray | None = None
    score_function: Callable | None = None

    def rows(self, positions: np.ndarray, want_embeddings: bool) -> np.ndarray | None:
        """Rows of ``positions`` when every one was scored (with embeddings if wanted)."""
        if want_embeddings and self.embeddings_N_D is None:
            return None
        rows = self.row_of[positions]
        return rows if (rows >= 0).all() else None


class ModelState:
    """Members (an ensemble of one or more), their version and the caches tied to it.

    Parameters
    ----------
    factory : ModelFactory
        Builds a member from a seed.
    pool : Pool
        The items the members predict.
    ensemble, seed, device, chunk_size
        As given to :class:`alwidget.Session`.
    """

    def __init__(
        self, factory: ModelFactory, pool, *, ensemble, seed, device, chunk_size,
        input_features: InputFeatures | None = None,
    ):  # fmt: skip
        self.factory = factory
        # What the map, coverage and outlier scores see while the model is untrained and random.
        self.input_features = input_features or InputFeatures(pool, seed)
        self.pool = pool
        self.ensemble = ensemble
        self.seed = seed
        self.device = device
        self.chunk_size = chunk_size
        self.held_out = pool.test  # converted to model inputs once, evaluated after each round
        # Guards every field below; taken last (never held while asking the label book).
        self.lock = threading.RLock()
        self.members = [self.fresh_member(i) for i in range(ensemble)]
        self.version = 0
        self.last_train_report: TrainReport | None = None
        self.labels_at_last_training = 0
        self.scoring: ScoringCache | None = None
        self.last_cross_validation: dict | None = None
        self._embeddings: tuple[int, np.ndarray] | None = None

    # ------------------------------------------------------------------ checks
    def member_seed(self, member: int) -> int:
        return self.seed * 1_000_003 + 7_919 * member

    def fresh_member(self, member: int) -> torch.nn.Module:
        """A newly initialised member, as a retrain without warm start begins."""
        return self.factory.build(self.member_seed(member), member)

    @property
    def untrained_is_random(self) -> bool:
        """Whether a member before any training run has random weights: built from scratch,
        not the user's module with its own (pretrained) weights."""
        return not self.factory.keeps_weights

    def uses_input_features(self, version: int | None = None) -> bool:
        """Whether embeddings come from :attr:`input_features` (at ``version``, default the
        current one): an untrained, random model without an encoder, whose own features are
        a random projection that costs a full forward pass."""
        version = self.version if version is None else version
        return version == 0 and self.untrained_is_random and not isinstance(self.pool, FeaturePool)

    @property
    def has_dropout(self) -> bool:
        return has_dropout(self.members[0])

    def check_output_width(self, n_classes: int) -> None:
        probe = self.pool.inputs(np.array([0]))
        model = self.members[0]
        model.eval()
        with torch.inference_mode():
            out = model(probe)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != n_classes:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model: it must output logits of shape (batch, {n_classes}) for the pool's "
                f"{n_classes} classes; it returned {shape} for input {tuple(probe.shape)}"
            )

    def check_serves(self, spec: StrategySpec, strategy: str, mc_samples: int) -> None:
        """Refuse a strategy whose declared needs this model cannot meet."""
        dropout = self.has_dropout
        if mc_samples > 1 and not dropout:
            raise StrategyModelMismatchError(
                f"mc_samples={mc_samples} asks for MC dropout, but the model "
                f"{self.factory.name} has no dropout layers; use ensemble=5 or a model with "
                "dropout"
            )
        n_samples = self.ensemble * (mc_samples if dropout else 1)
        if spec.needs_samples and n_samples < 2:
            reason = "the model has no dropout layers" if not dropout else "mc_samples=1"
            raise StrategyModelMismatchError(
                f"strategy {strategy!r} needs K > 1 stochastic predictions (MC dropout or an "
                f"ensemble), but {reason} and ensemble=1, so K = 1; add dropout, raise "
                "mc_samples, or pass ensemble=5"
            )

    def grow_classes(self, count: int) -> None:
        """Give every member ``count`` more outputs (new classes start near probability 0)."""
        with self.lock:
            for _ in range(count):
                self.factory.num_classes += 1
                for member in self.members:
                    add_output_unit(member)
            self.forget_predictions()

    def forget_predictions(self) -> None:
        with self.lock:
            self.scoring = None
            self._embeddings = None

    # -------------------------------------------------------------- prediction
    def snapshot(self) -> tuple[list[torch.nn.Module], int]:
        """The current members and their version, read together (a retrain swaps both)."""
        with self.lock:
            return list(self.members), self.version

    def predict(
        self, positions, *, mc_samples: int, embeddings: bool, inputs=None, snapshot=None
    ) -> Prediction:
        """Predict ``positions`` of the pool (or of ``inputs``, a rows -> tensor function).

        ``snapshot`` (from :meth:`snapshot`) pins the members, so the chunks of one pass
        all come from one model even if a retrain ends meanwhile.
        """
        members, version = snapshot if snapshot is not None else self.snapshot()
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

    def scoring_chunk_rows(self) -> int:
        """Items per step of a chunked pass: :data:`SCORING_CHUNK_ROWS` in whole forward passes."""
        return -(-SCORING_CHUNK_ROWS // self.chunk_size) * self.chunk_size

    def predict_chunks(
        self, positions: np.ndarray, *, mc_samples: int, embeddings: bool, snapshot
    ) -> Iterator[tuple[int, Prediction]]:
        """``(start, prediction of positions[start:start + step])`` for consecutive chunks.

        Each chunk is one :func:`predict` call with the same seed and whole forward passes,
        so the rows come out exactly as from one call over every position.
        """
        step = self.scoring_chunk_rows()
        for start in range(0, len(positions), step):
            chunk = positions[start : start + step]
            part = self.predict(
                chunk, mc_samples=mc_samples, embeddings=embeddings, snapshot=snapshot
            )
            yield start, part

    def scoring_pass(
        self,
        positions: np.ndarray,
        *,
        mc_samples: int,
        want_embeddings: bool,
        n_labels: int,
        on_chunk: Callable[[int, Prediction], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Log-probs (and embeddings) of ``positions``, reusing this model's last pass.

        A new pass predicts chunk by chunk and calls ``on_chunk(start, prediction)`` after
        each (not when the last pass is reused), so a caller can score and report progress.
        """
        with self.lock:
            cached, snapshot = self.scoring, (list(self.members), self.version)
        version = snapshot[1]
        if cached is not None and (cached.model_version, cached.mc_samples) == (
            version,
            mc_samples,
        ):
            rows = cached.rows(positions, want_embeddings)
            if rows is not None:
                cached.n_labels = n_labels
                embeddings = None if cached.embeddings_N_D is None else cached.embeddings_N_D[rows]
                return cached.log_probs_N_K_C[rows], embeddings
        if on_chunk is None or len(positions) == 0:
            prediction = self.predict(
                positions, mc_samples=mc_samples, embeddings=want_embeddings, snapshot=snapshot
            )
            log_probs, embeddings = prediction.log_probs_N_K_C, prediction.embeddings_N_D
        else:
            log_probs = embeddings = None
            for start, part in self.predict_chunks(
                positions, mc_samples=mc_samples, embeddings=want_embeddings, snapshot=snapshot
            ):
                stop = start + len(part.log_probs_N_K_C)
                if log_probs is None:
                    log_probs = np.empty(
                        (len(positions),) + part.log_probs_N_K_C.shape[1:], np.float32
                    )
                log_probs[start:stop] = part.log_probs_N_K_C
                if part.embeddings_N_D is not None:
                    if embeddings is None:
                        embeddings = np.empty(
                            (len(positions), part.embeddings_N_D.shape[1]), np.float32
                        )
                    embeddings[start:stop] = part.embeddings_N_D
                on_chunk(start, part)
        row_of = np.full(len(self.pool), -1, dtype=np.int64)
        row_of[positions] = np.arange(len(positions))
        with self.lock:
            if self.version == version:
                self.scoring = ScoringCache(
                    version, mc_samples, row_of, log_probs, embeddings, n_labels
                )
        return log_probs, embeddings

    def remember_scores(
        self, snapshot, *, mc_samples: int, positions: np.ndarray, scores_N: np.ndarray,
        score_function: Callable | None, kept_positions: np.ndarray,
        kept_log_probs_M_K_C: np.ndarray, n_labels: int,
    ) -> None:  # fmt: skip
        """Record a streamed pass: scores of ``positions`` (when ``score_function`` is
        deterministic, else None) and the log-probs of the few rows that were kept."""
        version = snapshot[1]
        row_of = np.full(len(self.pool), -1, dtype=np.int64)
        row_of[kept_positions] = np.arange(len(kept_positions))
        scores_by_position = None
        if score_function is not None:
            scores_by_position = np.full(len(self.pool), np.nan)
            scores_by_position[positions] = scores_N
        with self.lock:
            if self.version == version:
                self.scoring = ScoringCache(
                    version, mc_samples, row_of, kept_log_probs_M_K_C, None, n_labels,
                    scores_by_position, score_function,
                )  # fmt: skip

    def remembered_scores(
        self, snapshot, *, mc_samples: int, positions: np.ndarray, score_function: Callable,
        n_labels: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:  # fmt: skip
        """``(scores_N, kept_positions, kept_log_probs_M_K_C)`` from a streamed pass of this
        model with ``score_function`` that scored every one of ``positions``, else None."""
        with self.lock:
            cached = self.scoring
        if (
            cached is None
            or cached.scores_by_position is None
            or cached.score_function is not score_function
            or (cached.model_version, cached.mc_samples) != (snapshot[1], mc_samples)
        ):
            return None
        scores = cached.scores_by_position[positions]
        if np.isnan(scores).any():
            return None
        cached.n_labels = n_labels
        kept = np.flatnonzero(cached.row_of >= 0)
        return scores, kept, cached.log_probs_N_K_C[cached.row_of[kept]]

    def cached_scoring(self) -> ScoringCache | None:
        """The last scoring pass when it belongs to the current model, else None."""
        with self.lock:
            cached = self.scoring
            return cached if cached is not None and cached.model_version == self.version else None

    def embeddings(self) -> np.ndarray:
        """Features of the whole pool for the map and coverage.

        With an encoder these are its cached features, the same for every model version (so
        the map keeps its layout across retrains). Before the first training run of a model
        built from scratch, the :class:`InputFeatures`. Otherwise the first member's
        penultimate-layer features (dropout off).
        """
        if isinstance(self.pool, FeaturePool):
            return self.pool.cache.standardised(np.arange(len(self.pool)))
        with self.lock:
            cached, version = self._embeddings, self.version
        if self.uses_input_features(version):
            return self.input_features.all()
        if cached is not None and cached[0] == version:
            return cached[1]
        everything = np.arange(len(self.pool))
        features = self.predict(everything, mc_samples=1, embeddings=True).embeddings_N_D
        with self.lock:
            if self.version == version:
                self._embeddings = (version, features)
        return features

    def embedding_rows(self, positions: np.ndarray, snapshot=None) -> np.ndarray:
        """:meth:`embeddings` of some positions only, without a pass over the whole pool.

        ``snapshot`` (from :meth:`snapshot`) pins the model version, so the rows come from
        the same feature space as a later :meth:`embeddings_of_snapshot` call.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if isinstance(self.pool, FeaturePool):
            return self.pool.cache.standardised(positions)
        snapshot = snapshot if snapshot is not None else self.snapshot()
        if self.uses_input_features(snapshot[1]):
            return self.input_features.rows(positions)
        return self.predict(
            positions, mc_samples=1, embeddings=True, snapshot=snapshot
        ).embeddings_N_D

    def embeddings_of_snapshot(self, snapshot) -> np.ndarray:
        """:meth:`embeddings` of the whole pool by the pinned ``snapshot``'s model."""
        if isinstance(self.pool, FeaturePool):
            return self.embeddings()  # the encoder's: the same for every version
        if self.version == snapshot[1]:
            features = self.embeddings()  # cached per version
            if self.version == snapshot[1]:  # no retrain ended while it was computed
                return features
        return self.embedding_rows(np.arange(len(self.pool)), snapshot)

    def evaluate(self) -> dict | None:
        """Held-out accuracy, else the last cross-validation (or None before one)."""
        test = self.held_out
        with self.lock:
            version, cross_validation = self.version, self.last_cross_validation
        if test is None:
            return (
                None if cross_validation is None else {**cross_validation, "model_version": version}
            )
        prediction = self.predict(
            np.arange(len(test)), mc_samples=1, embeddings=False,
            inputs=lambda rows: test.inputs[rows],
        )  # fmt: skip
        metrics = classification_metrics(prediction.log_probs_N_K_C, test.targets)
        return {**metrics, "method": "held-out", "model_version": version}

    def coverage(self, labeled_mask_fn: Callable[[], np.ndarray], radius, n_farthest) -> dict:
        """:func:`coverage_report` of the labels on this model's embeddings."""
        for _attempt in range(3):
            with self.lock:
                version = self.version
            mask = labeled_mask_fn()
            features = self.embeddings()
            # A retrain finishing between the two reads would pair old labels with new features.
            if self.version == version:
                break
        report = coverage_report(features, mask, radius, n_farthest=n_farthest)
        report["model_version"] = version
        report["farthest_uncovered_ids"] = [
            self.pool.ids[p] for p in report["farthest_uncovered"].tolist()
        ]
        return report

    # ---------------------------------------------------------------- training
    def train(
        self,
        positions: np.ndarray,
        targets: np.ndarray,
        config: TrainConfig,
        *,
        progress: Callable[[dict], None] | None,
        should_stop: Callable[[], bool] | None,
        cv_folds: int,
        cross_validation: bool,
        pseudo=None,
        unlabeled_positions: np.ndarray | None = None,
    ) -> TrainReport:
        """Train new members on the labels and install them; returns the report.

        ``pseudo`` (:class:`~.pseudo_labels.PseudoLabels`) and ``unlabeled_positions`` (for
        consistency training) add unlabeled items to the run (see :func:`train_model`).
        """
        started = time.perf_counter()
        inputs = self.pool.inputs(positions)
        extra = {}
        if pseudo is not None and len(pseudo):
            extra["pseudo"] = (self.pool.inputs(pseudo.positions), pseudo.classes)
        if unlabeled_positions is not None and len(unlabeled_positions):
            extra["unlabeled"] = self.pool.inputs(unlabeled_positions)
        members, reports = [], []
        for index in range(self.ensemble):
            model = self.fresh_member(index)
            if config.warm_start and self.version > 0:
                model.load_state_dict(self.members[index].state_dict())
            member_progress = None
            if progress is not None:

                def member_progress(info, member=index):
                    progress({"member": member, "members": self.ensemble, **info})

            reports.append(
                train_model(
                    model,
                    inputs,
                    targets,
                    config,
                    seed=self.member_seed(index) + len(targets),
                    device=self.device,
                    progress=member_progress,
                    should_stop=should_stop,
                    **extra,
                )  # fmt: skip
            )
            members.append(model)
        seconds = time.perf_counter() - started
        report = reports[0] if len(reports) == 1 else combine_reports(reports, seconds)
        self._check_fit(members, inputs, targets, report)
        with self.lock:
            self.members = members
            self.version += 1
            self.labels_at_last_training = len(targets)
            self.last_train_report = report
            self.forget_predictions()
        if cross_validation and cv_folds >= 2:
            self.cross_validate(inputs, targets, config, cv_folds=cv_folds,
                                should_stop=should_stop, version=self.version)  # fmt: skip
        return report

    def cross_validate(self, inputs, targets: np.ndarray, config: TrainConfig, *, cv_folds: int,
                       version: int, should_stop: Callable[[], bool] | None = None,
                       progress: Callable[[dict], None] | None = None) -> dict | None:  # fmt: skip
        """Estimate model ``version``'s accuracy by ``cv_folds``-fold cross-validation.

        Kept as :meth:`evaluate`'s answer unless a newer model has replaced ``version``
        meanwhile (its estimate would describe the wrong model).
        """
        result = cross_validate(
            self.factory, inputs, targets, config, folds=cv_folds, seed=self.member_seed(0),
            device=self.device, should_stop=should_stop, progress=progress,
        )  # fmt: skip
        with self.lock:
            if self.version == version:
                self.last_cross_validation = result
        return result

    def _fit_accuracy(self, members, inputs, targets) -> float:
        """Mean accuracy of ``members`` (dropout off) on the labeled items."""
        prediction = predict(
            members, lambda rows: inputs[rows], np.arange(len(targets)), mc_samples=1,
            chunk_size=self.chunk_size, device=self.device,
        )  # fmt: skip
        return float((prediction.log_probs_N_K_C.argmax(axis=2) == targets[:, None]).mean())

    def _check_fit(self, members, inputs, targets, report: TrainReport) -> None:
        """Refuse a finished run whose model fits the labels far worse than the current one.

        A learning rate far too high can end with a finite loss and a model no better than
        chance; installing it would throw a good model away. The test uses the labels only
        (never the held-out split), on which a healthy run fits at least as well as the
        previous model, which saw fewer of them.
        """
        if self.version == 0:
            return
        with self.lock:
            current = list(self.members)
        new_fit = self._fit_accuracy(members, inputs, targets)
        current_fit = self._fit_accuracy(current, inputs, targets)
        if new_fit < current_fit - MAX_FIT_DROP:
            raise TrainingRejectedError(
                f"the new model fits the {len(targets)} labels with accuracy {new_fit:.2f}, the "
                f"current one with {current_fit:.2f} (train loss {report.train_loss:.3g}): the "
                "run probably diverged, so the current model is kept; lower TrainConfig.lr or "
                "check the labels"
            )

    def restore(self, version: int, state_dicts: list[dict], trained_on: int) -> bool:
        """Load stored weights; False (with a warning) when they do not fit this model."""
        try:
            if len(state_dicts) != self.ensemble:
                raise ValueError(
                    f"it has {len(state_dicts)} ensemble members, the session {self.ensemble}"
                )
            members = []
            for index, state in enumerate(state_dicts):
                member = self.fresh_member(index)
                member.load_state_dict(state)
                members.append(member)
        except (RuntimeError, ValueError, KeyError) as error:
            warnings.warn(
                f"the stored model (version {version}) does not fit this session's model, so "
                f"training starts afresh; the labels were restored ({error})",
                stacklevel=5,
            )
            return False
        with self.lock:
            self.members = members
            self.version = int(version)
            self.labels_at_last_training = int(trained_on)
            self.forget_predictions()
        return True
