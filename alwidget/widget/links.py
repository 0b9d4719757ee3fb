"""Ways in from outside the panel: focus any item, queue items next, label many, embed a map.

A mixin of :class:`alwidget.widget.app.Widget`; the embedding map (``MapView``) calls these.
"""

from __future__ import annotations

import ipywidgets as widgets

from ..errors import AlreadyLabeledError


class WidgetLinks:
    """Public entry points used by views beside the panel (e.g. the embedding map)."""

    def focus_item(self, item_id) -> None:
        """Show ``item_id`` large: at once when it is queued, else after fetching its explanation.

        An unqueued item is prioritized in the session and fetched in the background with its
        scores, then inserted after the current item and focused.

        Raises
        ------
        AlreadyLabeledError
            If the item is labeled already.
        """
        with self._lock:
            ids = [item.id for item in self.queue]
            if item_id in ids:
                self.focused = ids.index(item_id)
                return
            if item_id in set(self.session.labeled_ids):
                raise AlreadyLabeledError(f"item {item_id!r} is already labeled {self.session.labels[item_id]!r}")
            self._focus_when_queued = item_id
        self.queue_next([item_id])

    def queue_next(self, ids) -> None:
        """Ask for ``ids`` next ("label these next"): they go right after the current item."""
        ids = list(ids)
        self.session.prioritize(ids)
        with self._lock:
            self.exhausted = False
            size = self.batch_size + len(self.queue) + len(ids)
            self._jobs.start_refill(self.session, size, self._rendered, self._on_refill)
        self.status = f"{len(ids)} item(s) will be asked next"

    def label_many(self, ids, class_name: str) -> list:
        """Label several items with one class (one session call, all or nothing); undo takes them back one by one."""
        ids = list(ids)
        self.session.label(ids, [class_name] * len(ids))
        with self._lock:
            chosen = set(ids)
            queue = list(self.queue)
            for item_id in ids:
                index = next((i for i, item in enumerate(queue) if item.id == item_id), None)
                if index is None:
                    self._history.append(("bulk", item_id, None))  # undo only removes the label
                else:
                    self._history.append(("label", queue.pop(index), index))
            in_hand = self.focused_item
            self.queue = queue
            if in_hand is not None and in_hand.id in chosen:
                self.focused = 0
            elif in_hand is not None:
                self.focused = [item.id for item in queue].index(in_hand.id)
            self.status = f"labeled {len(ids)} item(s) as {class_name!r}"
        self._after_queue_change()
        return ids

    def attach_map(self, map_view) -> None:
        """Show ``map_view`` (an :class:`alwidget.widget.map_view.MapView`) beside the panel and link them.

        Clicking a point focuses the item here, "label these next" queues items after the
        current one, bulk labels go through :meth:`label_many`, and the map follows the
        panel's queue, labels and retrains.
        """
        map_view.on_focus = self._focus_from_map
        map_view.on_queue = self.queue_next
        map_view.on_bulk_label = self.label_many
        map_view.follow(self)
        style, *panel = self.children
        self.children = [style, widgets.HBox([widgets.VBox(panel), map_view],
                                             layout=widgets.Layout(align_items="flex-start"))]
        self.map_view = map_view

    def _focus_from_map(self, item_id) -> None:
        # A click on a labeled point only inspects it (the map shows it); nothing to label here.
        if item_id not in set(self.session.labeled_ids):
            self._guarded(self.focus_item, item_id)
