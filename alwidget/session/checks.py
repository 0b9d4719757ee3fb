"""Checks of what a user hands to :class:`alwidget.Session` and its methods.

Each raises an :class:`~alwidget.errors.AlwidgetError` naming the argument, the value and
the fix before anything is stored or trained, so a mistake never surfaces later as a numpy
or torch error (``seed=-1``, ``score_subset=0``, ``device="cuda"`` without CUDA, a float64
model, labels given as a set, ``add_class(None)``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from ..errors import (
    AlwidgetError,
    DeviceUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StrategyModelMismatchError,
    UnsupportedModelError,
)

__all__ = [
    "MAX_SEED",
    "MAX_ENSEMBLE",
    "MAX_MC_SAMPLES",
    "check_seed",
    "check_count",
    "check_score_subset",
    "check_flag",
    "check_callback",
    "check_device",
    "check_model",
    "check_train_config",
    "mc_samples_for",
    "check_class_name",
    "check_label_arguments",
    "check_id_list",
    "check_annotator",
    "check_strategy",
    "check_radius",
]

# Seeds are spread over members and rounds by multiplying with ~1e6 before torch takes them
# as a signed 64-bit integer, so they stay below 2**32.
MAX_SEED = 2**32 - 1
# Upper bounds far above any useful setting, so a typo (ensemble=1000000) is refused at once
# instead of building a million models or sampling without end.
MAX_ENSEMBLE = 100
MAX_MC_SAMPLES = 1000


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_seed(seed, argument: str = "seed") -> int:
    """``seed`` as an int in ``[0, 2**32 - 1]``."""
    if not _is_integer(seed):
        raise InvalidArgumentTypeError(
            f"{argument} must be an integer from 0 to {MAX_SEED}; got {seed!r}"
        )
    if not 0 <= seed <= MAX_SEED:
        raise InvalidArgumentError(
            f"{argument}={seed} is out of range: give an integer from 0 to {MAX_SEED} (2**32 - 1)"
        )
    return int(seed)


def check_count(
    value, argument: str, minimum: int = 1, meaning: str = "", maximum: int | None = None
) -> int:
    """``value`` as an int from ``minimum`` to ``maximum`` (``meaning`` says what it counts,
    for the message)."""
    what = f" ({meaning})" if meaning else ""
    if not _is_integer(value):
        raise InvalidArgumentTypeError(
            f"{argument} must be an integer ≥ {minimum}{what}; got {value!r}"
        )
    if value < minimum:
        raise InvalidArgumentError(f"{argument} must be ≥ {minimum}{what}; got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(
            f"{argument}={value} is more than alwidget allows ({maximum}{what}): each one costs "
            "time and memory, so such a value would run for hours or exhaust memory"
        )
    return int(value)


def check_score_subset(score_subset) -> int | None:
    """``None`` (score every unlabeled item) or a positive number of items to score."""
    if score_subset is None:
        return None
    if not _is_integer(score_subset) or score_subset < 1:
        raise (InvalidArgumentError if _is_integer(score_subset) else InvalidArgumentTypeError)(
            f'score_subset must be None (score every unlabeled item), "auto" or an integer ≥ 1 '
            f"(score a random subset of that many per query, e.g. 2000); got {score_subset!r}"
        )
    return int(score_subset)


# Above this many pool items a model on raw inputs scores a random subset per query ...
AUTO_SUBSET_ABOVE = 20_000
# ... of this size: ~10 s of MC-dropout scoring for a small CNN on 2 cores, where all 60 000
# MNIST images took 72 s.
AUTO_SUBSET_SIZE = 10_000


def auto_score_subset(score_subset, pool_size: int, *, on_features: bool) -> int | None:
    """Resolve ``score_subset="auto"``: a random 10 000 per query for a pool above 20 000 items
    scored through a model on raw inputs; every item for smaller pools and for a head on
    cached encoder features (cheap per item). Anything else is checked as given."""
    if isinstance(score_subset, str) and score_subset == "auto":
        if on_features or pool_size <= AUTO_SUBSET_ABOVE:
            return None
        return AUTO_SUBSET_SIZE
    return check_score_subset(score_subset)


def check_flag(value, argument: str, allow_none: bool = False) -> bool | None:
    """``value`` as a bool (``None`` kept when allowed); strings like ``"no"`` are refused."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "True, False or None" if allow_none else "True or False"
        raise InvalidArgumentTypeError(f"{argument} must be {allowed}; got {value!r}")
    return bool(value)


