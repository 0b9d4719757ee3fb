"""``alwidget.Widget``: label the ranked batch, retrain in the background, watch progress.

The widget is a ``VBox`` composed of parts, each handed what it needs:

* :class:`~alwidget.widget.views.PanelViews` builds the child widgets and redraws them from
  the traits (``queue``, ``focused``, ``training_progress``, ``stale``, ...), the source of truth;
* :class:`~alwidget.widget.feed.BatchFeed` fetches batches and retrains on a
  :class:`~alwidget.widget.jobs.JobRunner` and sets the traits from the results;
* :class:`~alwidget.widget.guard.ErrorGuard` shows what a callback or a job raised;
* :class:`~alwidget.widget.links.MapLink` joins an embedding map (:meth:`Widget.attach_map`).

Locks, and the order in which they may be taken (never the other way round):

1. ``Widget._lock`` (an ``RLock``): the queue traits and the :class:`QueueBook`, changed by the
   kernel's thread (clicks, keys, the Python API) and by job callbacks. While holding it one
   may submit a job (taking 2.) and set traits whose observers take 1. again or 3. It is never
   held while the session trains, queries or predicts: those run as jobs without any lock;
   labels are written to the session before it is taken.
2. ``JobRunner._state``: the runner's bookkeeping; a leaf (nothing is called while it is held).
3. ``MapView._draw_lock``: the map figure, while it is replaced or resized; a leaf.

The session and the store keep their own locks inside their calls.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import ipywidgets as widgets
import traitlets

from ..errors import AlreadyLabeledError, AlwidgetError, TrainingInProgressError
from . import keys as keymod
from . import suspects
from .feed import BatchFeed
from .guard import ErrorGuard
from .jobs import JobRunner
from .links import MapLink
from .parts import PanelParts
from .preload import (
    BATCH_MODULES,
    FIRST_BATCH_GRACE_S,
    TRAINING_MODULES,
    import_after_this_cell,
    import_pending_on_main_thread,
    import_worker_modules,
    wait_for_training_modules,
)
from .queue import QueueBook, clamp_focus, focus_after_removal, take_out
from .unusual import MARK_KEY, UnusualItems
from .views import PanelViews


def compared_strategies(current: str) -> list[str]:
    """The session's strategy and two others to set beside it (random first: the baseline)."""
    chosen = [current]
    for name in ("random", "bald", "batchbald", "entropy"):
        if name not in chosen and len(chosen) < 3:
            chosen.append(name)
    return chosen


