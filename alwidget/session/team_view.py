"""What a session tells about its team (team mode), and the calls only a team makes."""

from __future__ import annotations

from .team_labels import TeamLabelBook

__all__ = ["TeamView"]


class TeamView:
    """Team-mode answers of :class:`alwidget.Session`; outside team mode they say so.

    Parameters
    ----------
    book : LabelBook
        The session's label book (a :class:`TeamLabelBook` in team mode).
    querier : SoloQuery or TeamQueue
        The session's query path.
    link : SessionStore
        The session's store link.
    """

    def __init__(self, book, querier, link) -> None:
        self.book = book
        self.querier = querier
        self.link = link

    @property
    def team(self) -> bool:
        """Whether the session labels as one member of a team (``team=True``)."""
        return isinstance(self.book, TeamLabelBook)

    @property
    def overlap(self) -> int:
        """Distinct annotators wanted per item (1 outside team mode)."""
        return self.book.settings.overlap if self.team else 1

    def _require_team(self, what: str) -> None:
        if not self.team:
            raise ValueError(f"{what}() belongs to team mode; create the session with team=True")

    def refresh_labels(self) -> int:
        """Load every annotator's current labels from the store; returns the labeled count.

        Rebuilds ``Session.labels`` (the consensus) and takes over classes teammates added.
        ``Session.retrain`` calls it, so training always uses the whole team's labels.
        """
        self._require_team("refresh_labels")
        return self.book.refresh()

    def agreement(self):
        """Agreement between annotators on items several of them labeled.

        Returns
        -------
        alwidget.store.AgreementReport
            Per item, per annotator, Cohen's kappa per pair and Fleiss' kappa overall.
        """
        return self.link.store.agreement()

    def conflicts(self) -> list[dict]:
        """Items whose annotators' current labels disagree, for review.

        Returns
        -------
        list of dict
            ``{"id", "item_key", "labels": {annotator: label}, "majority_label"}``
            (``majority_label`` is None on a tie).
        """
        return [
            {"id": self.link.item_id(entry["item_key"]), **entry}
            for entry in self.link.store.conflicts()
        ]

    def team_progress(self) -> dict[str, int]:
        """The team queue's counts: items, live leases, items by number of labels."""
        return self.link.store.team_progress()

    def release(self) -> int:
        """Give back the items this annotator holds but has not labeled (e.g. when stopping);
        returns how many. Teammates can get them at once instead of after the lease."""
        self._require_team("release")
        return self.querier.release()
