"""One writer per market database: the lock a market node holds for as long as it writes.

A market is one sequencer: its state lives in the memory of the process that applies
transactions, so a second process appending to the same log would log transactions the first
never applied (a double spend in the log). The truth is therefore simple: **exactly one
process writes**, and it proves it by holding a lock for its whole life.

- **PostgreSQL**: a session-level advisory lock (``pg_advisory_lock``) held by a connection of
  its own. If the process dies, or its connection does, the server drops the lock (a machine
  that vanishes silently is noticed by TCP keepalives, :data:`KEEPALIVES`).
- **SQLite**: an OS file lock (``flock``) on ``<database>-writer.lock`` beside the database,
  held by an open file; the kernel drops it when the process dies, ``kill -9`` included.

Holding the lock at start is not enough: a writer whose PostgreSQL connection died keeps
running while a standby takes over. So the store calls :meth:`WriterLock.check` inside every
write transaction (see :meth:`pasar.market.store.SqlStore._writing`): on PostgreSQL it asks
``pg_locks`` whether the lock connection's backend still holds the lock, *after* taking the
store-wide transaction lock. A standby that takes over opens its store under that same
transaction lock (the migration), so every append of the old writer either committed before
the standby read the log or is refused by the check — a writer that lost its lock never
appends again. A PostgreSQL writer's log appends need not even ask: they run on the lock's own
session (:meth:`PgWriterLock.session`), which cannot outlive the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pasar.core.errors import PasarError

# Advisory locks are scoped to one database; the key also names the schema the market's tables
# live in (``search_path``), so that markets in different schemas of one database do not share
# a writer. It never equals the store's per-transaction lock key.
PG_WRITER_LOCK_SEED = b"pasar-writer:"
LOCK_SUFFIX = "-writer.lock"
# The server's TCP keepalives on the lock session: a writer whose machine vanishes without
# closing its connection (power cut, network partition) loses the lock after about
# idle + interval × count = 11 s, instead of the system default of hours.
KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}


class WriterLockLost(PasarError):  # noqa: N818 (reads as a verdict)
    """This process held the writer lock and no longer does: it must not write again (503)."""

    default_status = 503


def where(url: URL) -> str:
    """The database as an operator names it: the file for SQLite, the URL (no password) else."""
    if url.get_backend_name() == "sqlite":
        return str(Path(str(url.database)).expanduser().absolute())
    return url.render_as_string(hide_password=True)


class WriterLock:
    """The writer lock of one database; :meth:`for_url` picks the kind.

    ``try_acquire`` never blocks (a standby polls it); ``check`` is called inside each write
    transaction; ``still_held`` is the node's watchdog (it stops a node that lost the lock);
    ``release`` gives the lock up (a clean stop), after which the object is done. ``lost``
    turns true, for good, once the lock was found gone while held.
    """

    held = False
    lost = False

    def try_acquire(self) -> bool:
        """Take the lock if free; True when this process now holds it."""
        raise NotImplementedError

    def check(self, conn: Connection) -> None:
        """Raise :class:`WriterLockLost` unless this process still holds the lock.

        ``conn`` is the write transaction's connection (PostgreSQL asks it, so that the
        answer is read under the transaction lock the write holds)."""
        raise NotImplementedError

    def still_held(self) -> bool:
        """Whether the lock is held right now (False before it was acquired); cheap enough to
        ask every second. A False while held marks the lock ``lost``."""
        raise NotImplementedError

    def release(self) -> None:
        """Give the lock up. Idempotent."""
        raise NotImplementedError

    @staticmethod
    def for_url(url: URL) -> WriterLock:
        """The lock for the database at ``url`` (a no-op for an in-memory SQLite database,
        which no other process can open)."""
        if url.get_backend_name() == "postgresql":
            return PgWriterLock(url)
        if url.database in (None, "", ":memory:"):
            return NoWriterLock()
        return FileWriterLock(Path(str(url.database)).expanduser().absolute())

    def _lost(self, why: str) -> WriterLockLost:
        self.held = False
        self.lost = True
        return WriterLockLost(
            f"this market node is no longer the writer of its database ({why}); it takes no "
            "more writes",
            code="writer_lock_lost",
            hint="another node may be the writer now: send requests there; restart this one "
            "with --standby to take over later",
        )


class NoWriterLock(WriterLock):
    """In-memory SQLite: only this process can see the database, so it is the writer."""

    def try_acquire(self) -> bool:
        self.held = True
        return True

    def check(self, conn: Connection) -> None:
        return None

    def still_held(self) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False


class FileWriterLock(WriterLock):
    """``flock(LOCK_EX)`` on ``<database>-writer.lock``, for the life of the process.

    ``check`` also catches a lock file that was removed or replaced under a running writer (a
    new file would let a second process lock it too): the open file must still be the one at
    the path.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + LOCK_SUFFIX)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for an operator: who is the writer
        self._fd = fd
        self.held = True
        return True

    def _same_file(self) -> bool:
        """Whether the open, locked file is still the one at the path."""
        if self._fd is None:
            return False
        try:
            return os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def check(self, conn: Connection) -> None:
        if self._fd is None:
            raise self._lost("the lock was released")
        if not self._same_file():
            raise self._lost(f"the lock file {self.path} was removed or replaced")

    def still_held(self) -> bool:
        if self._fd is None:
            return False
        if not self._same_file():
            self.held = False
            self.lost = True
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the file drops the flock
            self._fd = None
        self.held = False


