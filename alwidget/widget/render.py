"""Turning pool items into things a browser can show, safely.

Images become PNG bytes (nearest-neighbour upscaling keeps 8×8 digits crisp); text and
tabular rows become HTML in which every piece of user data is escaped, so an item or class
name like ``<img src=x onerror=alert(1)>`` shows as text.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from functools import cached_property

import numpy as np

THUMBNAIL_PX = 72
FOCUS_PX = 240
SNIPPET_CHARS = 90
MAX_TABLE_COLUMNS = 40


@dataclass(frozen=True)
class RenderedItem:
    """How one item is shown: PNG bytes for images, escaped HTML otherwise, or an error.

    Attributes
    ----------
    kind : str
        ``"image"``, ``"text"``, ``"tabular"`` or ``"error"``.
    thumbnail_png, focus_png : bytes
        Images only.
    snippet : str
        Plain text (not HTML) for the strip; the browser inserts it as text.
    focus_html : str
        Escaped HTML for the large view of text/tabular items and for errors.
    """

    kind: str
    thumbnail_png: bytes = b""
    focus_png: bytes = b""
    snippet: str = ""
    focus_html: str = ""

    @cached_property
    def thumbnail_data_url(self) -> str:
        if not self.thumbnail_png:
            return ""
        return "data:image/png;base64," + base64.b64encode(self.thumbnail_png).decode("ascii")


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an image array to ``uint8`` ``H×W`` or ``H×W×3/4`` for display.

    Floats in ``[0, 1]`` are read as intensities; any other range is stretched min–max per
    image (digits are 0–16, standardised features are around 0).

    Raises
    ------
    ValueError
        For shapes that are not an image, or NaN/inf pixels.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # C×H×W tensors from torch datasets
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot show an array of shape {array.shape} as an image (want H×W or H×W×3/4)")
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or inf pixels")
    low, high = float(values.min()), float(values.max())
    if 0.0 <= low and high <= 1.0 and np.issubdtype(array.dtype, np.floating):
        low, high = 0.0, 1.0
    elif np.issubdtype(array.dtype, np.integer) and low >= 0 and high <= 255 and high > 16:
        low, high = 0.0, 255.0
    span = high - low
    scaled = np.zeros_like(values) if span == 0 else (values - low) / span
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, max_px: int) -> bytes:
    """PNG of ``image`` resized so its longer side is ``max_px`` (nearest neighbour when enlarging)."""
    from PIL import Image

    pixels = image_to_uint8(image)
    picture = Image.fromarray(pixels)
    width, height = picture.size
    factor = max_px / max(width, height)
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resample = Image.Resampling.NEAREST if factor >= 1 else Image.Resampling.LANCZOS
    picture = picture.resize(new_size, resample)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _format_number(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def tabular_html(row: np.ndarray, column_names=None) -> str:
    """An escaped two-column HTML table ``column | value`` for one tabular row."""
    values = np.asarray(row).ravel()
    names = list(column_names) if column_names is not None else [f"x{i}" for i in range(len(values))]
    shown = list(zip(names, values))[:MAX_TABLE_COLUMNS]
    rows = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_format_number(value))}</td></tr>"
        for name, value in shown
    )
    more = len(values) - len(shown)
    tail = f"<tr><td colspan=2>… {more} more columns</td></tr>" if more > 0 else ""
    return f'<table class="alwidget-row">{rows}{tail}</table>'


def render_item(kind: str, item) -> RenderedItem:
    """Render one raw pool item (see :meth:`alwidget.Pool.item`) for the strip and focus view."""
    if kind == "image":
        return RenderedItem("image", png_bytes(item, THUMBNAIL_PX), png_bytes(item, FOCUS_PX))
    if kind == "text":
        text = str(item)
        return RenderedItem(
            "text",
            snippet=_shorten(text, SNIPPET_CHARS),
            focus_html=f'<div class="alwidget-text">{html.escape(text)}</div>',
        )
    if kind == "tabular":
        values = np.asarray(item).ravel()
        snippet = ", ".join(_format_number(v) for v in values[:6]) + (" …" if len(values) > 6 else "")
        return RenderedItem("tabular", snippet=snippet, focus_html=tabular_html(values))
    raise ValueError(f"unknown item kind {kind!r}")


def render_error(message: str) -> RenderedItem:
    """What to show for an item that cannot be displayed (e.g. a corrupt image file)."""
    return RenderedItem(
        "error",
        snippet="⚠ " + _shorten(message, SNIPPET_CHARS),
        focus_html=f'<div class="alwidget-item-error">⚠ {html.escape(message)}</div>',
    )


def render_pool_item(pool, item_id) -> RenderedItem:
    """Render ``pool.item(item_id)``; unreadable items give an error rendering, not an exception."""
    try:
        return render_item(pool.kind, pool.item(item_id))
    except (ValueError, OSError) as error:
        return render_error(f"item {item_id!r} cannot be shown: {error}")
