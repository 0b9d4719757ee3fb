"""Opening a store: creating it, or checking that an existing one fits the pool."""

from __future__ import annotations

import getpass
import re
from collections.abc import Collection, Sequence

from sqlalchemy import Connection, exc, make_url, text

from .connection import (
    create_store_engine,
    display_url,
    resolve_store_url,
    sqlite_file,
    translated_errors,
)
from .errors import StoreCorruptedError, StoreLocationError
from .label_log import store_classes
from .pool_binding import bind_pool
from .records import utc_now
from .schema import SCHEMA_VERSION, ensure_schema, write_meta
from .store import LabelStore

# The password of a URL (``scheme://user:password@host``), masked in messages even when the
# URL is too malformed for SQLAlchemy to mask it.
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


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
    former_fingerprints: Collection[str] = (),
    pool_classes: Sequence[str] | None = None,
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
        Identifies the pool (sessions use :attr:`alwidget.Pool.content_digest`). A new store
        records it; an existing store with another fingerprint is refused, so labels are
        never attached to the wrong items.
    classes : list of str, optional
        Allowed labels. Reopening may add classes but not drop one that is in use.
    annotator : str, optional
        Default annotator name (the login name if omitted).
    busy_timeout : float
        Seconds a SQLite write waits for another process's lock before raising
        :class:`StoreUnavailableError`.
    former_fingerprints : collection of str
        Fingerprints that older alwidget versions gave the same pool. An existing store
        recording one of them is accepted, re-recorded with ``pool_fingerprint`` and a
        :class:`PoolFingerprintWarning` is issued; later opens need ``pool_fingerprint``.
    pool_classes : list of str, optional
        The pool's own classes; a store matched by a former fingerprint whose classes share
        none of them holds another dataset's labels and is refused.

    Returns
    -------
    LabelStore

    Raises
    ------
    StoreLocationError
        ``url_or_path`` is a malformed or unsupported URL.
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
    try:
        url = resolve_store_url(url_or_path, pool_fingerprint)
        name = display_url(url)
        path = sqlite_file(make_url(url))
    except (exc.ArgumentError, ValueError, TypeError) as error:
        raise _location_error(url_or_path, error) from None
    who = default_annotator() if annotator is None else annotator
    if not isinstance(who, str) or not who:
        raise ValueError(f"annotator must be a non-empty string, not {who!r}")
    existed = path is not None and path.exists() and path.stat().st_size > 0
    try:
        with translated_errors(name):
            engine = create_store_engine(url, busy_timeout)
    except (exc.ArgumentError, ImportError) as error:  # e.g. a driver that is not installed
        raise _location_error(url_or_path, error) from None
    try:
        try:
            with translated_errors(name):
                first = engine.connect()
        except exc.ProgrammingError as error:  # the driver refused the URL's options
            raise _location_error(url_or_path, str(error.orig or error).strip()) from None
        with translated_errors(name), first as conn:
            if existed:
                with conn.begin():
                    _check_sqlite_integrity(conn, name)
            conn.execution_options(alwidget_write=True)
            with conn.begin():
                created = ensure_schema(conn, name)
                if created:
                    write_meta(conn, "created_at", utc_now().isoformat())
                binding = bind_pool(
                    conn, name, pool_fingerprint, former_fingerprints=former_fingerprints,
                    pool_classes=pool_classes,
                )  # fmt: skip
                active_classes = store_classes(
                    conn, None if classes is None else list(classes), name
                )
    except BaseException:
        engine.dispose()
        raise
    store = LabelStore(
        engine,
        name=name,
        annotator=who,
        pool_fingerprint=binding.fingerprint,
        classes=active_classes,
        created=created,
    )
    binding.warn(name)
    return store


def _location_error(store: object, error: Exception) -> StoreLocationError:
    shown = _PASSWORD.sub(r"\1***@", store) if isinstance(store, str) else store
    reason = _PASSWORD.sub(r"\1***@", str(error))
    return StoreLocationError(
        f"store={shown!r} names no label store alwidget can open ({reason}). Give a file "
        "path, 'sqlite:///labels.db', 'postgresql://user@host/dbname', or False for a "
        "store kept in memory."
    )


__all__ = ["open_store", "default_annotator", "store_classes", "SCHEMA_VERSION"]
