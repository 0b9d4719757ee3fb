"""Pools: the unlabeled items a session chooses from, with stable ids.

A :class:`Pool` accepts numpy arrays (images ``N×H×W`` / ``N×H×W×C`` or tabular ``N×D``),
any torch ``Dataset`` by duck typing (``__len__`` and ``__getitem__``), lists of image file
paths, and lists of strings. It keeps the raw items for display and turns them into model
inputs on demand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

__all__ = ["Pool", "HeldOut", "ItemKind", "load_image_file", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


class ItemKind:
    """The kinds of item a pool can hold (plain strings, so they print and compare simply)."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


def load_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a ``H×W`` (grayscale) or ``H×W×3`` uint8 array.

    Raises
    ------
    ValueError
        If the file is missing or is not a readable image; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = "L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB"
            return np.asarray(image.convert(mode))
    except FileNotFoundError:
        raise ValueError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"corrupt or unreadable image file {path}: {error}") from None


def _looks_like_dataset(items) -> bool:
    return hasattr(items, "__len__") and hasattr(items, "__getitem__") and not isinstance(
        items, (np.ndarray, list, tuple, str)
    )


def _first_part(sample):
    """A torch Dataset item may be ``x`` or ``(x, y, ...)``; models see only ``x``."""
    return sample[0] if isinstance(sample, (tuple, list)) else sample


def _as_numeric_array(values, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            first = int(np.argwhere(bad.reshape(array.shape[0], -1).any(axis=1))[0, 0])
            raise ValueError(
                f"{what} contains {int(bad.sum())} NaN/inf values (first in item {first})"
            )
    return array


def _kind_of_array(array: np.ndarray) -> str:
    if array.ndim == 2:
        return ItemKind.TABULAR
    if array.ndim == 3 or (array.ndim == 4 and array.shape[-1] in (1, 3, 4)):
        return ItemKind.IMAGE
    raise ValueError(
        f"items array must be N×D (tabular), N×H×W or N×H×W×C (images, C in 1/3/4); "
        f"got shape {array.shape}"
    )


def _images_to_model_input(images: np.ndarray) -> np.ndarray:
    """``N×H×W[×C]`` → float32 ``N×C×H×W``."""
    if images.ndim == 3:
        images = images[:, None, :, :]
    else:
        images = np.moveaxis(images, -1, 1)
    return images.astype(np.float32, copy=False)


@dataclass(frozen=True)
class HeldOut:
    """A labeled split for evaluation: model inputs and class indices."""

    inputs: torch.Tensor
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])


