"""Exceptions with messages that name the problem. All derive from ``AlwidgetError`` and from
the built-in type a caller would naturally catch (``ValueError``/``KeyError``)."""

from __future__ import annotations

__all__ = [
    "AlwidgetError",
    "UnknownItemError",
    "UnknownLabelError",
    "AlreadyLabeledError",
    "NotLabeledError",
    "PoolExhaustedError",
    "NotEnoughClassesError",
    "StrategyModelMismatchError",
    "TrainingInProgressError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "DeviceUnavailableError",
    "UnsupportedModelError",
    "ItemReadError",
    "DataFileError",
    "DataFileNotFoundError",
    "TrainingDivergedError",
    "TrainingRejectedError",
]


class AlwidgetError(Exception):
    """Base class of every error alwidget raises on purpose."""


class UnknownItemError(AlwidgetError, KeyError):
    """An item id that is not in the pool."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownLabelError(AlwidgetError, ValueError):
    """A label that is neither a class name nor a class index."""


class AlreadyLabeledError(AlwidgetError, ValueError):
    """Labeling an item twice without undoing the first label."""


class NotLabeledError(AlwidgetError, ValueError):
    """Undoing the label of an item that has none."""


class PoolExhaustedError(AlwidgetError, ValueError):
    """No unlabeled item is left to query."""


class NotEnoughClassesError(AlwidgetError, ValueError):
    """Training needs labels of at least two classes."""


class StrategyModelMismatchError(AlwidgetError, ValueError):
    """A strategy that needs something the model cannot give (e.g. BALD without dropout)."""


class TrainingInProgressError(AlwidgetError, RuntimeError):
    """A second training run was started while one is still going."""


class InvalidArgumentError(AlwidgetError, ValueError):
    """An argument whose value alwidget cannot use: a negative seed, ``batch_size=0``,
    targets of the wrong length, labels given as a set (which has no order), ..."""


class InvalidArgumentTypeError(AlwidgetError, TypeError):
    """An argument of a type alwidget does not take (``classes="ab"``, a dict as ids, ...)."""


class DeviceUnavailableError(InvalidArgumentError):
    """A ``device=`` torch cannot use here (``"cuda"`` on a machine without CUDA)."""


class UnsupportedModelError(AlwidgetError, ValueError):
    """A model alwidget cannot train or predict with: float64 weights, integer outputs, no
    trainable parameters, or a forward pass that fails on the pool's inputs."""


class ItemReadError(AlwidgetError, ValueError):
    """Reading one item failed (a torch Dataset's ``__getitem__`` raised); names the item."""


class DataFileError(AlwidgetError, ValueError):
    """A data file (e.g. an MNIST idx file) that exists but cannot be read as one."""


class DataFileNotFoundError(AlwidgetError, FileNotFoundError):
    """A data file or folder that is not where the arguments say."""


class TrainingDivergedError(AlwidgetError, FloatingPointError):
    """The training loss became NaN or infinite (usually a learning rate far too high)."""


class TrainingRejectedError(AlwidgetError, RuntimeError):
    """A training run finished but its model fits the labels far worse than the current one;
    the current model is kept."""