_HOLDS_SQL = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = %s AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1"
)


class PgWriterLock(WriterLock):
    """A session-level advisory lock on a dedicated connection (outside any pool)."""

    def __init__(self, url: URL) -> None:
        self._engine = create_engine(url, poolclass=NullPool)
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._key: int | None = None
        self._mutex = threading.Lock()  # the lock connection is used by the poller and watchdog

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            for setting, value in KEEPALIVES.items():
                conn.execute(text(f"SET {setting} = {int(value)}"))
            self._conn = conn
        return self._conn

    def try_acquire(self) -> bool:
        with self._mutex:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            conn = self._connection()
            if self._key is None:
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                self._key = pg_writer_lock_key(str(schema or ""))
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            ).scalar_one()
            if not got:
                return False
            self._pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        except DBAPIError:
            self._drop()  # the next poll reconnects
            raise
        self.held = True
        return True

    def check(self, conn: Connection) -> None:
        sql, params = self.check_query()
        self.confirm(conn.exec_driver_sql(sql, params).scalar_one())

    def check_query(self) -> tuple[str, tuple[int, int, int]]:
        """The check's SQL (psycopg's ``%s`` style) and parameters, for a caller that sends it
        with other statements in one round trip and passes its answer to :meth:`confirm` (the
        store's log append). Raises :class:`WriterLockLost` if the lock was released."""
        if not self.held or self._pid is None or self._key is None:
            raise self._lost("the lock was released")
        hi, lo = divmod(self._key, 1 << 32)
        return _HOLDS_SQL, (self._pid, hi, lo)

    def confirm(self, holds: Any) -> None:
        """Raise :class:`WriterLockLost` unless ``holds`` (the check's count) says held."""
        if not holds:
            raise self._lost("its lock connection to PostgreSQL was lost")

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """The lock's own session (the psycopg connection, in autocommit), for a write that
        must not outlive the lock: a session lock ends only with its session, so a statement
        that commits on it committed while the lock was held — no check is needed, and no
        standby can have read the log before it (the store's log appends: one statement, one
        round trip). Raises :class:`WriterLockLost` if the lock is gone, or if the session
        broke during the write (the connection, and so the lock, was lost)."""
        import psycopg  # loaded already: the lock's connection is psycopg's

        with self._mutex:
            if not self.held or self._conn is None:
                raise self._lost("the lock was released")
            raw: Any = self._conn.connection.driver_connection
            try:
                yield raw
            except psycopg.Error as exc:
                if not (raw.closed or raw.broken):
                    raise  # a refused statement (a reused nonce): the lock is still held
                self._drop()
                raise self._lost("its lock connection to PostgreSQL was lost") from exc

    def still_held(self) -> bool:
        """A session lock ends only with its session: the lock connection answering is the
        lock being held."""
        with self._mutex:
            if not self.held or self._conn is None:
                return False
            try:
                self._conn.execute(text("SELECT 1"))
            except DBAPIError:
                self._drop()
                self.held = False
                self.lost = True
                return False
            return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None and self.held:
                with contextlib.suppress(DBAPIError):
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._drop()
            self._pid = None
            self.held = False
            self._engine.dispose()


def pg_writer_lock_key(schema: str) -> int:
    """The advisory lock key (a positive bigint) of the market whose tables live in ``schema``."""
    digest = hashlib.sha256(PG_WRITER_LOCK_SEED + schema.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1
