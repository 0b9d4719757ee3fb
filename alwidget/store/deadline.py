"""Bounded waits on a PostgreSQL server: a deadline on every round trip of a store.

A stopped (SIGSTOP), swamped or cut-off server keeps its TCP connection open and never
answers. The kernels at both ends still acknowledge every byte, so neither the server's
``statement_timeout`` (the server would have to run it) nor TCP keepalives or
``tcp_user_timeout`` notice anything: the client has to give up by itself.

So while a connection is checked out of a store's pool it carries a :class:`Deadline`,
pushed back at the start of every ping, statement, commit and rollback. When a deadline
passes, one watchdog thread shuts the connection's socket down. The driver call blocked on
it then fails at once as a lost connection, SQLAlchemy drops the connection from its pool
(the next operation opens a new one), and
:func:`~alwidget.store.connection.translated_errors` asks :func:`expired_deadline` whether
to report a :class:`~alwidget.store.errors.StoreTimeoutError` instead of a lost connection.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, event, exc

__all__ = ["Deadline", "Expiry", "expired_deadline", "install_deadlines"]

# Keys in a pooled connection's ``info`` dict.
_DEADLINE_KEY = "alwidget_deadline"
_FRESH_KEY = "alwidget_fresh"

# Phase names; a deadline that expires in the commit phase leaves the outcome in doubt.
COMMIT = "commit"


@dataclass(frozen=True)
class Expiry:
    """A wait for the server that outlasted its limit.

    Attributes
    ----------
    seconds : float
        The limit.
    phase : str
        What was awaited; :data:`COMMIT` leaves the outcome of the transaction unknown.
    """

    seconds: float
    phase: str


class Deadline:
    """The time by which the current round trip on one connection must have finished.

    Parameters
    ----------
    seconds : float
        Longest wait for one answer of the server.
    sock : socket.socket
        A duplicate of the connection's socket: shutting it down shuts the driver's down
        too, and it stays valid even if the driver closes its own descriptor first (whose
        number could then be reused by an unrelated file).
    phase : str
        What the connection is waiting for (``"connect"``, ``"ping"``, ``"statement"``,
        ``"commit"``, ``"rollback"``).
    """

    def __init__(self, seconds: float, sock: socket.socket, phase: str) -> None:
        self.seconds = seconds
        self.phase = phase
        self.due = time.monotonic() + seconds
        self.owner = threading.get_ident()
        self.fired = False
        self._socket: socket.socket | None = sock
        self._lock = threading.Lock()

    @property
    def released(self) -> bool:
        """Whether the connection was given back or the deadline fired."""
        return self._socket is None

    def extend(self, phase: str) -> None:
        """A new round trip starts: it gets the full time again."""
        self.phase = phase
        self.owner = threading.get_ident()
        self.due = time.monotonic() + self.seconds

    def fire(self) -> bool:
        """Shut the socket down if the deadline has passed (watchdog thread).

        Returns
        -------
        bool
            True when this deadline needs no more watching (fired now, or released).
        """
        with self._lock:
            if self._socket is None:
                return True
            if time.monotonic() < self.due:
                return False  # pushed back since the watchdog looked
            self.fired = True
            _expired[self.owner] = Expiry(self.seconds, self.phase)
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer: the driver fails on its own
            self._close_socket()
            return True

    def release(self) -> None:
        """The connection went back to the pool: stop watching it."""
        with self._lock:
            self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _Watchdog:
    """One daemon thread that fires every store's expired deadlines."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has no watchdog thread: let it start its own.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._armed: set[Deadline] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fileno: int, phase: str) -> Deadline:
        deadline = Deadline(seconds, socket.socket(fileno=os.dup(fileno)), phase)
        with self._condition:
            self._armed.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="alwidget-store-deadlines", daemon=True
                )
                self._thread.start()
            if deadline.due < self._wake_at:
                self._condition.notify()
        return deadline

    def disarm(self, deadline: Deadline) -> None:
        deadline.release()
        with self._condition:
            self._armed.discard(deadline)

    def _run(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._armed if d.due <= now]:
                    if deadline.fire():
                        self._armed.discard(deadline)
                # Deadlines pushed back need no wake-up: the thread wakes at the old time,
                # finds them not yet due and sleeps again.
                self._wake_at = min((d.due for d in self._armed), default=math.inf)
                wait = None if self._wake_at == math.inf else self._wake_at - time.monotonic()
                self._condition.wait(None if wait is None else max(0.0, wait))


