"""Appending to the market's transaction log: its busiest write, on a connection of its own.

:class:`LogAppender` is what :meth:`pasar.market.store.SqlStore.append_many` runs for a
database file or server (an in-memory database has one shared connection, which the store's other
writes use). It keeps one connection for the appends and drives each append's transaction on
the driver connection itself, because taking a connection from the pool and SQLAlchemy's
transaction, event and statement layers each cost more than the append's own statements
(docs/market.md, "Store"). What an append does is every write's: the store-wide write lock,
the writer-lock check under it, the insert, the commit.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from pasar.market.writer_lock import PgWriterLock, WriterLock

# Any constant works: the lock is scoped to one store's database. It spells "pasar-lg".
PG_WRITE_LOCK = 0x70617361722D6C67
#: How long a PostgreSQL appender connection may sit idle before the next append takes one from
#: the pool (pre-pinged) instead: under load appends never wait; idle, one checkout a second.
APPENDER_MAX_IDLE_S = 1.0

MAX_SEQ_SQL = "SELECT COALESCE(MAX(seq), 0) FROM txs"
_TX_COLUMNS = "seq, digest, type, signer, nonce, ts, stamp, envelope"
INSERT_TX_SQL = {  # each driver's positional parameter style
    "sqlite": f"INSERT INTO txs ({_TX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": f"INSERT INTO txs ({_TX_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
}

_PG_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"  # the store-wide write lock (psycopg style)


@functools.lru_cache(maxsize=256)
def _pg_rows_values(count: int) -> str:
    """``(%s, ...), ...``: the VALUES of ``count`` rows of the log's eight columns."""
    return ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * count)


def _driver_error_base(exc: BaseException) -> type[Exception] | None:
    """The DB-API base class of a driver's exception (``sqlite3.Error``, ``psycopg.Error``),
    for ``DBAPIError.instance`` to raise it as SQLAlchemy would; None for any other. psycopg is
    looked up only if it was loaded: a market on SQLite never imports it."""
    if isinstance(exc, sqlite3.Error):
        return sqlite3.Error
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return psycopg.Error  # type: ignore[no-any-return]
    return None


