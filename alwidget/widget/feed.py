"""``BatchFeed``: the labeling panel's background work and how its results reach the traits.

Fetching the next batch and training + rescoring run on a :class:`JobRunner` (a lane each,
so a refill never waits for a training run); no lock is held while the session queries or
trains. The results are applied to the panel's traits under the panel's lock, and the views
redraw from those traits; training progress, too, travels as the ``training_progress`` trait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..errors import PoolExhaustedError
from . import suspects
from .jobs import Throttle
from .parts import PanelParts
from .queue import insert_prioritized, merge_refill, refreshed_queue
from .render import RenderedItem, render_pool_item

PROGRESS_INTERVAL_S = 0.15
# Skipped items may come back after a retrain, so a query asks for this many more at most.
MAX_SKIPPED_IN_QUERY = 200
# A first batch comes from a random sample of this many items when the session would score
# many more (a model on raw inputs): on 60k MNIST a few seconds instead of a minute. The full
# ranking refines the queue when it arrives.
QUICK_SUBSET = 2000
# Scoring cached encoder features is cheap per item (60k MNIST: 2 s quiet, but 8-10 s in the
# browser benchmark while the map's cell ran beside it), so there the quick pass starts at
# bigger pools.
QUICK_ABOVE_ON_FEATURES = 20_000


@dataclass
class FetchedBatch:
    """A queried batch plus its items pre-rendered, so applying it on the UI side is cheap."""

    batch: object | None  # alwidget.Batch, or None when the pool is exhausted
    rendered: dict
    timings: dict = field(default_factory=dict)  # session.last_query_timings
    quick: bool = False  # from a quick sample; a full ranking follows


@dataclass
class TrainingResult:
    report: object
    fetched: FetchedBatch
    seconds: float
    explained: dict  # item id -> ItemDetail of the queued items under the new model


def quick_subset(session) -> int | None:
    """Items a quick first pass scores, or None when the full query is quick already."""
    if session.team:
        return None
    unlabeled = len(session.pool) - session.n_labels
    limit = unlabeled if session.score_subset is None else min(unlabeled, session.score_subset)
    above = QUICK_ABOVE_ON_FEATURES if session.scores_on_features else 2 * QUICK_SUBSET
    return QUICK_SUBSET if limit > above else None


def scoring_note(session, timings: dict) -> str:
    """One line on how the last batch was chosen (cold start, subset), for the panel."""
    if not timings:
        return ""
    if timings.get("mode") == "cold start":
        return (
            "Cold start: typical, diverse items (clusters of the pool) until the model is "
            f"trained and every class has 2 labels — {timings.get('reason', '')}."
        )
    scored, unlabeled = timings.get("n_scored", 0), timings.get("n_unlabeled", 0)
    if unlabeled and scored < unlabeled:
        why = (
            "a quick first pass; the full ranking follows"
            if timings.get("quick")
            else "large pool; Session(score_subset=None) scores every item"
        )
        return f"Ranked a random {scored:,} of {unlabeled:,} unlabeled items ({why})."
    return ""


def fetch_batch(
    session,
    batch_size: int,
    rendered_cache: dict,
    score_subset: int | None = None,
    progress: Callable | None = None,
) -> FetchedBatch:
    """``session.query`` plus rendering of the items not rendered yet (only reads the cache)."""
    try:
        batch = session.query(batch_size, score_subset=score_subset, progress=progress)
    except PoolExhaustedError:
        return FetchedBatch(None, {})
    rendered: dict[object, RenderedItem] = {}
    for item_id in batch.ids:
        cached = rendered_cache.get(item_id)
        rendered[item_id] = (
            cached if cached is not None else render_pool_item(session.pool, item_id)
        )
    timings = dict(session.last_query_timings)
    quick = score_subset is not None and timings.get("mode") != "cold start"
    timings["quick"] = quick
    return FetchedBatch(batch, rendered, timings, quick)


class ScoringStatus:
    """Shows how far a scoring pass is ("scoring 4,096 / 10,000 items…") at most every
    ``interval`` seconds, in the panel's status and, while the strip is empty, in the strip."""

    def __init__(self, panel, interval: float = 0.3, *, after_training: bool = False):
        self._panel = panel
        self._throttle = Throttle(interval)
        self._after_training = after_training

    def __call__(self, progress) -> None:
        if not self._throttle.lets_through(last=progress.done >= progress.total):
            return
        if self._after_training:  # the training progress bar goes on with the rescoring
            self._panel.training_progress = {
                "phase": "scoring",
                "fraction": progress.done / max(1, progress.total),
                "done": progress.done,
                "total": progress.total,
            }
            return
        text = f"scoring {progress.done:,} / {progress.total:,} items…"
        self._panel.status = text
        if not self._panel.queue:
            self._panel.empty_message = text[0].upper() + text[1:]


