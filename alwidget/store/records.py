"""Plain data types returned by the store and their conversion to export rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

#: Columns of an exported label table, in order.
LABEL_COLUMNS = (
    "event_id",
    "item_key",
    "label",
    "annotator",
    "created_at",
    "model_version",
    "strategy",
    "score",
)
#: Extra columns when the full history (labels and undos) is exported.
HISTORY_COLUMNS = (*LABEL_COLUMNS, "kind", "undoes_event_id")


@dataclass(frozen=True)
class LabelRecord:
    """One label event as stored.

    Attributes
    ----------
    event_id : int
        Position in the store's append-only event log.
    item_key : str
        ``str(item_id)`` of the labeled pool item.
    label : str or None
        The class given; None for an undo event.
    annotator : str
        Who gave (or undid) the label.
    created_at : datetime
        When the event was written (UTC, timezone-aware).
    model_version : int or None
        Version of the model whose ranking surfaced the item.
    strategy : str or None
        Name of the acquisition strategy that surfaced the item.
    score : float or None
        That strategy's score for the item.
    kind : str
        ``"label"`` or ``"undo"``.
    undoes_event_id : int or None
        For an undo, the ``event_id`` of the label it cancels.
    """

    event_id: int
    item_key: str
    label: str | None
    annotator: str
    created_at: datetime
    model_version: int | None
    strategy: str | None
    score: float | None
    kind: str = "label"
    undoes_event_id: int | None = None

    @classmethod
    def from_row(cls, row) -> LabelRecord:
        """Build a record from a row selected with :data:`EVENT_COLUMNS`' order."""
        event_id, key, kind, label, annotator, created, version, strategy, score, undoes = row
        if created.tzinfo is None:  # SQLite keeps no zone; the store always writes UTC
            created = created.replace(tzinfo=UTC)
        return cls(event_id, key, label, annotator, created, version, strategy, score, kind, undoes)

    def as_row(self, history: bool = False) -> dict[str, object]:
        """The record as a flat dict with an ISO-8601 timestamp, ready for CSV or JSON."""
        row: dict[str, object] = {
            "event_id": self.event_id,
            "item_key": self.item_key,
            "label": self.label,
            "annotator": self.annotator,
            "created_at": self.created_at.isoformat(),
            "model_version": self.model_version,
            "strategy": self.strategy,
            "score": self.score,
        }
        if history:
            row["kind"] = self.kind
            row["undoes_event_id"] = self.undoes_event_id
        return row


def clean_score(score: float | None) -> float | None:
    """Validate a score; NaN becomes None because SQLite cannot store NaN."""
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise TypeError(f"score must be a number or None, not {score!r}") from None
    return None if math.isnan(value) else value


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def check_item_key(item_key: object) -> str:
    """Return ``item_key`` if it is a non-empty str; raise naming the fix otherwise."""
    if not isinstance(item_key, str):
        raise TypeError(f"item_key must be a str (use str(item_id)), not {type(item_key).__name__}")
    if not item_key:
        raise ValueError("item_key must not be empty")
    return item_key


def check_label(label: object, classes: list[str] | None) -> str:
    """Return ``label`` if it is a non-empty str among ``classes`` (any when None)."""
    if not isinstance(label, str) or not label:
        raise ValueError(f"a label must be a non-empty string, not {label!r}")
    if classes is not None and label not in classes:
        raise ValueError(
            f"label {label!r} is not one of the store's classes {classes}; "
            "add it first with store.set_classes()"
        )
    return label
