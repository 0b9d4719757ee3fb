"""Pure list logic for the labeling queue (no widgets): merging refills and refreshed batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def merge_refill(queue: Sequence, new_items: Sequence, excluded: Callable[[object], bool]) -> list:
    """Append the new batch's items that are not queued already and not excluded.

    Parameters
    ----------
    queue : sequence of ItemDetail
        What the user sees now, in order.
    new_items : sequence of ItemDetail
        A freshly queried batch.
    excluded : callable
        ``excluded(item_id)`` is true for items that must not come back (labeled, skipped).
    """
    queued = {item.id for item in queue}
    return list(queue) + [
        item for item in new_items if item.id not in queued and not excluded(item.id)
    ]


def refreshed_queue(
    in_hand, new_items: Sequence, excluded: Callable[[object], bool]
) -> tuple[list, int]:
    """The queue after a retrain: the item in hand stays in focus, the new ranking follows.

    Returns
    -------
    (queue, focused_index)
        ``in_hand`` first when it is still unlabeled (with its new explanation when the new
        batch contains it), then the new batch in order.
    """
    fresh = [item for item in new_items if not excluded(item.id)]
    if in_hand is None or excluded(in_hand.id):
        return fresh, 0
    replacement = next((item for item in fresh if item.id == in_hand.id), in_hand)
    return [replacement] + [item for item in fresh if item.id != in_hand.id], 0


def clamp_focus(index: int, length: int) -> int:
    """A valid focus index for a queue of ``length`` items (0 when empty)."""
    return 0 if length == 0 else max(0, min(index, length - 1))


def insert_prioritized(queue: Sequence, focused_id, prioritized: Sequence) -> list:
    """Put ``prioritized`` items right after the focused one ("label these next").

    Items already queued move there; the focused item stays where it is (first when it is
    itself prioritized).
    """
    moving = {item.id for item in prioritized}
    rest = [item for item in queue if item.id not in moving]
    ahead = [item for item in prioritized if item.id == focused_id]
    rest_ids = [item.id for item in rest]
    cut = rest_ids.index(focused_id) + 1 if focused_id in rest_ids else 0
    behind = [item for item in prioritized if item.id != focused_id]
    return ahead + rest[:cut] + behind + rest[cut:]


@dataclass
class QueueBook:
    """What the panel remembers about items besides the queue itself.

    Guarded by the panel's lock; background jobs read ``rendered`` without it (they only
    ``get`` from it, which is safe while another thread updates it).
    """

    rendered: dict = field(default_factory=dict)  # item id -> RenderedItem
    ranked_by: dict = field(default_factory=dict)  # item id -> model version that ranked it
    picked_by: dict = field(default_factory=dict)  # item id -> strategy of its batch
    # Undo stack: ("label" | "skip", ItemDetail, queue index) or ("bulk", item id, None).
    history: list = field(default_factory=list)
    skipped: set = field(default_factory=set)
    labeled: set = field(default_factory=set)
    focus_when_queued: object = None  # an item asked for (e.g. a map click) not queued yet

    def is_excluded(self, item_id) -> bool:
        """Items that must not come back into the queue: labeled or skipped."""
        return item_id in self.skipped or item_id in self.labeled


def take_out(queue: Sequence, ids: Sequence) -> tuple[list, list[tuple]]:
    """The queue without ``ids``, and ``(item_id, ItemDetail or None, index)`` for each id.

    The detail and index are ``None`` for ids that were not queued.
    """
    remaining = list(queue)
    removed = []
    for item_id in ids:
        index = next((i for i, item in enumerate(remaining) if item.id == item_id), None)
        removed.append((item_id, None if index is None else remaining.pop(index), index))
    return remaining, removed


def focus_after_removal(queue: Sequence, in_hand, removed_ids, removed_index: int | None) -> int:
    """Where the focus goes once items are removed: the item in hand stays in focus; when it
    was removed itself, the item that took its place (or, with several removed, the first)."""
    ids = [item.id for item in queue]
    if in_hand is not None and in_hand.id not in removed_ids and in_hand.id in ids:
        return ids.index(in_hand.id)
    return clamp_focus(0 if removed_index is None else removed_index, len(queue))
