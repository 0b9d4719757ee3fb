"""Exceptions raised by the label store.

Every failure the widget has to show to a user is a subclass of :class:`StoreError`, so a
caller can catch one type and display its message.
"""

from __future__ import annotations

from ..errors import AlreadyLabeledError, AlwidgetError, NotLabeledError


class StoreError(AlwidgetError):
    """Base class of every error raised by :mod:`alwidget.store`."""


class StoreLocationError(StoreError, ValueError):
    """The ``store=`` argument names no database alwidget can use (a malformed or unsupported
    URL). Nothing was opened or created."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now (server down, file locked, disk error).

    The operation that raised it did not take effect: a label whose ``add_label`` call raised
    this error was not saved. The one exception is a :class:`StoreTimeoutError` whose
    ``commit_in_doubt`` is True.
    """


class StoreTimeoutError(StoreUnavailableError):
    """A PostgreSQL server did not answer within the store's timeout.

    The server may be stopped, overloaded or cut off by the network; alwidget dropped the
    connection instead of waiting for ever, and the next operation opens a new one. Set the
    limit with ``?alwidget_timeout=SECONDS`` in the store URL or ``$ALWIDGET_STORE_TIMEOUT``.

    Parameters
    ----------
    message : str
        What failed and what to do.
    timeout : float
        The limit that was exceeded, in seconds.
    commit_in_doubt : bool
        True when the server stopped answering after it had been asked to commit. The
        write was then saved either in full or not at all (never in part), and which of
        the two is only known once the server answers again. False: nothing was saved.

    Attributes
    ----------
    timeout : float
    commit_in_doubt : bool
    """

    def __init__(self, message: str, *, timeout: float, commit_in_doubt: bool = False):
        super().__init__(message)
        self.timeout = timeout
        self.commit_in_doubt = commit_in_doubt

    def __reduce__(self):
        # Keyword-only arguments are not in self.args, which default pickling replays.
        return (_rebuild_timeout_error, (str(self), self.timeout, self.commit_in_doubt))


def _rebuild_timeout_error(message: str, timeout: float, commit_in_doubt: bool):
    return StoreTimeoutError(message, timeout=timeout, commit_in_doubt=commit_in_doubt)


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


class ExportFileError(StoreError, ValueError):
    """A file given to :func:`~alwidget.store.read_export` is not a readable label export."""


class PoolMismatchError(StoreError):
    """The store belongs to a different pool of items than the one being resumed."""


class PoolFingerprintWarning(UserWarning):
    """A store written before pools were fingerprinted by content was tied to this pool.

    Such a store recorded only the pool's kind, size and ids, so it cannot tell which of
    two same-size pools it belongs to; the first pool that opens it claims it.
    """


class LabelConflictError(StoreError, AlreadyLabeledError):
    """A label was refused because the store already holds one for that item (or, in team
    mode, from that annotator): another session on the same store got there first.

    Attributes
    ----------
    votes : dict
        ``{item_key: {annotator: (event_id, label)}}``: every current label of the items
        in conflict, so the session can show what the store holds.
    """

    def __init__(self, message: str, votes: dict[str, dict[str, tuple[int, str]]]) -> None:
        super().__init__(message)
        self.votes = votes

    def __reduce__(self):
        # Default pickling replays self.args, which lacks the votes.
        return (type(self), (str(self), self.votes))


class NothingToUndoError(StoreError, NotLabeledError, LookupError):
    """An undo found no label of that annotator on the item, or the label it was to undo
    was already undone (e.g. by another session on the same store). Nothing was written.

    Also a :class:`LookupError`, which the store raised before this class existed.
    """


class ClassMismatchError(StoreError):
    """The store holds labels that are not among the classes given when reopening it."""
