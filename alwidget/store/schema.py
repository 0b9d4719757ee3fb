"""Tables of the label store and the schema-version check.

The schema is written with SQLAlchemy Core so one definition serves SQLite and PostgreSQL.
Labels are an append-only event log (``label_events``): an undo is a row of its own that
points at the label it cancels, so nothing an annotator did is ever deleted.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

from .errors import NotAStoreError, SchemaVersionError

#: Version of the table layout written by this alwidget. Bump it together with an entry in
#: :data:`MIGRATIONS` whenever a table changes.
SCHEMA_VERSION = 2

metadata = MetaData()

meta = Table(
    "alwidget_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=True),
)

label_events = Table(
    "label_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_key", String, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("label", String, nullable=True),
    Column("annotator", String, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model_version", Integer, nullable=True),
    Column("strategy", String, nullable=True),
    Column("score", Float, nullable=True),
    Column("undoes_event_id", Integer, ForeignKey("label_events.id"), nullable=True),
    # A row is either a complete label or an undo that names what it undoes: the database
    # itself refuses anything in between.
    CheckConstraint(
        "(kind = 'label' AND label IS NOT NULL AND undoes_event_id IS NULL)"
        " OR (kind = 'undo' AND undoes_event_id IS NOT NULL)",
        name="label_event_complete",
    ),
    Index("ix_label_events_item_annotator", "item_key", "annotator"),
    Index("ix_label_events_undoes", "undoes_event_id", unique=True),
)

#: The ``label_events`` columns in the order :meth:`LabelRecord.from_row` unpacks them.
EVENT_COLUMNS = tuple(
    label_events.c[name]
    for name in (
        "id", "item_key", "kind", "label", "annotator", "created_at", "model_version",
        "strategy", "score", "undoes_event_id",
    )
)  # fmt: skip

rounds = Table(
    "rounds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
)

queue_items = Table(
    "queue_items",
    metadata,
    Column("annotator", String, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_key", String, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("n_members", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

# The team queue: the items to hand out, and who holds or has labeled each of them.
work_items = Table(
    "work_items",
    metadata,
    Column("item_key", String, primary_key=True),
    Column("priority", Float, nullable=False),
    Index("ix_work_items_priority", "priority", "item_key"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("item_key", String, ForeignKey("work_items.item_key"), primary_key=True),
    Column("annotator", String, primary_key=True),
    Column("state", String(8), nullable=False),
    # Seconds since the epoch on the database server's clock, so that annotators on machines
    # with skewed clocks agree on when a lease ends.
    Column("expires_at", Float, nullable=True),
    CheckConstraint("state IN ('leased', 'done')", name="assignment_state"),
)

# Cleaning decisions (schema version 2): a label changed after review, a suspect kept as it
# is, an item marked "not a class"; an undo is a row of its own, as in ``label_events``. A
# change also writes the new label into ``label_events`` (``label_event_id``), so every
# reader of labels sees it without knowing about this table.
cleaning_events = Table(
    "cleaning_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_key", String, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("annotator", String, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("from_label", String, nullable=True),
    Column("to_label", String, nullable=True),
    Column("label_event_id", Integer, ForeignKey("label_events.id"), nullable=True),
    Column("undoes_id", Integer, ForeignKey("cleaning_events.id"), nullable=True),
    Column("reason", Text, nullable=True),
    CheckConstraint(
        "(kind = 'change' AND to_label IS NOT NULL AND label_event_id IS NOT NULL)"
        " OR (kind = 'keep' AND from_label IS NOT NULL)"
        " OR kind = 'not_a_class'"
        " OR (kind = 'undo' AND undoes_id IS NOT NULL)",
        name="cleaning_event_complete",
    ),
    Index("ix_cleaning_events_item", "item_key"),
    Index("ix_cleaning_events_undoes", "undoes_id", unique=True),
)


def _add_cleaning_events(conn: Connection) -> None:
    cleaning_events.create(conn, checkfirst=True)


#: ``MIGRATIONS[v]`` upgrades a store from schema version ``v`` to ``v + 1`` inside the
#: caller's transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_cleaning_events}


def read_meta(conn: Connection) -> dict[str, str | None]:
    """Return the ``alwidget_meta`` table as a dict."""
    return {row.key: row.value for row in conn.execute(select(meta.c.key, meta.c.value))}


def write_meta(conn: Connection, key: str, value: str | None) -> None:
    """Insert or replace one ``alwidget_meta`` entry."""
    conn.execute(meta.delete().where(meta.c.key == key))
    conn.execute(meta.insert().values(key=key, value=value))


def ensure_schema(conn: Connection, store_name: str) -> bool:
    """Create the tables in an empty database, or check and migrate an existing store.

    Must run inside a write transaction so that two processes opening a new store at the
    same time do not both create it.

    Parameters
    ----------
    conn : Connection
        Connection with an open write transaction.
    store_name : str
        How to name the store in error messages (URL without password).

    Returns
    -------
    bool
        True if the store was created by this call.

    Raises
    ------
    NotAStoreError
        The database holds tables but no alwidget metadata.
    SchemaVersionError
        The store was written by a newer schema, or by an older one that cannot be migrated.
    """
    if conn.dialect.name == "postgresql":
        # Serialises concurrent first opens of one database; released at commit.
        conn.execute(text("SELECT pg_advisory_xact_lock(7412094361)"))
    existing = set(inspect(conn).get_table_names())
    if meta.name not in existing:
        if existing:
            shown = ", ".join(sorted(existing)[:5])
            raise NotAStoreError(
                f"{store_name} is a database with other tables ({shown}) but no alwidget "
                "metadata: it was not created by alwidget. Choose another file or database."
            )
        metadata.create_all(conn)
        write_meta(conn, "schema_version", str(SCHEMA_VERSION))
        return True
    stored = read_meta(conn).get("schema_version")
    try:
        version = int(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NotAStoreError(
            f"{store_name} has an alwidget_meta table without a valid schema_version "
            f"({stored!r}); it is damaged or was not written by alwidget."
        ) from None
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{store_name} uses store schema version {version}, but this alwidget only "
            f"understands versions up to {SCHEMA_VERSION}. Upgrade alwidget to open it "
            "(the store was left untouched)."
        )
    while version < SCHEMA_VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise SchemaVersionError(
                f"{store_name} uses store schema version {version}, older than this "
                f"alwidget's version {SCHEMA_VERSION}, and no migration from version "
                f"{version} exists. Export it with the alwidget that wrote it "
                "(store.export) and start a new store (the store was left untouched)."
            )
        migrate(conn)
        version += 1
        write_meta(conn, "schema_version", str(version))
    return False
