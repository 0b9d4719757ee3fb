"""``BatchFeed``: the labeling panel's background work and how its results reach the traits.

Fetching the next batch and training + rescoring run on a :class:`JobRunner` (a lane each,
so a refill never waits for a training run); no lock is held while the session queries or
trains. The results are applied to the panel's traits under the panel's lock, and the views
redraw from those traits; training progress, too, travels as the ``training_progress`` trait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from ..errors import PoolExhaustedError
from . import suspects
from .queue import QueueBook, insert_prioritized, merge_refill, refreshed_queue
from .render import RenderedItem, render_pool_item

PROGRESS_INTERVAL_S = 0.15
# Skipped items may come back after a retrain, so a query asks for this many more at most.
MAX_SKIPPED_IN_QUERY = 200


@dataclass
class FetchedBatch:
    """A queried batch plus its items pre-rendered, so applying it on the UI side is cheap."""

    batch: object | None  # alwidget.Batch, or None when the pool is exhausted
    rendered: dict


@dataclass
class TrainingResult:
    report: object
    fetched: FetchedBatch
    seconds: float


def fetch_batch(session, batch_size: int, rendered_cache: dict) -> FetchedBatch:
    """``session.query`` plus rendering of the items not rendered yet (only reads the cache)."""
    try:
        batch = session.query(batch_size)
    except PoolExhaustedError:
        return FetchedBatch(None, {})
    rendered: dict[object, RenderedItem] = {}
    for item_id in batch.ids:
        cached = rendered_cache.get(item_id)
        rendered[item_id] = (
            cached if cached is not None else render_pool_item(session.pool, item_id)
        )
    return FetchedBatch(batch, rendered)


class ThrottledProgress:
    """Forwards training progress at most every ``interval`` seconds (and always the last step).

    The training loop reports every few steps; sending each one over the comm would flood
    the browser for nothing. ``sink`` gets the report with its overall ``fraction`` added.
    """

    def __init__(self, sink: Callable[[dict], None], interval: float = PROGRESS_INTERVAL_S):
        self._sink = sink
        self._interval = interval
        self._last = 0.0

    def __call__(self, info: dict) -> None:
        members = max(1, int(info.get("members", 1)))
        member = int(info.get("member", 0))
        total = max(1, int(info.get("total_steps", 1)))
        step = int(info.get("step", 0))
        fraction = min(1.0, (member + step / total) / members)
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < self._interval:
            return
        self._last = now
        self._sink(
            {
                "step": step,
                "total_steps": total,
                "member": member,
                "members": members,
                "loss": float(info.get("loss", float("nan"))),
                "fraction": fraction,
            }
        )


class BatchFeed:
    """Keeps the panel's queue fed and retrains its model in the background.

    Parameters
    ----------
    panel : alwidget.Widget
        Whose traits (``queue``, ``focused``, ``exhausted``, ``training``, ...) receive results.
    book : QueueBook
        The panel's item bookkeeping (rendered items, skipped, labeled, ...).
    runner : JobRunner
        With lanes ``"training"`` and ``"scoring"``.
    lock : threading.RLock
        The panel's lock, held while results are applied.
    guard : ErrorGuard
        Shows the errors of background jobs.
    """

    def __init__(self, panel, book: QueueBook, runner, lock, guard):
        self._panel = panel
        self._session = panel.session
        self._book = book
        self._runner = runner
        self._lock = lock
        self._guard = guard

    def sync_counts(self) -> None:
        """Copy the session's label counts and model version into the panel's traits."""
        panel, session = self._panel, self._session
        with self._lock:
            panel.n_labels = session.n_labels
            panel.labels_since_retrain = session.labels_since_retrain
            panel.model_version = session.model_version
            panel.stale = panel.labels_since_retrain > 0

    def top_up(self) -> None:
        """After the queue changed: update the counts and fetch more items when few are left."""
        self.sync_counts()
        panel = self._panel
        with self._lock:
            need_more = len(panel.queue) <= panel.refill_below and not panel.exhausted
            if need_more and not self._runner.is_running("refill"):
                self.refill(len(panel.queue) + self._skipped_to_offer())
            if not panel.queue and not panel.exhausted:
                panel.empty_message = "Fetching the next batch…"

    def _skipped_to_offer(self) -> int:
        return min(len(self._book.skipped), MAX_SKIPPED_IN_QUERY)

    def fetch_now(self) -> None:
        """Query and apply a first batch in this thread (the panel is not shown yet)."""
        self._apply_refill(fetch_batch(self._session, self._panel.batch_size, self._book.rendered))

    def refill(self, extra: int) -> Future:
        """Fetch a batch plus ``extra`` items in the background; merge the new ones into the queue.

        The extra items make up for those the queue already holds, so some are new.
        """
        size = self._panel.batch_size + extra
        return self._runner.submit(
            "refill",
            lambda: fetch_batch(self._session, size, self._book.rendered),
            lane="scoring",
            on_done=self._on_refill,
            coalesce=False,
        )

    def train(self) -> Future:
        """Retrain, then fetch a batch ranked by the new model and refresh the queue."""
        size = self._panel.batch_size + self._skipped_to_offer()
        session = self._session
        self._panel.training_progress = {"phase": "started", "n_labels": session.n_labels}
        progress = ThrottledProgress(self._show_progress)

        def train_and_rescore() -> TrainingResult:
            started = time.perf_counter()
            report = session.retrain(progress=progress, should_stop=lambda: self._runner.closing)
            fetched = fetch_batch(session, size, self._book.rendered)
            return TrainingResult(report, fetched, time.perf_counter() - started)

        return self._runner.submit(
            "training", train_and_rescore, lane="training", on_done=self._on_trained, coalesce=False
        )

    def _show_progress(self, info: dict) -> None:
        self._panel.training_progress = {"phase": "running", **info}

    def _apply_refill(self, fetched: FetchedBatch) -> None:
        panel, book, session = self._panel, self._book, self._session
        with self._lock:
            book.rendered.update(fetched.rendered)
            if fetched.batch is None:
                panel.exhausted = not panel.queue and session.n_labels >= len(session.pool)
                if not panel.queue:
                    panel.empty_message = (
                        "Every item is labeled."
                        if panel.exhausted
                        else "No more items: everything left was skipped."
                    )
                return
            if fetched.batch.model_version < session.model_version:
                return  # ranked by a model a retrain has replaced; the refresh brings newer items
            book.labeled = self._done_ids()
            queue = list(panel.queue)
            new_items = list(fetched.batch.items)
            merged = merge_refill(queue, new_items, book.is_excluded)[
                : len(queue) + panel.batch_size
            ]
            if len(merged) == len(queue) and not queue and book.skipped:
                book.skipped.clear()  # only skipped items are left: offer them again
                merged = merge_refill(queue, new_items, book.is_excluded)[: panel.batch_size]
            for item in merged[len(queue) :]:
                book.ranked_by[item.id] = fetched.batch.model_version
            prioritized = [
                item for item in new_items if item.prioritized and not book.is_excluded(item.id)
            ]
            in_hand = panel.focused_item
            if prioritized:
                in_hand_id = None if in_hand is None else in_hand.id
                merged = insert_prioritized(merged, in_hand_id, prioritized)
            panel.queue = merged
            ids = [item.id for item in merged]
            if book.focus_when_queued in ids:
                panel.focused = ids.index(book.focus_when_queued)
                book.focus_when_queued = None
            else:
                panel.focused = 0 if in_hand is None else ids.index(in_hand.id)

    def _on_refill(self, future: Future) -> None:
        if future.cancelled() or self._runner.closing:
            return
        try:
            self._apply_refill(future.result())
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._guard.report(error, "fetching the next batch failed: ")
        self.top_up()

    def _on_trained(self, future: Future) -> None:
        panel, book, session = self._panel, self._book, self._session
        with self._lock:
            panel.training = False
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or (error is not None and self._runner.closing):
                return  # the widget was closed; nobody is looking
            if error is not None:
                panel.training_progress = {
                    "phase": "failed",
                    "model_version": session.model_version,
                }
                self._guard.report(error, "training failed (the previous model is kept): ")
                return
            result: TrainingResult = future.result()
            book.skipped.clear()
            book.labeled = self._done_ids()
            book.rendered.update(result.fetched.rendered)
            batch = result.fetched.batch
            new_items = [] if batch is None else list(batch.items)[: panel.batch_size]
            queue, index = refreshed_queue(panel.focused_item, new_items, book.is_excluded)
            for item in queue:
                book.ranked_by.setdefault(item.id, session.model_version)
            panel.queue = queue
            panel.focused = index
            report = result.report
            panel.training_progress = {
                "phase": "done",
                "model_version": session.model_version,
                "fraction": 1.0,
                "n_labels": report.n_labels,
                "steps": report.steps,
                "train_loss": report.train_loss,
                "seconds": result.seconds,
            }
            panel.validation_points = [
                *panel.validation_points,
                (report.n_labels, report.validation_accuracy),
            ]
            panel.status = "retrained; batch refreshed"
        self.top_up()

    def _done_ids(self) -> set:
        # In team mode a claimed item may carry a teammate's label and still need ours.
        session = self._session
        done = set(session.my_labels if session.team else session.labeled_ids)
        return done - suspects.awaiting_review(session)  # labeled, queued for review
