"""A PostgreSQL server that stops answering (SIGSTOP) while a session labels.

A stopped server keeps its TCP connections open and never replies, which used to hang
``label()`` for ever. Now every wait on the server is bounded by the store's timeout: the
call fails with :class:`StoreTimeoutError`, nothing is half-written, and after SIGCONT the
same store, session and widget carry on.

These tests stop a server of their own (not the shared ``postgres_server``), and run each
blocking call in a thread with a deadline, so that a regression fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer, _admin, find_postgres_bindir
from fixtures.requirements import dependency_missing
from fixtures.widget_sessions import Gate, gated_session
from sqlalchemy import Engine, event

import alwidget as al
from alwidget.errors import InvalidArgumentError
from alwidget.store import StoreUnavailableError, open_store
from alwidget.store.connection import DEFAULT_TIMEOUT, TIMEOUT_ENV, store_timeout
from alwidget.store.errors import LabelConflictError, StoreTimeoutError

pytestmark = pytest.mark.postgres

CLASSES = ["cat", "dog"]
FINGERPRINT = "freeze-test-0123456789"
TIMEOUT = 2.0
# Room for scheduling on a loaded two-core machine; far below "hangs".
SLACK = 2.5


class PausableServer:
    """A throwaway PostgreSQL cluster whose processes the test can stop and continue."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.paused_now = False

    def _postmaster(self) -> int:
        return int((self.server.data / "postmaster.pid").read_text().split()[0])

    def _children(self, parent: int) -> list[int]:
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # Field 4 (after the parenthesised command name) is the parent's pid.
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(entry.name))
        return children

    def pause(self) -> None:
        """SIGSTOP the postmaster first (so it forks no new backend), then every child."""
        postmaster = self._postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        for pid in self._children(postmaster):
            os.kill(pid, signal.SIGSTOP)
        self.paused_now = True

    def resume(self) -> None:
        if not self.paused_now:
            return
        postmaster = self._postmaster()
        for pid in self._children(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)
        self.paused_now = False

    @contextlib.contextmanager
    def paused(self):
        """Paused inside the block (unless a hook pauses it later); always continued after."""
        try:
            yield self
        finally:
            self.resume()

    def url(self, database: str) -> str:
        return self.server.url(database)


