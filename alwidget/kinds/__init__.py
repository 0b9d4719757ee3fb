"""Item kinds as plug-ins: what an item is, how it becomes model input, how it is shown.

``al.Pool(items)`` asks the registered kinds in order which one reads ``items``
(:func:`detect`); ``al.Pool(items, kind="text")`` or ``kind=my_kind`` skips the question.
The widget and the map ask ``pool.item_kind`` for thumbnails, focused views, side-pane HTML
and hover texts. To add a kind, write an object with the members of :class:`ItemKind`
(see :mod:`alwidget.kinds.tabular` for a short example) and call :func:`register`.
"""

from __future__ import annotations

from .base import (
    FOCUS_PX,
    PREVIEW_PX,
    THUMBNAIL_PX,
    InputEncoder,
    ItemKind,
    ItemKindError,
    PoolItems,
    RenderedItem,
    id_hover,
    ids_hover,
    per_feature_scaling,
    png_pane_html,
    scrolling_pane_html,
    whole_input_scaling,
)
from .items import ArrayItems, DatasetItems, FileItems, ListItems
from .media import MEDIA_SUFFIXES
from .registry import (
    BUILT_IN_KINDS,
    UnsupportedItemsError,
    detect,
    get,
    register,
    registered,
    resolve,
    unregister,
)

__all__ = [
    "ArrayItems",
    "BUILT_IN_KINDS",
    "DatasetItems",
    "detect",
    "FileItems",
    "FOCUS_PX",
    "get",
    "id_hover",
    "ids_hover",
    "InputEncoder",
    "ItemKind",
    "ItemKindError",
    "ListItems",
    "MEDIA_SUFFIXES",
    "per_feature_scaling",
    "png_pane_html",
    "PoolItems",
    "PREVIEW_PX",
    "register",
    "registered",
    "RenderedItem",
    "resolve",
    "scrolling_pane_html",
    "THUMBNAIL_PX",
    "unregister",
    "UnsupportedItemsError",
    "whole_input_scaling",
]
