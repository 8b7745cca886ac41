"""The writer lock on real databases: one holder at a time, and a store that lost it never writes.

SQLite always; PostgreSQL when ``PASAR_TEST_DATABASE_URL`` names a database (each test in a
schema of its own, which is also what keys the advisory lock).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.store import SqlStore, database_url, peek_meta
from pasar.market.tx_records import TxRecord
from pasar.market.writer_lock import FileWriterLock, PgWriterLock, WriterLock, WriterLockLost

PG_URL = os.environ.get("PASAR_TEST_DATABASE_URL")
ALICE = Identity.from_seed(b"a" * 32)
MARKET = Identity.from_seed(b"m" * 32).account_id
NOW = 1_700_000_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'market.db'}"
        return
    if not PG_URL:
        pytest.skip("PASAR_TEST_DATABASE_URL is not set (bash .ci/run starts a PostgreSQL)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            sa.make_url(PG_URL)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _lock(url: str) -> WriterLock:
    return WriterLock.for_url(database_url(url))


def _tx(nonce: str) -> TxRecord:
    envelope = sign(
        {"type": "faucet", "amount": "1 USDC"}, ALICE, market=MARKET, now_ms=NOW, nonce=nonce
    )
    return TxRecord.from_verified(verify(envelope, market=MARKET, now_ms=NOW))


def _lose(lock: WriterLock) -> None:
    """Take the lock away from under its holder, as a crash of its connection would."""
    if isinstance(lock, FileWriterLock):
        lock.path.unlink()  # a new file could be locked by anyone: the holder must notice
        return
    assert isinstance(lock, PgWriterLock)
    admin = sa.create_engine(PG_URL or "")
    with admin.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": lock._pid})
    admin.dispose()


def test_one_holder_at_a_time(url: str) -> None:
    first, second = _lock(url), _lock(url)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert not second.try_acquire()  # polling again changes nothing
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def test_a_store_that_lost_its_lock_never_appends_again(url: str) -> None:
    lock = _lock(url)
    assert lock.try_acquire()
    with SqlStore(url, writer_lock=lock) as store:
        store.append(_tx("1" * 16))
        assert lock.still_held() and not lock.lost
        _lose(lock)
        assert not lock.still_held() and lock.lost  # what the node's watchdog sees
        with pytest.raises(WriterLockLost) as err:
            store.append(_tx("2" * 16))
        assert err.value.code == "writer_lock_lost" and err.value.status == 503
        with pytest.raises(WriterLockLost):
            store.set_meta("k", "v")
        assert [t.nonce for t in store.txs()] == [
            "1" * 16
        ]  # reading still works; n2 was not logged
    successor = _lock(url)
    try:
        assert successor.try_acquire()  # the lock is free for a standby
    finally:
        successor.release()
        lock.release()


def test_an_append_right_after_the_loss_is_refused_before_the_watchdog_notices(url: str) -> None:
    """No ``still_held`` poll between the loss and the append: on PostgreSQL the append runs on
    the lock's own session, which died with the lock, so it fails — as a lost lock (503), with
    the lock marked lost — and nothing is logged; the lock is free for a standby."""
    lock = _lock(url)
    assert lock.try_acquire()
    try:
        with SqlStore(url, writer_lock=lock) as store:
            store.append(_tx("1" * 16))
            _lose(lock)
            with pytest.raises(WriterLockLost) as err:
                store.append(_tx("2" * 16))
            assert err.value.status == 503 and lock.lost and not lock.held
            with pytest.raises(WriterLockLost):
                store.append(_tx("3" * 16))  # and every append after it
            assert [t.nonce for t in store.txs()] == ["1" * 16]
        successor = _lock(url)
        try:
            assert successor.try_acquire()
        finally:
            successor.release()
    finally:
        lock.release()


def test_the_lock_of_one_schema_or_file_is_not_anothers(url: str, tmp_path: Path) -> None:
    other = (
        f"sqlite:///{tmp_path / 'other' / 'market.db'}"
        if url.startswith("sqlite")
        else sa.make_url(url)
        .update_query_dict({"options": "-csearch_path=public"})
        .render_as_string(hide_password=False)
    )
    mine, theirs = _lock(url), _lock(other)
    try:
        assert mine.try_acquire() and theirs.try_acquire()
    finally:
        mine.release()
        theirs.release()


def test_peek_meta_reads_without_creating_anything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'market.db'}"
    assert peek_meta(url, "market") is None
    assert not (tmp_path / "market.db").exists()  # no empty database left behind
    with SqlStore(url) as store:
        store.set_meta("market", "pa1x")
    assert peek_meta(url, "market") == "pa1x"
    assert peek_meta(url, "absent") is None


def test_the_pg_lock_session_notices_a_vanished_writer_in_seconds(url: str) -> None:
    """A writer machine that disappears without closing its connection must not hold the lock
    for the system's default keepalive time (hours): the server probes the lock session."""
    if url.startswith("sqlite"):
        pytest.skip("the SQLite lock is a file lock on this machine")
    lock = _lock(url)
    try:
        assert lock.try_acquire()
        assert isinstance(lock, PgWriterLock) and lock._conn is not None
        if lock._conn.execute(sa.text("SELECT inet_server_addr()")).scalar_one() is None:
            pytest.skip("a Unix socket has no TCP keepalives")
        shown = lock._conn.execute(sa.text("SHOW tcp_keepalives_idle")).scalar_one()
        assert shown in ("5", "5s")
    finally:
        lock.release()