@pytest.fixture(scope="module")
def pausable_server():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        dependency_missing("psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = find_postgres_bindir()
    if bindir is None:
        dependency_missing("PostgreSQL server binaries not found; run scripts/install-postgres.sh")
    server = PostgresServer(bindir)
    pausable = PausableServer(server)
    try:
        server.start()
        yield pausable
    finally:
        pausable.resume()
        server.stop()


@pytest.fixture
def database(pausable_server):
    """Name of a new, empty database on the pausable server, dropped after the test."""
    name = f"alwidget_freeze_{uuid.uuid4().hex[:12]}"
    _admin(pausable_server.server, f'CREATE DATABASE "{name}"')
    yield name
    pausable_server.resume()
    _admin(pausable_server.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def call_within(limit: float, function, *args):
    """Run ``function(*args)`` in a thread; fail the test if it has not returned by ``limit``.

    Returns
    -------
    (seconds, result, error)
    """
    outcome: dict = {}

    def run():
        started = time.monotonic()
        try:
            outcome["result"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} still blocked after {limit:g} s")
    return outcome["seconds"], outcome.get("result"), outcome.get("error")


@contextlib.contextmanager
def pause_when(server: PausableServer, database: str, phase: str):
    """Pause the server at the moment one of ``database``'s connections sends an INSERT
    (``"statement"``) or a COMMIT (``"commit"``): the request reaches a server that will
    not answer."""

    def on_statement(conn, _cursor, statement, *_args):
        if conn.engine.url.database == database and statement.lstrip().startswith("INSERT"):
            if not server.paused_now:
                server.pause()

    def on_commit(conn):
        if conn.engine.url.database == database and not server.paused_now:
            server.pause()

    name, hook = ("before_cursor_execute", on_statement)
    if phase == "commit":
        name, hook = ("commit", on_commit)
    event.listen(Engine, name, hook)
    try:
        yield
    finally:
        event.remove(Engine, name, hook)


def wait_for_other_backends_to_end(server: PausableServer, database: str) -> None:
    """Wait until every backend of ``database`` whose client is gone has finished, so that
    what the dropped connection had sent is either committed or rolled back."""
    import psycopg

    conninfo = server.url(database).replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + 20
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if others == 0:
                return
            time.sleep(0.05)
    pytest.fail("the dropped connection's backend did not end within 20 s of SIGCONT")


def label_events(store) -> list[tuple[str, str]]:
    return [(r.item_key, r.label) for r in store.history() if r.kind == "label"]


BATCH = [{"item_key": key, "label": "dog"} for key in ("10", "11", "12")]


@pytest.mark.parametrize("phase", ["idle", "statement", "commit"])
def test_a_write_to_a_frozen_server_fails_in_time_and_the_store_goes_on(
    pausable_server, database, phase
):
    url = f"{pausable_server.url(database)}?alwidget_timeout={TIMEOUT:g}"
    with open_store(url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        store.add_label("1", "cat")  # leaves a connection in the pool
        with pausable_server.paused(), pause_when(pausable_server, database, phase):
            if phase == "idle":
                pausable_server.pause()  # between two labels: the pooled connection hangs
            seconds, _, error = call_within(TIMEOUT + SLACK, store.add_labels, BATCH)
            assert pausable_server.paused_now
            assert isinstance(error, StoreTimeoutError), error
            assert TIMEOUT * 0.9 <= seconds <= TIMEOUT + SLACK
            assert error.timeout == TIMEOUT
            assert error.commit_in_doubt == (phase == "commit")
            message = str(error)
            assert f"{TIMEOUT:g} s" in message and "alwidget_timeout" in message
            if phase == "idle":
                # Still stopped: the next attempt needs a new connection, and gets none in time.
                seconds, _, error = call_within(TIMEOUT + SLACK, store.add_label, "2", "dog")
                assert isinstance(error, StoreTimeoutError), error
                assert seconds <= TIMEOUT + SLACK
        wait_for_other_backends_to_end(pausable_server, database)

        written = [event for event in label_events(store) if event[0] in {"10", "11", "12"}]
        if phase == "commit":
            # The server had been asked to commit: all or nothing, never part of the batch.
            assert written in ([], [("10", "dog"), ("11", "dog"), ("12", "dog")])
        else:
            assert written == []  # nothing half-written

        # The same store object goes on: the dead connection was dropped from the pool.
        store.add_labels(BATCH)
        store.add_label("2", "dog")
        assert store.current_labels() == {"1": "cat", "10": "dog", "11": "dog", "12": "dog",
                                          "2": "dog"}  # fmt: skip
        if phase != "commit":
            assert sorted(label_events(store)) == sorted(
                [("1", "cat"), ("10", "dog"), ("11", "dog"), ("12", "dog"), ("2", "dog")]
            )


def test_opening_a_store_on_a_frozen_server_fails_in_time(pausable_server, database, monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, f"{TIMEOUT:g}")  # the environment sets it here
    url = pausable_server.url(database)
    open_store(url, pool_fingerprint=FINGERPRINT, classes=CLASSES).close()
    with pausable_server.paused():
        pausable_server.pause()
        seconds, store, error = call_within(TIMEOUT + SLACK, open_store, url, FINGERPRINT, CLASSES)
        if store is not None:
            store.close()
        assert isinstance(error, StoreTimeoutError), error
        assert seconds <= TIMEOUT + SLACK
    with open_store(url, pool_fingerprint=FINGERPRINT, classes=CLASSES) as store:
        store.add_label("1", "cat")
        assert store.current_labels() == {"1": "cat"}


def test_the_widget_shows_the_timeout_and_keeps_the_item(pausable_server, database):
    gate = Gate()
    url = f"{pausable_server.url(database)}?alwidget_timeout={TIMEOUT:g}"
    session = gated_session(gate, store=url)
    widget = al.Widget(session, batch_size=6).ready()
    try:
        in_hand = widget.focused_item
        queue_before = [item.id for item in widget.queue]
        with pausable_server.paused():
            pausable_server.pause()
            seconds, _, error = call_within(TIMEOUT + SLACK, widget.label_buttons["b"].click)
            assert error is None  # the button's guard catches it and shows it
            assert seconds <= TIMEOUT + SLACK
            assert "StoreTimeoutError" in widget.last_error
            assert f"did not answer within {TIMEOUT:g} s" in widget.last_error
            assert "did not answer" in widget.error_banner.value
            assert any(
                "StoreTimeoutError" in output.get("text", "") for output in widget.errors.outputs
            )
            # The item stays in hand and nothing counts as labeled.
            assert widget.focused_item.id == in_hand.id
            assert [item.id for item in widget.queue] == queue_before
            assert session.labels == {} and widget.n_labels == 0
        wait_for_other_backends_to_end(pausable_server, database)

        widget.label_buttons["b"].click()  # the same widget and session, after SIGCONT
        assert widget.last_error == ""
        assert session.labels == {in_hand.id: "b"}
        assert widget.focused_item.id != in_hand.id
        assert session.store.current_labels() == {str(in_hand.id): "b"}
        assert len(session.store.history()) == 1
    finally:
        gate.opened.set()
        widget.wait(timeout=60)
        widget.close()
        session.close()


def test_a_session_label_whose_commit_is_in_doubt_is_neither_lost_nor_doubled(
    pausable_server, database
):
    gate = Gate()
    url = f"{pausable_server.url(database)}?alwidget_timeout={TIMEOUT:g}"
    session = gated_session(gate, store=url)
    try:
        item = session.unlabeled_ids[0]
        with pausable_server.paused(), pause_when(pausable_server, database, "commit"):
            seconds, _, error = call_within(TIMEOUT + SLACK, session.label, item, "b")
            assert isinstance(error, StoreTimeoutError) and error.commit_in_doubt, error
            assert seconds <= TIMEOUT + SLACK
            assert "while committing" in str(error)
            assert session.labels == {}  # not shown as labeled while the outcome is unknown
        wait_for_other_backends_to_end(pausable_server, database)

        # Labeling again settles it: saved now, or found saved already and taken over.
        try:
            session.label(item, "b")
        except LabelConflictError:
            pass
        assert session.labels == {item: "b"}
        assert [(r.item_key, r.label) for r in session.store.history()] == [(str(item), "b")]
    finally:
        gate.opened.set()
        session.close()


def test_the_timeout_comes_from_the_argument_then_the_url_then_the_environment(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    url = "postgresql+psycopg://someone@db.example/labels"
    assert store_timeout(url) == DEFAULT_TIMEOUT
    monkeypatch.setenv(TIMEOUT_ENV, "7")
    assert store_timeout(url) == 7.0
    assert store_timeout(f"{url}?alwidget_timeout=3.5") == 3.5
    assert store_timeout(f"{url}?alwidget_timeout=3.5", timeout=1) == 1.0


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_timeout_names_where_it_came_from(monkeypatch, value):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    url = "postgresql+psycopg://someone@db.example/labels"
    with pytest.raises(InvalidArgumentError, match="alwidget_timeout in the store URL"):
        open_store(f"{url}?alwidget_timeout={value}")
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(InvalidArgumentError, match=f"\\${TIMEOUT_ENV} must be a positive"):
        open_store(url)
    with pytest.raises(InvalidArgumentError, match="appears 2 times"):
        open_store(f"{url}?alwidget_timeout=1&alwidget_timeout=2")


def test_a_timeout_error_is_an_unavailable_store_error():
    error = StoreTimeoutError("x", timeout=2.0, commit_in_doubt=True)
    assert isinstance(error, StoreUnavailableError)
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.timeout, copy.commit_in_doubt) == ("x", 2.0, True)
