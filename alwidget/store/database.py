"""One store's database: its engine, the lock that serialises its users, and transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from .connection import sqlite_file, translated_errors
from .errors import StoreClosedError


class Database:
    """The engine behind a :class:`~alwidget.store.LabelStore`, shared by its parts.

    Parameters
    ----------
    engine : Engine
        Configured by :func:`~alwidget.store.connection.create_store_engine`.
    name : str
        The store's URL with any password masked, for error messages.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.name = name
        self._engine = engine
        # Re-entrant: a session's training thread and the widget share one store.
        self._lock = threading.RLock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def is_shared(self) -> bool:
        """Whether other processes can open this database (False for an in-memory one)."""
        url = self._engine.url
        return url.get_backend_name() != "sqlite" or sqlite_file(url) is not None

    def close(self) -> None:
        """Release the connections; later transactions raise :class:`StoreClosedError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._engine.dispose()

    @contextmanager
    def transaction(self, write: bool) -> Iterator[Connection]:
        """One transaction, committed when the block ends, with driver errors translated.

        Parameters
        ----------
        write : bool
            True for a transaction that writes; SQLite then takes the write lock at its
            start, so two writers never both read and then fail to upgrade.

        Raises
        ------
        StoreError
            A subclass naming what failed, instead of the driver's exception.
        """
        with self._lock:
            if self._closed:
                raise StoreClosedError(
                    f"the label store {self.name} is closed; open it again with open_store()"
                )
            with translated_errors(self.name), self._engine.connect() as conn:
                if write:
                    conn.execution_options(alwidget_write=True)
                with conn.begin():
                    yield conn
