"""Checks of what a user hands to :class:`alwidget.Pool`, made where it enters.

Each check raises an :class:`~alwidget.errors.AlwidgetError` naming the argument, the item
and the fix, so no numpy, torch or scikit-learn error reaches the user for a mistake of
theirs (a dict as items, targets of the wrong length, ``classes="ab"``, NaN targets, a
torch Dataset whose items raise, held-out items of another width, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from ..errors import AlwidgetError, InvalidArgumentError, InvalidArgumentTypeError, ItemReadError
from .base import as_numeric_array

__all__ = [
    "container_hint",
    "ragged_rows_hint",
    "read_dataset_item",
    "check_ids",
    "check_classes",
    "check_targets",
    "check_features",
    "check_test_split",
    "check_held_out_inputs",
    "check_feature_function",
    "stack_dataset_rows",
]


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_frame(value) -> bool:
    """A pandas DataFrame or Series (duck typed: pandas is not a dependency)."""
    return hasattr(value, "to_numpy") and hasattr(value, "iloc")


def container_hint(items, argument: str = "items") -> str | None:
    """How to pass ``items`` when they are a container alwidget cannot index by position
    (a dict, a set, one string, an iterator, a pandas frame); ``None`` for other values."""
    name = type(items).__name__
    if isinstance(items, Mapping):
        return (
            f"{argument} is a {name}, indexed by its keys rather than by position; pass "
            f"list(d.values()) as {argument} and list(d.keys()) as ids="
        )
    if isinstance(items, (set, frozenset)):
        return (
            f"{argument} is a {name}, which has no order, so positions and ids would change "
            f"from run to run; pass a list, e.g. sorted({argument})"
        )
    if isinstance(items, (str, bytes, os.PathLike)):
        shown = items if isinstance(items, (str, bytes)) else os.fspath(items)
        return (
            f"{argument}={shown!r} is one {name}, not an existing folder of images; pass a "
            f"folder that exists, or a list of items (e.g. [{argument}] for one text)"
        )
    if _is_frame(items):
        return (
            f"{argument} is a pandas {name}; pass {argument}.to_numpy(dtype='float32') for "
            f"numbers or {argument}.tolist() for texts, and {argument}.index.tolist() as ids="
        )
    if isinstance(items, Iterable) and not hasattr(items, "__len__"):
        return f"{argument} is an iterator ({name}) with no length; pass list({argument})"
    return None


def ragged_rows_hint(items, argument: str = "items") -> str | None:
    """Which rows of a list of rows differ in length, or ``None`` when they do not."""
    if not isinstance(items, (list, tuple)) or not items:
        return None
    shapes = []
    for item in items:
        if isinstance(item, (str, bytes)) or not isinstance(item, (list, tuple, np.ndarray)):
            return None
        shapes.append(np.shape(item) if isinstance(item, np.ndarray) else (len(item),))
    for position, shape in enumerate(shapes):
        if shape != shapes[0]:
            return (
                f"{argument}: item 0 has shape {shapes[0]} but item {position} has shape "
                f"{shape}; every item needs the same shape (pad or crop them, or pass "
                "features= with one fixed-length row per item)"
            )
    return None


def read_dataset_item(dataset, position: int, argument: str = "items"):
    """``dataset[position]``, with an error naming the item when the Dataset raises."""
    try:
        return dataset[position]
    except Exception as error:
        raise ItemReadError(
            f"{argument}: reading item {position} ({type(dataset).__name__}[{position}]) "
            f"raised {type(error).__name__}: {error}; fix the Dataset's __getitem__, or leave "
            "that item out (e.g. torch.utils.data.Subset)"
        ) from error


def _as_ordered_list(values, argument: str, what: str) -> list:
    """``values`` as a list, refusing containers whose order or meaning is ambiguous."""
    if isinstance(values, (str, bytes)):
        raise InvalidArgumentTypeError(
            f"{argument}={values!r} is one string; pass a list of {what}, "
            f"e.g. {argument}=[{values!r}]"
        )
    if isinstance(values, (Mapping, set, frozenset)):
        raise InvalidArgumentTypeError(container_hint(values, argument))
    if _is_frame(values):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) or hasattr(values, "detach"):
        array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
        if array.ndim == 0:
            raise InvalidArgumentTypeError(
                f"{argument} is a single value {array.item()!r}; pass one of {what} per item"
            )
        return list(array)
    if not isinstance(values, Iterable):
        raise InvalidArgumentTypeError(
            f"{argument} must be a list of {what}, got {type(values).__name__} {values!r}"
        )
    return list(values)


def check_ids(ids, n_items: int, argument: str = "ids") -> list:
    """Item ids as a list: ``0..N-1`` by default, else one unique int or non-empty string
    per item, unique as text (label stores keep ids as text, so ``1`` and ``"1"`` clash).

    Raises
    ------
    InvalidArgumentError, InvalidArgumentTypeError
    """
    if ids is None:
        return list(range(n_items))
    values = _as_ordered_list(ids, argument, "ids")
    if len(values) != n_items:
        raise InvalidArgumentError(
            f"{argument}: got {len(values)} ids for {n_items} items; give one id per item"
        )
    seen: dict[str, object] = {}
    for position, item_id in enumerate(values):
        if isinstance(item_id, np.generic):
            item_id = item_id.item()
            values[position] = item_id
        if not isinstance(item_id, (int, str)) or isinstance(item_id, bool):
            raise InvalidArgumentTypeError(
                f"{argument}: item {position} has id {item_id!r} of type "
                f"{type(item_id).__name__}; ids must be ints or non-empty strings"
            )
        key = str(item_id)
        if not key.strip():
            raise InvalidArgumentError(
                f"{argument}: item {position} has an empty id {item_id!r}; give every item a "
                "non-empty id"
            )
        if key in seen:
            other = seen[key]
            what = "is repeated" if other == item_id else f"and {other!r} both read {key!r}"
            raise InvalidArgumentError(
                f"{argument}: {item_id!r} (item {position}) {what}; ids must be unique as "
                "text, because label stores keep them as text"
            )
        seen[key] = item_id
    return values


def check_classes(classes, argument: str = "classes") -> list[str] | None:
    """Class names as a list of distinct non-empty strings (``None`` stays ``None``).

    Refuses one string (``classes="ab"`` would become ``["a", "b"]``), sets (no order, so
    class indices would change between runs), ``None`` and empty names, and duplicates.
    """
    if classes is None:
        return None
    values = _as_ordered_list(classes, argument, "class names")
    names: list[str] = []
    for position, name in enumerate(values):
        if isinstance(name, np.generic):
            name = name.item()
        if not isinstance(name, str) and not _is_integer(name):
            raise InvalidArgumentTypeError(
                f"{argument}: entry {position} is {name!r} of type {type(name).__name__}; "
                "class names must be strings (or integers)"
            )
        text = str(name)
        if not text.strip():
            raise InvalidArgumentError(
                f"{argument}: entry {position} is an empty name; every class needs a name"
            )
        if text in names:
            raise InvalidArgumentError(
                f"{argument}: {text!r} appears twice (entries {names.index(text)} and "
                f"{position}); class names must be unique"
            )
        names.append(text)
    return names


def _target_values(targets, n_items: int, argument: str) -> list:
    if hasattr(targets, "detach"):  # a torch tensor, without importing torch here
        targets = targets.detach().cpu().numpy()
    if isinstance(targets, np.ndarray) and targets.ndim > 1:
        if targets.ndim == 2 and targets.shape[1] == 1:
            targets = targets[:, 0]
        else:
            raise InvalidArgumentError(
                f"{argument} has shape {targets.shape}; give one class per item (for one-hot "
                f"rows: {argument}.argmax(axis=1))"
            )
    values = _as_ordered_list(targets, argument, "targets")
    if len(values) != n_items:
        raise InvalidArgumentError(
            f"{argument}: got {len(values)} targets for {n_items} items; give one target per "
            "item (None or -1 for an unknown one)"
        )
    return values


def check_targets(
    targets,
    classes: list[str] | None,
    n_items: int,
    *,
    argument: str = "targets",
    require_known: bool = False,
) -> list | None:
    """Targets as a list of plain values (``None``, ints, strs), refusing what the pool
    would misread: the wrong length, NaN (it would become a class ``"nan"``), floats,
    booleans, or values not among ``classes`` (as names or indices).

    Parameters
    ----------
    targets : sequence or None
        As given to :class:`alwidget.Pool`; ``None`` and negative integers mean unknown.
    classes : list of str or None
        The checked class names (see :func:`check_classes`), or ``None`` to derive them.
    n_items : int
        Items the targets describe.
    argument : str
        The argument's name for messages (``"test_targets"`` for the held-out split).
    require_known : bool
        Whether every target must be known (a held-out split is only good for evaluation
        when it is).

    Returns
    -------
    list or None
        One plain value per item (numpy and torch scalars unwrapped), or ``None``.
    """
    if targets is None:
        if require_known:
            raise InvalidArgumentError(
                f"{argument} is missing: give the class of every held-out item"
            )
        if classes is None:
            raise InvalidArgumentError(
                "give classes=[...] (the label names) when the pool has no targets"
            )
        return None
    values = _target_values(targets, n_items, argument)
    lookup = None if classes is None else set(classes)
    for position, value in enumerate(values):
        if isinstance(value, np.generic):
            value = value.item()
            values[position] = value
        if value is None or (_is_integer(value) and value < 0):
            if require_known:
                raise InvalidArgumentError(
                    f"{argument}: item {position} has no target ({value!r}); every held-out "
                    "item needs its class"
                )
            continue
        if isinstance(value, float):
            fix = (
                "mark unknown targets with None or -1"
                if math.isnan(value)
                else "give class indices as ints (e.g. targets.astype(int)) or names as str"
            )
            raise InvalidArgumentError(
                f"{argument}: item {position} has the float target {value!r}; {fix}"
            )
        if not isinstance(value, str) and not _is_integer(value):
            raise InvalidArgumentTypeError(
                f"{argument}: item {position} has target {value!r} of type "
                f"{type(value).__name__}; give class indices (ints) or class names (str)"
            )
        if lookup is None or str(value) in lookup:
            continue
        if _is_integer(value) and value < len(classes):
            continue
        raise InvalidArgumentError(
            f"{argument}: item {position} has target {value!r}, which is neither one of the "
            f"classes {classes} nor a class index below {len(classes)}; add it to classes= "
            "or fix the target"
        )
    return values


def check_features(features, n_items: int, argument: str = "features"):
    """``features`` as given when it is usable: ``None``, a function (item -> row), or a
    real numeric array with one row of at least one value per item (a list or tensor of
    rows is converted to an array)."""
    if features is None or (callable(features) and not isinstance(features, np.ndarray)):
        return features
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    if not isinstance(features, (np.ndarray, list, tuple)):
        raise InvalidArgumentTypeError(
            f"{argument} must be an array with one row per item or a function mapping one "
            f"item to its row, got {type(features).__name__}"
        )
    try:
        array = np.asarray(features)
    except ValueError:  # rows of different lengths
        array = np.asarray(features, dtype=object)
    if array.dtype == object and (hint := ragged_rows_hint(list(features), argument)):
        raise InvalidArgumentError(hint)
    array = as_numeric_array(array, argument)
    if array.ndim < 2:
        raise InvalidArgumentError(
            f"{argument} has shape {array.shape}; give one row per item, e.g. "
            f"{argument}.reshape(-1, 1) for one value per item"
        )
    if array.shape[0] != n_items:
        raise InvalidArgumentError(
            f"{argument} has {array.shape[0]} rows for {n_items} items; give one row per item "
            "in the order of items"
        )
    if array[0].size == 0:
        raise InvalidArgumentError(
            f"{argument} has shape {array.shape}: its rows are empty; give at least one value "
            "per item"
        )
    return array


def check_test_split(test_items, test_targets, classes: list[str] | None) -> None:
    """A held-out split needs both ``test_items`` and ``test_targets``, one known target per
    held-out item, among the pool's classes when those are given."""
    if test_items is None:
        if test_targets is not None:
            raise InvalidArgumentError(
                "test_targets given without test_items; pass the held-out items as test_items="
            )
        return
    if test_targets is None:
        raise InvalidArgumentError(
            "test_items given without test_targets; pass the class of every held-out item "
            "as test_targets="
        )
    if hasattr(test_items, "__len__") and not isinstance(test_items, (str, bytes, Mapping)):
        check_targets(
            test_targets, classes, len(test_items), argument="test_targets", require_known=True
        )