class ThrottledProgress:
    """Forwards training progress at most every ``interval`` seconds (and always the last step).

    The training loop reports every few steps; sending each one over the comm would flood
    the browser for nothing. ``sink`` gets the report with its overall ``fraction`` added.
    """

    def __init__(self, sink: Callable[[dict], None], interval: float = PROGRESS_INTERVAL_S):
        self._sink = sink
        self._throttle = Throttle(interval)

    def __call__(self, info: dict) -> None:
        members = max(1, int(info.get("members", 1)))
        member = int(info.get("member", 0))
        total = max(1, int(info.get("total_steps", 1)))
        step = int(info.get("step", 0))
        fraction = min(1.0, (member + step / total) / members)
        if not self._throttle.lets_through(last=fraction >= 1.0):
            return
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

    def __init__(self, parts: PanelParts):
        # Set once the first fetch is applied (or failed): what Widget.ready() waits for.
        self.first_batch = threading.Event()
        self._panel, self._session = parts.panel, parts.session
        self._book, self._runner = parts.book, parts.runner
        self._lock, self._guard = parts.lock, parts.guard

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

    def start(self) -> Future:
        """Fetch the first batch in the background (quickly from a sample when the pool is
        large, then refined); the panel shows at once, saying what it is doing."""
        panel, session = self._panel, self._session
        quick = quick_subset(session)
        scored = "a sample of the pool" if quick else f"{len(session.pool):,} items"
        panel.empty_message = f"Scoring {scored} for a first batch…"
        panel.status = "scoring…"
        return self._runner.submit(
            "refill",
            lambda: fetch_batch(
                session, panel.batch_size, self._book.rendered, quick, ScoringStatus(panel)
            ),
            lane="scoring",
            on_done=self._on_refill,
            coalesce=False,
        )

    def refine(self) -> Future:
        """Rank with the session's full scoring and replace the queue behind the item in hand."""
        size = self._panel.batch_size + self._skipped_to_offer()
        self._panel.status = "refining the ranking…"
        return self._runner.submit(
            "refine",
            lambda: fetch_batch(
                self._session, size, self._book.rendered, progress=ScoringStatus(self._panel)
            ),
            lane="scoring",
            on_done=self._on_refined,
            coalesce=True,
        )

    def refill(self, extra: int) -> Future:
        """Fetch a batch plus ``extra`` items in the background; merge the new ones into the queue.

        The extra items make up for those the queue already holds, so some are new.
        """
        size = self._panel.batch_size + extra
        return self._runner.submit(
            "refill",
            lambda: fetch_batch(
                self._session, size, self._book.rendered, progress=ScoringStatus(self._panel)
            ),
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
            report = session.retrain(
                progress=progress,
                should_stop=lambda: self._runner.closing,
                cross_validate=False,  # after the new batch is on screen, see _on_trained
            )
            self._panel.training_progress = {"phase": "scoring", "fraction": 1.0}
            fetched = fetch_batch(
                session, size, self._book.rendered, quick_subset(session),
                ScoringStatus(self._panel, after_training=True),
            )  # fmt: skip
            queued = [item.id for item in self._panel.queue]
            explained = {item.id: item for item in session.explain(self._still_unlabeled(queued))}
            return TrainingResult(report, fetched, time.perf_counter() - started, explained)

        return self._runner.submit(
            "training", train_and_rescore, lane="training", on_done=self._on_trained, coalesce=False
        )

    def _show_progress(self, info: dict) -> None:
        self._panel.training_progress = {"phase": "running", **info}

    def _still_unlabeled(self, ids: list) -> list:
        labeled = self._done_ids()
        return [item_id for item_id in ids if item_id not in labeled]

    def cross_validate(self) -> Future | None:
        """Estimate the new model's accuracy in the background (after its batch is shown);
        a retrain asked for meanwhile stops it."""
        session, panel = self._session, self._panel
        if session.pool.test is not None or session.cv_folds < 2:
            return None
        throttled = ThrottledProgress(self._show_fold_progress)

        def progress(info: dict) -> None:
            throttled({**info, "member": info["fold"], "members": info["folds"]})

        def stop() -> bool:
            return self._runner.closing or panel.training

        return self._runner.submit(
            "cross-validation",
            lambda: session.cross_validate(progress=progress, should_stop=stop),
            lane="training",
            on_done=self._on_cross_validated,
            coalesce=False,
        )

    def _show_fold_progress(self, info: dict) -> None:
        if self._panel.training:
            return  # a retrain took over the progress bar
        self._panel.training_progress = {"phase": "cross-validating", **info}

    def _on_cross_validated(self, future: Future) -> None:
        panel, session = self._panel, self._session
        if future.cancelled() or self._runner.closing:
            return
        error = future.exception()
        if error is not None:
            self._guard.report(error, "cross-validation failed (the model is kept): ")
            return
        result = future.result()
        with self._lock:
            if result is None or panel.training:
                return
            entry = session.history[-1] if session.history else {}
            panel.training_progress = {
                "phase": "validated",
                "model_version": session.model_version,
                "n_labels": entry.get("n_labels", session.n_labels),
                "accuracy": result["accuracy"],
                "folds": session.cv_folds,
            }
            panel.evaluated_version = session.model_version

    def _apply_refill(self, fetched: FetchedBatch) -> None:
        panel, book, session = self._panel, self._book, self._session
        with self._lock:
            book.rendered.update(fetched.rendered)
            panel.status = ""
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
            panel.scoring_note = scoring_note(session, fetched.timings)
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
                book.picked_by[item.id] = fetched.batch.strategy
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
            fetched = future.result()
            self._apply_refill(fetched)
            if fetched.quick and fetched.batch is not None:
                self.refine()
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._panel.status = ""
            self._guard.report(error, "fetching the next batch failed: ")
        finally:
            self.first_batch.set()
        self.top_up()

    def _on_refined(self, future: Future) -> None:
        panel, book, session = self._panel, self._book, self._session
        if future.cancelled() or self._runner.closing:
            return
        try:
            fetched = future.result()
            with self._lock:
                book.rendered.update(fetched.rendered)
                panel.status = ""
                batch = fetched.batch
                if batch is None or batch.model_version < session.model_version:
                    return
                book.labeled = self._done_ids()
                queue, index = refreshed_queue(
                    panel.focused_item, list(batch.items)[: panel.batch_size], book.is_excluded
                )
                for item in batch.items:
                    book.ranked_by[item.id] = batch.model_version
                    book.picked_by[item.id] = batch.strategy
                panel.queue = queue
                panel.focused = index
                panel.scoring_note = scoring_note(session, fetched.timings)
        except Exception as error:  # noqa: BLE001 - shown to the user
            self._panel.status = ""
            self._guard.report(error, "ranking the whole pool failed: ")
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
            in_hand = panel.focused_item
            if in_hand is not None:
                in_hand = result.explained.get(in_hand.id, in_hand)  # the new model's reasons
            queue, index = refreshed_queue(in_hand, new_items, book.is_excluded)
            for item in queue:
                book.ranked_by[item.id] = session.model_version
            for item in new_items:
                book.picked_by[item.id] = batch.strategy
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
            panel.scoring_note = scoring_note(session, result.fetched.timings)
        self.cross_validate()
        if result.fetched.quick and result.fetched.batch is not None:
            self.refine()
        self.top_up()

    def _done_ids(self) -> set:
        # In team mode a claimed item may carry a teammate's label and still need ours.
        session = self._session
        done = set(session.my_labels if session.team else session.labeled_ids)
        return done - suspects.awaiting_review(session)  # labeled, queued for review
