"""The "Unusual items" filter: pool items unlike the rest, to be marked "not a class".

A pool often holds items that belong to no class (a blank scan, a photo of the wrong thing).
Uncertainty sampling loves them, so without a way out the user is asked about them again and
again. The toggle "Unusual items" lists the unlabeled items
:meth:`alwidget.Session.out_of_distribution` ranks highest, each with why (how sparse its
neighbourhood is, how far it is from every labeled item, how unsure the model is); the
focused one can be marked "not a class" (button or ``x``) through
:meth:`alwidget.Session.mark_not_a_class`: stored, never queried again, never trained on. It
leaves the labeling queue at once; "Undo mark" takes the last mark back.
"""

from __future__ import annotations

import html
from concurrent.futures import Future

import ipywidgets as widgets

from .parts import PanelParts
from .queue import focus_after_removal, take_out
from .render import render_pool_item
from .strip import BatchStrip

__all__ = ["MARK_KEY", "UnusualItems", "unusual_why_html"]

#: Marks the focused unusual item "not a class" while the filter is open (unless a class
#: uses the key).
MARK_KEY = "x"


def unusual_why_html(entry: dict) -> str:
    """Why an item counts as unusual: the parts of its out-of-distribution score."""
    labeled = entry["labeled_distance"]
    entropy = entry["mean_entropy"]
    parts = [
        f"its neighbours are <b>{entry['sparsity']:.1f}×</b> as far as a typical item's",
        "nothing is labeled yet"
        if labeled != labeled  # nan
        else f"the nearest labeled item is <b>{labeled:.1f}</b> typical neighbour distances away",
    ]
    if entropy == entropy:
        parts.append(f"the model's mean entropy is <b>{entropy:.2f}</b> of its maximum")
    return (
        f'<div class="alwidget-unusual-why">Item <b>{html.escape(str(entry["id"]))}</b> '
        f"(score {entry['score']:.2f}): {'; '.join(parts)}. If it belongs to no class, mark it "
        f"<b>not a class</b> (key {MARK_KEY}): it is stored, never asked again and never "
        "trained on.</div>"
    )


def card_of(entry: dict, rendered, index: int) -> dict:
    """A strip card for one unusual item: its score and the largest part of it."""
    return {
        "key": str(entry["id"]),
        "index": index,
        "rank": index + 1,
        "pool_rank": "",
        "score": f"{entry['score']:.2f}",
        "predicted": f"sparse {entry['sparsity']:.1f}×",
        "kind": rendered.kind,
        "thumbnail": rendered.thumbnail_data_url,
        "snippet": rendered.snippet,
    }


