"""Exceptions raised by the label store.

Every failure the widget has to show to a user is a subclass of :class:`StoreError`, so a
caller can catch one type and display its message.
"""

from __future__ import annotations

from ..errors import AlwidgetError


class StoreError(AlwidgetError):
    """Base class of every error raised by :mod:`alwidget.store`."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now (server down, file locked, disk error).

    The operation that raised it did not take effect: a label whose ``add_label`` call raised
    this error was not saved.
    """


class StoreClosedError(StoreError, RuntimeError):
    """The store was used after :meth:`~alwidget.store.LabelStore.close`.

    Also a :class:`RuntimeError`, which closed stores raised before this class existed.
    """


class StoreCorruptedError(StoreError):
    """The store's file exists but is not a readable database.

    Raised instead of silently creating a new, empty store over it.
    """


class NotAStoreError(StoreError):
    """The database is readable but was not created by alwidget."""


class SchemaVersionError(StoreError):
    """The store was written by a schema version this alwidget cannot use."""


class PoolMismatchError(StoreError):
    """The store belongs to a different pool of items than the one being resumed."""


class ClassMismatchError(StoreError):
    """The store holds labels that are not among the classes given when reopening it."""
