"""The market store on SQLite and PostgreSQL: the log, blocks, metadata, migrations, durability.

PostgreSQL runs only when ``PASAR_TEST_DATABASE_URL`` names a database (``.ci/run`` starts a
throwaway server and sets it); each test then gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pasar.core.errors import PasarError
from pasar.crypto.canonical import canonical_json
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.chain import ChainBuilder, ChainError, make_block, verify_chain
from pasar.market.schema import HEAD_REVISION, metadata, migrations_dir
from pasar.market.store import SqlStore
from pasar.market.tx_records import (
    BlockConflictError,
    CorruptRecordError,
    NonceReused,
    StoreError,
    TxRecord,
)
from pasar.market.writer_lock import WriterLock

NOW = 1_700_000_000_000
MARKET = Identity.from_seed(b"m" * 32)
ALICE = Identity.from_seed(b"a" * 32)
BOB = Identity.from_seed(b"b" * 32)
PG_URL = os.environ.get("PASAR_TEST_DATABASE_URL")


def _sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'home' / 'market.db'}"


def _postgres_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PASAR_TEST_DATABASE_URL is not set (bash .ci/run starts a PostgreSQL)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield from _sqlite_url(tmp_path)
    else:
        yield from _postgres_url()


@pytest.fixture
def store(url: str) -> Iterator[SqlStore]:
    with SqlStore(url) as opened:
        yield opened


def _tx(
    who: Identity, n: int, body: dict[str, Any] | None = None, *, nonce: str | None = None
) -> TxRecord:
    envelope = sign(
        body or {"type": "heartbeat", "n": n},
        who,
        market=MARKET.account_id,
        now_ms=NOW + n,
        nonce=nonce,
    )
    return TxRecord.from_verified(verify(envelope, market=MARKET.account_id, now_ms=NOW + n))


# --------------------------------------------------------------------------- the log


def test_tx_stamps_are_the_logs_seq_digest_and_stamp(store: SqlStore) -> None:
    """What sealing reads: each logged tx's seq, digest and stamp, in order, from a seq on;
    a block made from them is the block made from the whole records."""
    logged = [store.append(_tx(ALICE if n % 2 else BOB, n)) for n in range(1, 6)]
    stamps = store.tx_stamps(after_seq=1, limit=3)
    assert [(s.seq, s.digest, s.at) for s in stamps] == [
        (t.seq, t.digest, t.at) for t in logged[1:4]
    ]
    assert store.tx_stamps(after_seq=5) == []
    genesis = make_block(None, store.tx_stamps(limit=2), market=MARKET, ts_ms=NOW)
    assert genesis == make_block(None, logged[:2], market=MARKET, ts_ms=NOW)
    sealed = ChainBuilder(store, MARKET, lambda: NOW).seal_all()
    assert [b.txs for b in sealed] == [tuple(t.digest for t in logged)]


def test_append_and_read_back_byte_identical(store: SqlStore) -> None:
    body = {"type": "order.create", "spec": {"note": "café ☕ \u2028", "gpus": [1, 2]}, "z": None}
    tx = _tx(ALICE, 1, body)
    assert tx.seq == 0 and tx.type == "order.create"
    stored = store.append(tx)
    assert stored.seq == 1 and stored == TxRecord(**{**tx.__dict__, "seq": 1})
    for back in (store.txs()[0], store.tx_by_digest(tx.digest)):
        assert back == stored
        assert back is not None
        assert canonical_json(back.envelope) == canonical_json(tx.envelope)
        assert back.envelope_json() == tx.envelope_json()
        assert verify(back.envelope, market=MARKET.account_id, now_ms=NOW + 1).digest == tx.digest
    assert store.tx_by_digest("0" * 64) is None


def test_a_reused_nonce_is_409_and_stores_nothing(store: SqlStore) -> None:
    first = store.append(_tx(ALICE, 1, nonce="ab" * 16))
    again = _tx(ALICE, 2, {"type": "heartbeat", "other": True}, nonce="ab" * 16)
    for refused in (again, first):  # another envelope with the nonce, and the same envelope
        with pytest.raises(NonceReused) as caught:
            store.append(refused)
        assert caught.value.status == 409 and caught.value.code == "nonce_reused"
        assert isinstance(caught.value, PasarError)
    assert [t.digest for t in store.txs()] == [first.digest]
    assert store.head_seq() == 1
    assert store.has_nonce(ALICE.account_id, "ab" * 16)
    assert not store.has_nonce(BOB.account_id, "ab" * 16)
    # the nonce is per signer; and a refusal leaves no hole in the numbering
    assert store.append(_tx(BOB, 3, nonce="ab" * 16)).seq == 2


def test_a_writer_numbers_its_appends_from_memory_without_holes(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store holding the writer lock remembers the log's end instead of asking for it (and
    on PostgreSQL takes the lock and the writer-lock check in one statement): a refused
    batch forgets it, the numbering has no hole, and a reopened store continues it. An
    appender connection idle past the limit is given back and replaced."""
    monkeypatch.setattr("pasar.market.log_append.APPENDER_MAX_IDLE_S", 0.0)  # every append: fresh
    lock = WriterLock.for_url(sa.engine.make_url(url))
    assert lock.try_acquire()
    try:
        with SqlStore(url, writer_lock=lock) as store:
            first = store.append_many([_tx(ALICE, 1), _tx(BOB, 2)])
            assert [t.seq for t in first] == [1, 2]
            reused = _tx(ALICE, 3, {"type": "heartbeat", "again": 1}, nonce=first[0].nonce)
            with pytest.raises(NonceReused):
                store.append_many([_tx(BOB, 4), reused])  # all or nothing
            assert [t.seq for t in store.append_many([_tx(BOB, 5)])] == [3]
            assert [t.seq for t in store.txs()] == [1, 2, 3]
        with SqlStore(url, writer_lock=lock) as again:  # a new writer asks the database
            assert again.append(_tx(ALICE, 6)).seq == 4
    finally:
        lock.release()


