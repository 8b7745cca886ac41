"""One writer per market database: a second writer is refused, a standby takes over a crash.

Two writers on one log would each apply transactions the other never saw and log both — a
forked ledger, i.e. money spent twice. These tests run real ``pasar market serve`` processes on
one database (an SQLite file, and PostgreSQL when ``PASAR_TEST_DATABASE_URL`` is set):

- a second node without ``--standby`` exits 2, naming the database and the ways out;
- a ``--standby`` node answers as a standby, and when the writer is SIGKILLed under load it
  takes over: it serves writes within seconds and no acknowledged (2xx) transaction is lost,
  the ledger is conserved and ``pasar audit`` of the database passes;
- a writer whose PostgreSQL lock connection dies refuses writes and exits 2, and nothing it was
  sent after that reaches the log;
- a standby refuses at once to wait under another market key, and does not take over a log
  altered on disk (the takeover verifies it as an audit would).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from attacklib import Party, assert_audit_passes

from money_checks import assert_conserved
from pasar.client.raw_orders import send_order
from pasar.core.errors import PasarError
from pasar.core.money import Money

TAKEOVER_TIMEOUT_S = 20.0
LOAD_S = 1.5  # how long the writer is under load before it is killed
FAUCET = "0.01 USDC"
SPEC = {
    "name": "w",
    "run": "echo hi > out.txt",
    "outputs": ["out.txt"],
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "2m",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ...]]:
    """``--db`` for the nodes: none (SQLite in the shared home), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ()
        return
    base = os.environ.get("PASAR_TEST_DATABASE_URL")
    if not base:
        pytest.skip("PASAR_TEST_DATABASE_URL is not set (bash .ci/run starts a PostgreSQL)")
    import psycopg

    name = f"pasar_{uuid.uuid4().hex[:12]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield ("--db", base.rsplit("/", 1)[0] + f"/{name}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database(home: Path, db_args: tuple[str, ...]) -> str:
    return db_args[1] if db_args else f"sqlite:///{home / 'market.db'}"


def _serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PASAR_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pasar",
            "market",
            "serve",
            "--home",
            str(home),
            "--port",
            "0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_second_writer_is_refused_with_exit_2(
    spawn_market: Any, tmp_path: Path, db_args: tuple[str, ...]
) -> None:
    home = tmp_path / "market"
    writer = spawn_market(home, *db_args)
    Party(writer).fund()

    second = _serve(home, "--devnet", *db_args)

    assert second.returncode == 2, second.stdout + second.stderr
    said = " ".join((second.stdout + second.stderr).split())
    assert "already the writer of" in said
    shown = str(home / "market.db") if not db_args else db_args[1].rsplit("/", 1)[1]
    assert shown in said  # names the database
    assert "--standby" in said and "stop the other node" in said
    assert writer.running  # and the writer was not disturbed
    assert httpx.get(f"{writer.url}/v1/healthz").json()["role"] == "writer"
    standby = spawn_market(home, *db_args, "--standby")  # a standby is welcome, and stops
    assert standby.stop() == 0  # cleanly while it waits
    Party(writer).fund()
    assert_conserved(writer.url)


def _load(party: Party, acked: list[Any], orders: list[str], stop: threading.Event) -> None:
    """Faucets and orders from one account, one at a time, until the writer stops answering;
    ``acked`` / ``orders`` get exactly those the market acknowledged with a 2xx."""
    n = 0
    while not stop.is_set():
        try:
            if n % 4 == 3:
                created = send_order(party.api, party.identity, SPEC)
                orders.append(str(created["order_id"]))
            else:
                party.post("/v1/faucet", type="faucet", amount=FAUCET)
                acked.append(n)
        except Exception:  # the writer is gone: whatever was in flight is not acknowledged
            return
        n += 1


