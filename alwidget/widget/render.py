"""Turning pool items into things a browser can show, safely, by asking the item's kind.

Each kind (see :mod:`alwidget.kinds`) makes the PNG bytes and escaped HTML; this module adds
what the widget needs around them: an error rendering for items that cannot be shown, so a
corrupt file never stops labeling.
"""

from __future__ import annotations

import html

from .. import kinds
from ..kinds.base import ERROR_KIND, FOCUS_PX, SNIPPET_CHARS, THUMBNAIL_PX, RenderedItem, shorten
from ..kinds.image import image_to_uint8, png_bytes
from ..kinds.tabular import MAX_TABLE_COLUMNS, tabular_html

__all__ = [
    "RenderedItem",
    "THUMBNAIL_PX",
    "FOCUS_PX",
    "SNIPPET_CHARS",
    "MAX_TABLE_COLUMNS",
    "image_to_uint8",
    "png_bytes",
    "tabular_html",
    "render_item",
    "render_error",
    "render_pool_item",
    "pane_item_html",
]

_SHOW_ERRORS = (ValueError, OSError)  # what reading or drawing a broken item raises


def render_item(kind: kinds.ItemKind | str, item) -> RenderedItem:
    """Render one raw pool item (see :meth:`alwidget.Pool.item`) for the strip and focus view.

    ``kind`` is a registered kind's name or a kind object.
    """
    return kinds.resolve(kind).render(item)


def render_error(message: str) -> RenderedItem:
    """What to show for an item that cannot be displayed (e.g. a corrupt image file)."""
    return RenderedItem(
        ERROR_KIND,
        snippet="⚠ " + shorten(message, SNIPPET_CHARS),
        focus_html=f'<div class="alwidget-item-error">⚠ {html.escape(message)}</div>',
    )


def _cannot_show(item_id, error: Exception) -> RenderedItem:
    return render_error(f"item {item_id!r} cannot be shown: {error}")


def render_pool_item(pool, item_id) -> RenderedItem:
    """Render ``pool.item(item_id)``; unreadable items give an error rendering, not an exception."""
    try:
        return pool.item_kind.render(pool.item(item_id))
    except _SHOW_ERRORS as error:
        return _cannot_show(item_id, error)


def pane_item_html(pool, item_id) -> str:
    """The kind's HTML for one item in the map's side pane, or the error if it cannot be shown."""
    try:
        return pool.item_kind.pane_html(pool.item(item_id))
    except _SHOW_ERRORS as error:
        return _cannot_show(item_id, error).focus_html
