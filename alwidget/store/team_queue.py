"""The team queue: several annotators, in separate processes, labeling one pool.

Items are handed out with leases. On PostgreSQL a claim locks candidate rows with
``FOR UPDATE SKIP LOCKED``, so concurrent claimers pass each other instead of waiting, and
re-counts the item's holders under that lock; every other write to an item's assignments
takes the same row lock, so an item never gets more holders than the overlap allows. On
SQLite, write transactions are ``BEGIN IMMEDIATE`` and therefore run one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)

from .agreement import AgreementReport, agreement_report, conflicting_labels
from .database import Database
from .label_log import current_votes, labels_by_annotator
from .schema import assignments, work_items


def _dialect_insert(conn: Connection, table):
    """An INSERT that takes ON CONFLICT clauses, which only the dialects' own inserts offer."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _db_now(conn: Connection) -> float:
    """Seconds since the epoch on the database's clock, shared by every annotator."""
    if conn.dialect.name == "postgresql":
        query = "SELECT EXTRACT(EPOCH FROM clock_timestamp())"
    else:
        query = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(conn.execute(text(query)).scalar_one())


def _live(now: float):
    """Assignments that count as holding an item: labeled, or leased and not expired."""
    return or_(assignments.c.state == "done", assignments.c.expires_at > now)


def _generation(conn: Connection, priority):
    """The integer part of a priority (PostgreSQL's CAST rounds; floor() is what is meant)."""
    return func.floor(priority) if conn.dialect.name == "postgresql" else cast(priority, Integer)


