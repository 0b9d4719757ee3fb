"""The registered item kinds, asked in order when a pool detects what its items are.

Kinds registered with :func:`register` are asked first, in the order they were registered,
then the built-in ones: image, text, tabular.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from ..errors import AlwidgetError
from .base import ERROR_KIND, ItemKind, ItemKindError, describe_items, looks_like_dataset
from .checks import container_hint, ragged_rows_hint, read_dataset_item
from .image import ImageKind
from .media import unread_media_error
from .tabular import TabularKind
from .text import TextKind

__all__ = [
    "UnsupportedItemsError",
    "BUILT_IN_KINDS",
    "register",
    "unregister",
    "registered",
    "get",
    "resolve",
    "detect",
    "check_kind",
]

BUILT_IN_KINDS: tuple[ItemKind, ...] = (ImageKind(), TextKind(), TabularKind())
_REQUIRED_METHODS = (
    "detect",
    "read",
    "input_encoder",
    "default_model",
    "render",
    "pane_html",
    "hover_texts",
)
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # it becomes a CSS class and a store key

_lock = threading.Lock()  # guards _plugins; readers take a snapshot tuple
_plugins: list[ItemKind] = []


class UnsupportedItemsError(ItemKindError, TypeError):
    """Items that are not a collection any registered kind reads."""


def check_kind(kind) -> ItemKind:
    """``kind`` if it has every member of :class:`~alwidget.kinds.base.ItemKind`, else a
    clear :class:`ItemKindError` naming what is missing."""
    name = getattr(kind, "name", None)
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or name == ERROR_KIND:
        raise ItemKindError(
            f"item kind {kind!r} needs a `name`: 1-32 lowercase letters, digits, '_' or '-' "
            f"starting with a letter, not {ERROR_KIND!r}; got {name!r}"
        )
    missing = [method for method in _REQUIRED_METHODS if not callable(getattr(kind, method, None))]
    if not isinstance(getattr(kind, "description", None), str):
        missing.append("description (a str)")
    if missing:
        raise ItemKindError(
            f"item kind {name!r} lacks {', '.join(missing)}; see alwidget.kinds.ItemKind for "
            "what each member does"
        )
    return kind


def registered() -> tuple[ItemKind, ...]:
    """Every registered kind, in the order detection asks them."""
    with _lock:
        return (*_plugins, *BUILT_IN_KINDS)


def register(kind: ItemKind) -> ItemKind:
    """Make ``al.Pool(items)`` recognise a new kind of item; returns ``kind``.

    Registered kinds are asked before the built-in ones, so a kind may claim items a
    built-in kind would also read (e.g. ``N×64`` arrays of signals).

    Parameters
    ----------
    kind : ItemKind
        An object with the members of :class:`alwidget.kinds.ItemKind`.

    Raises
    ------
    ItemKindError
        If a member is missing or a kind of that name is already registered.
    """
    check_kind(kind)
    with _lock:
        taken = {known.name for known in (*_plugins, *BUILT_IN_KINDS)}
        if kind.name in taken:
            raise ItemKindError(
                f"an item kind named {kind.name!r} is already registered; pick another name "
                f"or call alwidget.kinds.unregister({kind.name!r}) first"
            )
        _plugins.append(kind)
    return kind


def unregister(kind: ItemKind | str) -> ItemKind:
    """Forget a kind registered with :func:`register` (by object or name); returns it."""
    name = kind if isinstance(kind, str) else getattr(kind, "name", None)
    with _lock:
        for position, known in enumerate(_plugins):
            if known.name == name:
                return _plugins.pop(position)
    if any(known.name == name for known in BUILT_IN_KINDS):
        raise ItemKindError(f"the built-in item kind {name!r} cannot be unregistered")
    raise ItemKindError(f"no item kind named {name!r} is registered")


def get(name: str) -> ItemKind:
    """The registered kind called ``name``."""
    kinds = registered()
    for kind in kinds:
        if kind.name == name:
            return kind
    raise ItemKindError(
        f"unknown item kind {name!r}; registered kinds are "
        f"{', '.join(kind.name for kind in kinds)} (add one with alwidget.kinds.register)"
    )


def resolve(kind: ItemKind | str) -> ItemKind:
    """A kind given by name (registered) or as an object (checked, registered or not)."""
    return get(kind) if isinstance(kind, str) else check_kind(kind)


def _what_kinds_read(kinds) -> str:
    return "; ".join(f"{kind.name} reads {kind.description}" for kind in kinds)


def detect(items, argument: str = "items") -> ItemKind:
    """The first registered kind that recognises ``items``.

    Raises
    ------
    ItemKindError
        If none does; strings naming media files and lists of rows of different lengths
        get errors of their own.
    UnsupportedItemsError
        (also a ``TypeError``) for objects that are not a collection of items at all, or
        one alwidget cannot index by position (a dict, a set, an iterator, a pandas frame).
    ItemReadError
        When ``items`` is a torch Dataset whose first item raises.
    """
    kinds = registered()
    if looks_like_dataset(items) and len(items) > 0:
        read_dataset_item(items, 0, argument)  # fail here, naming the item, not in a kind
    for kind in kinds:
        try:
            found = kind.detect(items)
        except AlwidgetError:
            raise
        except Exception as error:
            raise ItemKindError(
                f"the {kind.name} item kind failed while inspecting {argument} "
                f"({describe_items(items)}): {type(error).__name__}: {error}; pass kind= to "
                "al.Pool to skip detection"
            ) from error
        if found:
            return kind
    readers = _what_kinds_read(kinds)
    media_error = unread_media_error(items, argument, readers)
    if media_error is not None:
        raise media_error
    hint = container_hint(items, argument)
    if hint is not None:
        raise UnsupportedItemsError(f"unsupported {argument}: {hint}")
    if not isinstance(items, (np.ndarray, list, tuple)) and not looks_like_dataset(items):
        raise UnsupportedItemsError(
            f"unsupported {argument} of type {type(items).__name__}: give a numpy array, a "
            "torch Dataset, a list of image file paths or a list of strings, or register an "
            "item kind that reads them (alwidget.kinds.register)"
        )
    ragged = ragged_rows_hint(items, argument)
    if ragged is not None:
        raise ItemKindError(ragged)
    raise ItemKindError(
        f"no registered item kind reads {argument}: {describe_items(items)}. {readers}. "
        "Convert the items, pass kind= to al.Pool, or register a kind (alwidget.kinds.register)"
    )
