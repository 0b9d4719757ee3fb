"""How a pool holds its items, whatever their kind: one array, a list, files, or a Dataset.

Each class follows :class:`alwidget.kinds.base.PoolItems`, so a kind reads the user's items
into one of these and the pool stays the same for every kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .base import as_numeric_array, looks_like_dataset

__all__ = [
    "ArrayItems",
    "ListItems",
    "FileItems",
    "DatasetItems",
    "numeric_items",
    "first_part",
    "dataset_item_ndim",
]


class ArrayItems:
    """Items stacked in one numeric array (first axis = items)."""

    model_ready = False

    def __init__(self, array: np.ndarray):
        self.array = array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def get(self, position: int):
        return self.array[position]

    def batch(self, positions: np.ndarray) -> np.ndarray:
        return self.array[positions]

    def path(self, position: int) -> None:
        return None


def numeric_items(items) -> ArrayItems:
    """Items that form one numeric array, checked for non-numbers and NaN/inf values."""
    return ArrayItems(as_numeric_array(items, "items"))


class ListItems:
    """Items kept as the user gave them, one Python object each (e.g. strings)."""

    model_ready = False

    def __init__(self, values: Sequence):
        self.values = list(values)

    def __len__(self) -> int:
        return len(self.values)

    def get(self, position: int):
        return self.values[position]

    def batch(self, positions: np.ndarray) -> list:
        return [self.values[int(position)] for position in positions]

    def path(self, position: int) -> None:
        return None


class FileItems:
    """Items read from files on demand (never held in memory)."""

    model_ready = False

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], object]):
        self.paths = list(paths)
        self._load = load

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, position: int):
        return self._load(self.paths[position])

    def batch(self, positions: np.ndarray) -> list:
        return [self._load(self.paths[int(position)]) for position in positions]

    def path(self, position: int) -> Path:
        return self.paths[position]


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        return value.detach().cpu().numpy()
    return np.asarray(value)


def first_part(sample):
    """A torch Dataset item may be ``x`` or ``(x, y, ...)``; models see only ``x``."""
    return sample[0] if isinstance(sample, (tuple, list)) else sample


class DatasetItems:
    """A torch ``Dataset`` (duck typed); its tensors are model inputs exactly as made."""

    model_ready = True

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def get(self, position: int) -> np.ndarray:
        return _as_numpy(first_part(self.dataset[int(position)]))

    def batch(self, positions: np.ndarray) -> np.ndarray:
        rows = [self.get(position).astype(np.float32, copy=False) for position in positions]
        batch = np.stack(rows)
        if not np.isfinite(batch).all():
            raise ValueError(
                f"dataset items contain NaN/inf (positions {positions[:5].tolist()}...)"
            )
        return batch

    def path(self, position: int) -> None:
        return None


def dataset_item_ndim(items) -> int | None:
    """How many axes a torch Dataset's first input has, or ``None`` for other items."""
    if not looks_like_dataset(items) or len(items) == 0:
        return None
    return _as_numpy(first_part(items[0])).ndim
