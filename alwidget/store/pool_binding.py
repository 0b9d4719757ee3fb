"""Tying a store to one pool by the pool's fingerprint, so labels never land on other items.

A store records the fingerprint of the pool it was made for (``alwidget_meta``'s
``pool_fingerprint``) and every open compares it with the pool at hand. Sessions fingerprint
a pool by its content (:attr:`alwidget.Pool.content_digest`). Stores written before that
recorded a fingerprint of the pool's kind, size and ids only; such a store is accepted once
for a pool with those ids (a :class:`PoolFingerprintWarning` says so) and re-recorded with
the content fingerprint, so from then on it opens for that content only.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from .errors import PoolFingerprintWarning, PoolMismatchError
from .label_log import store_classes
from .records import utc_now
from .schema import label_events, read_meta, write_meta

#: ``alwidget_meta`` key keeping the fingerprint a store had before it was re-tied to a pool.
FORMER_KEY = "former_pool_fingerprint"


@dataclass(frozen=True)
class Binding:
    """The outcome of :func:`bind_pool`: the fingerprint now recorded, and what it replaced."""

    fingerprint: str | None
    upgraded_from: str | None = None

    def warn(self, store_name: str, stacklevel: int = 3) -> None:
        """Tell the user that a store of an older alwidget was tied to this pool's content."""
        if self.upgraded_from is None:
            return
        warnings.warn(
            PoolFingerprintWarning(
                f"{store_name} was written by an older alwidget that recorded only the pool's "
                "kind, size and ids; these match this pool, so its labels were resumed and "
                "the store now belongs to this pool's content. If it holds the labels of "
                "another dataset with the same ids, stop and restore the store from a backup: "
                "other pools will now be refused."
            ),
            stacklevel=stacklevel,
        )


def bind_pool(
    conn: Connection,
    store_name: str,
    fingerprint: str | None,
    *,
    former_fingerprints: Collection[str] = (),
    pool_classes: Sequence[str] | None = None,
) -> Binding:
    """Check that the store belongs to the pool with ``fingerprint`` and record it if new.

    Parameters
    ----------
    conn : Connection
        A connection in a write transaction.
    store_name : str
        The store's URL with any password masked, for messages.
    fingerprint : str or None
        The pool's fingerprint; None checks nothing.
    former_fingerprints : collection of str
        Fingerprints older alwidget versions gave this same pool. A store recording one is
        re-recorded with ``fingerprint`` (see :meth:`Binding.warn`).
    pool_classes : list of str, optional
        The pool's own classes. A store matched by a former fingerprint whose classes share
        none of them belongs to another dataset and is refused.

    Raises
    ------
    PoolMismatchError
        The store belongs to another pool.
    """
    stored = read_meta(conn).get("pool_fingerprint")
    if fingerprint is None:
        return Binding(stored)
    if stored == fingerprint:
        return Binding(fingerprint)
    if stored is None:
        write_meta(conn, "pool_fingerprint", fingerprint)
        return Binding(fingerprint)
    if stored not in former_fingerprints:
        raise PoolMismatchError(
            f"{store_name} belongs to a different pool (fingerprint {stored[:12]}…) than the "
            f"one given ({fingerprint[:12]}…): its labels would land on other items. Use the "
            "store made for this pool, or another store path. If this pool holds the very "
            "items the store was made for (say, their files were moved or copied), tie the "
            "store to it with alwidget.store.rebind_store(store, pool)."
        )
    stored_classes = store_classes(conn, None, store_name) or []
    if pool_classes and stored_classes and not set(stored_classes) & set(pool_classes):
        raise PoolMismatchError(
            f"{store_name} was written by an older alwidget for a pool with this pool's ids, "
            f"but its classes {stored_classes} share none of this pool's {list(pool_classes)}: "
            "it holds another dataset's labels. Use another store path (the default file "
            "name now depends on the pool's content)."
        )
    write_meta(conn, "pool_fingerprint", fingerprint)
    write_meta(conn, FORMER_KEY, f"{stored} replaced {utc_now().isoformat()}")
    return Binding(fingerprint, upgraded_from=stored)


def rebind_pool(
    conn: Connection, store_name: str, fingerprint: str, item_keys: Collection[str]
) -> str | None:
    """Tie the store to the pool with ``fingerprint`` whatever it recorded before.

    Every item the store holds a label event for must be among ``item_keys``, so no label
    is left pointing at an item the new pool lacks. Returns the fingerprint replaced.

    Raises
    ------
    PoolMismatchError
        The store holds labels of items that ``item_keys`` lacks.
    """
    keys = set(item_keys)
    labeled = conn.execute(select(label_events.c.item_key).distinct()).scalars()
    missing = sorted(key for key in labeled if key not in keys)
    if missing:
        raise PoolMismatchError(
            f"{store_name} holds labels of {len(missing)} items that are not in this pool "
            f"(e.g. {missing[:3]}), so it was not tied to it: it is another pool's store"
        )
    stored = read_meta(conn).get("pool_fingerprint")
    if stored != fingerprint:
        write_meta(conn, "pool_fingerprint", fingerprint)
        if stored is not None:
            write_meta(conn, FORMER_KEY, f"{stored} replaced {utc_now().isoformat()}")
    return stored