def test_a_busy_database_refuses_the_append_and_the_next_one_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The appends drive their SQLite transaction on the driver connection: a write lock
    another process holds past the busy timeout is the store's 503 ``store_unavailable`` (not
    a driver error), nothing is stored, and the append after the lock is gone works."""
    monkeypatch.setattr("pasar.market.store.SQLITE_BUSY_TIMEOUT_MS", 50)
    url = next(_sqlite_url(tmp_path))
    with SqlStore(url) as store:
        assert store.append(_tx(ALICE, 1)).seq == 1
        other = sa.create_engine(url)
        with other.connect() as holder:
            holder.exec_driver_sql("BEGIN IMMEDIATE")  # another writer's open transaction
            with pytest.raises(StoreError) as caught:
                store.append(_tx(BOB, 2))
            assert caught.value.status == 503 and caught.value.code == "store_unavailable"
            holder.exec_driver_sql("ROLLBACK")
        other.dispose()
        after = store.append(_tx(BOB, 3))
        assert after.seq == 2 and [t.digest for t in store.txs()][1:] == [after.digest]


def test_seq_order_and_paging(store: SqlStore) -> None:
    assert store.head_seq() == 0 and store.txs() == []
    appended = [store.append(_tx(ALICE if i % 2 else BOB, i)) for i in range(1, 21)]
    assert [t.seq for t in appended] == list(range(1, 21))
    assert store.head_seq() == 20
    assert store.txs() == appended
    assert [t.seq for t in store.txs(after_seq=5, limit=3)] == [6, 7, 8]
    assert store.txs(after_seq=20) == [] and store.txs(limit=0) == []
    # one signer's page, by the index: ALICE signed the odd seqs
    page = store.txs_by_signer(ALICE.account_id, after_seq=4, limit=3)
    assert [t.seq for t in page] == [5, 7, 9] and {t.signer for t in page} == {ALICE.account_id}


def test_concurrent_appends_get_gapless_seqs(store: SqlStore) -> None:
    per_thread, threads = 15, 4
    errors: list[BaseException] = []

    def work(k: int) -> None:
        who = Identity.from_seed(bytes([k + 1]) * 32)
        try:
            for i in range(per_thread):
                store.append(_tx(who, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert [t.seq for t in store.txs()] == list(range(1, per_thread * threads + 1))


def test_appends_see_what_another_connection_wrote(url: str) -> None:
    """Appends keep a connection of their own (SQLite): each append's transaction still reads
    the log as it is now, whoever wrote last (here a second store on the same database)."""
    with SqlStore(url) as one, SqlStore(url) as two:
        seqs = [(one if i % 2 else two).append(_tx(ALICE, i)).seq for i in range(1, 7)]
        assert seqs == [1, 2, 3, 4, 5, 6]
        assert [t.seq for t in two.txs()] == seqs


def test_a_body_without_a_type_is_not_a_transaction() -> None:
    envelope = sign({"amount": 1}, ALICE, market=MARKET.account_id, now_ms=NOW)
    with pytest.raises(PasarError) as caught:
        TxRecord.from_verified(verify(envelope, market=MARKET.account_id, now_ms=NOW))
    assert caught.value.field == "body.type" and caught.value.status == 400


# --------------------------------------------------------------------------- blocks


def test_blocks_append_head_and_verify(store: SqlStore) -> None:
    builder = ChainBuilder(store, MARKET, clock=lambda: NOW, max_txs=3)
    assert store.head_block() is None and store.blocks() == []
    assert builder.seal() is None  # nothing to seal
    for i in range(1, 8):
        store.append(_tx(ALICE, i))
    assert [t.seq for t in store.unblocked_txs(100)] == list(range(1, 8))
    genesis = builder.seal()
    assert genesis is not None and (genesis.height, genesis.first_seq, genesis.last_seq) == (
        0,
        1,
        3,
    )
    assert store.head_block() == genesis == store.block(0)
    assert [t.seq for t in store.unblocked_txs(2)] == [4, 5]
    rest = builder.seal_all()
    assert [(b.height, b.first_seq, b.last_seq) for b in rest] == [(1, 4, 6), (2, 7, 7)]
    assert store.unblocked_txs(10) == [] and store.block(9) is None
    assert store.blocks() == [genesis, *rest]
    assert store.blocks(from_height=1, limit=1) == [rest[0]]
    assert verify_chain(store.blocks(), store.tx_by_digest, market_account=MARKET.account_id) == 3


def test_append_block_refuses_what_does_not_extend_the_head(store: SqlStore) -> None:
    txs = [store.append(_tx(ALICE, i)) for i in range(1, 5)]
    genesis = make_block(None, txs[:2], market=MARKET, ts_ms=NOW)
    with pytest.raises(BlockConflictError):  # height 1 before genesis
        store.append_block(make_block(genesis, txs[2:], market=MARKET, ts_ms=NOW))
    store.append_block(genesis)
    with pytest.raises(BlockConflictError) as caught:  # genesis again
        store.append_block(genesis)
    assert caught.value.status == 409
    unlogged = _tx(BOB, 9)
    bogus = make_block(genesis, [txs[2], TxRecord(**{**unlogged.__dict__, "seq": 4})],
                       market=MARKET, ts_ms=NOW)  # fmt: skip
    with pytest.raises(BlockConflictError, match="logged"):
        store.append_block(bogus)
    assert store.blocks() == [genesis]


def test_tampered_rows_are_found_naming_the_height(url: str) -> None:
    with SqlStore(url) as store:
        for i in range(1, 6):
            store.append(_tx(ALICE, i))
        ChainBuilder(store, MARKET, clock=lambda: NOW, max_txs=2).seal_all()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # change one character of seq 4's envelope (block 1)
            conn.execute(
                sa.text("UPDATE txs SET envelope = REPLACE(envelope, :old, :new) WHERE seq = 4"),
                {"old": '"n":4', "new": '"n":5'},
            )
            conn.execute(sa.text("UPDATE blocks SET ts = ts + 1 WHERE height = 2"))
    finally:
        engine.dispose()
    with SqlStore(url) as store:
        with pytest.raises(ChainError) as caught:
            store.blocks()
        assert caught.value.height == 2
        blocks = store.blocks(limit=2)
        with pytest.raises(ChainError) as caught:
            verify_chain(blocks, store.tx_by_digest, market_account=MARKET.account_id)
        assert caught.value.height == 1 and caught.value.code == "tx_tampered"


def test_a_damaged_envelope_reads_as_corrupt(url: str) -> None:
    with SqlStore(url) as store:
        store.append(_tx(ALICE, 1))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE txs SET envelope = envelope || ' '"))
    finally:
        engine.dispose()
    with SqlStore(url) as store, pytest.raises(CorruptRecordError, match="seq 1"):
        store.txs()


# --------------------------------------------------------------------------- meta, migrations


def test_meta_round_trip_and_survives_reopen(url: str) -> None:
    with SqlStore(url) as store:
        assert store.get_meta("market") is None
        store.set_meta("market", MARKET.account_id)
        store.set_meta("preset", "pasar")
        store.set_meta("preset", "akash")
        assert store.get_meta("preset") == "akash"
    with SqlStore(url) as store:
        assert store.get_meta("market") == MARKET.account_id
        assert store.get_meta("preset") == "akash"


def test_migrations_are_idempotent_and_match_the_tables(url: str) -> None:
    with SqlStore(url) as store:
        store.append(_tx(ALICE, 1))
    with SqlStore(url) as store:  # second open: already at head, nothing lost
        assert store.head_seq() == 1
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                ("0002",)
            ]
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError) as caught:
        SqlStore(url)
    assert caught.value.code == "schema_unknown" and "newer pasar" in (caught.value.hint or "")


def test_head_revision_is_alembics_head() -> None:
    """The revision a store trusts without loading Alembic is the newest migration's."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_a_store_at_head_opens_without_loading_alembic(url: str) -> None:
    SqlStore(url).close()  # the first open migrates (and loads alembic)
    probe = (
        "import sys; from pasar.market.store import SqlStore;"
        f"s = SqlStore({url!r}); print(s.head_seq()); s.close();"
        "print(','.join(m for m in ('alembic', 'mako', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "0"
    loaded = {m for m in out[1].split(",") if m}
    assert "alembic" not in loaded and "mako" not in loaded
    if url.startswith("sqlite"):
        assert "psycopg" not in loaded


def test_an_older_database_is_migrated_to_head(url: str) -> None:
    """A database one revision behind (no market stamps) still goes through Alembic: its
    transactions get their ``ts`` as stamp, and the version table says head afterwards."""
    from alembic import command
    from alembic.config import Config

    with SqlStore(url) as store:
        store.append(_tx(ALICE, 1))
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(migrations_dir()))
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                ("0001",)
            ]
        with SqlStore(url) as store:
            assert store.head_seq() == 1
            assert [t.at for t in store.txs()] == [NOW + 1]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                (HEAD_REVISION,)
            ]
    finally:
        engine.dispose()


