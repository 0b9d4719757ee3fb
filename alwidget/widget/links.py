"""``MapLink``: joins an embedding map (``MapView``) to the labeling panel.

The map talks to the panel only through the panel's public methods, and follows its traits.
"""

from __future__ import annotations


class MapLink:
    """Wires a :class:`alwidget.widget.map_view.MapView` to a labeling panel.

    Parameters
    ----------
    panel : alwidget.Widget
        Receives the map's clicks, "label these next" and bulk labels.
    guard : ErrorGuard
        The panel's guard: errors of a click on the map show in the panel.
    """

    def __init__(self, panel, guard):
        self._panel = panel
        self._guard = guard

    def attach(self, map_view) -> None:
        """Route the map's actions to the panel, make it follow the panel, put it beside it."""
        panel = self._panel
        map_view.on_focus = self._focus_from_map
        map_view.on_queue = panel.queue_next
        map_view.on_bulk_label = panel.label_many
        map_view.follow(panel)
        # Side by side when the notebook is wide enough for the panel and a readable map
        # (the map's min width), else the map wraps onto its own line below the panel and
        # takes the full width (its plot follows, through its WidthProbe).
        panel.main_row.layout.flex_flow = "row wrap"
        panel.main_row.children = [*panel.main_row.children, map_view]

    def _focus_from_map(self, item_id) -> None:
        # A click on a labeled point only inspects it (the map shows it); nothing to label here.
        if item_id not in set(self._panel.session.labeled_ids):
            self._guard.run(self._panel.focus_item, item_id)