class Pool:
    """The items to choose from, with stable ids, optional ground truth and a held-out split.

    Parameters
    ----------
    items : array, torch Dataset, list of image paths, or list of strings
        What the user labels. Arrays: ``N×H×W`` or ``N×H×W×C`` images, ``N×D`` rows.
    targets : sequence, optional
        Ground-truth labels (class indices or names) for simulation with an oracle;
        ``None`` or ``-1`` entries mean unknown.
    classes : sequence of str, optional
        Class names. Defaults to the sorted distinct targets, as strings.
    ids : sequence, optional
        Stable item ids (ints or strings, unique). Defaults to ``0..N-1``.
    features : array or callable, optional
        Model inputs to use instead of the raw items: an ``N×...`` array, or a function
        mapping one raw item to an array. Text pools default to TF-IDF features.
    test_items, test_targets : optional
        A held-out split in the same format as ``items``, for :meth:`Session.evaluate`.
    name : str, optional
        Shown in reports.
    """

    def __init__(
        self,
        items,
        *,
        targets=None,
        classes: Sequence[str] | None = None,
        ids: Sequence | None = None,
        features: np.ndarray | Callable | None = None,
        test_items=None,
        test_targets=None,
        name: str = "pool",
    ):
        self.name = name
        self._items, self.kind, self._image_paths = self._normalise_items(items)
        n_items = len(self._items)
        if n_items == 0:
            raise ValueError("the pool is empty: give at least one item")
        self.ids = list(range(n_items)) if ids is None else list(ids)
        if len(self.ids) != n_items:
            raise ValueError(f"got {len(self.ids)} ids for {n_items} items")
        self._position = {item_id: position for position, item_id in enumerate(self.ids)}
        if len(self._position) != n_items:
            raise ValueError("item ids must be unique")
        self.classes, self.targets = self._normalise_targets(targets, classes, n_items)
        self._features = features
        self._input_mean: np.ndarray | None = None
        self._input_scale: np.ndarray | None = None
        if test_items is not None:
            if test_targets is None:
                raise ValueError("test_items given without test_targets")
            test_pool = Pool(test_items, targets=test_targets, classes=self.classes, name=f"{name}-test")
            if test_pool.kind != self.kind:
                raise ValueError(f"test items are {test_pool.kind} but pool items are {self.kind}")
            if (test_pool.targets < 0).any():
                raise ValueError("every held-out item needs a known target")
            self._test_pool = test_pool
        else:
            self._test_pool = None

    # ----------------------------------------------------------------- construction helpers
    @staticmethod
    def _normalise_items(items):
        if isinstance(items, np.ndarray):
            array = _as_numeric_array(items, "items")
            return array, _kind_of_array(array), None
        if isinstance(items, (list, tuple)):
            if len(items) == 0:
                raise ValueError("the pool is empty: give at least one item")
            if all(isinstance(item, (str, os.PathLike)) for item in items):
                paths = [Path(item) for item in items]
                if all(path.suffix.lower() in IMAGE_SUFFIXES for path in paths):
                    missing = [str(path) for path in paths if not path.is_file()]
                    if missing:
                        raise ValueError(f"{len(missing)} image files not found, e.g. {missing[0]}")
                    return list(items), ItemKind.IMAGE, paths
                if all(isinstance(item, str) for item in items):
                    return list(items), ItemKind.TEXT, None
            array = _as_numeric_array(np.asarray(items), "items")
            return array, _kind_of_array(array), None
        if _looks_like_dataset(items):
            if len(items) == 0:
                raise ValueError("the pool is empty: the dataset has no items")
            first = np.asarray(_first_part(items[0]))
            kind = ItemKind.TABULAR if first.ndim == 1 else ItemKind.IMAGE
            return items, kind, None
        raise TypeError(
            f"unsupported items of type {type(items).__name__}: give a numpy array, a torch "
            "Dataset, a list of image file paths or a list of strings"
        )

    @staticmethod
    def _normalise_targets(targets, classes, n_items):
        if targets is None:
            if classes is None:
                raise ValueError("give classes=[...] (the label names) when the pool has no targets")
            names = [str(name) for name in classes]
            return names, np.full(n_items, -1, dtype=np.int64)
        values = list(np.asarray(targets, dtype=object).ravel()) if not isinstance(targets, list) else targets
        if len(values) != n_items:
            raise ValueError(f"got {len(values)} targets for {n_items} items")
        known = [value for value in values if value is not None and not (_is_int(value) and int(value) < 0)]
        if classes is None:
            if all(_is_int(value) for value in known):
                top = max((int(value) for value in known), default=-1)
                names = [str(index) for index in range(top + 1)]
            else:
                names = sorted({str(value) for value in known})
        else:
            names = [str(name) for name in classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        lookup = {name: index for index, name in enumerate(names)}
        encoded = np.full(n_items, -1, dtype=np.int64)
        for position, value in enumerate(values):
            if value is None or (_is_int(value) and int(value) < 0):
                continue
            if _is_int(value) and classes is None or (_is_int(value) and str(value) not in lookup):
                index = int(value)
                if index >= len(names):
                    raise ValueError(f"target {index} of item {position} is not a class index (have {len(names)})")
            else:
                if str(value) not in lookup:
                    raise ValueError(f"target {value!r} of item {position} is not one of the classes {names}")
                index = lookup[str(value)]
            encoded[position] = index
        return names, encoded

    # ------------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        test = f", test={len(self.test)}" if self.test is not None else ""
        return f"Pool({self.name!r}, {len(self)} {self.kind} items, {len(self.classes)} classes{test})"

    def position(self, item_id) -> int:
        """Position of ``item_id`` in the pool; a clear error for an unknown id."""
        try:
            return self._position[item_id]
        except (KeyError, TypeError):
            pass
        if isinstance(item_id, (np.integer,)) and int(item_id) in self._position:
            return self._position[int(item_id)]
        raise KeyError(f"unknown item id {item_id!r} (not in pool {self.name!r})")

    def positions(self, item_ids) -> np.ndarray:
        """Positions of several ids, as an int array."""
        return np.array([self.position(item_id) for item_id in item_ids], dtype=np.int64)

    def id_from_key(self, key: str):
        """The id whose ``str()`` is ``key`` (stores keep ids as text)."""
        return self._ids_by_key[key]

    @cached_property
    def _ids_by_key(self) -> dict:
        return {str(item_id): item_id for item_id in self.ids}

    def item(self, item_id):
        """The raw item for display: an array (image/row), a path's pixels, or a string."""
        position = self.position(item_id)
        if self._image_paths is not None:
            return load_image_file(self._image_paths[position])
        if _looks_like_dataset(self._items):
            value = _first_part(self._items[position])
            return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return self._items[position]

    def item_path(self, item_id) -> Path | None:
        """The file behind an image-file item, else ``None``."""
        return None if self._image_paths is None else self._image_paths[self.position(item_id)]

    @property
    def has_targets(self) -> bool:
        """Whether every item has ground truth (needed for simulation)."""
        return bool((self.targets >= 0).all())

    @property
    def test(self) -> HeldOut | None:
        """The held-out split as model inputs, or ``None``."""
        if self._test_pool is None:
            return None
        test_pool = self._test_pool
        return HeldOut(self._to_model_input(test_pool, np.arange(len(test_pool))), test_pool.targets)

    # ---------------------------------------------------------------------- model inputs
    @cached_property
    def _text_vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(max_features=4096, sublinear_tf=True)
        vectorizer.fit(self._items)
        return vectorizer

    def _raw_numeric(self, pool: Pool, positions: np.ndarray) -> np.ndarray:
        """Numeric model input before scaling, for the given positions of ``pool``."""
        features = self._features
        if isinstance(features, np.ndarray) and pool is self:
            return _as_numeric_array(features[positions], "features").astype(np.float32)
        if callable(features):
            rows = [np.asarray(features(pool.item(pool.ids[p])), dtype=np.float32) for p in positions]
            return _as_numeric_array(np.stack(rows), "features")
        if pool.kind == ItemKind.TEXT:
            return self._text_vectorizer.transform([pool._items[p] for p in positions]).toarray().astype(np.float32)
        if pool._image_paths is not None:
            images = [load_image_file(pool._image_paths[p]) for p in positions]
            shapes = {image.shape for image in images}
            if len(shapes) > 1:
                raise ValueError(f"image files differ in size {sorted(shapes)}; resize them or pass features=")
            return _images_to_model_input(np.stack(images))
        if _looks_like_dataset(pool._items):
            rows = []
            for p in positions:
                value = _first_part(pool._items[int(p)])
                value = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float32)
                rows.append(value.astype(np.float32, copy=False))
            batch = np.stack(rows)
            if not np.isfinite(batch).all():
                raise ValueError(f"dataset items contain NaN/inf (positions {positions[:5].tolist()}...)")
            return batch  # a Dataset's tensors are passed through as the user made them
        array = pool._items[positions]
        if pool.kind == ItemKind.IMAGE:
            return _images_to_model_input(array)
        return array.astype(np.float32)

    def _fit_scaling(self) -> None:
        """Standardise inputs with statistics of this pool (never of the held-out split)."""
        if _looks_like_dataset(self._items) or (self._features is not None and not isinstance(self._features, np.ndarray)):
            self._input_mean, self._input_scale = np.float32(0), np.float32(1)
            return
        sample = np.arange(len(self)) if len(self) <= 20000 else np.linspace(0, len(self) - 1, 20000).astype(int)
        raw = self._raw_numeric(self, sample)
        if self.kind == ItemKind.IMAGE and not (isinstance(self._features, np.ndarray)):
            self._input_mean, self._input_scale = np.float32(raw.mean()), np.float32(raw.std() or 1.0)
        else:
            std = raw.std(axis=0)
            self._input_mean, self._input_scale = raw.mean(axis=0), np.where(std > 0, std, 1.0).astype(np.float32)

    def _to_model_input(self, pool: Pool, positions: np.ndarray) -> torch.Tensor:
        if self._input_mean is None:
            self._fit_scaling()
        raw = self._raw_numeric(pool, np.asarray(positions, dtype=np.int64))
        return torch.from_numpy(((raw - self._input_mean) / self._input_scale).astype(np.float32, copy=False))

    def inputs(self, positions) -> torch.Tensor:
        """Model inputs (float32 tensor, first axis = items) for pool positions."""
        return self._to_model_input(self, np.asarray(positions, dtype=np.int64))

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input (without the batch axis)."""
        return tuple(self.inputs(np.array([0])).shape[1:])


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