def test_in_memory_sqlite_and_bad_urls() -> None:
    with SqlStore("sqlite://") as store:
        store.append(_tx(ALICE, 1))
        assert store.head_seq() == 1
    for bad in ("not a url", "mysql://u@h/db"):
        with pytest.raises(StoreError) as caught:
            SqlStore(bad)
        assert caught.value.status == 400 and caught.value.code == "invalid_db_url"


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    url = next(_sqlite_url(tmp_path))
    with SqlStore(url) as store:
        engine = store._engine  # the pragmas are per connection: ask one of the store's
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# --------------------------------------------------------------------------- durability

_WRITER = """
import sys
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.store import SqlStore
from pasar.market.tx_records import TxRecord

store = SqlStore(sys.argv[1])
who = Identity.from_seed(b"k" * 32)
market = Identity.from_seed(b"m" * 32).account_id
print("open", flush=True)
for i in range(int(sys.argv[2])):
    envelope = sign({"type": "heartbeat", "i": i}, who, market=market, now_ms=1_700_000_000_000 + i)
    verified = verify(envelope, market=market, now_ms=envelope["ts"])
    tx = store.append(TxRecord.from_verified(verified))
    print("ok", tx.seq, tx.digest, flush=True)
"""


@pytest.mark.slow
def test_every_acknowledged_tx_survives_kill_9(url: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acked: list[tuple[int, str]] = []
    try:
        assert writer.stdout.readline().strip() == "open"
        while len(acked) < 150:
            line = writer.stdout.readline()
            assert line.startswith("ok "), line
            _, seq, digest = line.split()
            acked.append((int(seq), digest))
        writer.send_signal(signal.SIGKILL)  # mid-way: it is appending as fast as it can
        for line in writer.stdout:  # acknowledged before it died, still in the pipe
            if line.startswith("ok ") and len(line.split()) == 3:
                _, seq, digest = line.split()
                acked.append((int(seq), digest))
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with SqlStore(url) as store:
        logged = {t.seq: t.digest for t in store.txs()}
        assert all(logged.get(seq) == digest for seq, digest in acked)
        assert sorted(logged) == list(range(1, len(logged) + 1))
        assert len(logged) >= len(acked) and len(logged) < 100000
