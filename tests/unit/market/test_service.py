"""The market service's write path: apply, group commit, and what happens when the DB fails."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market import service as service_module
from pasar.market.service import COMMIT_AVERAGING, QUICK_COMMIT_S, MarketService
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


def test_a_quick_commit_is_made_at_once_and_is_durable(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    pending = service.apply(faucet(Identity.generate()))
    assert service.store.head_seq() == 0  # applied, not yet in the log
    assert service.make_durable_at_once(pending.ticket)
    assert service.store.head_seq() == 1
    assert service.announce(pending).type == "faucet"


def test_no_commit_at_once_while_another_is_under_way(tmp_path: Path) -> None:
    """The event loop never waits for another thread's commit: it hands its own over."""
    service = make_service(tmp_path)
    pending = service.apply(faucet(Identity.generate()))
    with service._commit_lock:  # another caller's commit, under way
        assert not service.make_durable_at_once(pending.ticket)
    assert service.store.head_seq() == 0  # nothing was committed by the refused call
    service.make_durable(pending.ticket)
    assert service.store.head_seq() == 1


def test_slow_commits_are_handed_over_until_they_are_quick_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk: after one slow commit the next are refused at once (the caller waits in
    the commit thread instead, where waiting commits share one), and quick ones bring it back.
    Nothing is lost either way: every applied transaction ends in the log. The commits' time
    is the service's clock, which only the store's append moves here (a commit of 50 ms, then
    instant ones), so the count of refusals is exact whatever the machine's load."""
    service = make_service(tmp_path)
    alice = Identity.generate()
    append = service.store.append_many
    clock = {"s": 0.0}
    delay = {"s": 0.05}

    def slow_append(batch: Any) -> Any:
        clock["s"] += delay["s"]
        return append(batch)

    monkeypatch.setattr(service.store, "append_many", slow_append)
    monkeypatch.setattr(service_module, "time", SimpleNamespace(perf_counter=lambda: clock["s"]))
    first = service.apply(faucet(alice))
    assert service.make_durable_at_once(first.ticket)  # nothing known yet: tried at once
    second = service.apply(faucet(alice))
    assert not service.make_durable_at_once(second.ticket)  # the average is now over the line
    delay["s"] = 0.0
    refused = 0
    while not service.make_durable_at_once(second.ticket):
        refused += 1
        service.make_durable(service.apply(faucet(alice)).ticket)  # quick commits elsewhere
    average, expected = 0.05 * COMMIT_AVERAGING, 0  # the average after the slow commit
    while average > QUICK_COMMIT_S:  # each quick commit weighs it down
        expected += 1
        average *= 1 - COMMIT_AVERAGING
    assert refused == expected > 0
    assert service.store.head_seq() == service.state.tx_count == refused + 2