def check_callback(function, argument: str) -> Callable | None:
    """``None`` or a callable."""
    if function is not None and not callable(function):
        raise InvalidArgumentTypeError(
            f"{argument} must be a function or None; got {type(function).__name__} {function!r}"
        )
    return function


def check_device(device) -> torch.device:
    """The torch device to use: ``device`` when torch can use it here, else a clear error;
    ``None`` picks CUDA when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise InvalidArgumentTypeError(
            f"device must be None, a string such as 'cpu' or 'cuda:0', or a torch.device; "
            f"got {type(device).__name__} {device!r}"
        )
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"device={device!r} is not a torch device ({error}); use 'cpu', 'cuda', "
            "'cuda:1' or 'mps', or leave device=None"
        ) from None
    if parsed.type == "meta":
        raise InvalidArgumentError(
            "device='meta' holds no data, so nothing could be trained on it; use 'cpu' or "
            "'cuda', or leave device=None"
        )
    if parsed.type == "cpu":
        return parsed
    try:
        torch.empty(1, device=parsed)
    except Exception as error:  # CUDA-less builds raise AssertionError, others RuntimeError
        cuda = parsed.type == "cuda"
        reason = (
            "torch.cuda.is_available() is False here"
            if cuda and not torch.cuda.is_available()
            else f"{type(error).__name__}: {error}"
        )
        raise DeviceUnavailableError(
            f"device={device!r} cannot be used: {reason}; pass device='cpu', or leave "
            "device=None to use CUDA when present and the CPU otherwise"
        ) from None
    return parsed


def check_model(model: torch.nn.Module, probe: torch.Tensor, n_classes: int, name: str) -> None:
    """Refuse a model alwidget cannot train or predict with, before the first query.

    Parameters
    ----------
    model : nn.Module
        One freshly built member.
    probe : torch.Tensor
        Model inputs of one pool item (float32, batch axis first).
    n_classes : int
        Outputs the model must have.
    name : str
        The model's name for messages.

    Raises
    ------
    UnsupportedModelError
        No trainable parameters, weights of another dtype than the float32 inputs, a
        forward pass that fails, or outputs that are not float logits ``(batch, n_classes)``.
    """
    parameters = list(model.parameters())
    if not any(parameter.requires_grad for parameter in parameters):
        what = "has no parameters" if not parameters else "has every parameter frozen"
        raise UnsupportedModelError(
            f"model {name} {what}, so training cannot change it; give a model with trainable "
            "layers (e.g. an nn.Linear at the end, with requires_grad=True)"
        )
    other_dtypes = sorted(
        {
            str(tensor.dtype).removeprefix("torch.")
            for tensor in (*parameters, *model.buffers())
            if tensor.is_floating_point() and tensor.dtype != probe.dtype
        }
    )
    if other_dtypes:
        raise UnsupportedModelError(
            f"model {name} has {'/'.join(other_dtypes)} weights, but the pool's inputs are "
            f"{str(probe.dtype).removeprefix('torch.')}; convert it with model.float()"
        )
    model.eval()
    try:
        with torch.inference_mode():
            out = model(probe)
    except Exception as error:
        raise UnsupportedModelError(
            f"model {name} failed on one pool input of shape {tuple(probe.shape)} "
            f"({type(error).__name__}: {error}); make its first layer take inputs of that "
            "shape (see pool.input_shape)"
        ) from error
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != n_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UnsupportedModelError(
            f"model {name} must output logits of shape (batch, {n_classes}) for the pool's "
            f"{n_classes} classes; it returned {shape} for input {tuple(probe.shape)}"
        )
    if not out.is_floating_point():
        raise UnsupportedModelError(
            f"model {name} returned {str(out.dtype).removeprefix('torch.')} outputs; it must "
            "return float logits (no argmax, rounding or integer cast at the end)"
        )


def check_train_config(config):
    """``config`` when it is a :class:`~alwidget.training.TrainConfig` (checked again, since
    its fields may have changed); ``None`` gives the defaults."""
    from ..training import TrainConfig

    if config is None:
        return TrainConfig()
    if not isinstance(config, TrainConfig):
        raise InvalidArgumentTypeError(
            f"train_config must be an alwidget.TrainConfig, got {type(config).__name__}; "
            "build one with alwidget.TrainConfig(max_steps=..., ...)"
        )
    config.check()
    return config


def mc_samples_for(
    spec, strategy: str, mc_samples, *, dropout: bool, ensemble: int, model_name: str
) -> int:
    """The MC samples per member a strategy runs with, or an error whose advice works.

    Without dropout, an unset ``mc_samples`` means 1 (the strategy's default of e.g. 20
    would need dropout), so ``ensemble=5`` alone gives BALD its K = 5 samples.

    Parameters
    ----------
    spec : StrategySpec
        The strategy's declared needs.
    strategy : str
        Its name, for messages.
    mc_samples : int or None
        As the user gave it (``None``: the strategy's default).
    dropout : bool
        Whether the model has dropout layers to sample.
    ensemble : int
        Independently trained members.
    model_name : str
        For messages.

    Raises
    ------
    InvalidArgumentError
        ``mc_samples`` not a positive integer.
    StrategyModelMismatchError
        MC samples asked of a model without dropout, or a strategy needing K > 1 samples
        that it would not get.
    """
    if mc_samples is None:
        samples = spec.default_mc_samples if dropout else 1
    else:
        samples = check_count(
            mc_samples, "mc_samples", 1, "MC-dropout samples per member", MAX_MC_SAMPLES
        )
        if samples > 1 and not dropout:
            raise StrategyModelMismatchError(
                f"mc_samples={samples} asks for MC dropout, but the model {model_name} has no "
                "dropout layers; leave mc_samples unset and pass ensemble=5 (five "
                "independently trained members give five samples), or use a model with dropout"
            )
    n_samples = ensemble * samples
    if spec.needs_samples and n_samples < 2:
        if not dropout:
            reason = f"the model {model_name} has no dropout layers and ensemble={ensemble}"
            fix = "pass ensemble=5 (leave mc_samples unset) or use a model with dropout"
        else:
            reason = f"mc_samples={samples} and ensemble={ensemble}"
            fix = "raise mc_samples (e.g. 20) or pass ensemble=5"
        raise StrategyModelMismatchError(
            f"strategy {strategy!r} needs K > 1 stochastic predictions per item (MC-dropout "
            f"samples × ensemble members), but {reason}, so K = {n_samples}; {fix}"
        )
    return samples


def check_class_name(name, existing: list[str]) -> str:
    """A new class name: a non-empty string (or integer) not among ``existing``, stripped."""
    if isinstance(name, np.generic):
        name = name.item()
    if not isinstance(name, str) and not _is_integer(name):
        raise InvalidArgumentTypeError(
            f"add_class: the class name must be a string, got {type(name).__name__} {name!r}; "
            "e.g. session.add_class('other')"
        )
    text = str(name).strip()
    if not text:
        raise InvalidArgumentError("add_class: a class name cannot be empty")
    if text in existing:
        raise InvalidArgumentError(
            f"add_class: class {text!r} already exists (index {existing.index(text)})"
        )
    return text


def _plain_values(values):
    """Arrays and tensors as plain lists (so their entries compare as ints and strs)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        return values.tolist() if values.ndim else values.item()
    return values


def _unordered_hint(values, argument: str, pairing: bool) -> str | None:
    """Why a set or a dict cannot stand for a list of ids or labels, or ``None``."""
    if isinstance(values, (set, frozenset)):
        consequence = (
            "ids and labels would be paired at random"
            if pairing
            else "the results would come in an arbitrary order"
        )
        return (
            f"{argument} is a {type(values).__name__}, which has no order, so {consequence}; "
            f"pass a list (e.g. sorted({argument}))"
        )
    if isinstance(values, Mapping):
        fix = (
            "to label from an id → label dict, call session.label(list(d), list(d.values()))"
            if pairing
            else f"pass list({argument}) for its keys"
        )
        return f"{argument} is a {type(values).__name__}; {fix}"
    return None


def check_id_list(ids, argument: str = "ids") -> list:
    """Several item ids as a list: one id is not split into its characters, sets are refused."""
    ids = _plain_values(ids)
    hint = _unordered_hint(ids, argument, pairing=False)
    if hint is not None:
        raise InvalidArgumentTypeError(hint)
    if isinstance(ids, (str, bytes, int)) or not hasattr(ids, "__iter__"):
        return [ids]
    return list(ids)


def check_label_arguments(ids, labels) -> tuple[list, list]:
    """``label(id, "cat")`` or ``label([id1, id2], ["cat", 3])`` as two lists of equal length.

    Raises
    ------
    InvalidArgumentTypeError
        ``ids`` or ``labels`` given as a set (no order: the pairing would be arbitrary) or
        a dict.
    InvalidArgumentError
        Lists of different lengths.
    """
    ids, labels = _plain_values(ids), _plain_values(labels)
    for values, argument in ((ids, "ids"), (labels, "labels")):
        hint = _unordered_hint(values, argument, pairing=True)
        if hint is not None:
            raise InvalidArgumentTypeError(f"label(): {hint}")
    single = isinstance(ids, (str, bytes, int, float)) or not hasattr(ids, "__iter__")
    id_list = [ids] if single else list(ids)
    one_label = isinstance(labels, (str, bytes, int, float)) or not hasattr(labels, "__iter__")
    label_list = [labels] if single or one_label else list(labels)
    if len(id_list) != len(label_list):
        raise InvalidArgumentError(
            f"label(): got {len(id_list)} ids but {len(label_list)} labels; give one label per "
            "id, e.g. label([id1, id2], ['cat', 'dog'])"
        )
    return id_list, label_list


def check_annotator(annotator) -> str | None:
    """``None`` or a non-empty string naming who labels."""
    if annotator is None:
        return None
    if not isinstance(annotator, str) or not annotator.strip():
        raise (
            InvalidArgumentTypeError if not isinstance(annotator, str) else InvalidArgumentError
        )(f"annotator must be a non-empty string naming who labels, got {annotator!r}")
    return annotator


def check_strategy(name):
    """The :class:`~alwidget.strategies.StrategySpec` of a registered strategy ``name``."""
    from .. import strategies

    if not isinstance(name, str):
        raise InvalidArgumentTypeError(
            f"strategy must be a name such as 'entropy' or 'bald', got {type(name).__name__} "
            f"{name!r}; see alwidget.strategies.available()"
        )
    try:
        return strategies.get_strategy(name)
    except AlwidgetError:
        raise
    except (KeyError, ValueError) as error:
        raise InvalidArgumentError(str(error).strip("'\"")) from None


def check_radius(radius) -> float | None:
    """``None`` (a radius from the pool's density) or a finite distance ≥ 0."""
    if radius is None:
        return None
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, float, np.number)):
        raise InvalidArgumentTypeError(
            f"radius must be None or a distance ≥ 0 in the embedding space, got {radius!r}"
        )
    value = float(radius)
    if not (0 <= value < float("inf")):
        raise InvalidArgumentError(
            f"radius must be None or a finite distance ≥ 0 in the embedding space, got {radius!r}"
        )
    return value
