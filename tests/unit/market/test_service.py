"""The market service's write path: apply, group commit, and what happens when the DB fails."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

MARKET_ID = Identity.from_seed(bytes(32)).account_id

NOW = 1_800_000_000_000


def make_service(tmp_path: Path) -> MarketService:
    store = SqlStore(f"sqlite:///{tmp_path / 'market.db'}")
    return MarketService(
        store=store,
        identity=Identity.from_seed(bytes(32)),
        preset=builtin_preset("pasar"),
        clock=lambda: NOW,
        devnet=True,
    )


def faucet(who: Identity, amount: str = "1 USDC") -> Any:
    envelope = sign({"type": "faucet", "amount": amount}, who, market=MARKET_ID, now_ms=NOW)
    return verify(envelope, market=MARKET_ID, now_ms=NOW)


def test_concurrent_writers_share_commits_and_the_log_replays(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    people = [Identity.generate() for _ in range(8)]

    def worker(who: Identity) -> None:
        for _ in range(25):
            service.submit(faucet(who))

    threads = [threading.Thread(target=worker, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.store.head_seq() == 200 == service.state.tx_count
    seqs = [r.seq for r in service.store.txs()]
    assert seqs == list(range(1, 201))
    before = service.state.balances_summary()
    assert service.recover() == 200
    assert service.state.balances_summary() == before


def test_a_failed_commit_stops_writes_until_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(tmp_path)
    alice = Identity.generate()
    service.submit(faucet(alice))

    def broken(_batch: Any) -> Any:
        raise PasarError("disk on fire", code="store_unavailable", status=503)

    monkeypatch.setattr(service.store, "append_many", broken)
    with pytest.raises(PasarError):
        service.submit(faucet(alice))
    with pytest.raises(PasarError) as err:
        service.submit(faucet(alice))
    assert err.value.status == 503
    monkeypatch.undo()
    restarted = MarketService(
        store=service.store,
        identity=service.identity,
        preset=service.preset,
        clock=service.clock,
        devnet=True,
    )
    assert restarted.state.tx_count == 1  # only what was durable


def test_a_database_refuses_another_preset_or_devnet_setting(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    service.submit(faucet(Identity.generate()))
    for preset, devnet in (("akash", True), ("pasar", False)):
        with pytest.raises(PasarError) as err:
            MarketService(
                store=service.store,
                identity=service.identity,
                preset=builtin_preset(preset),
                clock=service.clock,
                devnet=devnet,
            )
        assert err.value.code == "wrong_database"