def _input_shape(pool, of_pool, argument: str) -> tuple[int, ...]:
    try:
        return tuple(pool._raw_numeric(of_pool, np.array([0], dtype=np.int64)).shape[1:])
    except AlwidgetError:
        raise
    except Exception as error:
        raise InvalidArgumentError(
            f"{argument}: item 0 could not be turned into model inputs "
            f"({type(error).__name__}: {error}); check that it is like the pool's items"
        ) from error


def check_held_out_inputs(pool, test_pool) -> None:
    """Held-out items must give model inputs of the pool's shape (the same width of rows,
    the same image size, ...), or evaluation would fail with a broadcast error.

    Parameters
    ----------
    pool : Pool
        The pool, with its ``features=`` if any.
    test_pool : Pool
        Its held-out split, read from ``test_items``.
    """
    own = _input_shape(pool, pool, "items")
    held_out = _input_shape(pool, test_pool, "test_items")
    if own == held_out:
        return
    features = getattr(pool, "_features", None)
    if isinstance(features, np.ndarray):
        fix = (
            "features= given as an array covers the pool's items only; pass features as a "
            "function (one item -> its row) so held-out items are converted the same way"
        )
    else:
        fix = "give test_items of the same shape as items"
    raise InvalidArgumentError(
        f"test_items give model inputs of shape {held_out}, but the pool's items give {own}; {fix}"
    )