class UnusualItems:
    """The "Unusual items" toggle and its pane (cards, why, "Not a class", "Undo mark").

    Parameters
    ----------
    panel : alwidget.Widget
        Whose queue loses the items marked "not a class".
    book : QueueBook
        The panel's rendered items (shared, so a thumbnail is drawn once).
    runner : JobRunner
        Ranks the pool in its ``"scoring"`` lane.
    lock : threading.RLock
        The panel's lock, held while the queue changes.
    guard : ErrorGuard
        Runs the buttons' callbacks and shows what the ranking raised.
    top_up : callable
        Called after an item left the queue (fetches more when few are left).
    size : int
        Unusual items listed.
    """

    def __init__(self, parts: PanelParts, top_up, *, size: int = 12):
        self._panel, self._session = parts.panel, parts.session
        self._book, self._runner = parts.book, parts.runner
        self._lock, self._guard = parts.lock, parts.guard
        self._top_up = top_up
        self.size = int(size)
        self.entries: list[dict] = []  # session.out_of_distribution rows shown, in order
        self.focused = 0
        self._marked: list[tuple[int, dict]] = []  # undo stack: (place, entry)
        self.toggle = widgets.ToggleButton(
            value=False,
            description="Unusual items",
            tooltip="pool items unlike the rest: mark those that belong to no class",
            icon="filter",
        )
        self.toggle.observe(
            lambda change: self._guard.run(self.show, change["new"]), names=["value"]
        )
        self.strip = BatchStrip(empty_message="Finding unusual items…")
        self.strip.add_class("alwidget-unusual-strip")
        self.strip.on_focus(lambda index, _key: self._guard.run(self.focus, index))
        self.why = widgets.HTML("")
        self.mark_button = widgets.Button(
            description=f"Not a class ({MARK_KEY})",
            tooltip="this item belongs to no class: never ask about it, never train on it",
            button_style="warning",
        )
        self.mark_button.on_click(lambda _button: self._guard.run(self.mark))
        self.undo_button = widgets.Button(description="Undo mark", disabled=True)
        self.undo_button.on_click(lambda _button: self._guard.run(self.undo))
        self.pane = widgets.VBox(
            [self.strip, self.why, widgets.HBox([self.mark_button, self.undo_button])],
            layout=widgets.Layout(display="none"),
        )
        self.pane.add_class("alwidget-unusual")

    @property
    def is_open(self) -> bool:
        return bool(self.toggle.value)

    def show(self, show: bool = True) -> Future | None:
        """Open (and rank the pool again, in the background) or close the filter."""
        if self.toggle.value != show:
            self.toggle.value = show  # its observer comes back here
            return None
        self.pane.layout.display = None if show else "none"
        keys = [key for key in self._panel.key_catcher.watched_keys if key != MARK_KEY]
        if show and MARK_KEY not in self._panel.key_map:
            keys.append(MARK_KEY)
        self._panel.key_catcher.watched_keys = keys
        return self.refresh() if show else None

    def refresh(self) -> Future:
        """Rank the unlabeled items again (the model or the labels may have changed)."""
        session, book = self._session, self._book
        self.strip.empty_message = "Finding unusual items…"

        def rank():
            entries = session.out_of_distribution(self.size)
            rendered = {
                entry["id"]: book.rendered.get(entry["id"])
                or render_pool_item(session.pool, entry["id"])
                for entry in entries
            }
            return entries, rendered

        return self._runner.submit(
            "unusual", rank, lane="scoring", on_done=self._on_ranked, coalesce=True
        )

    def _on_ranked(self, future: Future) -> None:
        if future.cancelled() or self._runner.closing:
            return
        error = future.exception()
        if error is not None:
            self.strip.empty_message = "Could not rank unusual items."
            self._guard.report(error, "finding unusual items failed: ")
            return
        entries, rendered = future.result()
        with self._lock:
            self._book.rendered.update(rendered)
            self.entries = entries
            self.focused = 0
        self.strip.empty_message = "No unlabeled items left."
        self._draw()

    def focus(self, index: int) -> None:
        """Show unusual item ``index`` (clicking its card does this)."""
        with self._lock:
            self.focused = max(0, min(int(index), len(self.entries) - 1))
        self._draw()

    @property
    def focused_entry(self) -> dict | None:
        with self._lock:
            return self.entries[self.focused] if self.entries else None

    def mark(self):
        """Mark the focused unusual item "not a class"; it leaves this list and the queue.

        Returns its id.
        """
        entry = self.focused_entry
        if entry is None:
            raise ValueError("no unusual item to mark: open 'Unusual items' first")
        item_id = entry["id"]
        self._session.mark_not_a_class([item_id], reason="unusual item marked in the widget")
        panel = self._panel
        with self._lock:
            place = self.entries.index(entry)
            self.entries.remove(entry)
            self._marked.append((place, entry))
            self.focused = max(0, min(place, len(self.entries) - 1))
            if any(item.id == item_id for item in panel.queue):
                in_hand = panel.focused_item
                queue, removed = take_out(panel.queue, [item_id])
                panel.queue = queue
                panel.focused = focus_after_removal(queue, in_hand, {item_id}, removed[0][2])
            panel.status = f"item {item_id} marked not a class"
        self._draw()
        self._top_up()  # the queue may need a refill
        return item_id

    def undo(self):
        """Take the last "not a class" mark back; the item returns to this list. Returns its id."""
        with self._lock:
            if not self._marked:
                raise ValueError("no 'not a class' mark to undo")
            place, entry = self._marked[-1]
        self._session.unmark_not_a_class([entry["id"]])
        with self._lock:
            self._marked.pop()
            self.entries.insert(min(place, len(self.entries)), entry)
            self.focused = self.entries.index(entry)
            self._panel.status = f"item {entry['id']} is no longer marked not a class"
        self._draw()
        return entry["id"]

    def _draw(self) -> None:
        with self._lock:
            entries, focused = list(self.entries), self.focused
            cards = [
                card_of(entry, self._book.rendered[entry["id"]], index)
                for index, entry in enumerate(entries)
            ]
            marked = bool(self._marked)
        self.strip.cards = cards
        self.strip.focused = focused
        self.why.value = unusual_why_html(entries[focused]) if entries else ""
        self.mark_button.disabled = not entries
        self.undo_button.disabled = not marked
