"""Durable storage of labels, history, queue and model checkpoints (SQLite or PostgreSQL).

>>> from alwidget.store import open_store
>>> store = open_store("sqlite:///labels.db", pool_fingerprint="ab12...", classes=["cat", "dog"])
>>> store.add_label("17", "cat", model_version=3, strategy="bald", score=0.82)

Every write is committed before the call returns. Labels are an append-only event log;
undo is an event too. A team of annotators can share one PostgreSQL store through
:meth:`LabelStore.enqueue` / :meth:`LabelStore.claim`.
"""

from .agreement import AgreementReport, cohen_kappa, fleiss_kappa
from .cleaning_log import CleaningRecord
from .connection import default_store_path, resolve_store_url
from .errors import (
    ClassMismatchError,
    ExportFileError,
    LabelConflictError,
    NotAStoreError,
    NothingToUndoError,
    PoolFingerprintWarning,
    PoolMismatchError,
    SchemaVersionError,
    StoreClosedError,
    StoreCorruptedError,
    StoreError,
    StoreLocationError,
    StoreUnavailableError,
)
from .export import read_export
from .opening import open_store
from .records import LabelRecord
from .schema import SCHEMA_VERSION
from .session_link import pool_fingerprint, rebind_store
from .store import LabelStore

__all__ = [
    "SCHEMA_VERSION",
    "AgreementReport",
    "CleaningRecord",
    "ClassMismatchError",
    "ExportFileError",
    "LabelConflictError",
    "LabelRecord",
    "LabelStore",
    "NotAStoreError",
    "NothingToUndoError",
    "PoolFingerprintWarning",
    "PoolMismatchError",
    "SchemaVersionError",
    "StoreClosedError",
    "StoreCorruptedError",
    "StoreError",
    "StoreLocationError",
    "StoreUnavailableError",
    "cohen_kappa",
    "default_store_path",
    "fleiss_kappa",
    "open_store",
    "pool_fingerprint",
    "read_export",
    "rebind_store",
    "resolve_store_url",
]
