"""``alwidget.Widget``: label the ranked batch, retrain in the background, watch progress.

State lives in traits (``queue``, ``focused``, ``training``, ``stale``, ...); views observe
them. Labels go to the session (which persists them) before the view advances; background
jobs apply their results under one lock, so labeling during a retrain is safe.
"""

from __future__ import annotations

import threading
import traceback
from concurrent.futures import Future

import ipywidgets as widgets
import traitlets

from ..errors import AlwidgetError, TrainingInProgressError
from . import keys as keymod
from .jobs import (
    BackgroundJobs,
    FetchedBatch,
    ThrottledProgress,
    TrainingResult,
    fetch_batch,
)
from .links import WidgetLinks
from .queue import clamp_focus, insert_prioritized, merge_refill, refreshed_queue
from .views import WidgetViews

MAX_SKIPPED_IN_QUERY = 200


class Widget(WidgetViews, WidgetLinks, widgets.VBox):
    """The labeling widget for an :class:`alwidget.Session`.

    Parameters
    ----------
    session : alwidget.Session
        Holds the pool, the model and the labels.
    batch_size : int, optional
        Items per queried batch; defaults to ``session.batch_size``.
    key_map : dict, optional
        ``{key: class_name}``. By default keys 1–9, 0 label the first ten classes, except
        when every class name is itself a single key (digits ``"0"``–``"9"``): then each
        class's own key labels it. ``s`` skips, ``u`` undoes, ← → move the focus.
    auto_retrain_every : int
        Start a retrain after this many new labels (0 = only on demand).
    refill_below : int, optional
        Fetch more items in the background when this few remain queued (default: half a
        batch), so the next item is ready at once.
    allow_new_classes : bool
        Show a text box to add a class while labeling (:meth:`label_new_class`); the
        session's model must be able to grow (a built-in name or a ``num_classes`` factory).

    Examples
    --------
    >>> import alwidget as al
    >>> session = al.Session(al.datasets.load_digits(), strategy="bald")
    >>> al.Widget(session)  # doctest: +SKIP
    """

    queue = traitlets.List(help="ItemDetail objects in strip order")
    focused = traitlets.Int(0, help="index into queue of the item shown large")
    training = traitlets.Bool(False)
    stale = traitlets.Bool(False, help="labels arrived after the model that ranked the queue was trained")
    exhausted = traitlets.Bool(False)
    n_labels = traitlets.Int(0)
    labels_since_retrain = traitlets.Int(0)
    model_version = traitlets.Int(0)
    auto_retrain_every = traitlets.Int(0)
    status = traitlets.Unicode("")
    last_error = traitlets.Unicode("")

    def __init__(self, session, *, batch_size: int | None = None, key_map: dict | None = None,
                 auto_retrain_every: int = 0, refill_below: int | None = None,
                 allow_new_classes: bool = False):
        if auto_retrain_every < 0:
            raise ValueError(f"auto_retrain_every must be ≥ 0 (0 = off), got {auto_retrain_every}")
        super().__init__()
        self.add_class(keymod.ROOT_CLASS)
        self.session = session
        self.batch_size = int(batch_size or session.batch_size)
        self.refill_below = max(1, self.batch_size // 2) if refill_below is None else int(refill_below)
        self.key_map = keymod.build_key_map(session.classes, key_map)
        self.allow_new_classes = bool(allow_new_classes)
        self._lock = threading.RLock()
        self._jobs = BackgroundJobs()
        self._rendered: dict = {}
        self._ranked_by: dict = {}  # item id -> model version that ranked it
        self._history: list[tuple] = []  # undo stack: ("label" | "skip", ItemDetail, index) or ("bulk", id, None)
        self._skipped: set = set()
        self._labeled: set = set()
        self._validation_points: list[tuple[int, float | None]] = []
        self._focus_when_queued = None  # an item asked for (e.g. a map click) not queued yet
        self._has_held_out = session.pool.test is not None
        self._build_views()
        self.auto_retrain_every = int(auto_retrain_every)
        self._sync_counts()
        self._render_counts()  # the traits start at their defaults, so no change fires for them
        self.learning_curve.update(session.history, held_out=self._has_held_out)
        self._apply_refill(fetch_batch(session, self.batch_size, self._rendered))

    # ----------------------------------------------------------------- public API
    @property
    def focused_item(self):
        """The :class:`alwidget.ItemDetail` shown large, or ``None`` when nothing is queued."""
        with self._lock:
            return self.queue[self.focused] if self.queue else None

    def focus(self, index: int, item_key: str | None = None) -> None:
        """Show queue item ``index`` large (clicking a card does this).

        ``item_key`` (the item id as text) wins over ``index`` when both are given and the
        queue has changed in between.
        """
        with self._lock:
            if item_key is not None:
                keys = [str(item.id) for item in self.queue]
                if item_key in keys:
                    index = keys.index(item_key)
            self.focused = clamp_focus(int(index), len(self.queue))

    def label(self, class_name: str):
        """Label the focused item as ``class_name`` and move to the next item.

        The label is stored through the session first; if that raises, the error propagates
        (buttons and keys show it in the widget) and the focus does not move.

        Returns
        -------
        object
            The labeled item's id.
        """
        with self._lock:
            detail = self.focused_item
            if detail is None:
                raise AlwidgetError("nothing to label: the queue is empty")
            self.session.label(detail.id, class_name)
            self._remove_focused(("label", detail, self.focused))
            self.status = f"labeled item {detail.id} as {class_name!r}"
        self._after_queue_change()
        self._maybe_auto_retrain()
        return detail.id

    def label_new_class(self, name: str):
        """Add ``name`` as a class (``Session.add_class``) and label the focused item with it.

        Needs ``allow_new_classes=True``. The class gets a button and the next free key.

        Returns
        -------
        object
            The labeled item's id.
        """
        if not self.allow_new_classes:
            raise AlwidgetError("new classes are off: create the widget with allow_new_classes=True")
        with self._lock:
            if self.focused_item is None:
                raise AlwidgetError("nothing to label: the queue is empty")
            name = str(name).strip()
            if name not in self.session.classes:
                self.session.add_class(name)
                self._show_new_class(name)
            self.new_class_text.value = ""
        return self.label(name)

    def skip(self):
        """Move past the focused item without labeling it (it may come back after a retrain)."""
        with self._lock:
            detail = self.focused_item
            if detail is None:
                raise AlwidgetError("nothing to skip: the queue is empty")
            self._skipped.add(detail.id)
            self._remove_focused(("skip", detail, self.focused))
            self.status = f"skipped item {detail.id}"
        self._after_queue_change()
        return detail.id

    def undo(self):
        """Undo the last label (removing it from the session and its store) or skip.

        The item returns to the queue and gets the focus. Returns its id.
        """
        with self._lock:
            if not self._history:
                raise AlwidgetError("nothing to undo")
            action, detail, index = self._history[-1]
            if action == "bulk":  # labeled from outside the strip: there is no card to restore
                self.session.unlabel(detail)
                self._history.pop()
                self.exhausted = False
                self.status = f"undid label of item {detail}"
                self._sync_counts()
                return detail
            if action == "label":
                self.session.unlabel(detail.id)
            self._history.pop()
            self._skipped.discard(detail.id)
            queue = [item for item in self.queue if item.id != detail.id]
            index = clamp_focus(index, len(queue) + 1)
            queue.insert(index, detail)
            self.exhausted = False
            self.queue = queue
            self.focused = index
            self.status = f"undid {action} of item {detail.id}"
        self._sync_counts()
        return detail.id

    def press_key(self, key: str, focused_key: str | None = None) -> None:
        """Act on ``key`` as the browser key handler does (see ``key_map``).

        ``focused_key`` is the id (as text) of the item the browser showed in focus; when it is
        still queued, the key acts on that item.
        """
        if focused_key is not None and key not in (keymod.NEXT_KEY, keymod.PREVIOUS_KEY, keymod.UNDO_KEY):
            self.focus(self.focused, focused_key)
        if key in self.key_map:
            self.label(self.key_map[key])
        elif key == keymod.SKIP_KEY:
            self.skip()
        elif key == keymod.UNDO_KEY:
            self.undo()
        elif key == keymod.NEXT_KEY:
            self.focus(self.focused + 1)
        elif key == keymod.PREVIOUS_KEY:
            self.focus(self.focused - 1)

    def retrain(self) -> Future:
        """Train in the background, then rescore and refresh the queue; labeling goes on meanwhile.

        Returns
        -------
        concurrent.futures.Future
            Resolves when training and rescoring end (the widget has applied the result).

        Raises
        ------
        TrainingInProgressError
            If a retrain is already running.
        """
        with self._lock:
            if self.training:
                raise TrainingInProgressError("a retrain is already running; it refreshes the batch when done")
            self.training = True
            self.train_progress.value = 0.0
            self.train_progress.bar_style = ""
            self.train_status.value = f"training on {self.session.n_labels} labels…"
            size = self.batch_size + min(len(self._skipped), MAX_SKIPPED_IN_QUERY)
        try:
            return self._jobs.start_training(self.session, size, self._rendered,
                                             ThrottledProgress(self._show_progress), self._on_trained)
        except BaseException:
            self.training = False
            raise

    def wait(self, timeout: float | None = None) -> None:
        """Block until background training/refills are done and applied (for scripts and tests)."""
        self._jobs.wait(timeout)

    def close(self) -> None:
        """Stop background work (a running training stops at its next step) and close the views."""
        self._jobs.shutdown()
        pending = list(self.children)
        while pending:
            child = pending.pop()
            pending.extend(getattr(child, "children", ()))
            child.close()
        super().close()

    # ------------------------------------------------------------------- internals
    def _guarded(self, function, *args) -> None:
        """Run a UI callback; errors go to the widget's banner and error log, never only a log file."""
        # Cleared first: a background job started here may report an error before we return.
        self.last_error = ""
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - shown to the user, who decides
            self._report(error)

    def _report(self, error: BaseException, context: str = "") -> None:
        message = f"{context}{type(error).__name__}: {error}"
        self.last_error = message
        detail = message if isinstance(error, AlwidgetError) else "".join(
            traceback.format_exception(type(error), error, error.__traceback__))
        self.errors.append_stderr(detail.rstrip("\n") + "\n")

    def _remove_focused(self, history_entry) -> None:
        index = self.focused
        queue = list(self.queue)
        queue.pop(index)
        self._history.append(history_entry)
        self.queue = queue
        self.focused = clamp_focus(index, len(queue))

    def _after_queue_change(self) -> None:
        self._sync_counts()
        with self._lock:
            need_more = len(self.queue) <= self.refill_below and not self.exhausted
            if need_more and not self._jobs.refilling:
                size = self.batch_size + len(self.queue) + min(len(self._skipped), MAX_SKIPPED_IN_QUERY)
                self._jobs.start_refill(self.session, size, self._rendered, self._on_refill)
            if not self.queue and not self.exhausted:
                self.strip.empty_message = "Fetching the next batch…"

    def _sync_counts(self) -> None:
        with self._lock:
            self.n_labels = self.session.n_labels
            self.labels_since_retrain = self.session.labels_since_retrain
            self.model_version = self.session.model_version
            self.stale = self.labels_since_retrain > 0

    def _done_ids(self) -> set:
        # In team mode a claimed item may carry a teammate's label and still need ours.
        return set(self.session.my_labels if self.session.team else self.session.labeled_ids)

    def _is_excluded(self, item_id) -> bool:
        return item_id in self._skipped or item_id in self._labeled

    def _apply_refill(self, fetched: FetchedBatch) -> None:
        with self._lock:
            self._rendered.update(fetched.rendered)
            if fetched.batch is None:
                self.exhausted = not self.queue and self.session.n_labels >= len(self.session.pool)
                if not self.queue:
                    self.strip.empty_message = ("Every item is labeled." if self.exhausted
                                                else "No more items: everything left was skipped.")
                return
            if fetched.batch.model_version < self.session.model_version:
                return  # ranked by a model a retrain has replaced; the refresh brings newer items
            self._labeled = self._done_ids()
            new_items = [item for item in fetched.batch.items]
            merged = merge_refill(self.queue, new_items, self._is_excluded)[: len(self.queue) + self.batch_size]
            if len(merged) == len(self.queue) and not self.queue and self._skipped:
                self._skipped.clear()  # only skipped items are left: offer them again
                merged = merge_refill(self.queue, new_items, self._is_excluded)[: self.batch_size]
            for item in merged[len(self.queue):]:
                self._ranked_by[item.id] = fetched.batch.model_version
            prioritized = [item for item in new_items if item.prioritized and not self._is_excluded(item.id)]
            in_hand = self.focused_item
            if prioritized:
                merged = insert_prioritized(merged, None if in_hand is None else in_hand.id, prioritized)
            self.queue = merged
            ids = [item.id for item in merged]
            if self._focus_when_queued in ids:
                self.focused = ids.index(self._focus_when_queued)
                self._focus_when_queued = None
            else:
                self.focused = 0 if in_hand is None else ids.index(in_hand.id)

    def _on_refill(self, future: Future) -> None:
        if future.cancelled() or self._jobs.closing:
            return
        try:
            self._apply_refill(future.result())
        except Exception as error:  # noqa: BLE001
            self._report(error, "fetching the next batch failed: ")
        self._after_queue_change()

    def _show_progress(self, fraction: float, loss: float, info: dict) -> None:
        self.train_progress.value = fraction
        steps = f"step {info.get('step')}/{info.get('total_steps')}"
        member = f"member {info['member'] + 1}/{info['members']} · " if info.get("members", 1) > 1 else ""
        self.train_status.value = f"{member}{steps} · loss {loss:.3f}"

    def _on_trained(self, future: Future) -> None:
        with self._lock:
            self.training = False
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or (error is not None and self._jobs.closing):
                return  # the widget was closed; nobody is looking
            if error is not None:
                self.train_progress.bar_style = "danger"
                self.train_status.value = f"training failed; keeping model v{self.session.model_version}"
                self._report(error, "training failed (the previous model is kept): ")
                return
            result: TrainingResult = future.result()
            self._skipped.clear()
            self._labeled = self._done_ids()
            self._rendered.update(result.fetched.rendered)
            new_items = [] if result.fetched.batch is None else list(result.fetched.batch.items)
            queue, index = refreshed_queue(self.focused_item, new_items[: self.batch_size], self._is_excluded)
            for item in queue:
                self._ranked_by.setdefault(item.id, self.session.model_version)
            self.queue = queue
            self.focused = index
            self.train_progress.value = 1.0
            self.train_progress.bar_style = "success"
            report = result.report
            self.train_status.value = (f"model v{self.session.model_version}: {report.n_labels} labels, "
                                       f"{report.steps} steps, loss {report.train_loss:.3f}, {result.seconds:.1f} s")
            self._validation_points.append((report.n_labels, report.validation_accuracy))
            self.learning_curve.update(self.session.history, self._validation_points, held_out=self._has_held_out)
            self.status = "retrained; batch refreshed"
        self._after_queue_change()

    def _maybe_auto_retrain(self) -> None:
        every = self.auto_retrain_every
        if every <= 0 or self.training or self.session.labels_since_retrain < every:
            return
        if sum(1 for count in self.session.label_counts().values() if count) < 2:
            return  # training needs two classes; try again after the next label
        self.retrain()
