"""Label suspects in the widget: the badge, the card text, and keys that keep or change.

A batch may carry labeled items back for review (``session.relabel_fraction``, see
:meth:`alwidget.Session.label_issues`); each is a
:class:`~alwidget.session.cleaning.SuspectDetail`. Pressing a class key on one changes its
label through :meth:`alwidget.Session.relabel` (its own class keeps it); ``u`` undoes that.

Finding suspects costs one training per fold, so the widget never does it inside a batch
fetch: :class:`LabelCheck` runs it as a background job after the refreshed batch is shown
(behind the cross-validation, in the training lane, stopped by a new retrain), shows its
progress ("checking labels: fold 2 / 5") and then puts the suspects right after the item in
hand; later refills mix in more of them.
"""

from __future__ import annotations

import html
from concurrent.futures import Future

import ipywidgets as widgets

from ..errors import NotEnoughClassesError
from .parts import PanelParts
from .render import render_pool_item

__all__ = [
    "LabelCheck",
    "awaiting_review",
    "badge_html",
    "card_fields",
    "is_suspect",
    "label_or_relabel",
    "with_suspects",
]


def is_suspect(detail) -> bool:
    """Whether a queued item is a labeled item brought back for review."""
    return getattr(detail, "suspect", None) is not None


def label_or_relabel(session, detail, class_name: str) -> None:
    """Label a new item; for a suspect, keep (its own class) or change its label."""
    if is_suspect(detail):
        session.relabel(detail.id, class_name)
    else:
        session.label(detail.id, class_name)


def awaiting_review(session) -> set:
    """Ids of suspects handed out and not reviewed yet (labeled, but they belong in the queue)."""
    cleaning = getattr(session, "cleaning", None)
    return set() if cleaning is None else cleaning.awaiting_review()


def card_fields(detail) -> dict:
    """What a suspect's card shows instead of the prediction: ``"⚠ 3 → 8?"``."""
    if not is_suspect(detail):
        return {}
    suspect = detail.suspect
    return {"predicted": f"⚠ {suspect.given} → {suspect.predicted}?"}


def badge_html(detail) -> str:
    """The banner above a focused suspect's explanation (empty for other items)."""
    if not is_suspect(detail):
        return ""
    suspect = detail.suspect
    return (
        '<div class="alwidget-suspect" style="border:1px solid #f57c00;background:#fff3e0;'
        'padding:4px 6px;margin-bottom:4px;border-radius:4px">'
        f"⚠ <b>Label suspect</b>: {html.escape(suspect.reason)}. Press a class key to "
        f"change it, or <b>{html.escape(suspect.given)}</b> to keep it.</div>"
    )


def with_suspects(queue: list, focused: int, suspects: list) -> list:
    """``queue`` with ``suspects`` right after the focused item (which stays where it is)."""
    cut = min(focused + 1, len(queue)) if queue else 0
    return [*queue[:cut], *suspects, *queue[cut:]]


class LabelCheck:
    """Checks the labels in the background and mixes the suspects into the panel's queue.

    Runs when the panel's session has a ``relabel_fraction`` and a trained model: after the
    first batch is shown and after each retrain's refreshed batch. While it runs the panel
    says "checking labels: fold 2 / 5"; a retrain stops it (the retrained model gets its own
    check).

    Parameters
    ----------
    panel : alwidget.Widget
        Whose queue receives the suspects.
    book : QueueBook
        The panel's rendered items and where each came from.
    runner : JobRunner
        With a ``"training"`` lane (the check trains models; never beside a retrain).
    lock : threading.RLock
        The panel's lock, held while the suspects are put in the queue.
    guard : ErrorGuard
        Shows what the check raised.
    """

    def __init__(self, parts: PanelParts):
        panel = parts.panel
        self._panel, self._session = panel, parts.session
        self._book, self._runner = parts.book, parts.runner
        self._lock, self._guard = parts.lock, parts.guard
        #: One line on the check: running (fold n / N), done, stopped.
        self.status = widgets.HTML("")
        self.status.add_class("alwidget-label-check")
        self._failed_version = -1
        # Queries now only mix in suspects already found: none is trained in a batch fetch.
        self._session.cleaning.check_in_background = True
        # A new queue (the first batch, a retrain's refreshed batch) is the moment to check:
        # set inside the job's result callback, so Widget.wait() also waits for the check.
        panel.observe(lambda _change: self.start(), names=["queue"])

    def wanted(self) -> int:
        """Suspect slots per batch (0: no relabeling asked for, or no trained model yet)."""
        return self._session.cleaning.suspect_slots(self._panel.batch_size, None)

    def start(self) -> Future | None:
        """Check the labels of the current model in the background, unless that is done,
        running, not wanted, or a retrain is under way (its new batch starts a check).
        Returns the job's future (None when nothing is started)."""
        runner = self._runner
        if runner.closing or self._panel.training or runner.is_running("label-check"):
            return None
        if self.wanted() == 0 or self._session.cleaning.suspects_ready():
            return None
        if self._failed_version == self._session.model_version:
            return None  # too few labels per class for the folds; the next model may do
        from .feed import ThrottledProgress  # feed imports this module

        version = self._session.model_version
        throttled = ThrottledProgress(self._show_progress)

        def progress(info: dict) -> None:
            throttled({**info, "member": info["folds_done"], "members": info["folds"]})

        def stop() -> bool:
            return self._runner.closing or self._panel.training

        self._show("checking labels…")
        return self._runner.submit(
            "label-check",
            lambda: self._session.label_issues(progress=progress, should_stop=stop),
            lane="training",
            on_done=lambda future: self._on_checked(future, version),
            coalesce=True,
        )

    def _show(self, text: str) -> None:
        self.status.value = (
            f'<span class="alwidget-status">{html.escape(text)}</span>' if text else ""
        )

    def _show_progress(self, info: dict) -> None:
        if self._panel.training:
            return
        fold = min(info["member"] + 1, info["members"])
        self._show(
            f"checking labels: fold {fold} / {info['members']} · step "
            f"{info['step']}/{info['total_steps']}"
        )

    def _on_checked(self, future: Future, version: int) -> None:
        if future.cancelled() or self._runner.closing:
            return
        error = future.exception()
        if isinstance(error, NotEnoughClassesError):
            self._failed_version = version
            self._show(f"labels not checked: {error}")
            return
        if error is not None:
            self._show("")
            self._guard.report(error, "checking the labels failed: ")
            return
        found = future.result()
        if found is None:
            self._show("label check stopped: the model is being retrained")
            return
        panel, book, session = self._panel, self._book, self._session
        with self._lock:
            queue = list(panel.queue)
            already = sum(1 for item in queue if is_suspect(item))
            details = session.cleaning.hand_out(
                max(0, self.wanted() - already), exclude=[item.id for item in queue],
                compute=False,
            )  # fmt: skip
            for detail in details:
                if detail.id not in book.rendered:
                    book.rendered[detail.id] = render_pool_item(session.pool, detail.id)
                book.ranked_by[detail.id] = version
                book.picked_by[detail.id] = session.strategy
            if details:
                focused = panel.focused if queue else 0
                panel.queue = with_suspects(queue, focused, details)
                panel.focused = focused
        self._show(
            f"labels checked (model v{version}): {len(found)} suspect(s); "
            f"{len(details)} queued for review"
        )

    def close(self) -> None:
        """The panel is closing: queries find suspects themselves again."""
        self._session.cleaning.check_in_background = False
