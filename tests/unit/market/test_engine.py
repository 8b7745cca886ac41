"""The engine: woken by the transactions that give it work, asking liveness only about the
providers a clearing examines."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from pasar.api.txs import Match
from pasar.core.private_part import order_fields
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.chain import ChainBuilder
from pasar.market.engine import Engine
from pasar.market.liveness import Liveness
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

MARKET = Identity.from_seed(bytes(32))
NOW = 1_800_000_000_000
SPEC = {"run": "true", "resources": {"cpus": 1}, "max_price_per_hour": "1 USDC",
        "max_duration": "1m"}  # fmt: skip


def make_service(tmp_path: Path) -> MarketService:
    from pasar.core.presets import builtin_preset

    return MarketService(
        store=SqlStore(f"sqlite:///{tmp_path / 'market.db'}"),
        identity=MARKET,
        preset=builtin_preset("pasar"),
        clock=lambda: NOW,
        devnet=True,
    )


def submit(service: MarketService, who: Identity, **body: Any) -> dict[str, Any]:
    envelope = sign(body, who, market=MARKET.account_id, now_ms=NOW)
    verified = verify(envelope, market=MARKET.account_id, now_ms=NOW)
    return dict(service.submit(verified).result)


def register(service: MarketService, who: Identity, cpu_ask: str) -> None:
    submit(
        service,
        who,
        type="provider.register",
        inventory={"gpus": [], "cpus": 4, "memory_gb": 8, "disk_gb": 50},
        asks={"cpu_core": cpu_ask},
    )


def run_engine_while(engine: Engine, scenario: Any) -> None:
    """Run ``engine`` on an event loop while ``scenario()`` (blocking) runs in a thread."""

    async def main() -> None:
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(0.2)  # the first pass has run; the next tick is an hour away
        try:
            await asyncio.to_thread(scenario)
        finally:
            engine.stop()
            await task

    asyncio.run(main())


def test_new_capacity_wakes_the_engine_without_waiting_for_a_tick(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    engine = Engine(service, ChainBuilder(service.store, MARKET, lambda: NOW), tick_s=3600)
    client = Identity.generate()
    submit(service, client, type="faucet", amount="10 USDC")
    order_id = submit(service, client, type="order.create", **order_fields(SPEC))["order_id"]
    matched = threading.Event()

    def scenario() -> None:
        register(service, Identity.generate(), "0.01 USDC")  # the order can match now
        for _ in range(200):  # a bounded wait for the wake-up, not a timing assertion
            with service.lock:
                if service.state.orders[order_id].leases:
                    matched.set()
                    return
            time.sleep(0.05)

    run_engine_while(engine, scenario)
    assert matched.is_set(), "the order waited for the engine's tick"


def test_an_order_is_matched_before_its_sender_is_answered(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    engine = Engine(service, ChainBuilder(service.store, MARKET, lambda: NOW), tick_s=3600)
    register(service, Identity.generate(), "0.01 USDC")
    client = Identity.generate()
    submit(service, client, type="faucet", amount="10 USDC")
    seen: dict[str, Any] = {}

    def scenario() -> None:
        order_id = submit(service, client, type="order.create", **order_fields(SPEC))["order_id"]
        with service.lock:  # no waiting at all: the match came with the order
            seen["leases"] = list(service.state.orders[order_id].leases)
        seen["log"] = [r.type for r in service.store.txs()][-2:]

    run_engine_while(engine, scenario)
    assert len(seen["leases"]) == 1
    assert seen["log"] == ["order.create", "match"]


def test_the_match_names_only_the_offline_providers_the_clearing_examined(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    service.state.full_scan_up_to = 0  # clear through the fleet index, as a large market does
    engine = Engine(service, ChainBuilder(service.store, MARKET, lambda: NOW))
    cheap, middle, dear = Identity.generate(), Identity.generate(), Identity.generate()
    for who, ask in ((cheap, "0.01 USDC"), (middle, "0.02 USDC"), (dear, "0.03 USDC")):
        register(service, who, ask)
    client = Identity.generate()
    submit(service, client, type="faucet", amount="10 USDC")
    # a fresh liveness: only the middle provider has been heard from
    service.liveness = Liveness(60.0)
    service.liveness.heard(middle.account_id)
    order_id = submit(service, client, type="order.create", **order_fields(SPEC))["order_id"]
    (body,) = engine.due()
    assert isinstance(body, Match) and body.order_id == order_id
    # the dear provider is offline too, but the walk never reached it
    assert body.offline == [cheap.account_id]
    service.submit_market(body)
    (lease,) = service.state.orders[order_id].leases
    assert service.state.leases[lease].provider == middle.account_id
