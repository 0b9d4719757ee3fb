"""What an item kind is: the protocol every kind follows, and the pieces kinds share.

A kind is a plain object (it need not inherit anything) with the members of
:class:`ItemKind`. The pool asks it to read the user's items and turn them into model inputs;
the widget and the map ask it how to show an item. Nothing here imports ipywidgets: kinds
return PNG bytes and HTML strings.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import AlwidgetError, InvalidArgumentError

__all__ = [
    "ItemKind",
    "ItemKindError",
    "PoolItems",
    "InputEncoder",
    "RenderedItem",
    "ERROR_KIND",
    "THUMBNAIL_PX",
    "FOCUS_PX",
    "PREVIEW_PX",
    "SNIPPET_CHARS",
    "per_feature_scaling",
    "whole_input_scaling",
    "as_numeric_array",
    "numeric_shape",
    "describe_items",
    "wrong_items",
    "shorten",
    "id_hover",
    "ids_hover",
    "looks_like_dataset",
    "png_data_url",
    "png_pane_html",
    "scrolling_pane_html",
]

THUMBNAIL_PX = 72
FOCUS_PX = 240
PREVIEW_PX = 160  # width of the picture in the map's side pane
SNIPPET_CHARS = 90
ERROR_KIND = "error"  # the kind name a rendering carries when its item could not be shown


class ItemKindError(AlwidgetError, ValueError):
    """Items no item kind reads, an unknown kind, or a kind object missing a member."""


class PoolItems(Protocol):
    """The items of a pool as a kind stored them (see :mod:`alwidget.kinds.items`).

    Attributes
    ----------
    model_ready : bool
        True when a batch already is model input (a torch Dataset's tensors, used as given).
    """

    model_ready: bool

    def __len__(self) -> int: ...

    def get(self, position: int):
        """The raw item at ``position``, as shown to the user."""

    def batch(self, positions: np.ndarray):
        """The raw items at ``positions`` (an array when stored as one, else a list)."""

    def path(self, position: int):
        """The file behind the item, or ``None``.

        A holder may also define ``digest(hasher)``, feeding its content to a hashlib
        object; without it the pool hashes the model inputs of every item.
        """


def per_feature_scaling(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every input feature (constant features get scale 1)."""
    std = raw.std(axis=0)
    return raw.mean(axis=0), np.where(std > 0, std, 1.0).astype(np.float32)


def whole_input_scaling(raw: np.ndarray) -> tuple[np.float32, np.float32]:
    """One mean and standard deviation over all values: pixels share one intensity scale."""
    return np.float32(raw.mean()), np.float32(raw.std() or 1.0)


@dataclass(frozen=True)
class InputEncoder:
    """How a kind turns a batch of raw items into model inputs, fitted on one pool.

    Attributes
    ----------
    encode : callable
        ``encode(batch) -> np.ndarray``: float32 inputs, first axis = items. ``batch`` is
        what :meth:`PoolItems.batch` returns (the held-out split is encoded with the
        encoder fitted on the pool, e.g. the pool's TF-IDF vocabulary).
    scaling : callable
        ``scaling(raw) -> (mean, scale)``: the standardisation fitted on a sample of the
        pool's encoded inputs; :func:`per_feature_scaling` or :func:`whole_input_scaling`.
    """

    encode: Callable[[object], np.ndarray]
    scaling: Callable[[np.ndarray], tuple] = per_feature_scaling


@dataclass(frozen=True)
class RenderedItem:
    """How one item is shown: PNG bytes for pictures, escaped HTML otherwise, or an error.

    Attributes
    ----------
    kind : str
        The name of the item's kind, or ``"error"`` when it could not be shown.
    thumbnail_png, focus_png : bytes
        The strip's thumbnail and the large focused view; empty for kinds shown as text.
    snippet : str
        Plain text (not HTML) for the strip when there is no thumbnail; the browser inserts
        it as text.
    focus_html : str
        Escaped HTML for the focused view when there is no ``focus_png``, and for errors.
    """

    kind: str
    thumbnail_png: bytes = b""
    focus_png: bytes = b""
    snippet: str = ""
    focus_html: str = ""

    @cached_property
    def thumbnail_data_url(self) -> str:
        """The thumbnail as a ``data:`` URL for an ``<img src>``, or ``""``."""
        return png_data_url(self.thumbnail_png) if self.thumbnail_png else ""


@runtime_checkable
class ItemKind(Protocol):
    """What the pool, the widget and the map ask of an item kind.

    Register a kind with :func:`alwidget.kinds.register` so ``al.Pool(items)`` detects it,
    or hand it to ``al.Pool(items, kind=...)``.

    Attributes
    ----------
    name : str
        Short lowercase name (``"image"``); ``pool.kind`` returns it and label stores
        fingerprint pools with it, so keep it stable.
    description : str
        What items it reads, for error messages ("lists of strings").
    """

    name: str
    description: str

    def detect(self, items) -> bool:
        """Whether ``items`` (exactly as passed to ``al.Pool``) are of this kind; never raises."""

    def read(self, items) -> PoolItems:
        """Check and store ``items``; raise :class:`ItemKindError` naming the problem."""

    def input_encoder(self, items: PoolItems) -> InputEncoder:
        """Fit the conversion of raw items to model inputs on a pool's items."""

    def default_model(self, input_shape: tuple[int, ...]) -> str:
        """The built-in model name for one input of ``input_shape`` (no batch axis)."""

    def render(self, item) -> RenderedItem:
        """The strip's thumbnail or snippet and the focused view of one raw item."""

    def pane_html(self, item) -> str:
        """Escaped HTML showing one raw item in the map's side pane."""

    def hover_texts(self, pool) -> list[str]:
        """Escaped hover HTML for every item of ``pool``, in pool order."""


# ---------------------------------------------------------------------------- helpers
def as_numeric_array(values, what: str) -> np.ndarray:
    """``values`` as a real numeric array; a clear error for non-numbers, complex numbers
    (whose imaginary part a model would silently drop) and NaN/inf entries.

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` (the argument), the first bad item and the fix.
    """
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.complexfloating):
        raise InvalidArgumentError(
            f"{what} has complex dtype {array.dtype}; models take real numbers, so pass the "
            f"real part, the magnitude or both as separate features (np.abs, .real, .imag)"
        )
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise InvalidArgumentError(
            f"{what} must be numeric, got dtype {array.dtype}; convert it with "
            "np.asarray(..., dtype=np.float32)"
        )
    if np.issubdtype(array.dtype, np.floating) and array.ndim >= 1 and array.size:
        bad = ~np.isfinite(array)
        if bad.any():
            first = int(np.argwhere(bad.reshape(array.shape[0], -1).any(axis=1))[0, 0])
            raise InvalidArgumentError(
                f"{what} contains {int(bad.sum())} NaN/inf values (first in item {first}); "
                "drop or fill those items first"
            )
    return array