class Widget(widgets.VBox):
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
        Fetch more items in the background when this few remain queued (default: one less
        than a batch, so a whole batch waits behind the one being labeled: with half a batch
        in reserve the strip ran dry on 60 000 MNIST images while refills took 3-6 s), so the
        next item is ready at once.
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
    training_progress = traitlets.Dict(
        help="the last training report: phase (started, running, done, failed) and its figures"
    )
    validation_points = traitlets.List(help="(n_labels, validation accuracy) of each retrain")
    stale = traitlets.Bool(
        False, help="labels arrived after the model that ranked the queue was trained"
    )
    exhausted = traitlets.Bool(False)
    empty_message = traitlets.Unicode("", help="what the strip says while the queue is empty")
    n_labels = traitlets.Int(0)
    labels_since_retrain = traitlets.Int(0)
    model_version = traitlets.Int(0)
    auto_retrain_every = traitlets.Int(0)
    status = traitlets.Unicode("")
    last_error = traitlets.Unicode("")
    scoring_note = traitlets.Unicode(
        "", help="how the queued batch was chosen: cold start, or a subset of a large pool"
    )
    evaluated_version = traitlets.Int(
        0, help="the model version whose cross-validated accuracy arrived last"
    )

    def __init__(
        self,
        session,
        *,
        batch_size: int | None = None,
        key_map: dict | None = None,
        auto_retrain_every: int = 0,
        refill_below: int | None = None,
        allow_new_classes: bool = False,
    ):
        if auto_retrain_every < 0:
            raise ValueError(f"auto_retrain_every must be ≥ 0 (0 = off), got {auto_retrain_every}")
        super().__init__()
        self.add_class(keymod.ROOT_CLASS)
        self.session = session
        self.batch_size = int(batch_size or session.batch_size)
        self.refill_below = (
            max(1, self.batch_size - 1) if refill_below is None else int(refill_below)
        )
        self.key_map = keymod.build_key_map(session.classes, key_map)
        self.allow_new_classes = bool(allow_new_classes)
        self.map_view = None
        self._comparison = None  # ComparePicks, built on first use
        self._lock = threading.RLock()
        self._book = QueueBook()
        self._guard = ErrorGuard(
            lambda message: setattr(self, "last_error", message),
            log_class="alwidget-errors",
            max_height="160px",
        )
        # The jobs must import nothing themselves (see preload.py): import for them first,
        # training's modules after this cell; a training job started before then (a trained
        # model's label check) waits for them.
        import_worker_modules(BATCH_MODULES)

        def first_batch_shown() -> None:
            self._feed.first_batch.wait(FIRST_BATCH_GRACE_S)

        if not import_after_this_cell(TRAINING_MODULES, first=first_batch_shown):
            import_worker_modules(TRAINING_MODULES)
        self._runner = JobRunner(
            ("training", "scoring"),
            gates={"training": lambda: wait_for_training_modules(give_up=self._runner_closing)},
        )
        parts = PanelParts(self, self._book, self._runner, self._lock, self._guard)
        self._feed = BatchFeed(parts)
        self._views = PanelViews(parts)
        #: Finds label suspects in the background (``session.relabel_fraction``).
        self.label_check = suspects.LabelCheck(parts)
        #: The "Unusual items" filter (mark items "not a class").
        self.unusual = UnusualItems(parts, self._feed.top_up)
        cleaning_bar = widgets.HBox([self.unusual.toggle, self.label_check.status])
        self._views.add_to_column(cleaning_bar, self.unusual.pane)
        self.children = self._views.children
        self.auto_retrain_every = int(auto_retrain_every)
        self._feed.sync_counts()
        self._feed.start()  # in the background: the panel shows at once

    def __getattr__(self, name):
        # The child widgets (widget.strip, widget.retrain_button, ...) belong to the views;
        # they stay reachable on the widget, as before the views became their own object.
        views = self.__dict__.get("_views")
        if views is not None and name in PanelViews.PARTS:
            return getattr(views, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ----------------------------------------------------------------- labeling
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
        detail = self._focused_or_raise("label")
        suspects.label_or_relabel(self.session, detail, class_name)  # a suspect: relabel
        self._remove([detail.id], "label", f"labeled item {detail.id} as {class_name!r}")
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
            raise AlwidgetError(
                "new classes are off: create the widget with allow_new_classes=True"
            )
        self._focused_or_raise("label")
        name = str(name).strip()
        if name not in self.session.classes:
            self.session.add_class(name)
        self._views.show_class(name)
        return self.label(name)

    def skip(self):
        """Move past the focused item without labeling it (it may come back after a retrain)."""
        detail = self._focused_or_raise("skip")
        with self._lock:
            self._book.skipped.add(detail.id)
        self._remove([detail.id], "skip", f"skipped item {detail.id}")
        return detail.id

    def undo(self):
        """Undo the last label (removing it from the session and its store) or skip.

        The item returns to the queue and gets the focus. Returns its id.
        """
        with self._lock:
            if not self._book.history:
                raise AlwidgetError("nothing to undo")
            action, detail, index = self._book.history[-1]
        item_id = detail if action == "bulk" else detail.id
        if action != "skip":
            self.session.unlabel(item_id)
        with self._lock:
            self._book.history.pop()
            self._book.skipped.discard(item_id)
            self.exhausted = False
            # A bulk label from outside the strip has no card to restore.
            if action != "bulk":
                queue = [item for item in self.queue if item.id != item_id]
                index = clamp_focus(index, len(queue) + 1)
                queue.insert(index, detail)
                self.queue = queue
                self.focused = index
            self.status = f"undid {action if action != 'bulk' else 'label'} of item {item_id}"
        self._feed.sync_counts()
        return item_id

    def press_key(self, key: str, focused_key: str | None = None) -> None:
        """Act on ``key`` as the browser key handler does (see ``key_map``).

        ``focused_key`` is the id (as text) of the item the browser showed in focus; when it is
        still queued, the key acts on that item.
        """
        moves = (keymod.NEXT_KEY, keymod.PREVIOUS_KEY, keymod.UNDO_KEY)
        if focused_key is not None and key not in moves:
            with self._lock:
                queued = focused_key in {str(item.id) for item in self.queue}
            if not queued and (key in self.key_map or key == keymod.SKIP_KEY):
                # A refresh took the item the page showed out of the queue while the key was
                # on its way: acting on whatever is focused now would move the label.
                raise AlwidgetError(
                    f"item {focused_key} left the queue (a refresh replaced the batch) before "
                    f"key {key!r} arrived; nothing was stored. Look at the item now shown and "
                    "press the key again"
                )
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
        elif key == MARK_KEY and self.unusual.is_open:
            self.unusual.mark()

    def set_strategy(self, name: str) -> Future:
        """Rank with strategy ``name`` from now on (the session's too), and re-rank the queue
        behind the item in hand in the background.

        Raises
        ------
        ValueError, UnsupportedModelError
            An unknown strategy, or one the model cannot serve (e.g. BALD without dropout).
        """
        self.session.set_strategy(name)
        with self._lock:
            self.status = f"re-ranking with {name}…"
            if self._views.strategy_picker.value != name:
                self._views.strategy_picker.value = name
        return self._feed.refine()

    def show_comparison(self, show: bool = True) -> Future | None:
        """Show (or hide) what other strategies would pick now from the same model: the
        session's strategy beside two others, as strips and on a shared map
        (:class:`alwidget.teaching.compare.ComparePicks`), computed in the background.
        Showing it again recomputes it for the current model."""
        box = self._views.compare_box
        if not show:
            box.layout.display = "none"
            return None
        box.layout.display = None
        if self._comparison is not None:
            self._comparison.refresh_in_background()
            return None
        self.status = "working out what each strategy would pick…"

        def build():
            # The comparison view lives with the teaching views; load it only when asked for.
            from ..teaching.compare import ComparePicks

            return ComparePicks(
                self.session,
                compared_strategies(self.session.strategy),
                batch_size=self.batch_size,
                seed=self.session.seed,
            )

        def on_built(future: Future) -> None:
            if future.cancelled() or self._runner.closing:
                return
            error = future.exception()
            self.status = ""
            if error is not None:
                self._guard.report(error, "comparing strategies failed: ")
                return
            self._comparison = future.result()
            box.children = [self._comparison.widget]

        return self._runner.submit(
            "comparison", build, lane="scoring", on_done=on_built, coalesce=True
        )

    # ------------------------------------------------------------ training, lifecycle
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
                raise TrainingInProgressError(
                    "a retrain is already running; it refreshes the batch when done"
                )
            self.training = True
        try:
            import_worker_modules(TRAINING_MODULES)  # on this thread; at once if done already
            return self._feed.train()
        except BaseException:
            self.training = False
            raise

    def ready(self, timeout: float | None = None):
        """Block until the first batch is queued (or the pool turned out to have nothing left),
        then return the widget: ``al.Widget(session).ready()`` in scripts and tests. The widget
        itself never blocks the notebook; it scores in the background.

        Raises
        ------
        TimeoutError
            If the first batch is not there within ``timeout`` seconds.
        """
        if not self._feed.first_batch.wait(timeout):
            raise TimeoutError(f"no first batch within {timeout} s; the session is still scoring")
        return self

    def _runner_closing(self) -> bool:
        return self._runner.closing

    def wait(self, timeout: float | None = None) -> None:
        """Block until background training/refills are done and applied (for scripts and tests)."""
        import_pending_on_main_thread()  # a training job may wait for them: not in this cell
        self._runner.wait(timeout)

    def close(self) -> None:
        """Stop background work (a running training stops at its next step) and close the views."""
        self._runner.shutdown()
        self.label_check.close()
        pending = list(self.children)
        while pending:
            child = pending.pop()
            pending.extend(getattr(child, "children", ()))
            child.close()
        super().close()

    # ------------------------------------------------- ways in from outside the panel
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
            raise AlreadyLabeledError(
                f"item {item_id!r} is already labeled {self.session.labels[item_id]!r}"
            )
        with self._lock:
            self._book.focus_when_queued = item_id
        self.queue_next([item_id])

    def queue_next(self, ids) -> None:
        """Ask for ``ids`` next ("label these next"): they go right after the current item."""
        ids = list(ids)
        self.session.prioritize(ids)
        with self._lock:
            self.exhausted = False
            self._feed.refill(len(self.queue) + len(ids))
        self.status = f"{len(ids)} item(s) will be asked next"

    def label_many(self, ids, class_name: str) -> list:
        """Label several items with one class (one session call, all or nothing).

        Undo takes them back one by one.
        """
        ids = list(ids)
        self.session.label(ids, [class_name] * len(ids))
        self._remove(ids, "label", f"labeled {len(ids)} item(s) as {class_name!r}")
        return ids

    def attach_map(self, map_view) -> None:
        """Show ``map_view`` (an :class:`alwidget.widget.map_view.MapView`) beside the panel.

        Clicking a point focuses the item here, "label these next" queues items after the
        current one, bulk labels go through :meth:`label_many`, and the map follows the
        panel's queue, labels and retrains.
        """
        MapLink(self, self._guard).attach(map_view)
        self.map_view = map_view

    # ----------------------------------------------------------------- internals
    def _focused_or_raise(self, action: str):
        detail = self.focused_item
        if detail is None:
            raise AlwidgetError(f"nothing to {action}: the queue is empty")
        return detail

    def _remove(self, ids: list, action: str, status: str) -> None:
        """Take ``ids`` out of the queue (the session has their labels), remember it for undo."""
        with self._lock:
            in_hand = self.focused_item
            queue, removed = take_out(self.queue, ids)
            for item_id, detail, index in removed:
                entry = ("bulk", item_id, None) if detail is None else (action, detail, index)
                self._book.history.append(entry)
            single_index = removed[0][2] if len(removed) == 1 else None
            self.queue = queue
            self.focused = focus_after_removal(queue, in_hand, set(ids), single_index)
            self.status = status
        self._feed.top_up()

    def _maybe_auto_retrain(self) -> None:
        every = self.auto_retrain_every
        if every <= 0 or self.training or self.session.labels_since_retrain < every:
            return
        if sum(1 for count in self.session.label_counts().values() if count) < 2:
            return  # training needs two classes; try again after the next label
        self.retrain()