@pytest.mark.slow
def test_a_standby_takes_over_a_killed_writer_without_losing_an_acknowledged_tx(
    spawn_market: Any, tmp_path: Path, db_args: tuple[str, ...]
) -> None:
    home = tmp_path / "market"
    writer = spawn_market(home, *db_args)
    standby = spawn_market(home, *db_args, "--standby")

    health = httpx.get(f"{standby.url}/v1/healthz").json()
    assert health["role"] == "standby"
    assert health["market"] == httpx.get(f"{writer.url}/v1/healthz").json()["market"]
    refused = httpx.post(f"{standby.url}/v1/faucet", json={})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "standby"
    assert refused.headers["retry-after"] == "1"

    parties = [Party(writer) for _ in range(4)]
    for party in parties:
        party.fund("5 USDC")
    acked: dict[str, list[Any]] = {p.id: [] for p in parties}
    orders: dict[str, list[str]] = {p.id: [] for p in parties}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(p, acked[p.id], orders[p.id], stop), daemon=True)
        for p in parties
    ]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_S)
    writer.kill()  # SIGKILL, mid-load
    stop.set()
    for thread in threads:
        thread.join(30)
    assert sum(len(a) for a in acked.values()) > 0, "the load never reached the writer"

    _wait_for_write(Party(standby), standby)
    assert httpx.get(f"{standby.url}/v1/healthz").json()["role"] == "writer"

    for party in parties:
        reader = Party(standby, party.identity)
        account = reader.get(f"/v1/accounts/{party.id}")
        # funded 5 USDC, then one faucet per acknowledged one; at most one more (the request
        # in flight at the kill may have committed without its 2xx reaching the client)
        for order_id in orders[party.id]:  # every acknowledged order is there (else a 404)
            assert reader.order(order_id)["escrow"] != "0.00 USDC"
        total = Money.parse(account["balance"]).micros + Money.parse(account["escrow"]).micros
        acked_micros = (
            Money.parse("5 USDC").micros + len(acked[party.id]) * Money.parse(FAUCET).micros
        )
        assert total - acked_micros in (0, Money.parse(FAUCET).micros), account
    events = [e.get("event") for e in standby.log()]
    assert "market.standby" in events and "market.takeover" in events
    assert_conserved(standby.url)
    assert_audit_passes(standby.url)
    audit = subprocess.run(
        [sys.executable, "-m", "pasar", "audit", "--db", _database(home, db_args), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["ok"] is True
    assert standby.stop() == 0  # the node that took over stops like any writer


def test_a_standby_with_another_market_key_is_refused_at_once(
    spawn_market: Any, tmp_path: Path
) -> None:
    home = tmp_path / "market"
    spawn_market(home)
    db = f"sqlite:///{home / 'market.db'}"

    other = _serve(tmp_path / "other", "--devnet", "--standby", "--db", db)

    assert other.returncode == 2, other.stdout + other.stderr
    said = " ".join((other.stdout + other.stderr).split())
    assert "is market" in said and "same --home" in said


def _wait_for_write(party: Party, node: Any) -> None:
    deadline = time.monotonic() + TAKEOVER_TIMEOUT_S
    while True:
        try:
            party.fund()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the standby took no write within {TAKEOVER_TIMEOUT_S} s:\n"
                    + node.stderr_path.read_text(errors="replace")[-3000:]
                ) from None
            time.sleep(0.2)


@pytest.mark.slow
def test_a_writer_whose_lock_connection_died_never_writes_again(
    spawn_market: Any, tmp_path: Path, db_args: tuple[str, ...]
) -> None:
    """PostgreSQL: the writer's lock connection is killed (a network cut, an operator's
    pg_terminate_backend) while the process lives on. It refuses writes and stops with exit 2;
    the standby takes over; nothing the old writer was sent after the loss reaches the log."""
    if not db_args:
        pytest.skip("the SQLite lock is a file lock: it is lost only with the process")
    from pasar.market.writer_lock import pg_writer_lock_key

    home = tmp_path / "market"
    writer = spawn_market(home, *db_args)
    standby = spawn_market(home, *db_args, "--standby")
    alice = Party(writer)
    alice.fund("3 USDC")

    hi, lo = divmod(pg_writer_lock_key("public"), 1 << 32)
    admin = sa.create_engine(db_args[1])
    with admin.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND classid::bigint = :hi AND objid::bigint = :lo "
                "AND objsubid = 1 AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            ),
            {"hi": hi, "lo": lo},
        ).all()
    admin.dispose()
    assert len(killed) == 1  # the writer's lock connection, and only it

    try:  # the watchdog may have stopped it already; if it answers, it refuses
        alice.post("/v1/faucet", type="faucet", amount="1 USDC")
        raise AssertionError("a writer without its lock took a write")
    except PasarError as refused:
        assert refused.status == 503, refused.to_dict()
    assert writer.proc.wait(15) == 2  # it stops (a supervisor restarts it), exit 2 saying why
    said = " ".join((writer.stdout() + writer.stderr_path.read_text(errors="replace")).split())
    assert "lost the writer lock" in said

    _wait_for_write(Party(standby, alice.identity), standby)
    account = Party(standby, alice.identity).get(f"/v1/accounts/{alice.id}")
    assert account["balance"] == "13.00 USDC"  # 3 + the standby's 10; not the refused 1
    assert_conserved(standby.url)
    audit = subprocess.run(
        [sys.executable, "-m", "pasar", "audit", "--db", db_args[1], "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_standby_does_not_take_over_a_log_altered_on_disk(
    spawn_market: Any, tmp_path: Path
) -> None:
    """The takeover verifies the whole log as an audit would: a transaction altered on disk
    while the writer ran (it never re-reads its log) stops the standby with exit 2, naming the
    damage, instead of serving a ledger that is not the one signed."""
    import sqlite3

    home = tmp_path / "market"
    writer = spawn_market(home)
    standby = spawn_market(home, "--standby")
    Party(writer).fund("10 USDC")
    with sqlite3.connect(home / "market.db") as conn:
        changed = conn.execute(
            "UPDATE txs SET envelope = replace(envelope, '10 USDC', '99 USDC') "
            "WHERE type = 'faucet'"
        ).rowcount
    assert changed == 1

    writer.kill()

    assert standby.proc.wait(TAKEOVER_TIMEOUT_S) == 2
    said = " ".join((standby.stdout() + standby.stderr_path.read_text(errors="replace")).split())
    assert "market.takeover_failed" in said
    assert "error: block 0: tx" in said and "signature does not match" in said, said[-2000:]
