"""The market's durable store: the transaction log, the blocks over it, and a little metadata.

This is the only place in pasar that speaks SQL (docs/market.md, "Store"), with its two parts:
the tables and their migrations (:mod:`pasar.market.schema`) and the log appends, its busiest
write (:mod:`pasar.market.log_append`). It runs on SQLite (one machine; WAL mode) or PostgreSQL
(``postgresql+psycopg://…``; the database may live on another machine, and standbys may wait on
it), and brings the schema to the newest Alembic revision when it opens.

**One writer.** A market's state lives in the memory of the one process that applies its
transactions, so exactly one process may append to a log: the market node holding the writer
lock (:mod:`pasar.market.writer_lock`). A store opened with ``writer_lock`` checks, inside
every write transaction, that the lock is still held, so a node that lost it (its PostgreSQL
connection died and a standby took over) never appends again. Tools (``pasar audit``) open the
store without a lock and only read.

**The 2xx promise.** :meth:`SqlStore.append` returns only after its transaction has committed
durably — SQLite with ``synchronous=FULL`` fsyncs the write-ahead log on every commit, PostgreSQL
does so by default — so a transaction the API acknowledged survives ``kill -9`` of the market.

**Sequence numbers without gaps, in commit order.** ``seq`` is not a database sequence: a
PostgreSQL sequence skips numbers when an insert fails (a reused nonce) and, with concurrent
writers, can commit seq 8 before seq 7 — a block sealed in between would then skip 7 for ever.
Instead every write runs under one store-wide write lock (``BEGIN IMMEDIATE`` on SQLite, a
transaction-scoped advisory lock on PostgreSQL) and takes ``max(seq) + 1``. The numbers are 1,
2, 3, … and a reader never sees seq *n + 1* without *n*, which is what lets a block claim
"seq a..b, all of them" (see :mod:`pasar.market.chain`). The transaction lock also fences a
takeover: a new writer migrates (under it) before reading the log, so the old writer's last
append either committed before that read or is refused by the writer-lock check.

**Byte-identical envelopes.** An envelope is stored as its canonical JSON text and checked to
be canonical when read back, so what a block's digest commits to is exactly what is returned,
and a changed byte is reported as damage instead of silently re-serialised.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    OperationalError,
)
from sqlalchemy.pool import NullPool, StaticPool

from pasar.market.chain import Block, ChainError, TxStamp
from pasar.market.log_append import INSERT_TX_SQL, MAX_SEQ_SQL, PG_WRITE_LOCK, LogAppender
from pasar.market.schema import blocks_table, meta_table, txs_table, upgrade_to_head
from pasar.market.tx_records import (
    BlockConflictError,
    NonceReused,
    StoreError,
    TxRecord,
)
from pasar.market.writer_lock import WriterLock

SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLite's primary result codes for a file it cannot read as a database (the low byte of the
# extended code): SQLITE_CORRUPT ("database disk image is malformed"), SQLITE_NOTADB.
_SQLITE_DAMAGED = frozenset({11, 26})
DAMAGED_HINT = (
    "restore the file from a good copy (a backup, or a standby's copy); do not run a market on "
    "it: `sqlite3 FILE .recover` can salvage the readable rows into a new file for inspection"
)
# --------------------------------------------------------------------------- engine


def database_url(url: str) -> URL:
    """``url`` parsed and checked as a market database URL (``postgresql://`` → psycopg 3);
    a :class:`StoreError` (400) naming a bad one."""
    return _normalise_url(url)


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"not a database URL: {url!r}",
            code="invalid_db_url",
            status=400,
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r}",
            code="invalid_db_url",
            status=400,
            hint="pasar runs on SQLite (sqlite:///PATH) or PostgreSQL (postgresql+psycopg://…)",
        )
    return parsed


def _sqlite_engine(url: URL) -> tuple[Engine, bool]:
    """An SQLite engine with real transactions, WAL, full fsync and foreign keys.

    pysqlite opens transactions lazily and never around DDL; SQLAlchemy's documented recipe
    turns that off (``isolation_level = None``) and emits ``BEGIN`` itself, so migrations are
    atomic and writes can ask for ``BEGIN IMMEDIATE`` (take the write lock up front, instead of
    failing with "database is locked" when a read transaction tries to upgrade).
    """
    memory = url.database in (None, "", ":memory:")
    if memory:
        # one shared connection, or every pooled connection would see its own empty database
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("pasar_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine, memory


def peek_meta(url: str, key: str) -> str | None:
    """One metadata value read without opening a :class:`SqlStore` (no migration, no write,
    no file created): what a standby checks before it waits on another node's database.
    None when there is no database, no table or no such key yet."""
    parsed = _normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return None
        if not Path(str(parsed.database)).expanduser().is_file():
            return None
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            m = meta_table
            value = conn.execute(select(m.c.value).where(m.c.key == key)).scalar_one_or_none()
    except DatabaseError:
        return None
    finally:
        engine.dispose()
    return None if value is None else str(value)


# --------------------------------------------------------------------------- the store


class SqlStore:
    """The transaction log, blocks and metadata in one SQL database; migrated on open.

    Thread-safe: each call takes its own connection and transaction. ``url`` is an SQLAlchemy
    URL; ``postgresql://`` is taken to mean the psycopg 3 driver.
    """

    def __init__(
        self, url: str, *, must_exist: bool = False, writer_lock: WriterLock | None = None
    ) -> None:
        """``must_exist``: refuse an SQLite path with no file instead of creating a database
        there (an audit must not turn a mistyped path into an empty market). ``writer_lock``:
        the market node's held lock, checked in every write transaction (see the module
        docstring)."""
        self.url = _normalise_url(url)
        self.writer_lock = writer_lock
        self.dialect = self.url.get_backend_name()
        if (
            must_exist
            and self.dialect == "sqlite"
            and self.url.database not in (None, "", ":memory:")
        ):
            path = Path(str(self.url.database)).expanduser()
            if not path.is_file():
                raise StoreError(
                    f"there is no database file at {path}",
                    code="no_database",
                    status=404,
                    hint="check the path; a market keeps its database in $PASAR_HOME/market.db",
                )
        shared = False
        if self.dialect == "sqlite":
            self._engine, shared = _sqlite_engine(self.url)
        else:
            self._engine = create_engine(self.url, pool_pre_ping=True)
        # an in-memory database is one connection: serialise its users in this process
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if shared else contextlib.nullcontext()
        )
        # the log appends' own connection (a database file or server: see LogAppender)
        self._appender = (
            None
            if shared
            else LogAppender(self._engine, self.dialect, writer_lock, self._unavailable_as_error)
        )
        # the next seq, known without asking the database while this store is the one writer
        # (it holds ``writer_lock``): forgotten on any failed append (see append_many)
        self._next_seq: int | None = None
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Release every connection. The store must not be used afterwards."""
        if self._appender is not None:
            self._appender.close()
        self._engine.dispose()

    # ----------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock, self._unavailable_as_error(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction holding the store-wide write lock; committed when the block ends."""
        with self._lock, self._unavailable_as_error(), self._engine.connect() as conn:
            conn.execution_options(pasar_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
                if self.writer_lock is not None:
                    self.writer_lock.check(conn)  # under the write lock: see the module docstring
                yield conn

    @contextlib.contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except DatabaseError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            if self._damaged(exc):
                raise self.damaged(f"{self.dialect}: {reason}") from exc
            if not isinstance(exc, OperationalError):
                raise
            raise StoreError(
                f"the database is unavailable: {reason}",
                code="store_unavailable",
                hint="check that the database is running and reachable, then retry",
            ) from exc

    def _damaged(self, exc: DatabaseError) -> bool:
        """Whether SQLite says the file itself is damaged (not busy, not a bug in a query)."""
        code = getattr(exc.orig, "sqlite_errorcode", None)
        return self.dialect == "sqlite" and isinstance(code, int) and code & 0xFF in _SQLITE_DAMAGED

    def damaged(self, what: str) -> StoreError:
        """The error for a database whose pages no longer read back: names the file and what
        the engine said, since an operator's next step (restore a copy) depends on both."""
        where = (
            f"the database file {Path(str(self.url.database)).expanduser()}"
            if self.dialect == "sqlite"
            else f"the database {self.url.render_as_string(hide_password=True)}"
        )
        return StoreError(
            f"{where} is damaged ({what})", code="store_damaged", status=500, hint=DAMAGED_HINT
        )

    def integrity_problems(self, limit: int = 5) -> list[str]:
        """SQLite's own check of every page and index (``PRAGMA integrity_check``): what an
        audit's replay cannot see, such as a damaged index or free page. Empty when sound, and
        always empty on PostgreSQL, which checks its pages itself (data checksums)."""
        if self.dialect != "sqlite":
            return []
        with self._reading() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA integrity_check({int(limit)})").fetchall()
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def _migrate(self) -> None:
        """Bring the schema to the newest revision (:func:`~pasar.market.schema.upgrade_to_head`),
        under the write lock (a node and a tool may open one database at once; and a new
        writer's first write transaction, which waits for the old writer's last one to end,
        comes before it reads the log)."""
        with self._writing() as conn:
            upgrade_to_head(conn)

    # ----------------------------------------------------------------- the log

    def append(self, tx: TxRecord) -> TxRecord:
        """Log ``tx`` durably and return it with its ``seq``.

        Raises :class:`NonceReused` (409) — and stores nothing — when the signer already used
        this nonce, or this exact envelope is already logged.
        """
        return self.append_many([tx])[0]

    def append_many(self, batch: Sequence[TxRecord]) -> list[TxRecord]:
        """Log ``batch`` in one durable commit, in order, with consecutive seqs (group commit:
        one fsync for many transactions). All or nothing: a reused nonce anywhere in the batch
        raises :class:`NonceReused` and stores none of it."""
        if not batch:
            return []
        rows = [
            (tx.digest, tx.type, tx.signer, tx.nonce, tx.ts, tx.at, tx.envelope_json())
            for tx in batch
        ]
        try:
            if self._appender is not None:
                first = self._appender.append(self._next_seq, rows)
            else:  # an in-memory database: its one shared connection, as every other write
                with self._writing() as conn:
                    known = self._next_seq
                    end = conn.exec_driver_sql(MAX_SEQ_SQL).scalar_one() if known is None else 0
                    first = known if known is not None else int(end) + 1
                    conn.exec_driver_sql(
                        INSERT_TX_SQL[self.dialect],
                        [(first + i, *row) for i, row in enumerate(rows)],
                    )
            # a writer's memory of the log's end is the log's end: nobody else appends
            self._next_seq = first + len(batch) if self.writer_lock is not None else None
        except IntegrityError:
            self._next_seq = None
            for tx in batch:
                if self.has_nonce(tx.signer, tx.nonce) or self.tx_by_digest(tx.digest) is not None:
                    raise NonceReused(
                        f"nonce {tx.nonce} was already used by {tx.signer}",
                        code="nonce_reused",
                        field="nonce",
                        hint="sign the request again: every envelope needs a fresh nonce",
                    ) from None
            raise
        except BaseException:
            self._next_seq = None  # asked again next time (the commit may not have happened)
            raise
        return [replace(tx, seq=first + i) for i, tx in enumerate(batch)]

    def txs(self, after_seq: int = 0, limit: int | None = None) -> list[TxRecord]:
        """Logged transactions with ``seq > after_seq``, in seq order, at most ``limit``."""
        t = txs_table
        query = select(t).where(t.c.seq > after_seq).order_by(t.c.seq)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [_tx_of(row._mapping) for row in rows]

    def tx_stamps(self, after_seq: int = 0, limit: int | None = None) -> list[TxStamp]:
        """Seq, digest and stamp of the logged transactions with ``seq > after_seq``, in seq
        order, at most ``limit``: what a block holds (:meth:`ChainBuilder.seal`), without
        reading the envelopes."""
        t = txs_table
        query = select(t.c.seq, t.c.digest, t.c.stamp).where(t.c.seq > after_seq).order_by(t.c.seq)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [TxStamp(int(seq), str(digest), int(stamp)) for seq, digest, stamp in rows]

    def txs_by_signer(self, signer: str, after_seq: int = 0, limit: int = 100) -> list[TxRecord]:
        """One signer's logged transactions with ``seq > after_seq``, in order, at most
        ``limit``: a page found by the (signer, nonce) index, not by reading the whole log."""
        t = txs_table
        query = (
            select(t)
            .where(t.c.signer == signer, t.c.seq > after_seq)
            .order_by(t.c.seq)
            .limit(max(limit, 0))
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [_tx_of(row._mapping) for row in rows]

    def head_seq(self) -> int:
        """The seq of the newest logged transaction (0 when the log is empty)."""
        with self._reading() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(txs_table.c.seq), 0))).scalar_one()
            )

    def has_nonce(self, signer: str, nonce: str) -> bool:
        """Whether ``signer`` already used ``nonce`` in a logged transaction."""
        t = txs_table
        query = select(t.c.seq).where(t.c.signer == signer, t.c.nonce == nonce)
        with self._reading() as conn:
            return conn.execute(query).first() is not None

    def tx_by_digest(self, digest: str) -> TxRecord | None:
        """The logged transaction with this digest, if any."""
        t = txs_table
        with self._reading() as conn:
            row = conn.execute(select(t).where(t.c.digest == digest)).first()
        return None if row is None else _tx_of(row._mapping)

    # ----------------------------------------------------------------- blocks

    def append_block(self, block: Block) -> None:
        """Store ``block`` atomically; :class:`BlockConflictError` unless it extends the head.

        It must have height head + 1 (0 for genesis), start at the seq after the head's last,
        and list exactly the logged digests of its seq range — so the stored chain always
        matches the stored log.
        """
        b, t = blocks_table, txs_table
        with self._writing() as conn:
            head = conn.execute(
                select(b.c.height, b.c.last_seq).order_by(b.c.height.desc()).limit(1)
            ).first()
            want_height = 0 if head is None else head.height + 1
            want_first = 1 if head is None else head.last_seq + 1
            if block.height != want_height or block.first_seq != want_first:
                raise BlockConflictError(
                    f"block {block.height} (from seq {block.first_seq}) does not extend the "
                    f"stored chain, which expects height {want_height} from seq {want_first}",
                    code="block_conflict",
                    hint="rebuild the block on the current head",
                )
            logged = conn.execute(
                select(t.c.digest)
                .where(t.c.seq >= block.first_seq, t.c.seq <= block.last_seq)
                .order_by(t.c.seq)
            ).scalars()
            if tuple(logged) != block.txs:
                raise BlockConflictError(
                    f"block {block.height} does not list the logged transactions of seq "
                    f"{block.first_seq}..{block.last_seq}",
                    code="block_mismatch",
                )
            conn.execute(
                insert(b).values(
                    height=block.height,
                    prev_hash=block.prev_hash,
                    tx_root=block.tx_root,
                    first_seq=block.first_seq,
                    last_seq=block.last_seq,
                    ts=block.ts,
                    body=block.header_json().decode("utf-8"),
                    sig=block.sig,
                )
            )

    def blocks(self, from_height: int = 0, limit: int | None = None) -> list[Block]:
        """Stored blocks with ``height >= from_height``, in height order, at most ``limit``.

        Raises :class:`~pasar.market.chain.ChainError` naming the height of a row whose
        columns disagree with its signed header.
        """
        b = blocks_table
        query = select(b).where(b.c.height >= from_height).order_by(b.c.height)
        if limit is not None:
            query = query.limit(max(limit, 0))
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [_block_of(row._mapping) for row in rows]

    def block(self, height: int) -> Block | None:
        """The block at ``height``, if stored."""
        b = blocks_table
        with self._reading() as conn:
            row = conn.execute(select(b).where(b.c.height == height)).first()
        return None if row is None else _block_of(row._mapping)

    def head_block(self) -> Block | None:
        """The highest stored block (None before genesis)."""
        b = blocks_table
        with self._reading() as conn:
            row = conn.execute(select(b).order_by(b.c.height.desc()).limit(1)).first()
        return None if row is None else _block_of(row._mapping)

    def unblocked_txs(self, limit: int | None = None) -> list[TxRecord]:
        """Logged transactions no block holds yet (seq after the head block's last), in order."""
        b = blocks_table
        with self._reading() as conn:
            last = conn.execute(select(func.coalesce(func.max(b.c.last_seq), 0))).scalar_one()
        return self.txs(after_seq=int(last), limit=limit)

    # ----------------------------------------------------------------- metadata

    def get_meta(self, key: str) -> str | None:
        """A small stored setting (e.g. the market's account id, its preset), or None."""
        m = meta_table
        with self._reading() as conn:
            value = conn.execute(select(m.c.value).where(m.c.key == key)).scalar_one_or_none()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any earlier value."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        m = meta_table
        upsert = pg_insert(m) if self.dialect == "postgresql" else sqlite_insert(m)
        statement = upsert.values(key=key, value=value).on_conflict_do_update(
            index_elements=[m.c.key], set_={"value": value}
        )
        with self._writing() as conn:
            conn.execute(statement)


def _tx_of(row: Any) -> TxRecord:
    return TxRecord.from_stored(
        seq=int(row["seq"]),
        digest=row["digest"],
        type=row["type"],
        signer=row["signer"],
        nonce=row["nonce"],
        ts=int(row["ts"]),
        envelope=row["envelope"],
        at=int(row["stamp"]),
    )


def _block_of(row: Any) -> Block:
    height = int(row["height"])
    block = Block.from_stored(height, row["body"], row["sig"])
    columns = (row["prev_hash"], row["tx_root"], row["first_seq"], row["last_seq"], row["ts"])
    signed = (block.prev_hash, block.tx_root, block.first_seq, block.last_seq, block.ts)
    if tuple(columns) != signed:
        raise ChainError(height, "stored columns disagree with the signed header")
    return block