def numeric_shape(items) -> tuple[int, ...] | None:
    """The shape of ``items`` read as one numeric array, or ``None`` if they are not one."""
    if isinstance(items, np.ndarray):
        return items.shape if np.issubdtype(items.dtype, np.number) else None
    if not isinstance(items, (list, tuple)) or not items or isinstance(items[0], str):
        return None
    try:
        array = np.asarray(items)
    except (ValueError, TypeError):  # ragged rows
        return None
    return array.shape if np.issubdtype(array.dtype, np.number) else None


def looks_like_dataset(items) -> bool:
    """Duck typing for a torch ``Dataset``: sized and indexable by position, not an array,
    a list, text, a mapping or a pandas frame (those are indexed by keys or labels, not by
    ``0..N-1``)."""
    return (
        hasattr(items, "__len__")
        and hasattr(items, "__getitem__")
        and not isinstance(items, (np.ndarray, list, tuple, str, bytes, Mapping))
        and not (hasattr(items, "to_numpy") and hasattr(items, "iloc"))
    )


def describe_items(items) -> str:
    """A few words on what ``items`` is, for error messages."""
    if isinstance(items, np.ndarray):
        return f"an array of shape {items.shape} and dtype {items.dtype}"
    if isinstance(items, (list, tuple)) and items:
        return f"a {type(items).__name__} of {len(items)} {type(items[0]).__name__} items"
    if hasattr(items, "__len__"):
        return f"a {type(items).__name__} of {len(items)} items"
    return f"an object of type {type(items).__name__}"


def wrong_items(kind: ItemKind, items) -> ItemKindError:
    """The error a kind's ``read`` raises for items it does not read."""
    return ItemKindError(
        f"the {kind.name} item kind reads {kind.description}; got {describe_items(items)}"
    )


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def id_hover(item_id) -> str:
    """The map's hover header for an item shown by its id alone."""
    return f"<b>item {html.escape(str(item_id))}</b>"


def png_data_url(png: bytes) -> str:
    """PNG bytes as a ``data:`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_pane_html(png: bytes, alt: str = "item image") -> str:
    """A picture for the map's side pane (pixelated, so small images stay crisp)."""
    return (
        f'<img src="{png_data_url(png)}" width="{PREVIEW_PX}" '
        f'style="image-rendering: pixelated" alt="{html.escape(alt)}">'
    )


def scrolling_pane_html(body_html: str) -> str:
    """Already escaped HTML in a box that scrolls rather than growing the side pane."""
    return f'<div style="max-height:220px;overflow:auto">{body_html}</div>'


def ids_hover(ids: Sequence) -> list[str]:
    """:func:`id_hover` for every id."""
    return [id_hover(item_id) for item_id in ids]
