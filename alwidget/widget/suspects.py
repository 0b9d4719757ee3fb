"""Label suspects in the widget: the badge, the card text, and keys that keep or change.

A batch may carry labeled items back for review (``session.relabel_fraction``, see
:meth:`alwidget.Session.label_issues`); each is a
:class:`~alwidget.session.cleaning.SuspectDetail`. Pressing a class key on one changes its
label through :meth:`alwidget.Session.relabel` (its own class keeps it); ``u`` undoes that.
"""

from __future__ import annotations

import html

__all__ = ["awaiting_review", "badge_html", "card_fields", "is_suspect", "label_or_relabel"]


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
