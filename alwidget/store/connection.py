"""Turning a user's ``store=`` argument into a configured SQLAlchemy engine.

Also maps driver exceptions onto the store's own error types, so the widget can show
"store locked" or "server unreachable" instead of a driver traceback.

Every wait on a PostgreSQL server is bounded (see :mod:`alwidget.store.deadline`): by
``?alwidget_timeout=SECONDS`` in the store URL, else ``$ALWIDGET_STORE_TIMEOUT``, else
:data:`DEFAULT_TIMEOUT`.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from ..errors import InvalidArgumentError
from .deadline import COMMIT, Expiry, expired_deadline, install_deadlines
from .errors import StoreCorruptedError, StoreError, StoreTimeoutError, StoreUnavailableError

MEMORY_URL = "sqlite://"
# Messages (lower case) by which SQLite reports a damaged file rather than a busy one.
_CORRUPTION_MARKERS = ("file is not a database", "malformed", "file is encrypted")
_BUSY_MARKERS = ("database is locked", "database table is locked", "busy")

#: URL query parameter with the longest wait, in seconds, for one answer of the server.
TIMEOUT_PARAMETER = "alwidget_timeout"
#: Environment variable used when the URL does not set the timeout.
TIMEOUT_ENV = "ALWIDGET_STORE_TIMEOUT"
#: Seconds a PostgreSQL store waits for an answer when nothing else is set. Far above a
#: healthy round trip, even a checkpoint upload; far below "hangs for ever".
DEFAULT_TIMEOUT = 30.0
# libpq's and psycopg's floor for connect_timeout.
_MIN_CONNECT_TIMEOUT = 2


def default_store_path(
    pool_fingerprint: str | None, directory: str | os.PathLike | None = None
) -> Path:
    """Where a session keeps its labels when the user names no store.

    Parameters
    ----------
    pool_fingerprint : str or None
        Fingerprint of the pool; its first 8 characters make the file name, so different
        pools in one directory get different files and reopening a pool finds its labels.
    directory : path-like, optional
        Folder for the file; the current directory (a notebook's own folder) by default.

    Returns
    -------
    Path
        ``<directory>/alwidget-<fingerprint[:8]>.db`` (``alwidget-labels.db`` without one).
    """
    name = f"alwidget-{pool_fingerprint[:8]}.db" if pool_fingerprint else "alwidget-labels.db"
    return Path(directory if directory is not None else os.getcwd()).resolve() / name


def resolve_store_url(store: object, pool_fingerprint: str | None = None) -> str:
    """Normalise the ``store=`` argument a user passes to a session.

    Parameters
    ----------
    store : None, False, str or path-like
        ``None``: a SQLite file from :func:`default_store_path`. ``False`` or
        ``":memory:"``: an in-memory SQLite store that is lost when the process ends.
        A string containing ``"://"``: a SQLAlchemy URL (``sqlite:///labels.db``,
        ``postgresql://user@host/db``). Anything else: the path of a SQLite file.
    pool_fingerprint : str, optional
        Used to name the default file.

    Returns
    -------
    str
        A SQLAlchemy URL.
    """
    if store is None:
        return f"sqlite:///{default_store_path(pool_fingerprint)}"
    if store is False or store == ":memory:":
        return MEMORY_URL
    if isinstance(store, str) and "://" in store:
        url = make_url(store)
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported store URL {url.render_as_string(hide_password=True)!r}: "
                "alwidget stores labels in SQLite (sqlite:///path.db) or PostgreSQL "
                "(postgresql://user@host/dbname)"
            )
        if url.drivername == "postgresql":
            # SQLAlchemy 2.0 maps plain postgresql:// to psycopg2, which alwidget does not
            # install; an explicitly named driver is left alone.
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    if isinstance(store, (str, os.PathLike)):
        return f"sqlite:///{Path(store).expanduser().resolve()}"
    raise TypeError(
        f"store must be None, False, a path or a database URL string, not {type(store).__name__}"
    )


def display_url(url: str) -> str:
    """The URL with its password masked, for error messages."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def check_sqlite_file(path: Path) -> None:
    """Refuse a store path whose folder does not exist, before SQLite creates anything.

    The file itself is never opened here. SQLite's locks are POSIX record locks, and the
    kernel drops all of a process's locks on a file when any descriptor of that file closes:
    reading the header while this process already has the store open would let another
    process take itself for the last user, checkpoint and delete the write-ahead log, and
    this process's later commits would go to a deleted file. SQLite refuses a file that is
    not a database on its own, without writing to it (see :func:`classify_error`).
    """
    if not path.parent.is_dir():
        raise StoreUnavailableError(
            f"cannot create the label store {path}: the folder {path.parent} does not exist"
        )


def _positive_seconds(value: object, source: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(
            f"{source} must be a positive number of seconds, not {value!r}; for example "
            f"postgresql://user@host/db?{TIMEOUT_PARAMETER}=10"
        )
    return seconds


def store_timeout(url: str | URL, timeout: float | None = None) -> float:
    """The longest wait, in seconds, for one answer of a PostgreSQL store's server.

    Parameters
    ----------
    url : str or URL
        The store URL; its ``alwidget_timeout`` query parameter is used when ``timeout``
        is None.
    timeout : float, optional
        Wins over the URL. Without either, ``$ALWIDGET_STORE_TIMEOUT``, else
        :data:`DEFAULT_TIMEOUT`.

    Returns
    -------
    float

    Raises
    ------
    InvalidArgumentError
        The value is not a positive, finite number.
    """
    if timeout is not None:
        return _positive_seconds(timeout, "timeout")
    value = make_url(url).query.get(TIMEOUT_PARAMETER)
    if isinstance(value, tuple):
        raise InvalidArgumentError(
            f"{TIMEOUT_PARAMETER} appears {len(value)} times in the store URL; give it once"
        )
    if value is not None:
        return _positive_seconds(value, f"{TIMEOUT_PARAMETER} in the store URL")
    from_env = os.environ.get(TIMEOUT_ENV, "").strip()
    if from_env:
        return _positive_seconds(from_env, f"${TIMEOUT_ENV}")
    return DEFAULT_TIMEOUT


def create_store_engine(url: str, busy_timeout: float, timeout: float | None = None) -> Engine:
    """Create an engine configured for durable, concurrent label writes.

    SQLite gets WAL mode (readers never block the writer), ``synchronous=FULL`` (a
    committed label survives a power cut, not only a crash), foreign keys, a busy
    timeout, and explicit ``BEGIN IMMEDIATE`` for write transactions so that two
    processes never both read and then fail to upgrade to a write lock.
    PostgreSQL gets psycopg 3 and a bound on every wait for the server (connecting,
    pinging a pooled connection, each statement, the commit): a stopped or unreachable
    server makes an operation fail with :class:`StoreTimeoutError` instead of hanging, and
    the dropped connection is replaced once the server answers again.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, as from :func:`resolve_store_url`. An ``alwidget_timeout`` query
        parameter is alwidget's, not the driver's: for SQLite it replaces ``busy_timeout``.
    busy_timeout : float
        Seconds a SQLite write waits for another process's lock.
    timeout : float, optional
        PostgreSQL: longest wait for one answer of the server (see :func:`store_timeout`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        seconds = store_timeout(parsed, timeout)
        parsed = parsed.difference_update_query([TIMEOUT_PARAMETER])
        connect_args = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = max(_MIN_CONNECT_TIMEOUT, math.ceil(seconds))
        engine = create_engine(parsed, connect_args=connect_args)
        install_deadlines(engine, seconds)
        return engine
    if TIMEOUT_PARAMETER in parsed.query:
        busy_timeout = store_timeout(parsed)
        parsed = parsed.difference_update_query([TIMEOUT_PARAMETER])
    path = sqlite_file(parsed)
    if path is None:
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        check_sqlite_file(path)
        engine = create_engine(
            parsed, connect_args={"timeout": busy_timeout, "check_same_thread": False}
        )
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection, _record):
        # Take transaction control away from the sqlite3 module; we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if path is not None:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        mode = "IMMEDIATE" if conn.get_execution_options().get("alwidget_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _driver_message(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    message = str(orig).strip()
    return message.splitlines()[0] if message else type(orig).__name__


def classify_error(error: BaseException, store_name: str) -> StoreError | None:
    """Map a driver or SQLAlchemy exception to a store error, or None to re-raise it as is.

    Programming errors (constraint violations, SQL errors) are not mapped: they are bugs,
    not conditions for the user to fix.
    """
    message = _driver_message(error)
    lowered = message.lower()
    if "file is not a database" in lowered:
        return StoreCorruptedError(
            f"the file of the label store {store_name} is not a SQLite database ({message}); "
            "refusing to use it as a label store; this call wrote nothing to it. Restore it "
            "from a backup or choose another path."
        )
    if any(marker in lowered for marker in _CORRUPTION_MARKERS):
        return StoreCorruptedError(
            f"the label store {store_name} is damaged ({message}); refusing to use it. "
            "Restore it from a backup or choose another path."
        )
    if isinstance(error, exc.TimeoutError) or any(m in lowered for m in _BUSY_MARKERS):
        return StoreUnavailableError(
            f"the label store {store_name} is locked by another process and stayed locked "
            f"past the busy timeout ({message}); the operation was not saved, try again."
        )
    orig = getattr(error, "orig", error)
    is_connection_problem = (
        isinstance(error, (exc.OperationalError, exc.InterfaceError))
        or getattr(error, "connection_invalidated", False)
        or isinstance(orig, (sqlite3.OperationalError, OSError))
        or type(orig).__name__ in ("OperationalError", "InterfaceError")
    )
    if is_connection_problem:
        return StoreUnavailableError(
            f"the label store {store_name} is unavailable ({message}); the operation was not saved."
        )
    if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.IntegrityError):
        return StoreCorruptedError(f"the label store {store_name} cannot be read ({message}).")
    return None


def timeout_error(store_name: str, expiry: Expiry) -> StoreTimeoutError:
    """The error for an operation whose wait on the server outlasted the store's timeout."""
    in_doubt = expiry.phase == COMMIT
    limit = f"{expiry.seconds:g} s"
    setting = f"the limit is set by ?{TIMEOUT_PARAMETER}=SECONDS in the store URL or ${TIMEOUT_ENV}"
    if in_doubt:
        message = (
            f"the label store {store_name} stopped answering for {limit} while committing, "
            "so the connection was dropped. The write was saved in full or not at all (never "
            "in part); which one is known only once the server answers again, so check "
            f"before repeating it ({setting})."
        )
    else:
        message = (
            f"the label store {store_name} did not answer within {limit} (the server is "
            "stopped, overloaded or unreachable), so the connection was dropped and the "
            f"operation was not saved. Try again once the server answers ({setting})."
        )
    return StoreTimeoutError(message, timeout=expiry.seconds, commit_in_doubt=in_doubt)


def _is_driver_error(error: BaseException) -> bool:
    if isinstance(error, (exc.DBAPIError, exc.TimeoutError, sqlite3.Error, OSError)):
        return True
    # psycopg raises its own exception types from connect(); match them by module name
    # so this module does not import psycopg for SQLite users.
    return type(error).__module__.startswith("psycopg")


@contextmanager
def translated_errors(store_name: str) -> Iterator[None]:
    """Re-raise driver exceptions inside the block as :class:`StoreError` subclasses."""
    try:
        yield
    except StoreError:
        raise
    except Exception as error:
        if not _is_driver_error(error):
            raise
        # Whatever the driver says ("server closed the connection"), a connection whose
        # deadline fired was cut by us because the server kept silent.
        expired = expired_deadline()
        if expired is not None:
            raise timeout_error(store_name, expired) from error
        mapped = classify_error(error, store_name)
        if mapped is None:
            raise
        raise mapped from error
