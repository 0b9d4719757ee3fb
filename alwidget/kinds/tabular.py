"""Tabular rows: an ``N×D`` numeric array, or a torch Dataset of 1-D inputs.

Shown as a two-column ``column | value`` table; standardised per column; the MLP is their
default model.
"""

from __future__ import annotations

import html

import numpy as np

from ..errors import InvalidArgumentError
from .base import (
    InputEncoder,
    PoolItems,
    RenderedItem,
    ids_hover,
    looks_like_dataset,
    numeric_shape,
    scrolling_pane_html,
    wrong_items,
)
from .checks import read_dataset_item
from .items import DatasetItems, dataset_item_ndim, numeric_items

__all__ = ["TabularKind", "tabular_html", "MAX_TABLE_COLUMNS"]

MAX_TABLE_COLUMNS = 40
_SNIPPET_VALUES = 6


def _format_number(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def tabular_html(row: np.ndarray, column_names=None) -> str:
    """An escaped two-column HTML table ``column | value`` for one tabular row."""
    values = np.asarray(row).ravel()
    names = (
        list(column_names) if column_names is not None else [f"x{i}" for i in range(len(values))]
    )
    shown = list(zip(names, values))[:MAX_TABLE_COLUMNS]
    rows = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_format_number(value))}</td></tr>"
        for name, value in shown
    )
    more = len(values) - len(shown)
    tail = f"<tr><td colspan=2>… {more} more columns</td></tr>" if more > 0 else ""
    return f'<table class="alwidget-row">{rows}{tail}</table>'


def _as_float32(rows) -> np.ndarray:
    return np.asarray(rows).astype(np.float32)


class TabularKind:
    """Rows of numbers, one per item."""

    name = "tabular"
    description = "N×D numeric arrays and torch Datasets of 1-D inputs"

    def detect(self, items) -> bool:
        shape = numeric_shape(items)
        return (shape is not None and len(shape) == 2) or dataset_item_ndim(items) == 1

    def read(self, items) -> PoolItems:
        if looks_like_dataset(items) and len(items) > 0:
            read_dataset_item(items, 0)  # a failing first item is named, not raised raw
        if dataset_item_ndim(items) == 1:
            return DatasetItems(items)
        shape = numeric_shape(items)
        if shape is None or len(shape) != 2:
            raise wrong_items(self, items)
        if shape[1] == 0:
            raise InvalidArgumentError(
                f"items has shape {shape}: the rows have no columns; give at least one value "
                "per item"
            )
        return numeric_items(items)

    def input_encoder(self, items: PoolItems) -> InputEncoder:
        return InputEncoder(_as_float32)

    def default_model(self, input_shape: tuple[int, ...]) -> str:
        return "mlp"

    def render(self, item) -> RenderedItem:
        values = np.asarray(item).ravel()
        shown = ", ".join(_format_number(value) for value in values[:_SNIPPET_VALUES])
        more = " …" if len(values) > _SNIPPET_VALUES else ""
        return RenderedItem(self.name, snippet=shown + more, focus_html=tabular_html(values))

    def pane_html(self, item) -> str:
        return scrolling_pane_html(self.render(item).focus_html)

    def hover_texts(self, pool) -> list[str]:
        return ids_hover(pool.ids)
