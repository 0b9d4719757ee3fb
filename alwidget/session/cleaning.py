"""Cleaning in the loop: labels that are probably wrong, items that belong to no class.

:class:`Cleaning` is the part of a :class:`alwidget.Session` behind
:meth:`~alwidget.Session.label_issues`, :meth:`~alwidget.Session.relabel`,
:meth:`~alwidget.Session.keep`, :meth:`~alwidget.Session.out_of_distribution` and
:meth:`~alwidget.Session.mark_not_a_class`, and it mixes suspects into
:meth:`~alwidget.Session.query` batches.

Suspects come from *out-of-fold* predictions: the labels are split into ``folds`` stratified
parts, a fresh model is trained on all but one and predicts the one left out, so no item is
judged by a model that memorised its label. Confident learning
(:mod:`alwidget.strategies.label_issues`) then decides which labels to doubt. The result is
kept until the model is retrained; items reviewed since (changed or kept) drop out of it.

While a widget shows the session (:attr:`Cleaning.check_in_background`), a query never
trains the folds itself: it mixes in the suspects of the current model once a background
check (:meth:`Cleaning.label_issues` with ``progress`` and ``should_stop``) has found them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import numpy as np

from ..acquisition import Batch, ItemDetail
from ..errors import InvalidArgumentError, NotEnoughClassesError, NotLabeledError
from ..predict import predict
from ..strategies import explain
from ..strategies import label_issues as issues
from ..training import TrainConfig, TrainingCancelled, train_model

__all__ = ["Cleaning", "OutOfFold", "Suspect", "SuspectDetail", "out_of_fold_predictions"]


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions of the labeled items.

    Attributes
    ----------
    log_probs_N_K_C : np.ndarray
        Each item predicted by the model of the fold that left it out (K MC samples).
    fold_predictions_N_F : np.ndarray
        Class each fold's model predicts for every labeled item (dropout off); ``-1`` for a
        fold that could not be trained (a single class in its training part).
    fold_of_N : np.ndarray
        The fold that left each item out.
    """

    log_probs_N_K_C: np.ndarray
    fold_predictions_N_F: np.ndarray
    fold_of_N: np.ndarray


