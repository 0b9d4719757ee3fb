"""Pools: the unlabeled items a session chooses from, with stable ids.

A :class:`Pool` accepts whatever a registered item kind reads (see :mod:`alwidget.kinds`):
numpy arrays (images ``N×H×W`` / ``N×H×W×C`` or tabular ``N×D``), any torch ``Dataset`` by
duck typing (``__len__`` and ``__getitem__``), lists of image file paths, and lists of
strings. It keeps the raw items for display and asks the kind to turn them into model inputs
on demand.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import kinds
from .errors import InvalidArgumentError
from .kinds import checks
from .kinds.base import ItemKind, ItemKindError, as_numeric_array, per_feature_scaling
from .kinds.image import IMAGE_SUFFIXES, load_image_file
from .kinds.items import FileItems, SkippedFile, UnreadableFileError

__all__ = [
    "Pool",
    "HeldOut",
    "ItemKind",
    "load_image_file",
    "IMAGE_SUFFIXES",
    "SkippedFile",
    "UnreadableFileError",
]

_SCALING_SAMPLE = 20000  # items whose inputs fix the standardisation of large pools
# ... but of a pool of files (each read is a decode) only enough for this many input values,
# with at least _SCALING_FILES_MIN files: on 5 000 RGB 96×96 PNGs, reading all of them for
# one mean and one scale cost 5.5 s of the session's start.
_SCALING_VALUES = 8_000_000
_SCALING_FILES_MIN = 500
_LISTED_BAD_FILES = 10  # bad files named in an error; the rest are counted
_ON_ERROR = ("raise", "skip")


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
    items : array, torch Dataset, list of image paths, a folder, list of strings, or any
        items a registered kind reads
        What the user labels. Arrays: ``N×H×W`` or ``N×H×W×C`` images, ``N×D`` rows. A
        folder gives its image files (recursively, sorted, hidden ones left out), with their
        paths inside the folder as default ids. How files are read (bit depth, channels,
        transparency): see :mod:`alwidget.kinds.image`.
    targets : sequence, optional
        Ground-truth labels (class indices or names) for simulation with an oracle;
        ``None`` or ``-1`` entries mean unknown.
    classes : sequence of str, optional
        Class names. Defaults to the sorted distinct targets, as strings.
    ids : sequence, optional
        Stable item ids (ints or strings, unique). Defaults to ``0..N-1``, the positions in
        ``items``, so a skipped file leaves a gap and never shifts another item's id.
    features : array or callable, optional
        Model inputs to use instead of the raw items: an ``N×...`` array, or a function
        mapping one raw item to an array. Text pools default to TF-IDF features.
    test_items, test_targets : optional
        A held-out split in the same format as ``items``, for :meth:`Session.evaluate`.
    name : str, optional
        Shown in reports.
    kind : str or ItemKind, optional
        The item kind (a registered kind's name, or a kind object) instead of detecting it,
        e.g. ``kind="text"`` for strings that merely look like file names.
    on_error : {"raise", "skip"}
        What to do with files that cannot be read (pools of files, which are all checked
        when the pool is built: PNGs verified, JPEGs decoded at 1/8 scale, others decoded).
        ``"raise"`` (default): one :class:`UnreadableFileError` listing every bad file and
        why. ``"skip"``: leave them out with a warning, listed in :attr:`skipped`; their
        ids, targets and ``features`` rows go with them, so no other item's label moves.
        The held-out split is checked the same way (``pool.held_out_pool.skipped``).

    Attributes
    ----------
    kind : str
        The name of the item kind (``"image"``, ``"text"``, ``"tabular"``, ...).
    item_kind : ItemKind
        The kind itself: how items become inputs and how the widget shows them.
    skipped : list of SkippedFile
        The files left out by ``on_error="skip"``: ``(path, reason)`` each.

    Raises
    ------
    UnreadableFileError
        (a ``ValueError``) with ``on_error="raise"`` when some files cannot be read, or when
        no file can; its ``files`` attribute lists them.
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
        kind: ItemKind | str | None = None,
        on_error: str = "raise",
        _argument: str = "items",
    ):
        self.name = name
        if on_error not in _ON_ERROR:
            raise InvalidArgumentError(f'on_error must be "raise" or "skip", got {on_error!r}')
        if hasattr(items, "__len__") and len(items) == 0:
            raise InvalidArgumentError(f"{_argument} is empty: give at least one item")
        self.item_kind = kinds.detect(items) if kind is None else kinds.resolve(kind)
        self._items = self.item_kind.read(items)
        n_items = len(self._items)
        if n_items == 0:
            raise InvalidArgumentError(f"{_argument} is empty: give at least one item")
        if ids is None:
            ids = getattr(self._items, "default_ids", None)
        self.ids = checks.check_ids(ids, n_items)
        self._position = _positions_of_ids(self.ids)
        classes = checks.check_classes(classes)
        targets = checks.check_targets(targets, classes, n_items)
        features = checks.check_features(features, n_items)
        checks.check_test_split(test_items, test_targets, classes)
        # Classes come from every given target, so skipping a file never renumbers them.
        self.classes, self.targets = self._normalise_targets(targets, classes, n_items)
        self._features = features
        self.skipped: list[SkippedFile] = []
        self._check_files(on_error, _argument)
        self._input_mean: np.ndarray | None = None
        self._input_scale: np.ndarray | None = None
        if test_items is not None:
            if test_targets is None:
                raise ValueError("test_items given without test_targets")
            test_pool = self._held_out_pool(test_items, test_targets, on_error)
            checks.check_held_out_inputs(self, test_pool)
            if (test_pool.targets < 0).any():
                raise ValueError("every held-out item needs a known target")
            self._test_pool = test_pool
        else:
            self._test_pool = None

    # ----------------------------------------------------------------- construction helpers
    @property
    def kind(self) -> str:
        """The item kind's name; label stores fingerprint pools with it."""
        return self.item_kind.name

    def _held_out_pool(self, test_items, test_targets, on_error: str) -> Pool:
        try:
            test_pool = Pool(
                test_items,
                targets=test_targets,
                classes=self.classes,
                name=f"{self.name}-test",
                kind=self.item_kind,
                on_error=on_error,
                _argument="test_items",
            )
        except ItemKindError as error:
            raise ItemKindError(
                f"test_items must be {self.kind} items like the pool's items: {error}"
            ) from None
        own, held_out = self._items, test_pool._items
        if hasattr(own, "read_in_colour") and hasattr(held_out, "read_in_colour"):
            # One channel layout for both, or the model would get inputs it was not built for.
            colour = own.colour or held_out.colour
            own.read_in_colour(colour)
            held_out.read_in_colour(colour)
        return test_pool

    def _check_files(self, on_error: str, argument: str) -> None:
        """Check every file of a pool of files once; refuse or skip the bad ones.

        Ids, targets and ``features`` rows of skipped files are dropped with them, so every
        remaining item keeps its own.
        """
        check = getattr(self._items, "check", None)
        if check is None:
            return
        bad = check()
        if not bad:
            return
        n_given = len(self._items)
        bad_files = [SkippedFile(Path(self._items.path(p)), reason) for p, reason in bad]
        listing = "\n".join(f"  {path}: {reason}" for path, reason in bad_files[:_LISTED_BAD_FILES])
        if len(bad) > _LISTED_BAD_FILES:
            listing += f"\n  ... and {len(bad) - _LISTED_BAD_FILES} more"
        if on_error == "raise" or len(bad) == n_given:
            fix = (
                'Fix or remove them, or pass on_error="skip" to leave them out '
                "(they are then listed in pool.skipped)."
                if len(bad) < n_given
                else "No file is left: check the paths and the files' format."
            )
            raise UnreadableFileError(
                f"{argument}: {len(bad)} of {n_given} files cannot be read:\n{listing}\n{fix}",
                bad_files,
            )
        unreadable = {position for position, _ in bad}
        keep = [position for position in range(n_given) if position not in unreadable]
        features = self._features
        if isinstance(features, np.ndarray):
            if len(features) != n_given:
                raise ValueError(
                    f"features has {len(features)} rows for {n_given} items; give one row "
                    "per item in items (rows of skipped files are dropped with them)"
                )
            self._features = features[keep]
        self._items = self._items.subset(keep)
        self.ids = [self.ids[position] for position in keep]
        self._position = _positions_of_ids(self.ids)
        self.targets = self.targets[keep]
        self.skipped = bad_files
        warnings.warn(
            f"{argument}: skipped {len(bad)} of {n_given} files that cannot be read "
            f"(listed in pool.skipped):\n{listing}",
            stacklevel=3,
        )

    @staticmethod
    def _normalise_targets(targets, classes, n_items):
        if targets is None:
            if classes is None:
                raise ValueError(
                    "give classes=[...] (the label names) when the pool has no targets"
                )
            names = [str(name) for name in classes]
            return names, np.full(n_items, -1, dtype=np.int64)
        if isinstance(targets, list):
            values = targets
        else:
            values = list(np.asarray(targets, dtype=object).ravel())
        if len(values) != n_items:
            raise ValueError(f"got {len(values)} targets for {n_items} items")
        known = [value for value in values if not _is_unknown_target(value)]
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
            if _is_unknown_target(value):
                continue
            if _is_int(value) and classes is None or (_is_int(value) and str(value) not in lookup):
                index = int(value)
                if index >= len(names):
                    raise ValueError(
                        f"target {index} of item {position} is not a class index "
                        f"(have {len(names)})"
                    )
            else:
                if str(value) not in lookup:
                    raise ValueError(
                        f"target {value!r} of item {position} is not one of the classes {names}"
                    )
                index = lookup[str(value)]
            encoded[position] = index
        return names, encoded

    # ------------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        test = f", test={len(self.test)}" if self.test is not None else ""
        return (
            f"Pool({self.name!r}, {len(self)} {self.kind} items, {len(self.classes)} classes{test})"
        )

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
        return self._items.get(self.position(item_id))

    def item_path(self, item_id) -> Path | None:
        """The file behind an item read from a file, else ``None``."""
        return self._items.path(self.position(item_id))

    @property
    def has_targets(self) -> bool:
        """Whether every item has ground truth (needed for simulation)."""
        return bool((self.targets >= 0).all())

    @property
    def held_out_pool(self) -> Pool | None:
        """The held-out split as a pool of raw items (for copying or showing), or ``None``."""
        return self._test_pool

    @property
    def test(self) -> HeldOut | None:
        """The held-out split as model inputs, or ``None``."""
        if self._test_pool is None:
            return None
        test_pool = self._test_pool
        inputs = self._to_model_input(test_pool, np.arange(len(test_pool)))
        return HeldOut(inputs, test_pool.targets)

    # ---------------------------------------------------------------------- model inputs
    @cached_property
    def _encoder(self):
        """The kind's conversion to model inputs, fitted on this pool (e.g. its vocabulary)."""
        return self.item_kind.input_encoder(self._items)

    def _raw_numeric(self, pool: Pool, positions: np.ndarray) -> np.ndarray:
        """Numeric model input before scaling, for the given positions of ``pool``."""
        features = self._features
        if isinstance(features, np.ndarray) and pool is self:
            return as_numeric_array(features[positions], "features").astype(np.float32)
        if callable(features):
            rows = [
                checks.check_feature_function(features, pool.item(pool.ids[p]), p)
                for p in positions
            ]
            return as_numeric_array(np.stack(rows), "features")
        batch = pool._items.batch(positions)
        if pool._items.model_ready:
            return batch  # a Dataset's tensors are passed through as the user made them
        return self._encoder.encode(batch)

    def _fit_scaling(self) -> None:
        """Standardise inputs with statistics of this pool (never of the held-out split)."""
        features = self._features
        computed = features is not None and not isinstance(features, np.ndarray)
        if self._items.model_ready or computed:
            self._input_mean, self._input_scale = np.float32(0), np.float32(1)
            return
        n_sample = _SCALING_SAMPLE
        if isinstance(self._items, FileItems) and features is None:
            width = int(np.prod(self._raw_numeric(self, np.array([0])).shape[1:]))
            n_sample = min(n_sample, max(_SCALING_FILES_MIN, _SCALING_VALUES // max(width, 1)))
        if len(self) <= n_sample:
            sample = np.arange(len(self))
        else:
            sample = np.linspace(0, len(self) - 1, n_sample).astype(int)
        raw = self._raw_numeric(self, sample)
        # Given features are columns of their own whatever the items are.
        scaling = per_feature_scaling if isinstance(features, np.ndarray) else self._encoder.scaling
        self._input_mean, self._input_scale = scaling(raw)

    def _to_model_input(self, pool: Pool, positions: np.ndarray) -> torch.Tensor:
        if self._input_mean is None:
            self._fit_scaling()
        raw = self._raw_numeric(pool, np.asarray(positions, dtype=np.int64))
        scaled = (raw - self._input_mean) / self._input_scale
        return torch.from_numpy(scaled.astype(np.float32, copy=False))

    def keeping_file_reads(self):
        """A context manager in which files read once are not read again (see
        :meth:`FileItems.keeping_reads`); nothing changes for a pool of other items."""
        if isinstance(self._items, FileItems):
            return self._items.keeping_reads()
        return contextlib.nullcontext()

    def inputs(self, positions) -> torch.Tensor:
        """Model inputs (float32 tensor, first axis = items) for pool positions."""
        return self._to_model_input(self, np.asarray(positions, dtype=np.int64))

    @cached_property
    def exact_digest(self) -> str:
        """:attr:`content_digest`, plus the files' absolute paths and modification times for a
        pool of files; feature caches key on it, so a file rewritten in place is re-encoded."""
        if not isinstance(self._items, FileItems):
            return self.content_digest
        hasher = hashlib.sha256(f"exact\n{self.content_digest}\n".encode())
        self._items.digest(hasher, exact=True)
        return hasher.hexdigest()

    @cached_property
    def content_digest(self) -> str:
        """A hex digest of what the pool holds: its kind, ids (with their types) and items.

        Label stores and feature caches key on it, so two pools of the same size but other
        content never share either. Given ``features`` count too (an array by its bytes, a
        function by its qualified name).
        """
        hasher = hashlib.sha256(f"alwidget-pool-content/1\n{self.kind}\n{len(self)}\n".encode())
        for item_id in self.ids:
            hasher.update(f"{type(item_id).__name__}:{item_id!s}\0".encode("utf-8", "replace"))
        features = self._features
        if isinstance(features, np.ndarray):
            hasher.update(b"features\n")
            hasher.update(memoryview(np.ascontiguousarray(features).reshape(-1).view(np.uint8)))
        elif callable(features):
            hasher.update(f"features {getattr(features, '__qualname__', repr(features))}".encode())
        if hasattr(self._items, "digest"):
            self._items.digest(hasher)
        else:
            for start in range(0, len(self), 4096):
                chunk = self.inputs(np.arange(start, min(start + 4096, len(self))))
                hasher.update(memoryview(chunk.numpy().reshape(-1).view(np.uint8)))
        return hasher.hexdigest()

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input (without the batch axis)."""
        return tuple(self.inputs(np.array([0])).shape[1:])


def _positions_of_ids(ids: list) -> dict:
    """``{id: position}``, refusing ids a label store could not tell apart.

    Stores keep ids as text, so ``1`` and ``"1"`` (or ``None`` and ``"None"``) would share
    one key and one item's label would silently land on the other.
    """
    positions: dict = {}
    by_key: dict[str, object] = {}
    for position, item_id in enumerate(ids):
        if isinstance(item_id, np.generic):
            item_id = item_id.item()
            ids[position] = item_id
        if not isinstance(item_id, (int, str)) or isinstance(item_id, bool):
            raise ValueError(
                f"ids: item {position} has id {item_id!r} of type {type(item_id).__name__}; "
                "ids must be ints or non-empty strings"
            )
        key = str(item_id)
        if not key.strip():
            raise ValueError(
                f"ids: item {position} has an empty id {item_id!r}; give every item a non-empty id"
            )
        if key in by_key:
            other = by_key[key]
            what = "is repeated" if other == item_id else f"and {other!r} both read {key!r}"
            raise ValueError(
                f"ids: {item_id!r} (item {position}) {what}; ids must be unique as text, "
                "because label stores keep them as text"
            )
        by_key[key] = item_id
        positions[item_id] = position
    return positions


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_unknown_target(value) -> bool:
    """``None`` and negative class indices mark items without ground truth."""
    return value is None or (_is_int(value) and int(value) < 0)
