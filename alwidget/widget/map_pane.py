"""HTML for the map's side pane: the hovered or clicked item, and the selection summary.

Every piece of user data (ids, class names, text items) is escaped; the item itself is
drawn by its kind (:meth:`alwidget.kinds.ItemKind.pane_html`).
"""

from __future__ import annotations

import html

from .render import pane_item_html

__all__ = ["SELECTION_HINT", "item_html", "selection_html"]

SELECTION_HINT = "<i>lasso or box-select points to act on them</i>"


def item_html(pool, item_id, label, coverage: dict | None) -> str:
    """One item as its kind shows it, its label and how far it is from a label."""
    body = pane_item_html(pool, item_id)
    shown_label = html.escape(str(label)) if label is not None else "<i>unlabeled</i>"
    lines = [f"<b>item {html.escape(str(item_id))}</b>", f"label: {shown_label}"]
    if coverage is not None and coverage["n_labeled"]:
        distance = coverage["distances_N"][pool.position(item_id)]
        covered = "covered" if distance <= coverage["radius"] else "not covered"
        lines.append(
            f"distance to nearest label {distance:.3g} ({covered} at r = {coverage['radius']:.3g})"
        )
    return "<br>".join(lines) + "<br>" + body


def selection_html(n_selected: int, n_labeled: int) -> str:
    """Summary of a lasso/box selection."""
    if n_selected == 0:
        return SELECTION_HINT
    text = f"<b>{n_selected}</b> selected"
    if n_labeled:
        text += f" ({n_labeled} already labeled, left out)"
    return text