def out_of_fold_predictions(
    factory, inputs, targets: np.ndarray, config: TrainConfig, *, folds: int, seed: int,
    device, mc_samples: int = 1, chunk_size: int = 512, progress=None, should_stop=None,
) -> OutOfFold | None:  # fmt: skip
    """Train ``folds`` models on stratified parts of the labels; each predicts what it left out.

    Parameters
    ----------
    factory : alwidget.models.ModelFactory
        Builds a fresh model (``factory.build(seed)``).
    inputs : torch.Tensor
        Model inputs of the labeled items.
    targets : np.ndarray
        Their class indices.
    config : TrainConfig
        How each fold's model is trained (the session's settings).
    folds, seed, device, mc_samples, chunk_size
        Number of folds; seeds the split and the models; where to train; MC-dropout samples
        of the out-of-fold predictions; items per forward pass.
    progress : callable, optional
        Gets ``{"fold", "folds", "step", "total_steps", "folds_done"}`` as each fold trains
        (``fold`` counts from 0) and once more when it is done.
    should_stop : callable, optional
        Polled between training steps; when it returns True the work stops and the result
        is ``None``.

    Raises
    ------
    NotEnoughClassesError
        Fewer than two labels per fold.
    """
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) < 2 * folds:
        raise NotEnoughClassesError(
            f"finding label issues with {folds} folds needs at least {2 * folds} labels; there "
            f"are {len(targets)}: label more, or pass folds= a smaller number (at least 2)"
        )
    rng = np.random.default_rng(seed + len(targets))
    fold_of = np.empty(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        fold_of[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    n_classes = int(factory.num_classes)
    log_probs = None
    fold_predictions = np.full((len(targets), folds), -1, dtype=np.int64)
    everything = np.arange(len(targets))
    for fold in range(folds):
        train_rows, test_rows = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        if len(test_rows) == 0:
            continue
        if len(np.unique(targets[train_rows])) < 2:
            raise NotEnoughClassesError(
                f"fold {fold} of {folds} would train on a single class; label at least two "
                "classes with several items each, or pass fewer folds"
            )
        model = factory.build(seed + 7_919 * fold)
        fold_progress = None
        if progress is not None:

            def fold_progress(info, fold=fold):
                progress({**info, "fold": fold, "folds": folds, "folds_done": fold})

        try:
            report = train_model(
                model, inputs[train_rows], targets[train_rows], config, seed=seed + fold,
                device=device, progress=fold_progress, should_stop=should_stop,
            )  # fmt: skip
        except TrainingCancelled:
            return None
        if should_stop is not None and should_stop():
            return None
        held_out = predict(
            model, inputs.__getitem__, test_rows, mc_samples=mc_samples,
            chunk_size=chunk_size, device=device, seed=seed + fold,
        ).log_probs_N_K_C  # fmt: skip
        if log_probs is None:
            log_probs = np.zeros((len(targets), held_out.shape[1], n_classes), dtype=np.float32)
        log_probs[test_rows] = held_out
        every = predict(
            model, inputs.__getitem__, everything, chunk_size=chunk_size, device=device
        ).log_probs_N_K_C
        fold_predictions[:, fold] = every[:, 0, :].argmax(axis=1)
        if progress is not None:
            steps = int(report.steps)
            progress(
                {"fold": fold, "folds": folds, "step": steps, "total_steps": steps,
                 "folds_done": fold + 1}
            )  # fmt: skip
    return OutOfFold(log_probs, fold_predictions, fold_of)


@dataclass(frozen=True)
class Suspect:
    """A labeled item whose label is probably wrong.

    Attributes
    ----------
    id : object
        The item.
    given : str
        Its current label.
    predicted : str
        The class the out-of-fold model prefers.
    probability : float
        That class's out-of-fold probability.
    given_probability : float
        The given label's out-of-fold probability.
    probabilities : dict
        Class name → out-of-fold probability.
    folds_agreeing : int
        How many of the ``n_folds`` fold models predict ``predicted`` (including the
        models that trained on the item with its given label).
    n_folds : int
        Number of fold models.
    score : float
        The ranking score (higher = more suspect; see ``rank_by``).
    disagreement : float
        Share of the out-of-fold MC samples whose top class is not the given label.
    reason : str
        The explanation shown to the user.
    source : str
        ``"confident learning"`` or ``"annotators disagree"`` (team mode).
    votes : dict
        Team mode: annotator → label of an item annotators disagree on.
    in_fold_disagreeing : int
        How many of the fold models that *trained* on the item with its given label still
        predict another class: a label even they do not take up is the more suspect.
    """

    id: object
    given: str
    predicted: str
    probability: float
    given_probability: float
    probabilities: dict = field(repr=False)
    folds_agreeing: int
    n_folds: int
    score: float
    disagreement: float
    reason: str
    source: str = "confident learning"
    votes: dict = field(default_factory=dict)
    in_fold_disagreeing: int = 0

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class SuspectDetail(ItemDetail):
    """An :class:`alwidget.ItemDetail` of a labeled item put back in a batch for review."""

    suspect: Suspect | None = None


def suspect_reason(
    given: str, predicted: str, probability: float, agreeing: int, folds: int
) -> str:
    """``"you said 3 · model says 8, p = 0.97, 4 of 5 folds agree"``."""
    return (
        f"you said {given} · model says {predicted}, p = {probability:.2f}, "
        f"{agreeing} of {folds} folds agree"
    )


@dataclass
class _Computed:
    model_version: int
    folds: int
    positions: np.ndarray
    targets: np.ndarray
    out_of_fold: OutOfFold


class Cleaning:
    """Label issues, relabeling, keep decisions and "not a class" marks of one session.

    Built by :class:`alwidget.Session`; takes over the decisions its store holds.
    """

    def __init__(self, session) -> None:
        self.session = session
        self.book = session.book
        self.model = session.model
        self.store = session._link.store
        self.lock = threading.RLock()
        # Held while the folds train (outside ``lock``, which the widget's thread takes): a
        # second caller waits for that result instead of training the folds again.
        self._compute_lock = threading.Lock()
        self._computed: _Computed | None = None
        #: Set by a widget that checks the labels in the background: queries then mix in
        #: only suspects already found for the current model, never training the folds.
        self.check_in_background = False
        #: Items reviewed since the issues were computed, dropped from them.
        self._reviewed: set = set()
        #: item id -> (the session's last review action on it, "change" or "keep", and by
        #: whom), for undo.
        self._last_review: dict = {}
        self.kept: dict[str, str] = {}
        self.relabel_fraction = 0.0
        self._suspect_detail: dict = {}  # item id -> Suspect handed out, not reviewed yet
        self._answered: dict = {}  # item id -> Suspect reviewed (kept for undo)
        for record in self.store.cleaning_records():
            if record.kind == "not_a_class":
                self.book.excluded.add(self.session.pool.position(self._item_id(record.item_key)))
            elif record.kind == "keep":
                self.kept[record.item_key] = record.from_label

    def _item_id(self, key: str):
        return self.session._link.item_id(key)

    # ----------------------------------------------------------------- issues
    def label_issues(
        self, *, folds: int = 5, method: str = "prune_by_noise_rate",
        rank_by: str = "self_confidence", include_kept: bool = False, refresh: bool = False,
        progress=None, should_stop=None, compute: bool = True, min_in_fold_disagreeing: int = 0,
    ) -> list[Suspect] | None:  # fmt: skip
        """See :meth:`alwidget.Session.label_issues`.

        ``compute=False`` answers only from folds already trained for the current model
        (``None`` when there are none), so it never trains.
        """
        if method not in issues.ISSUE_METHODS:
            raise InvalidArgumentError(
                f"method must be one of {issues.ISSUE_METHODS}; got {method!r}"
            )
        if rank_by not in issues.RANKINGS:
            raise InvalidArgumentError(f"rank_by must be one of {issues.RANKINGS}; got {rank_by!r}")
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
            raise InvalidArgumentError(
                f"folds must be an integer of at least 2 (cross-validation folds); got {folds!r}"
            )
        strict = min_in_fold_disagreeing
        if isinstance(strict, bool) or not isinstance(strict, (int, np.integer)) or strict < 0:
            raise InvalidArgumentError(
                "min_in_fold_disagreeing must be an integer ≥ 0 (0 = off; at most folds - 1 "
                f"models trained on an item); got {strict!r}"
            )
        computed = (
            self._out_of_fold(int(folds), refresh, progress, should_stop)
            if compute
            else self._ready(int(folds))
        )
        if computed is None:
            return None
        classes = self.session.classes
        probs_N_C = np.exp(computed.out_of_fold.log_probs_N_K_C.astype(np.float64)).mean(axis=1)
        probs_N_C /= probs_N_C.sum(axis=1, keepdims=True)
        targets = computed.targets
        order = issues.rank_label_issues(probs_N_C, targets, method=method, rank_by=rank_by)
        scores = issues.issue_scores_N(probs_N_C, targets, rank_by)
        disagreement = issues.sample_disagreement_scores_N(
            computed.out_of_fold.log_probs_N_K_C, targets
        )
        current = self.book.snapshot()
        now = dict(zip(current[0].tolist(), current[1].tolist()))
        suspects = self._conflicts()
        seen = {suspect.id for suspect in suspects}
        for row in order.tolist():
            position = int(computed.positions[row])
            item_id = self.session.pool.ids[position]
            given_index = int(targets[row])
            if item_id in seen or item_id in self._reviewed or now.get(position) != given_index:
                continue  # reviewed, relabeled or unlabeled since the folds were trained
            given = classes[given_index]
            if not include_kept and self.kept.get(str(item_id)) == given:
                continue
            predicted_index = int(probs_N_C[row].argmax())
            fold_votes = computed.out_of_fold.fold_predictions_N_F[row]
            trained = int((fold_votes >= 0).sum())
            agreeing = int((fold_votes == predicted_index).sum())
            in_fold = np.delete(fold_votes, computed.out_of_fold.fold_of_N[row])
            in_fold_disagreeing = int(((in_fold >= 0) & (in_fold != given_index)).sum())
            if in_fold_disagreeing < strict:
                continue
            probability = float(probs_N_C[row, predicted_index])
            suspects.append(
                Suspect(
                    id=item_id,
                    given=given,
                    predicted=classes[predicted_index],
                    probability=probability,
                    given_probability=float(probs_N_C[row, given_index]),
                    probabilities={n: float(p) for n, p in zip(classes, probs_N_C[row])},
                    folds_agreeing=agreeing,
                    n_folds=trained,
                    score=float(scores[row]),
                    disagreement=float(disagreement[row]),
                    reason=suspect_reason(
                        given, classes[predicted_index], probability, agreeing, trained
                    ),
                    in_fold_disagreeing=in_fold_disagreeing,
                )  # fmt: skip
            )
        return suspects

    def _conflicts(self) -> list[Suspect]:
        """Team mode: items whose annotators disagree, as suspects."""
        if not self.session.team:
            return []
        suspects = []
        for conflict in self.session.conflicts():
            key = conflict["item_key"]
            item_id = self._item_id(key)
            if item_id in self._reviewed:
                continue
            labels = dict(conflict["labels"])
            majority = conflict.get("majority_label")
            given = self.session.labels.get(item_id) or majority or next(iter(labels.values()))
            others = sorted({label for label in labels.values() if label != given})
            said = ", ".join(f"{who}: {label}" for who, label in sorted(labels.items()))
            suspects.append(
                Suspect(
                    id=item_id,
                    given=given,
                    predicted=others[0] if others else given,
                    probability=float("nan"),
                    given_probability=float("nan"),
                    probabilities={},
                    folds_agreeing=0,
                    n_folds=0,
                    score=1.0,
                    disagreement=1.0,
                    reason=f"annotators disagree ({said})",
                    source="annotators disagree",
                    votes=labels,
                )  # fmt: skip
            )
        return suspects

    def _ready(self, folds: int) -> _Computed | None:
        """The folds trained for the current model, or None."""
        with self.lock:
            computed = self._computed
            if computed is None or computed.model_version != self.model.version:
                return None
            return computed if computed.folds == folds else None

    def suspects_ready(self, folds: int = 5) -> bool:
        """Whether the current model's label check (``folds`` folds) is done."""
        return self._ready(folds) is not None

    def _out_of_fold(self, folds: int, refresh: bool, progress=None, should_stop=None):
        with self._compute_lock:
            if not refresh and (ready := self._ready(folds)) is not None:
                return ready
            with self.lock:
                positions, targets = self.book.snapshot()
                version, reviewed_before = self.model.version, set(self._reviewed)
            model = self.model
            inputs = model.pool.inputs(positions)
            mc = self.session.mc_samples if model.has_dropout else 1
            # No lock while the folds train: the widget's thread reads the suspects handed
            # out (awaiting_review) and records reviews meanwhile.
            out = out_of_fold_predictions(
                model.factory, inputs, targets, self.session.train_config, folds=folds,
                seed=model.member_seed(0) + 17, device=model.device, mc_samples=mc,
                chunk_size=model.chunk_size, progress=progress, should_stop=should_stop,
            )  # fmt: skip
            if out is None:
                return None  # stopped
            computed = _Computed(version, folds, positions, targets, out)
            with self.lock:
                if self._computed is None or self._computed.model_version <= version:
                    self._computed = computed
                    # Reviews made while the folds trained still hide their items.
                    self._reviewed -= reviewed_before
            return computed

    # ---------------------------------------------------------------- reviews
    def relabel(self, item_id, label, *, annotator: str | None = None, reason: str | None = None):
        """See :meth:`alwidget.Session.relabel`."""
        who = annotator or self.session.annotator
        with self.book.lock:
            position = self.book.position(item_id)
            if position not in self.book.targets:
                raise NotLabeledError(
                    f"item {item_id!r} has no label to change; label it with session.label"
                )
            new_index = self.book.class_index(label)
            if new_index == self.book.targets[position]:
                return self.keep(item_id, annotator=who, reason=reason)
            meta = getattr(self.book, "meta", {}).get(position, {})
            replaces = meta.get("event_id") if not self.session.team else None
            key = str(self.session.pool.ids[position])
            change, _ = self.store.change_label(
                key, self.session.classes[new_index], annotator=who, replaces_event_id=replaces,
                model_version=self.model.version, reason=reason or self._reason_of(item_id),
            )  # fmt: skip
            self.book.take_over({key: self.store.item_votes(key)})
        with self.lock:
            self._reviewed.add(item_id)
            self._last_review[item_id] = ("change", who)
            self._answer(item_id)
        return change

    def keep(self, item_id, *, annotator: str | None = None, reason: str | None = None):
        """See :meth:`alwidget.Session.keep`."""
        who = annotator or self.session.annotator
        with self.book.lock:
            position = self.book.position(item_id)
            if position not in self.book.targets:
                raise NotLabeledError(f"item {item_id!r} has no label to keep")
            label = self.session.classes[self.book.targets[position]]
            key = str(self.session.pool.ids[position])
            record = self.store.record_decision(
                key, "keep", annotator=who, label=label,
                reason=reason or self._reason_of(item_id),
            )  # fmt: skip
        with self.lock:
            self.kept[key] = label
            self._reviewed.add(item_id)
            self._last_review[item_id] = ("keep", who)
            self._answer(item_id)
        return record

    def _reason_of(self, item_id) -> str | None:
        suspect = self._suspect_detail.get(item_id)
        return None if suspect is None else suspect.reason

    def _answer(self, item_id) -> None:
        if item_id in self._suspect_detail:
            self._answered[item_id] = self._suspect_detail.pop(item_id)

    def awaiting_review(self) -> set:
        """Suspects handed out in a batch and not reviewed yet."""
        with self.lock:
            return set(self._suspect_detail)

    def undoes_review(self, item_id) -> bool:
        """Whether the session's last action on ``item_id`` was a change or a keep."""
        with self.lock:
            try:
                return item_id in self._last_review
            except TypeError:  # an unhashable "id" is no item; the label book says so clearly
                return False

    def undo_review(self, item_id) -> str:
        """Undo the last change (the label before it returns) or keep; returns the label the
        item had before the undo."""
        with self.lock:
            action, who = self._last_review.get(item_id, (None, None))
        if action is None:
            raise NotLabeledError(f"item {item_id!r} has no change or keep of this session to undo")
        key = str(item_id)
        with self.book.lock:
            position = self.book.position(item_id)
            had = self.session.classes[self.book.targets[position]]
            if action == "change":
                self.store.undo_change(key, annotator=who)
                self.book.take_over({key: self.store.item_votes(key)})
            else:
                self.store.undo_decision(key, "keep", annotator=who)
        with self.lock:
            self._last_review.pop(item_id, None)
            self._reviewed.discard(item_id)
            if item_id in self._answered:
                self._suspect_detail[item_id] = self._answered.pop(item_id)
            if action == "keep":
                self.kept.pop(key, None)
        return had

    # --------------------------------------------------------- "not a class"
    def mark_not_a_class(self, ids, *, reason: str | None = None) -> None:
        """See :meth:`alwidget.Session.mark_not_a_class`."""
        with self.book.lock:
            positions = [self.book.position(item_id) for item_id in ids]
            labeled = [self.session.pool.ids[p] for p in positions if p in self.book.targets]
            if labeled:
                raise InvalidArgumentError(
                    f"items {labeled[:5]} are labeled; undo their labels (session.unlabel) before "
                    "marking them 'not a class' (nothing was marked)"
                )
            for position in positions:
                if position in self.book.excluded:
                    continue
                key = str(self.session.pool.ids[position])
                self.store.record_decision(
                    key, "not_a_class", annotator=self.session.annotator, reason=reason
                )
                self.book.excluded.add(position)
                if self.session.pool.ids[position] in self.book.priority:
                    self.book.priority.remove(self.session.pool.ids[position])
            self.model.forget_predictions()  # cached rankings may hold the marked items

    def unmark_not_a_class(self, ids) -> None:
        """See :meth:`alwidget.Session.unmark_not_a_class`."""
        with self.book.lock:
            for item_id in ids:
                position = self.book.position(item_id)
                if position not in self.book.excluded:
                    continue
                self.store.undo_decision(
                    str(self.session.pool.ids[position]), "not_a_class",
                    annotator=self.session.annotator,
                )  # fmt: skip
                self.book.excluded.discard(position)

    def not_a_class_ids(self) -> list:
        with self.book.lock:
            return [self.session.pool.ids[p] for p in sorted(self.book.excluded)]

    # ------------------------------------------------------------ out of distribution
    def out_of_distribution(self, n: int = 20, *, k: int = 10) -> list[dict]:
        """See :meth:`alwidget.Session.out_of_distribution`."""
        candidates = self.book.unlabeled_positions()
        if len(candidates) == 0:
            return []
        features = self.model.embeddings()
        labeled = self.book.labeled_mask()
        log_probs = None
        if self.model.version > 0:
            log_probs = self.model.predict(
                np.arange(len(self.session.pool)), mc_samples=self.session.mc_samples,
                embeddings=False,
            ).log_probs_N_K_C  # fmt: skip
        result = issues.ood_scores(
            features, labeled, log_probs_N_K_C=log_probs, k=k, seed=self.session.seed
        )
        scores = result["scores_N"][candidates]
        top = candidates[np.argsort(-scores, kind="stable")[:n]]
        return [
            {
                "id": self.session.pool.ids[p],
                "score": float(result["scores_N"][p]),
                "sparsity": float(result["sparsity_N"][p]),
                "labeled_distance": float(result["labeled_distance_N"][p]),
                "mean_entropy": float(result["mean_entropy_N"][p]),
            }
            for p in top.tolist()
        ]

    # ------------------------------------------------------------------ queries
    def suspect_slots(self, size: int, relabel) -> int:
        """How many of a batch of ``size`` go to suspects (``relabel`` share, None: the
        session's :attr:`relabel_fraction`); at least one slot stays for new items."""
        fraction = self.relabel_fraction if relabel is None else relabel
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
            raise InvalidArgumentError(
                f"relabel must be a share of the batch in [0, 1], e.g. 0.2; got {fraction!r}"
            )
        if not 0 <= float(fraction) <= 1:
            raise InvalidArgumentError(
                f"relabel must be a share of the batch in [0, 1], e.g. 0.2; got {fraction}"
            )
        wanted = int(round(size * float(fraction)))
        if wanted == 0 or self.model.version == 0 or len(self.book) < 10:
            return 0
        return min(wanted, size - 1)

    def hand_out(self, slots: int, *, exclude=(), compute: bool = True) -> list[SuspectDetail]:
        """Up to ``slots`` suspects (not in ``exclude``) as :class:`SuspectDetail`, remembered
        as awaiting review. ``compute=False``: only from a check already done for the
        current model (none otherwise)."""
        if slots <= 0:
            return []
        try:
            found = self.label_issues(compute=compute)
        except NotEnoughClassesError:
            return []
        excluded = set(exclude)
        chosen = [s for s in found or () if s.id not in excluded][:slots]
        details = [self._detail(suspect, rank) for rank, suspect in enumerate(chosen, 1)]
        with self.lock:
            self._suspect_detail.update((detail.id, detail.suspect) for detail in details)
        return details

    def query_slots(self, size: int, relabel) -> int:
        """:meth:`suspect_slots` for a query: none while a background check has not found
        the current model's suspects yet (the batch is all new items then)."""
        slots = self.suspect_slots(size, relabel)
        if slots and self.check_in_background and not self.suspects_ready():
            return 0
        return slots

    def mix(self, batch: Batch, slots: int) -> Batch:
        """``batch`` with up to ``slots`` suspects in front, each a :class:`SuspectDetail`.

        With :attr:`check_in_background` set, only suspects a finished check found."""
        details = self.hand_out(slots, exclude=batch.ids, compute=not self.check_in_background)
        if not details:
            return batch
        chosen = [detail.suspect for detail in details]
        items = details + [replace(item, rank=item.rank + len(details)) for item in batch.items]
        return Batch(
            ids=[item.id for item in items],
            scores=np.concatenate([[s.score for s in chosen], np.asarray(batch.scores)]),
            items=items,
            strategy=batch.strategy,
            model_version=batch.model_version,
        )

    def _detail(self, suspect: Suspect, rank: int) -> SuspectDetail:
        classes = self.session.classes
        probs = np.array([suspect.probabilities.get(name, 0.0) for name in classes])
        if probs.sum() <= 0:
            probs = np.full(len(classes), 1.0 / len(classes))
        parts = explain(np.log(np.clip(probs, 1e-12, None))[None, None, :])
        return SuspectDetail(
            id=suspect.id, rank=rank, score=suspect.score, pool_rank=rank,
            n_scored=len(self.book), predicted=suspect.predicted,
            probabilities={n: float(p) for n, p in zip(classes, probs)},
            entropy_of_mean=float(parts["entropy_of_mean_N"][0]),
            mean_entropy=float(parts["mean_entropy_N"][0]), bald=0.0, votes=dict(suspect.votes),
            suspect=suspect,
        )  # fmt: skip
