"""Training on the labeled set: seeded, class-balanced, early-stopped, reported."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .augment import AUGMENTATIONS, RandomAffine, resolve_augment
from .cpu_threads import on_free_cores
from .errors import InvalidArgumentError, InvalidArgumentTypeError, TrainingDivergedError

__all__ = [
    "TrainConfig",
    "TrainReport",
    "train_model",
    "combine_reports",
    "TrainingCancelled",
    "StrongImageAugment",
    "FeatureNoise",
    "consistency_views",
]


class TrainingCancelled(RuntimeError):
    """Raised inside training when the caller's ``should_stop`` asks for it."""


@dataclass
class TrainConfig:
    """How a model is trained on the labeled items.

    Attributes
    ----------
    max_epochs : int
        Upper bound on passes over the labeled set.
    min_steps, max_steps : int
        Gradient steps are kept in this range, so a tiny labeled set still gets enough
        updates and a large one does not take forever.
    batch_size : int
        Items per step (sampled class-balanced with replacement when ``balanced``).
    lr, weight_decay : float
        Adam settings.
    balanced : bool
        Draw each class equally often: with 20 labels, a class seen twice would otherwise
        be drowned by one seen five times.
    validation_fraction : float
        Share of the labels held out for early stopping, once there are at least
        ``min_labels_for_validation`` labels; below that every label trains.
    patience : int
        Evaluations without validation improvement before stopping (never before
        ``min_steps``).
    warm_start : bool
        Continue from the current weights instead of a fresh initialisation.
    augment : None, str or callable
        Applied to every training mini-batch: ``"auto"`` (the default: ``"affine"`` when
        the inputs are images ``(N, C, H, W)``, nothing otherwise), ``"affine"`` (small
        random rotation, zoom and shift, see :mod:`alwidget.augment`), a callable
        ``(batch, generator) -> batch``, or ``None``. Validation batches are never
        augmented. With few labels this is worth a lot: 100 random MNIST labels give the
        Gal CNN 0.85 test accuracy without and 0.93 with ``"affine"``.
    weight_averaging : float or None
        Keep an exponential moving average of the weights with this decay per step (e.g.
        ``0.98``) and end with the average (validation, when used, scores the average too).
        Smooths the learning curve: a run's last few noisy steps move the kept model less.
        ``None`` keeps the last (or best validated) weights.
    pseudo_labels : bool
        CEAL-style pseudo-labels: before each training run the session picks unlabeled
        items the current model is sure of (see the ``pseudo_label_*`` fields and
        :mod:`alwidget.session.pseudo_labels`) and trains on them with their predicted class,
        weighted by ``pseudo_label_weight``. They are never stored as labels and are chosen
        afresh for every run.
    pseudo_label_confidence : float
        Least mean probability (over the MC samples) of the predicted class.
    pseudo_label_max_bald : float
        Largest BALD score (nats): the MC samples must also agree.
    pseudo_label_per_class : int
        At most this many per predicted class (the most confident), so no class floods the
        labeled set.
    pseudo_label_weight : float
        Weight of the pseudo-labeled mini-batch loss relative to the human-labeled one.
    pseudo_label_candidates : int
        When the current model has no scoring pass to reuse, this many random unlabeled
        items are predicted to find candidates.
    pseudo_label_mc_samples : int
        MC-dropout samples of that prediction (the query's own samples are reused when
        there is one).
    semi_supervised : None or "fixmatch"
        Consistency training on unlabeled items (Sohn et al. 2020): a weakly perturbed view
        gives a pseudo-target when the model is confident enough, and the model is trained
        to predict it on a strongly perturbed view. Images ``(N, C, H, W)``: weak = the
        ``augment`` transform, strong = a wide random affine transform, a cut-out square and
        pixel noise. Feature vectors (a head over encoder features): weak = light Gaussian
        noise, strong = feature dropout plus heavier noise.
    consistency_threshold : float
        Least softmax probability on the weak view for an item to count.
    consistency_weight : float
        Weight of the unlabeled loss.
    unlabeled_batch : int
        Unlabeled items per step.
    unlabeled_sample : int
        A random sample of at most this many unlabeled items is drawn per run (the inputs
        of the whole pool may not fit in memory).
    consistency_seconds : float or None
        Time budget: once a run has taken this long, its remaining steps train on the
        labels alone, so an interactive retrain stays interactive. ``None``: no limit
        (needed for bit-for-bit reproducible runs, since wall time is not seeded).
    """

    max_epochs: int = 100
    min_steps: int = 300
    max_steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balanced: bool = True
    validation_fraction: float = 0.15
    min_labels_for_validation: int = 200
    patience: int = 5
    warm_start: bool = False
    augment: str | Callable | None = "auto"
    weight_averaging: float | None = None
    pseudo_labels: bool = False
    pseudo_label_confidence: float = 0.95
    pseudo_label_max_bald: float = 0.05
    pseudo_label_per_class: int = 100
    pseudo_label_weight: float = 0.5
    pseudo_label_candidates: int = 2000
    pseudo_label_mc_samples: int = 20
    semi_supervised: str | None = None
    consistency_threshold: float = 0.95
    consistency_weight: float = 1.0
    unlabeled_batch: int = 64
    unlabeled_sample: int = 5000
    consistency_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse settings training cannot run with, naming the field and the fix.

        Called on construction and again by every training run, since the fields may be
        changed afterwards.

        Raises
        ------
        InvalidArgumentError, InvalidArgumentTypeError
        """
        for name, minimum, meaning in _INTEGER_FIELDS:
            setattr(self, name, _checked_integer(getattr(self, name), name, minimum, meaning))
        if self.min_steps > self.max_steps:
            raise InvalidArgumentError(
                f"TrainConfig: min_steps={self.min_steps} is above max_steps={self.max_steps}; "
                "raise max_steps or lower min_steps"
            )
        self.lr = _checked_number(self.lr, "lr", "the Adam learning rate, e.g. 1e-3")
        if self.lr <= 0:
            raise InvalidArgumentError(
                f"TrainConfig: lr must be > 0 (the Adam learning rate, e.g. 1e-3); got {self.lr}"
            )
        self.weight_decay = _checked_number(self.weight_decay, "weight_decay", "e.g. 1e-4")
        if self.weight_decay < 0:
            raise InvalidArgumentError(
                f"TrainConfig: weight_decay must be ≥ 0 (e.g. 1e-4); got {self.weight_decay}"
            )
        self.validation_fraction = _checked_number(
            self.validation_fraction, "validation_fraction", "a share in [0, 1), e.g. 0.15"
        )
        if not 0 <= self.validation_fraction < 1:
            raise InvalidArgumentError(
                "TrainConfig: validation_fraction must be in [0, 1) (a share of the labels held "
                f"out for early stopping; 0 turns it off); got {self.validation_fraction}"
            )
        self._check_semi_supervised()
        for name in ("balanced", "warm_start", "pseudo_labels"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise InvalidArgumentTypeError(
                    f"TrainConfig: {name} must be True or False; got {value!r}"
                )
            setattr(self, name, bool(value))
        augment = self.augment
        names = ("auto", "none", *AUGMENTATIONS)
        if isinstance(augment, str):
            if augment not in names:
                raise InvalidArgumentError(
                    f"TrainConfig: unknown augment {augment!r}; choose one of "
                    f"{', '.join(map(repr, names))}, None or a callable (batch, generator) -> batch"
                )
        elif augment is not None and not callable(augment):
            raise InvalidArgumentTypeError(
                f"TrainConfig: augment must be None, one of {', '.join(map(repr, names))} or a "
                f"callable (batch, generator) -> batch; got {type(augment).__name__}"
            )

    def _check_semi_supervised(self) -> None:
        if self.weight_averaging is not None:
            self.weight_averaging = _checked_number(
                self.weight_averaging, "weight_averaging", "a decay in [0, 1), e.g. 0.98, or None"
            )
            if not 0 <= self.weight_averaging < 1:
                raise InvalidArgumentError(
                    "TrainConfig: weight_averaging must be a decay in [0, 1) (e.g. 0.98) or "
                    f"None; got {self.weight_averaging}"
                )
        for name, low, high, example in _SHARE_FIELDS:
            value = _checked_number(getattr(self, name), name, example)
            if not low <= value <= high:
                raise InvalidArgumentError(
                    f"TrainConfig: {name} must be in [{low}, {high}] ({example}); got {value}"
                )
            setattr(self, name, value)
        if not (self.semi_supervised is None or isinstance(self.semi_supervised, str)) or (
            self.semi_supervised not in SEMI_SUPERVISED
        ):
            raise InvalidArgumentError(
                f"TrainConfig: unknown semi_supervised {self.semi_supervised!r}; use None or "
                + ", ".join(repr(name) for name in SEMI_SUPERVISED if name)
            )
        if self.consistency_seconds is not None:
            self.consistency_seconds = _checked_number(
                self.consistency_seconds, "consistency_seconds", "seconds, e.g. 60, or None"
            )
            if self.consistency_seconds <= 0:
                raise InvalidArgumentError(
                    "TrainConfig: consistency_seconds must be > 0 (a time budget in seconds) "
                    f"or None for no limit; got {self.consistency_seconds}"
                )


SEMI_SUPERVISED = (None, "fixmatch")
_SHARE_FIELDS = (
    ("pseudo_label_confidence", 0.0, 1.0, "a probability, e.g. 0.95"),
    ("pseudo_label_max_bald", 0.0, math.inf, "nats, e.g. 0.05"),
    ("pseudo_label_weight", 0.0, math.inf, "relative to human labels, e.g. 0.5"),
    ("consistency_threshold", 0.0, 1.0, "a probability, e.g. 0.95"),
    ("consistency_weight", 0.0, math.inf, "e.g. 1.0"),
)
MAX_BATCH_SIZE = 2**20  # a step's indices alone would take 8 MB: far beyond a useful batch
_INTEGER_FIELDS = (
    ("max_epochs", 1, "passes over the labeled set"),
    ("min_steps", 0, "gradient steps at least"),
    ("max_steps", 1, "gradient steps at most"),
    ("batch_size", 1, "items per training step"),
    ("min_labels_for_validation", 0, "labels before a validation split is held out"),
    ("patience", 1, "evaluations without improvement before stopping"),
    ("pseudo_label_per_class", 0, "pseudo-labels per class at most"),
    ("pseudo_label_candidates", 1, "unlabeled items predicted to find pseudo-labels"),
    ("pseudo_label_mc_samples", 1, "MC-dropout samples to choose pseudo-labels"),
    ("unlabeled_batch", 1, "unlabeled items per consistency step"),
    ("unlabeled_sample", 1, "unlabeled items drawn per run for consistency training"),
)


def _checked_integer(value, name: str, minimum: int, meaning: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentTypeError(
            f"TrainConfig: {name} must be an integer ≥ {minimum} ({meaning}); got {value!r}"
        )
    if value < minimum:
        raise InvalidArgumentError(
            f"TrainConfig: {name} must be ≥ {minimum} ({meaning}); got {value}"
        )
    if name in ("batch_size", "unlabeled_batch") and value > MAX_BATCH_SIZE:
        raise InvalidArgumentError(
            f"TrainConfig: {name}={value} is above {MAX_BATCH_SIZE}; each step draws that "
            "many items, so give a batch that fits in memory (e.g. 64)"
        )
    return int(value)


def _checked_number(value, name: str, example: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InvalidArgumentTypeError(
            f"TrainConfig: {name} must be a number ({example}); got {value!r}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgumentError(f"TrainConfig: {name} must be finite ({example}); got {value}")
    return number


@dataclass
class TrainReport:
    """What one training run did.

    Attributes
    ----------
    n_labels : int
        Labels it saw (train + validation).
    epochs : float
        Passes over the training part (steps × batch / items).
    steps : int
        Gradient steps taken.
    train_loss : float
        Mean cross-entropy over the last pass's worth of steps.
    validation_accuracy : float or None
        Best validation accuracy, when a validation split was used.
    best_step : int
        Step whose weights were kept.
    early_stopped : bool
        Whether patience ran out before ``max_steps``.
    seconds : float
        Wall time.
    members : list of TrainReport
        One report per ensemble member (empty for a single model).
    n_pseudo_labels : int
        Pseudo-labeled items trained on (0 when off).
    consistency_steps : int
        Steps that included the unlabeled consistency loss (fewer than ``steps`` when
        ``consistency_seconds`` ran out).
    consistency_mask_rate : float or None
        Share of unlabeled items whose weak view passed ``consistency_threshold``, over the
        consistency steps.
    """

    n_labels: int
    epochs: float
    steps: int
    train_loss: float
    validation_accuracy: float | None
    best_step: int
    early_stopped: bool
    seconds: float
    members: list = field(default_factory=list)
    n_pseudo_labels: int = 0
    consistency_steps: int = 0
    consistency_mask_rate: float | None = None

    def to_dict(self) -> dict:
        """Plain-Python form for JSON and stores."""
        return asdict(self)


def _split_validation(targets: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    n_labels = len(targets)
    positions = np.arange(n_labels)
    if n_labels < config.min_labels_for_validation or config.validation_fraction <= 0:
        return positions, positions[:0]
    validation = []
    for label in np.unique(targets):
        members = positions[targets == label]
        take = int(math.floor(len(members) * config.validation_fraction))
        validation.extend(rng.choice(members, size=take, replace=False).tolist())
    validation = np.array(sorted(validation), dtype=np.int64)
    return np.setdiff1d(positions, validation), validation


def _batch_sampler(targets: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    """Yields index batches forever; class-balanced draws when asked."""
    if config.balanced:
        by_class = [np.flatnonzero(targets == label) for label in np.unique(targets)]
        sizes = np.array([len(members) for members in by_class])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate(by_class)
        while True:
            chosen = rng.integers(len(by_class), size=config.batch_size)
            within = (rng.random(config.batch_size) * sizes[chosen]).astype(np.int64)
            yield flat[starts[chosen] + within]
    while True:
        for start in range(0, len(targets), config.batch_size):
            if start == 0:
                order = rng.permutation(len(targets))
            yield order[start : start + config.batch_size]


def _validation_score(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 1024
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on a validation split."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(targets), chunk):
            logits = model(inputs[start : start + chunk])
            batch_targets = targets[start : start + chunk]
            correct += int((logits.argmax(dim=1) == batch_targets).sum())
            loss += float(nn.functional.cross_entropy(logits, batch_targets, reduction="sum"))
    count = max(len(targets), 1)
    return correct / count, loss / count


def _check_augment(augment, sample: torch.Tensor, spec) -> None:
    """Fail before training, not at step one, when the augmentation does not fit the inputs."""
    try:
        augmented = augment(sample, torch.Generator().manual_seed(0))
    except Exception as error:
        raise InvalidArgumentError(
            f"TrainConfig: augment={spec!r} failed on a batch of shape {tuple(sample.shape)} "
            f"({type(error).__name__}: {error}); 'affine' needs image inputs (N, C, H, W): "
            "use augment='auto' or None for other inputs"
        ) from error
    if not isinstance(augmented, torch.Tensor) or augmented.shape != sample.shape:
        shape = (
            tuple(augmented.shape)
            if isinstance(augmented, torch.Tensor)
            else type(augmented).__name__
        )
        raise InvalidArgumentError(
            f"TrainConfig: augment must return a batch of the same shape "
            f"{tuple(sample.shape)}; got {shape}"
        )


class StrongImageAugment:
    """FixMatch's strong view of an image batch: a wide random affine transform, one cut-out
    square per image (filled with the image's own background, its corner pixel) and
    Gaussian pixel noise (inputs are standardised, so ``noise`` is in standard deviations).
    """

    def __init__(self, cutout: float = 0.4, noise: float = 0.3):
        self.affine = RandomAffine(max_rotation=30.0, max_shift=0.2, max_scale=0.2)
        self.cutout, self.noise = cutout, noise

    def __call__(self, images_N_C_H_W: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        images = self.affine(images_N_C_H_W, generator)
        count, _, height, width = images.shape
        side_h, side_w = max(1, int(height * self.cutout)), max(1, int(width * self.cutout))
        top = (torch.rand(count, generator=generator) * (height - side_h + 1)).long()
        left = (torch.rand(count, generator=generator) * (width - side_w + 1)).long()
        rows = torch.arange(height).view(1, height, 1)
        columns = torch.arange(width).view(1, 1, width)
        inside = (
            (
                (rows >= top.view(-1, 1, 1))
                & (rows < (top + side_h).view(-1, 1, 1))
                & (columns >= left.view(-1, 1, 1))
                & (columns < (left + side_w).view(-1, 1, 1))
            )
            .unsqueeze(1)
            .to(images.device)
        )
        background = images[:, :, :1, :1]
        images = torch.where(inside, background, images)
        noise = torch.randn(images.shape, generator=generator).to(images.device, images.dtype)
        return images + self.noise * noise


class FeatureNoise:
    """A perturbed view of feature vectors ``(N, D)`` (a head over cached encoder features):
    each feature dropped with probability ``dropout`` (the rest rescaled) and Gaussian noise
    of ``noise`` standard deviations added (the cached features are standardised)."""

    def __init__(self, dropout: float, noise: float):
        self.dropout, self.noise = dropout, noise

    def __call__(self, features_N_D: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        shape = features_N_D.shape
        noise = torch.randn(shape, generator=generator).to(features_N_D.device, features_N_D.dtype)
        features = features_N_D + self.noise * noise
        if self.dropout > 0:
            keep = torch.rand(shape, generator=generator) >= self.dropout
            features = features * keep.to(features.device, features.dtype) / (1 - self.dropout)
        return features


def consistency_views(augment, images: bool) -> tuple[Callable, Callable]:
    """(weak, strong) perturbations for consistency training on these inputs."""
    if images:
        return (augment if augment is not None else (lambda batch, _g: batch)), StrongImageAugment()
    return FeatureNoise(dropout=0.0, noise=0.1), FeatureNoise(dropout=0.3, noise=0.5)


@dataclass
class _Unlabeled:
    """What a training run has beside the labels: pseudo-labeled items and unlabeled ones."""

    pseudo_inputs: torch.Tensor | None = None
    pseudo_targets: torch.Tensor | None = None
    pseudo_sampler: object = None
    unlabeled_inputs: torch.Tensor | None = None
    generator: torch.Generator | None = None
    views: tuple | None = None
    steps: int = 0
    masked: float = 0.0
    seen: int = 0


def _prepare_unlabeled(config, pseudo, unlabeled, augment, device, seed, images):
    extra = _Unlabeled()
    # A generator of its own, so switching these off leaves the labeled draws unchanged.
    extra.generator = torch.Generator().manual_seed(seed + 104_729)
    if pseudo is not None and len(pseudo[1]):
        pseudo_inputs, pseudo_targets = pseudo
        pseudo_targets = np.asarray(pseudo_targets, dtype=np.int64)
        if len(pseudo_inputs) != len(pseudo_targets):
            raise ValueError(
                f"{len(pseudo_inputs)} pseudo-labeled inputs but {len(pseudo_targets)} targets"
            )
        extra.pseudo_inputs = pseudo_inputs.to(device)
        extra.pseudo_targets = torch.as_tensor(pseudo_targets, device=device)
        extra.pseudo_sampler = _batch_sampler(
            pseudo_targets, config, np.random.default_rng(seed + 15_485_863)
        )
    if config.semi_supervised == "fixmatch" and unlabeled is not None and len(unlabeled):
        extra.unlabeled_inputs = unlabeled.to(device)
        extra.views = consistency_views(augment, images)
    return extra


def _extra_loss(model, extra: _Unlabeled, config, augment, device, consistency_on: bool):
    """Pseudo-label and consistency losses of one step (0 when there is neither)."""
    loss = None
    if extra.pseudo_sampler is not None:
        batch = torch.as_tensor(next(extra.pseudo_sampler), device=device)
        x_pseudo = extra.pseudo_inputs[batch]
        if augment is not None:
            x_pseudo = augment(x_pseudo, extra.generator)
        loss = config.pseudo_label_weight * nn.functional.cross_entropy(
            model(x_pseudo), extra.pseudo_targets[batch]
        )
    if consistency_on and extra.unlabeled_inputs is not None:
        rows = torch.randint(
            len(extra.unlabeled_inputs), (config.unlabeled_batch,), generator=extra.generator
        ).to(device)
        x_unlabeled = extra.unlabeled_inputs[rows]
        weak, strong = extra.views
        model.eval()  # the pseudo-target is the model's own best guess: dropout off
        with torch.no_grad():
            probabilities = torch.softmax(model(weak(x_unlabeled, extra.generator)), dim=1)
        model.train()
        confidence, guess = probabilities.max(dim=1)
        mask = (confidence >= config.consistency_threshold).float()
        per_item = nn.functional.cross_entropy(
            model(strong(x_unlabeled, extra.generator)), guess, reduction="none"
        )
        consistency = config.consistency_weight * (per_item * mask).mean()
        loss = consistency if loss is None else loss + consistency
        extra.steps += 1
        extra.masked += float(mask.sum())
        extra.seen += len(mask)
    return loss


@on_free_cores
def train_model(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    pseudo: tuple[torch.Tensor, np.ndarray] | None = None,
    unlabeled: torch.Tensor | None = None,
) -> TrainReport:
    """Train ``model`` in place on ``inputs``/``targets`` (class indices) and report.

    ``progress`` receives dicts ``{"step", "total_steps", "loss"}`` every few steps (from
    the training thread). ``should_stop`` is polled between steps; returning True raises
    :class:`TrainingCancelled` and leaves ``model`` unusable (train a copy).

    ``pseudo`` is ``(inputs, predicted classes)`` of pseudo-labeled items: each step adds a
    class-balanced mini-batch of them, weighted by ``config.pseudo_label_weight``.
    ``unlabeled`` are unlabeled inputs for ``config.semi_supervised="fixmatch"``. Both use
    random generators of their own: without them a run is exactly as before.
    """
    started = time.perf_counter()
    config.check()
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    if len(np.unique(targets)) < 2:
        raise ValueError("training needs labels from at least two classes")
    augment = resolve_augment(config.augment, images=inputs.ndim == 4)
    if augment is not None:
        _check_augment(augment, inputs[:2].to(device), config.augment)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed)
    train_positions, validation_positions = _split_validation(targets, config, rng)
    model.to(device)
    x_train = inputs[train_positions].to(device)
    y_train = torch.as_tensor(targets[train_positions], device=device)
    x_val = inputs[validation_positions].to(device)
    y_val = torch.as_tensor(targets[validation_positions], device=device)
    extra = _prepare_unlabeled(config, pseudo, unlabeled, augment, device, seed, inputs.ndim == 4)

    steps_per_epoch = max(1, math.ceil(len(train_positions) / config.batch_size))
    total_steps = int(
        np.clip(config.max_epochs * steps_per_epoch, config.min_steps, config.max_steps)
    )
    evaluate_every = max(steps_per_epoch, total_steps // 50)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    sampler = _batch_sampler(targets[train_positions], config, rng)
    averaged = None if config.weight_averaging is None else copy.deepcopy(model)
    kept = model if averaged is None else averaged  # the weights validated and returned

    best_accuracy, best_loss, best_state, best_step = -1.0, float("inf"), None, 0
    evaluations_without_gain, early_stopped = 0, False
    recent_losses: list[float] = []
    step = 0
    for step in range(1, total_steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled("training was cancelled")
        model.train()
        batch = torch.as_tensor(next(sampler), device=device)
        x_batch = x_train[batch] if augment is None else augment(x_train[batch], augment_generator)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_batch), y_train[batch])
        consistency_on = (
            config.consistency_seconds is None
            or time.perf_counter() - started < config.consistency_seconds
        )
        extra_loss = _extra_loss(model, extra, config, augment, device, consistency_on)
        if extra_loss is not None:
            loss = loss + extra_loss
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"training loss became {loss.item()} at step {step}; lower the learning rate "
                f"(TrainConfig lr={config.lr})"
            )
        loss.backward()
        optimizer.step()
        if averaged is not None:
            _update_average(averaged, model, config.weight_averaging)
        recent_losses.append(loss.item())
        del recent_losses[:-steps_per_epoch]
        if progress is not None and (step % 10 == 0 or step == total_steps):
            progress(
                {"step": step, "total_steps": total_steps, "loss": float(np.mean(recent_losses))}
            )
        if len(validation_positions) and step % evaluate_every == 0:
            accuracy, validation_loss = _validation_score(kept, x_val, y_val)
            # A small validation split ties often on accuracy: the loss breaks the tie.
            if (accuracy, -validation_loss) > (best_accuracy, -best_loss):
                best_accuracy, best_loss, best_step, evaluations_without_gain = (
                    accuracy,
                    validation_loss,
                    step,
                    0,
                )
                best_state = copy.deepcopy(kept.state_dict())
            else:
                evaluations_without_gain += 1
                if evaluations_without_gain >= config.patience and step >= config.min_steps:
                    early_stopped = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_step = step
        if averaged is not None:
            model.load_state_dict(averaged.state_dict())
    model.eval()
    return TrainReport(
        n_labels=len(targets),
        epochs=round(step * config.batch_size / max(len(train_positions), 1), 2),
        steps=step,
        train_loss=float(np.mean(recent_losses)) if recent_losses else float("nan"),
        validation_accuracy=best_accuracy if best_state is not None else None,
        best_step=best_step,
        early_stopped=early_stopped,
        seconds=time.perf_counter() - started,
        n_pseudo_labels=0 if extra.pseudo_targets is None else len(extra.pseudo_targets),
        consistency_steps=extra.steps,
        consistency_mask_rate=extra.masked / extra.seen if extra.seen else None,
    )


def _update_average(averaged: nn.Module, model: nn.Module, decay: float) -> None:
    """averaged ← decay · averaged + (1 − decay) · model, for every float tensor (buffers too,
    so batch-norm statistics follow the weights they belong to)."""
    with torch.no_grad():
        current = model.state_dict()
        for name, value in averaged.state_dict().items():
            if value.is_floating_point():
                value.mul_(decay).add_(current[name], alpha=1 - decay)
            else:
                value.copy_(current[name])


def combine_reports(reports: list[TrainReport], seconds: float) -> TrainReport:
    """One report for an ensemble: means over members, the members kept in ``members``."""
    accuracies = [r.validation_accuracy for r in reports if r.validation_accuracy is not None]
    return TrainReport(
        n_labels=reports[0].n_labels,
        epochs=float(np.mean([r.epochs for r in reports])),
        steps=int(sum(r.steps for r in reports)),
        train_loss=float(np.mean([r.train_loss for r in reports])),
        validation_accuracy=float(np.mean(accuracies)) if accuracies else None,
        best_step=int(np.mean([r.best_step for r in reports])),
        early_stopped=all(r.early_stopped for r in reports),
        seconds=seconds,
        members=reports,
        n_pseudo_labels=reports[0].n_pseudo_labels,
        consistency_steps=int(sum(r.consistency_steps for r in reports)),
        consistency_mask_rate=_mean_or_none([r.consistency_mask_rate for r in reports]),
    )


def _mean_or_none(values: list) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None
