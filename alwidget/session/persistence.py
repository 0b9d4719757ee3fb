"""Opening a session's store and taking over what it holds. The SQL stays in the store.

:class:`alwidget.store.session_link.SessionStore` is the session's link to its store; this
module opens it (imported lazily, so the session layer needs no database code until a
session is made) and restores labels, queue, history and the last model from it.
"""

from __future__ import annotations

from .labels import LabelBook
from .model_state import ModelState

__all__ = ["open_link", "restore_session"]


def open_link(store, pool, classes: list[str], annotator: str):
    """Open (or create) the store behind ``store`` for this pool; see ``Session(store=)``."""
    from ..store.session_link import SessionStore

    return SessionStore(store, pool, classes, annotator)


def restore_session(link, book: LabelBook, model: ModelState, history: list[dict]) -> None:
    """Fill ``book``, ``history`` and ``model`` from what ``link``'s store already holds."""
    state = link.restored_state()
    history[:] = [dict(entry) for entry in state.history]
    book.restore(state)
    if state.checkpoint is not None:
        version, state_dicts = state.checkpoint
        trained_on = [e["n_labels"] for e in history if e.get("model_version") == version]
        model.restore(version, state_dicts, int(trained_on[-1]) if trained_on else len(book))
