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