def check_feature_function(features: Callable, item, position: int, argument="features"):
    """One row from a ``features`` function, with an error naming the item when it fails."""
    try:
        return np.asarray(features(item), dtype=np.float32)
    except Exception as error:
        raise InvalidArgumentError(
            f"{argument}: the function raised {type(error).__name__} on item {position}: "
            f"{error}; it must map one item to a row of numbers"
        ) from error


def stack_dataset_rows(rows: list, positions, argument: str = "items") -> np.ndarray:
    """One float32 batch from a Dataset's rows, naming the first item whose shape differs
    from the first one's or that holds NaN/inf."""
    positions = [int(position) for position in positions]
    for position, row in zip(positions, rows):
        if row.shape != rows[0].shape:
            raise InvalidArgumentError(
                f"{argument}: the Dataset's item {position} has shape {row.shape} but item "
                f"{positions[0]} has {rows[0].shape}; every item must have the same shape "
                "(resize or pad them in __getitem__)"
            )
    batch = np.stack(rows)
    finite = np.isfinite(batch.reshape(len(rows), -1)).all(axis=1)
    if not finite.all():
        first = positions[int(np.flatnonzero(~finite)[0])]
        raise InvalidArgumentError(
            f"{argument}: the Dataset's item {first} contains NaN/inf; drop or fill such "
            "values in __getitem__"
        )
    return batch
