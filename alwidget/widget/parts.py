"""``PanelParts``: what the labeling panel's helpers share, built once by ``Widget``.

The batch feed, the views, the label check and the "Unusual items" filter all read the panel's
traits, its queue book, its job runner, its lock and its error guard. One object carries them,
so a new shared part is added in one place instead of four constructors.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .guard import ErrorGuard
from .jobs import JobRunner
from .queue import QueueBook

if TYPE_CHECKING:
    from .app import Widget

__all__ = ["PanelParts"]


@dataclass(frozen=True)
class PanelParts:
    """The labeling panel and the machinery its helpers share.

    Attributes
    ----------
    panel : Widget
        The panel; its traits are the source of truth.
    book : QueueBook
        Which queued items came from which fetch, and what stays in hand.
    runner : JobRunner
        The one runner of background work (training and scoring lanes).
    lock : threading.RLock
        Guards the panel's queue and counts against worker threads.
    guard : ErrorGuard
        Shows callback errors in the panel.
    """

    panel: Widget
    book: QueueBook
    runner: JobRunner
    lock: threading.RLock
    guard: ErrorGuard

    @property
    def session(self):
        """The panel's :class:`alwidget.Session`."""
        return self.panel.session