_WATCHDOG = _Watchdog()
# Thread id -> the wait of that thread that outlasted its limit, until reported.
_expired: dict[int, Expiry] = {}


def expired_deadline() -> Expiry | None:
    """The wait of this thread that outlasted its limit since its last checkout, if any.

    Each expiry is returned once.
    """
    return _expired.pop(threading.get_ident(), None)


def install_deadlines(engine: Engine, seconds: float) -> None:
    """Bound every wait of ``engine``'s connections on the server to ``seconds``.

    Replaces SQLAlchemy's ``pool_pre_ping`` (whose ping runs before any checkout hook, so
    it could not be bounded) by a ping under the deadline: a connection that died while
    pooled is replaced, one that hangs fails the operation within ``seconds``.
    Connections without a ``fileno()`` are not watched. Connecting is bounded by the
    driver's ``connect_timeout``, which the caller sets; when psycopg reports that it
    expired, that counts as an expiry too.
    """

    def watch(record, dbapi_connection, phase: str) -> Deadline | None:
        deadline = record.info.get(_DEADLINE_KEY)
        if deadline is not None and not deadline.released:
            deadline.extend(phase)
            return deadline
        fileno = getattr(dbapi_connection, "fileno", None)
        if fileno is None:
            return None
        deadline = _WATCHDOG.arm(seconds, fileno(), phase)
        record.info[_DEADLINE_KEY] = deadline
        return deadline

    def unwatch(record) -> None:
        deadline = record.info.pop(_DEADLINE_KEY, None)
        if deadline is not None:
            _WATCHDOG.disarm(deadline)

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(dialect, _record, cargs, cparams):
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            if type(error).__name__ == "ConnectionTimeout":  # psycopg's, not imported here
                limit = float(cparams.get("connect_timeout") or seconds)
                _expired[threading.get_ident()] = Expiry(limit, "connect")
            raise

    # insert=True: ahead of the dialect's own first-connect queries, which it also bounds.
    @event.listens_for(engine, "connect", insert=True)
    def _on_connect(dbapi_connection, record):
        record.info[_FRESH_KEY] = True
        watch(record, dbapi_connection, "connect")

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        _expired.pop(threading.get_ident(), None)  # left over from a finished operation
        deadline = watch(record, dbapi_connection, "ping")
        if record.info.pop(_FRESH_KEY, False):
            return  # just connected: nothing to ping
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            if deadline is not None and deadline.fired:
                raise  # the server is there but silent: fail now, a new connection would hang
            unwatch(record)
            # The pool replaces a connection that died while idle and tries again.
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        unwatch(record)

    def push_back(conn, phase: str) -> None:
        if conn.closed or conn.invalidated:
            return  # reading conn.info now would try to reconnect
        deadline = conn.info.get(_DEADLINE_KEY)
        if deadline is not None and not deadline.released:
            deadline.extend(phase)

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(conn, _cursor, _statement, _parameters, _context, _executemany):
        push_back(conn, "statement")

    @event.listens_for(engine, "commit")
    def _on_commit(conn):
        push_back(conn, COMMIT)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn):
        push_back(conn, "rollback")

    @event.listens_for(engine, "reset")
    def _on_reset(_dbapi_connection, record, _reset_state):
        deadline = record.info.get(_DEADLINE_KEY)
        if deadline is not None and not deadline.released:
            deadline.extend("rollback")