class LogAppender:
    """Durable appends of log rows for one store (its ``engine`` and ``dialect``), checking
    ``writer_lock`` when there is one; ``unavailable_as_error`` turns a database that cannot
    be reached into the store's error, as for every other statement."""

    def __init__(
        self,
        engine: Engine,
        dialect: str,
        writer_lock: WriterLock | None,
        unavailable_as_error: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> None:
        self._engine = engine
        self.dialect = dialect
        self.writer_lock = writer_lock
        self._unavailable_as_error = unavailable_as_error
        self._conn: Connection | None = None
        self._used = 0.0  # time.monotonic() of its last append
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the appends' connection (the next append would open another)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def append(self, first: int | None, rows: list[tuple[Any, ...]]) -> int:
        """One durable append of ``rows`` on the appenders' own connection; returns the first
        seq (``first``, or the log's end + 1 as this transaction's write lock sees it).

        The transaction is driven on the driver connection, not through SQLAlchemy's
        ``Connection``: its transaction, event and statement layers cost ~3x the append's own
        client CPU (a 2-row append: ~280 µs against ~80 µs on SQLite), and this is the
        market's busiest write. What it does is every other write's (``SqlStore._writing``):
        the store-wide write lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the advisory
        transaction lock), the writer-lock check under it, the insert, the commit; a driver
        error is raised as SQLAlchemy's (``IntegrityError`` for a reused nonce), like every
        other statement's."""
        if isinstance(self.writer_lock, PgWriterLock):
            return self._append_in_lock_session(self.writer_lock, first, rows)
        with self._connection() as (conn, raw):
            if self.dialect == "postgresql":
                first = self._append_pg(conn, raw, first, rows)
                raw.commit()
                return first
            raw.execute("BEGIN IMMEDIATE")
            if self.writer_lock is not None:
                self.writer_lock.check(conn)  # under the write lock, as every write
            if first is None:
                first = int(raw.execute(MAX_SEQ_SQL).fetchone()[0]) + 1
            raw.executemany(
                INSERT_TX_SQL["sqlite"], [(first + i, *row) for i, row in enumerate(rows)]
            )
            raw.execute("COMMIT")
            return first

    def _append_in_lock_session(
        self, lock: PgWriterLock, first: int | None, rows: list[tuple[Any, ...]]
    ) -> int:
        """A PostgreSQL writer's append: one multi-row INSERT on the writer lock's own session,
        in autocommit (one statement: all rows or none, durable when it returns). It needs
        neither the store-wide write lock nor the writer-lock check: the lock lives exactly as
        long as that session, so this commits only while the lock is held, and a standby takes
        the lock only once the session is gone (:meth:`PgWriterLock.session`). One round trip
        where the pooled path takes three (write lock and check, insert, commit)."""
        try:
            with lock.session() as raw, raw.cursor() as cur:
                return _insert_pg(cur, first, rows)
        except Exception as exc:  # as SQLAlchemy raises them (IntegrityError: a nonce)
            base = _driver_error_base(exc)
            if base is None:
                raise
            raise DBAPIError.instance(None, None, exc, base) from None

    def _append_pg(
        self, conn: Connection, raw: Any, first: int | None, rows: list[tuple[Any, ...]]
    ) -> int:
        """The PostgreSQL append's statements before the commit's, on the driver connection
        ``raw``: the store-wide write lock and the writer-lock check in one statement (its
        answer read before anything is written), then one multi-row INSERT (its text depends on
        the row count alone: psycopg converts it once and prepares it once it recurs), each
        row's seq from the remembered end or, the first time, from the end this transaction's
        lock sees. The caller commits only if this returns (the writer lock was still held).

        Two round trips, not psycopg's pipeline mode: on loopback the pipeline saved no time
        and cost ~2x the client CPU per append (its result handling is Python generators)."""
        lock = self.writer_lock
        check = lock.check_query() if isinstance(lock, PgWriterLock) else None
        if lock is not None and check is None:
            lock.check(conn)
        with raw.cursor() as cur:
            if check is None:
                cur.execute(_PG_LOCK_SQL, (PG_WRITE_LOCK,))
            else:
                holds_sql, holds_params = check
                cur.execute(f"{_PG_LOCK_SQL}, ({holds_sql})", (PG_WRITE_LOCK, *holds_params))
                assert isinstance(lock, PgWriterLock)
                lock.confirm(cur.fetchone()[1])
            return _insert_pg(cur, first, rows)  # under the lock: no other writer moves the end

    @contextlib.contextmanager
    def _connection(self) -> Iterator[tuple[Connection, Any]]:
        """The log appends' own connection (a database file or server) and its driver
        connection, under the appender lock: taking a connection from the pool and giving it
        back — on PostgreSQL a pre-ping and a reset, two round trips — cost more than the
        append's own statements. The append drives its transaction on the driver connection
        itself (:meth:`append`). The connection is rolled back and dropped on any error
        (the next append opens another), and a PostgreSQL one idle for over
        :data:`APPENDER_MAX_IDLE_S` goes back to the pool, whose pre-ping replaces it if it
        died meanwhile (a server restart, a proxy's idle timeout)."""
        with self._lock, self._unavailable_as_error():
            now = time.monotonic()
            stale = now - self._used > APPENDER_MAX_IDLE_S
            if self._conn is not None and self.dialect == "postgresql" and stale:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
            if self._conn is None:
                self._conn = self._engine.connect()
            self._used = now
            conn = self._conn
            raw: Any = conn.connection.driver_connection
            try:
                yield conn, raw
            except BaseException as exc:
                self._conn = None
                with contextlib.suppress(Exception):
                    raw.rollback()  # sqlite3's too ends a transaction its own BEGIN opened
                with contextlib.suppress(Exception):
                    conn.close()
                base = _driver_error_base(exc)
                if base is not None:  # as SQLAlchemy raises them
                    raise DBAPIError.instance(None, None, exc, base) from None
                raise


def _insert_pg(cur: Any, first: int | None, rows: list[tuple[Any, ...]]) -> int:
    """One multi-row INSERT of ``rows`` on the psycopg cursor ``cur``, their seqs from
    ``first`` or, when it is not known, from the log's end as this statement's session sees
    it; returns the first seq."""
    if first is None:
        cur.execute(MAX_SEQ_SQL)
        first = int(cur.fetchone()[0]) + 1
    params = [x for i, row in enumerate(rows) for x in (first + i, *row)]
    cur.execute(f"INSERT INTO txs ({_TX_COLUMNS}) VALUES {_pg_rows_values(len(rows))}", params)
    return first