@dataclass(eq=False)
class TeamQueue:
    """The team queue and agreement figures of a :class:`~alwidget.store.LabelStore` (which
    forwards its methods here), kept in the store's ``database``; ``choose_annotator`` names
    who an ``annotator`` argument means (None: the store's default annotator)."""

    database: Database
    choose_annotator: Callable[[str | None], str]
    #: Lease given back to an item whose label is undone: the length of the last claim's.
    lease_seconds: float = 600.0

    def enqueue(
        self, items: Iterable[tuple[str, float]], *, keep_higher_generations: bool = False
    ) -> int:
        """Add items to the team queue, or update the priority of items already in it.

        Parameters
        ----------
        items : iterable of (item_key, priority)
            Higher priority is handed out first (e.g. the acquisition score).
        keep_higher_generations : bool
            Read a priority's integer part as the generation of the ranking that gave it
            (e.g. the number of labels its model was trained on) and never replace a
            priority of a higher generation; within one generation the latest write wins.
            A ranking by an older model then never pushes an item down.

        Returns
        -------
        int
            Number of distinct items written or kept.
        """
        rows: dict[str, float] = {}
        for entry in items:
            try:
                key, priority = entry
            except (TypeError, ValueError):
                raise TypeError(
                    f"enqueue takes (item_key, priority) pairs, got {entry!r}"
                ) from None
            if not isinstance(key, str):
                raise TypeError(f"item keys must be str (use str(item_id)), got {key!r}")
            value = float(priority)
            if not math.isfinite(value):
                raise ValueError(f"priority of item {key!r} must be finite, got {priority!r}")
            rows[key] = value
        if not rows:
            return 0
        with self.database.transaction(write=True) as conn:
            statement = _dialect_insert(conn, work_items)
            newer = None
            if keep_higher_generations:
                newer = _generation(conn, work_items.c.priority) <= _generation(
                    conn, statement.excluded.priority
                )
            statement = statement.on_conflict_do_update(
                index_elements=[work_items.c.item_key],
                set_={"priority": statement.excluded.priority},
                where=newer,
            )
            # Rows in key order: two annotators upserting overlapping sets lock them in the
            # same order on PostgreSQL, so they wait for each other instead of deadlocking.
            conn.execute(statement, [{"item_key": k, "priority": rows[k]} for k in sorted(rows)])
        return len(rows)

    def claim(
        self,
        n: int,
        annotator: str | None = None,
        *,
        lease_seconds: float = 600.0,
        overlap: int = 1,
    ) -> list[str]:
        """Take up to ``n`` items from the team queue for one annotator.

        The annotator's own unexpired leases come back first (renewed), so a restarted
        kernel resumes where it was; then the highest-priority items that fewer than
        ``overlap`` annotators hold and this annotator has not labeled.

        Parameters
        ----------
        n : int
            Maximum number of items.
        annotator : str, optional
            Defaults to the store's annotator.
        lease_seconds : float
            How long the items stay reserved without a label. After that another
            annotator may take them (a label given later is still kept).
        overlap : int
            Number of distinct annotators each item should get (2 or more for
            agreement figures). Every annotator of a team should pass the same value.

        Returns
        -------
        list of str
            Item keys, highest priority first; empty when nothing is left to hand out.
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        if not isinstance(overlap, int) or overlap < 1:
            raise ValueError(f"overlap must be an int >= 1, got {overlap!r}")
        who = self.choose_annotator(annotator)
        self.lease_seconds = float(lease_seconds)
        if n == 0:
            return []
        with self.database.transaction(write=True) as conn:
            now = _db_now(conn)
            expires = now + lease_seconds
            own = (
                conn.execute(
                    select(assignments.c.item_key)
                    .join(work_items, work_items.c.item_key == assignments.c.item_key)
                    .where(
                        assignments.c.annotator == who,
                        assignments.c.state == "leased",
                        assignments.c.expires_at > now,
                    )
                    .order_by(work_items.c.priority.desc(), work_items.c.item_key)
                    .limit(n)
                )
                .scalars()
                .all()
            )
            claimed = list(own)
            if claimed:
                conn.execute(
                    update(assignments)
                    .where(assignments.c.annotator == who, assignments.c.item_key.in_(claimed))
                    .values(expires_at=expires)
                )
            examined = set(claimed)
            while len(claimed) < n:
                candidates = self._lock_candidates(
                    conn, who, now, overlap, examined, n - len(claimed)
                )
                if not candidates:
                    break
                examined.update(candidates)
                holders = self._holders(conn, candidates, now)
                granted = [
                    key
                    for key in candidates
                    if who not in holders.get(key, ()) and len(holders.get(key, ())) < overlap
                ]
                for key in granted:
                    self._upsert_assignment(conn, key, who, "leased", expires)
                claimed.extend(granted)
        return claimed

    @staticmethod
    def _lock_candidates(
        conn: Connection, who: str, now: float, overlap: int, examined: set[str], limit: int
    ) -> list[str]:
        """Lock up to ``limit`` items that look available, skipping rows others have locked.

        The availability filter may use a snapshot older than the lock; the caller
        re-counts holders afterwards.
        """
        holders = (
            select(func.count())
            .where(assignments.c.item_key == work_items.c.item_key, _live(now))
            .scalar_subquery()
        )
        mine = exists().where(
            assignments.c.item_key == work_items.c.item_key,
            assignments.c.annotator == who,
            _live(now),
        )
        query = (
            select(work_items.c.item_key)
            .where(holders < overlap, ~mine)
            .order_by(work_items.c.priority.desc(), work_items.c.item_key)
            .limit(limit)
            .with_for_update(skip_locked=True, of=work_items)
        )
        if examined:
            query = query.where(work_items.c.item_key.not_in(sorted(examined)))
        return list(conn.execute(query).scalars())

    @staticmethod
    def _holders(conn: Connection, keys: list[str], now: float) -> dict[str, set[str]]:
        rows = conn.execute(
            select(assignments.c.item_key, assignments.c.annotator).where(
                assignments.c.item_key.in_(keys), _live(now)
            )
        )
        found: dict[str, set[str]] = {}
        for key, who in rows:
            found.setdefault(key, set()).add(who)
        return found

    @staticmethod
    def _upsert_assignment(
        conn: Connection, key: str, who: str, state: str, expires: float | None
    ) -> None:
        statement = _dialect_insert(conn, assignments).values(
            item_key=key, annotator=who, state=state, expires_at=expires
        )
        statement = statement.on_conflict_do_update(
            index_elements=[assignments.c.item_key, assignments.c.annotator],
            set_={"state": state, "expires_at": expires},
        )
        conn.execute(statement)

    @staticmethod
    def mark_done(conn: Connection, labeled: list[tuple[str, str]]) -> None:
        """In the transaction that stores labels: the queued items among ``labeled``
        (item_key, annotator) now count as labeled by their annotators."""
        keys = sorted({key for key, _ in labeled})
        queued: set[str] = set()
        for start in range(0, len(keys), 500):  # bounded IN lists; sorted to lock in order
            chunk = keys[start : start + 500]
            queued.update(
                conn.execute(
                    select(work_items.c.item_key)
                    .where(work_items.c.item_key.in_(chunk))
                    .order_by(work_items.c.item_key)
                    .with_for_update()
                ).scalars()
            )
        done = [
            {"item_key": key, "annotator": who, "state": "done", "expires_at": None}
            for key, who in dict.fromkeys(labeled)
            if key in queued
        ]
        if done:
            statement = _dialect_insert(conn, assignments)
            statement = statement.on_conflict_do_update(
                index_elements=[assignments.c.item_key, assignments.c.annotator],
                set_={"state": statement.excluded.state, "expires_at": None},
            )
            conn.execute(statement, done)

    def reopen_assignment(self, conn: Connection, key: str, who: str) -> None:
        """In the transaction that undoes ``who``'s last label on ``key``: lease it again."""
        conn.execute(
            select(work_items.c.item_key).where(work_items.c.item_key == key).with_for_update()
        ).first()
        conn.execute(
            update(assignments)
            .where(
                assignments.c.item_key == key,
                assignments.c.annotator == who,
                assignments.c.state == "done",
            )
            .values(state="leased", expires_at=_db_now(conn) + self.lease_seconds)
        )

    def release(
        self, item_keys: Iterable[str] | None = None, *, annotator: str | None = None
    ) -> int:
        """Give back leased items (all of the annotator's leases by default).

        Returns
        -------
        int
            Number of leases released.
        """
        who = self.choose_annotator(annotator)
        condition = and_(assignments.c.annotator == who, assignments.c.state == "leased")
        if item_keys is not None:
            condition = and_(condition, assignments.c.item_key.in_(list(item_keys)))
        with self.database.transaction(write=True) as conn:
            return conn.execute(delete(assignments).where(condition)).rowcount

    def progress(self) -> dict[str, int]:
        """Counts of the team queue: items, live leases and labels per item."""
        with self.database.transaction(write=False) as conn:
            now = _db_now(conn)
            n_items = conn.execute(select(func.count()).select_from(work_items)).scalar_one()
            leases = conn.execute(
                select(func.count()).where(
                    assignments.c.state == "leased", assignments.c.expires_at > now
                )
            ).scalar_one()
            done_per_item = (
                select(assignments.c.item_key, func.count().label("n"))
                .where(assignments.c.state == "done")
                .group_by(assignments.c.item_key)
                .subquery()
            )
            histogram = dict(
                conn.execute(
                    select(done_per_item.c.n, func.count()).group_by(done_per_item.c.n)
                ).all()
            )
        labeled = sum(histogram.values())
        return {
            "items": n_items,
            "live_leases": leases,
            "unlabeled_items": n_items - labeled,
            **{f"items_with_{k}_labels": v for k, v in sorted(histogram.items())},
        }

    def _labels_by_annotator(self) -> dict[str, dict[str, str]]:
        with self.database.transaction(write=False) as conn:
            return labels_by_annotator(current_votes(conn))

    def agreement(self) -> AgreementReport:
        """Agreement between annotators on items several of them labeled.

        Returns
        -------
        AgreementReport
            Percent agreement per item and per annotator, Cohen's kappa per pair of
            annotators and Fleiss' kappa overall (None where undefined).
        """
        return agreement_report(self._labels_by_annotator())

    def conflicts(self) -> list[dict[str, object]]:
        """Items whose current labels from different annotators disagree, for review.

        Returns
        -------
        list of dict
            ``{"item_key", "labels": {annotator: label}, "majority_label"}`` per item
            (``majority_label`` None on a tie).
        """
        return conflicting_labels(self._labels_by_annotator())
