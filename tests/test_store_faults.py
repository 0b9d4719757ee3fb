"""Label store faults: damaged files, foreign databases, schema versions, wrong pools, locks,
unreachable servers. Each must give a clear error and leave the data untouched."""

from __future__ import annotations

import hashlib
import io
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
from sqlalchemy import create_engine, text

import alwidget.store.schema as schema
from alwidget.store import (
    NotAStoreError,
    PoolMismatchError,
    SchemaVersionError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
    open_store,
)

CLASSES = ["cat", "dog"]
FINGERPRINT = "abcdef0123456789"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def filled_store(path, n: int = 300) -> None:
    with open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        for i in range(n):
            store.add_label(str(i), CLASSES[i % 2], strategy="entropy" * 20, score=i / n)


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "labels.db"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(StoreCorruptedError, match="not a SQLite database"):
        open_store(path, pool_fingerprint=FINGERPRINT)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.db"]


def test_damaged_pages_are_detected_at_open(tmp_path):
    path = tmp_path / "labels.db"
    filled_store(path)
    page_size = 4096
    assert path.stat().st_size > 6 * page_size
    with open(path, "r+b") as handle:  # wipe the b-tree pages after the schema page
        handle.seek(page_size)
        handle.write(b"\xff" * (4 * page_size))
    before = digest(path)
    with pytest.raises(StoreCorruptedError, match="damaged"):
        open_store(path, pool_fingerprint=FINGERPRINT)
    assert digest(path) == before


def test_a_truncated_file_is_detected(tmp_path):
    path = tmp_path / "labels.db"
    filled_store(path)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(StoreCorruptedError):
        open_store(path, pool_fingerprint=FINGERPRINT)


def test_a_foreign_database_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    with pytest.raises(NotAStoreError, match="invoices"):
        open_store(path, pool_fingerprint=FINGERPRINT)
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["invoices"]


def _set_schema_version(url: str, version: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE alwidget_meta SET value = :v WHERE key = 'schema_version'"),
            {"v": str(version)},
        )
    engine.dispose()


def test_a_store_from_a_newer_schema_names_both_versions(store_url):
    open_store(store_url, pool_fingerprint=FINGERPRINT).close()
    newer = schema.SCHEMA_VERSION + 1
    _set_schema_version(store_url, newer)
    with pytest.raises(SchemaVersionError) as caught:
        open_store(store_url, pool_fingerprint=FINGERPRINT)
    message = str(caught.value)
    assert f"version {newer}" in message and f"up to {schema.SCHEMA_VERSION}" in message
    assert "Upgrade alwidget" in message


def test_an_older_schema_without_migration_is_explained(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    _set_schema_version(url, 0)
    with pytest.raises(SchemaVersionError, match="version 0, older than .* no migration"):
        open_store(url)


def test_an_older_schema_is_migrated_in_place(tmp_path, monkeypatch):
    path = tmp_path / "v1.db"
    filled_store(path, n=5)

    def add_review_table(conn):
        conn.execute(text("CREATE TABLE reviews (item_key TEXT PRIMARY KEY, note TEXT)"))

    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(schema, "MIGRATIONS", {**schema.MIGRATIONS, current: add_review_table})
    with open_store(path, pool_fingerprint=FINGERPRINT) as store:
        assert len(store.current_labels()) == 5
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM alwidget_meta WHERE key='schema_version'")
        assert version.fetchone()[0] == str(current + 1)
        conn.execute("SELECT * FROM reviews").fetchall()


def test_a_store_of_another_pool_is_refused(store_url):
    with open_store(store_url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        store.add_label("1", "cat")
    with pytest.raises(PoolMismatchError, match="different pool") as caught:
        open_store(store_url, pool_fingerprint="ffff000011112222", classes=CLASSES)
    assert FINGERPRINT[:12] in str(caught.value) and "ffff00001111" in str(caught.value)
    with open_store(store_url, pool_fingerprint=FINGERPRINT) as store:
        assert store.current_labels() == {"1": "cat"}


def test_a_locked_sqlite_store_raises_and_the_label_is_not_saved(tmp_path):
    path = tmp_path / "labels.db"
    store = open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES, busy_timeout=0.3)
    store.add_label("1", "cat")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="locked by another process"):
        store.add_label("2", "dog")
    assert 0.25 < time.monotonic() - started < 5
    blocker.execute("ROLLBACK")
    blocker.close()
    assert store.current_labels() == {"1": "cat"}
    store.add_label("2", "dog")
    assert store.current_labels() == {"1": "cat", "2": "dog"}
    store.close()


def test_a_missing_folder_is_reported(tmp_path):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        open_store(tmp_path / "no" / "such" / "labels.db")


def test_an_unreachable_postgresql_server_is_reported_quickly():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unavailable") as caught:
        open_store(f"postgresql://someone:secret@127.0.0.1:{port}/labels")
    assert time.monotonic() - started < 10
    assert "secret" not in str(caught.value) and "***" in str(caught.value)
    assert isinstance(caught.value, StoreError)


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_reported(postgres_server):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        open_store(postgres_server.url("no_such_database"))


@pytest.mark.postgres
def test_a_dropped_connection_is_replaced_transparently(postgres_url):
    import psycopg

    with open_store(postgres_url, classes=CLASSES) as store:
        store.add_label("1", "cat")
        admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        assert killed >= 1
        store.add_label("2", "dog")
        assert store.current_labels() == {"1": "cat", "2": "dog"}


def test_a_tampered_checkpoint_is_not_unpickled(tmp_path):
    path = tmp_path / "labels.db"
    with open_store(path) as store:
        store.save_checkpoint(1, [{"w": torch.ones(2)}])
    buffer = io.BytesIO()
    torch.save([{"w": torch.ones(2), "evil": Exception("arbitrary object")}], buffer)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE checkpoints SET payload = ?", (buffer.getvalue(),))
    with open_store(path) as store:
        with pytest.raises(StoreCorruptedError, match="weights_only"):
            store.load_checkpoint()


def test_a_second_handle_in_one_process_keeps_its_labels_when_another_process_closes(tmp_path):
    """SQLite's locks are POSIX record locks, which the kernel drops for the whole process when
    any descriptor of the file closes. Opening a second handle must not touch the file outside
    SQLite: else the next process to close believes it is the last, checkpoints and deletes
    the write-ahead log, and this process's later commits go to a deleted file that no other
    process reads (seen as labels missing from a team's store, session 13)."""

    def teammate(*code_lines) -> str:
        code = "\n".join(
            [
                "import sys; from alwidget.store import open_store",
                "with open_store(sys.argv[1], pool_fingerprint=sys.argv[2]) as store:",
                *(f"    {line}" for line in code_lines),
            ]
        )
        command = [sys.executable, "-c", code, str(path), FINGERPRINT]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    path = tmp_path / "labels.db"
    keeper = open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES)
    keeper.add_label("before", "cat")
    observer = open_store(path, pool_fingerprint=FINGERPRINT, classes=CLASSES)
    assert observer.current_labels() == {"before": "cat"}
    teammate("store.add_label('teammate', 'dog', annotator='bob')")
    keeper.add_label("after", "dog")  # committed after the teammate's process closed the file
    seen = teammate("print(sorted(store.current_labels()))")
    assert seen.strip() == "['after', 'before', 'teammate']"
    keeper.close()
    observer.close()
    with open_store(path, pool_fingerprint=FINGERPRINT) as store:
        assert store.current_labels() == {"before": "cat", "teammate": "dog", "after": "dog"}
