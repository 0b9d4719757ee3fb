"""Opening a store: creating it, or checking that an existing one fits the pool."""

from __future__ import annotations

import getpass
from collections.abc import Sequence

from sqlalchemy import Connection, make_url, text

from .connection import (
    create_store_engine,
    display_url,
    resolve_store_url,
    sqlite_file,
    translated_errors,
)
from .errors import PoolMismatchError, StoreCorruptedError
from .label_log import store_classes
from .records import utc_now
from .schema import SCHEMA_VERSION, ensure_schema, read_meta, write_meta
from .store import LabelStore


def default_annotator() -> str:
    """The login name of the current user, or ``"annotator"`` when there is none."""
    try:
        return getpass.getuser() or "annotator"
    except (KeyError, OSError):  # containers without a passwd entry
        return "annotator"


def _check_sqlite_integrity(conn: Connection, store_name: str) -> None:
    problems = [row[0] for row in conn.execute(text("PRAGMA quick_check"))]
    if problems != ["ok"]:
        raise StoreCorruptedError(
            f"the label store {store_name} is damaged (SQLite integrity check: "
            f"{'; '.join(problems[:3])}); refusing to use it. Restore it from a backup."
        )


def open_store(
    url_or_path: object = None,
    pool_fingerprint: str | None = None,
    classes: Sequence[str] | None = None,
    annotator: str | None = None,
    *,
    busy_timeout: float = 10.0,
) -> LabelStore:
    """Open the label store of a pool, creating it if it does not exist yet.

    Parameters
    ----------
    url_or_path : None, False, str or path-like
        ``"sqlite:///labels.db"``, a bare file path (SQLite),
        ``"postgresql://user:pw@host/db"`` (psycopg 3 is used), ``False`` or
        ``":memory:"`` for a throwaway in-memory store, or None for the default file
        ``./alwidget-<fingerprint[:8]>.db``.
    pool_fingerprint : str, optional
        Identifies the pool. A new store records it; an existing store with another
        fingerprint is refused, so labels are never attached to the wrong items.
    classes : list of str, optional
        Allowed labels. Reopening may add classes but not drop one that is in use.
    annotator : str, optional
        Default annotator name (the login name if omitted).
    busy_timeout : float
        Seconds a SQLite write waits for another process's lock before raising
        :class:`StoreUnavailableError`.

    Returns
    -------
    LabelStore

    Raises
    ------
    StoreUnavailableError
        The server cannot be reached, or the file is locked or cannot be created.
    StoreCorruptedError
        The file exists but is not a readable SQLite database.
    NotAStoreError
        The database holds other tables and was not created by alwidget.
    SchemaVersionError
        The store was written by an incompatible alwidget version.
    PoolMismatchError
        The store belongs to another pool.
    ClassMismatchError
        The store holds labels outside ``classes``.
    """
    url = resolve_store_url(url_or_path, pool_fingerprint)
    name = display_url(url)
    who = default_annotator() if annotator is None else annotator
    if not isinstance(who, str) or not who:
        raise ValueError(f"annotator must be a non-empty string, not {who!r}")
    path = sqlite_file(make_url(url))
    existed = path is not None and path.exists() and path.stat().st_size > 0
    with translated_errors(name):
        engine = create_store_engine(url, busy_timeout)
    try:
        with translated_errors(name), engine.connect() as conn:
            if existed:
                with conn.begin():
                    _check_sqlite_integrity(conn, name)
            conn.execution_options(alwidget_write=True)
            with conn.begin():
                created = ensure_schema(conn, name)
                meta = read_meta(conn)
                stored_fingerprint = meta.get("pool_fingerprint")
                if (
                    pool_fingerprint is not None
                    and stored_fingerprint is not None
                    and stored_fingerprint != pool_fingerprint
                ):
                    raise PoolMismatchError(
                        f"{name} belongs to a different pool (fingerprint "
                        f"{stored_fingerprint[:12]}…) than the one given "
                        f"({pool_fingerprint[:12]}…). Use the pool it was made for, or "
                        "another store path."
                    )
                if created:
                    write_meta(conn, "created_at", utc_now().isoformat())
                if stored_fingerprint is None and pool_fingerprint is not None:
                    write_meta(conn, "pool_fingerprint", pool_fingerprint)
                    stored_fingerprint = pool_fingerprint
                active_classes = store_classes(
                    conn, None if classes is None else list(classes), name
                )
    except BaseException:
        engine.dispose()
        raise
    return LabelStore(
        engine,
        name=name,
        annotator=who,
        pool_fingerprint=stored_fingerprint,
        classes=active_classes,
        created=created,
    )


__all__ = ["open_store", "default_annotator", "store_classes", "SCHEMA_VERSION"]
