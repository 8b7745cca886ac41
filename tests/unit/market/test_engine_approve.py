"""The engine approves a held result (``verification: approve``) once its window has passed,
and not a moment before: ``result.auto_approve`` is the market's own transaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from test_engine import MARKET, NOW, SPEC, register

from pasar.api.txs import ResultAutoApprove
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.crypto.merkle import root_of_files
from pasar.market.chain import ChainBuilder
from pasar.market.engine import Engine
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

WINDOW_S = 60


def test_the_engine_approves_a_held_result_after_the_window(tmp_path: Path) -> None:
    now = [NOW]
    preset = builtin_preset("pasar")
    rules = dataclasses.replace(preset.verification, approve_window_s=WINDOW_S)
    service = MarketService(
        store=SqlStore(f"sqlite:///{tmp_path / 'market.db'}"),
        identity=MARKET,
        preset=dataclasses.replace(preset, verification=rules),
        clock=lambda: now[0],
        devnet=True,
    )
    engine = Engine(service, ChainBuilder(service.store, MARKET, lambda: now[0]), tick_s=3600)

    def submit(who: Identity, **body: Any) -> dict[str, Any]:
        envelope = sign(body, who, market=MARKET.account_id, now_ms=now[0])
        return dict(
            service.submit(verify(envelope, market=MARKET.account_id, now_ms=now[0])).result
        )

    client, provider = Identity.generate(), Identity.generate()
    submit(client, type="faucet", amount="10 USDC")
    register(service, provider, "0.01 USDC")
    order_id = submit(
        client, type="order.create", **order_fields({**SPEC, "verification": "approve"})
    )["order_id"]
    assert engine.run_once() == 1  # the match
    (lease_id,) = service.state.orders[order_id].leases
    now[0] += 2_000
    submit(
        provider,
        type="receipt",
        lease_id=lease_id,
        exit_code=0,
        root=root_of_files([]),
        outputs=[],
        started_at=NOW,
        ended_at=now[0],
    )
    held_until = service.state.leases[lease_id].held_until
    assert held_until == now[0] + WINDOW_S * 1000
    now[0] = held_until - 1
    assert not [b for b in engine.due() if isinstance(b, ResultAutoApprove)]
    now[0] = held_until
    assert [b for b in engine.due() if isinstance(b, ResultAutoApprove)] == [
        ResultAutoApprove(lease_id=lease_id)
    ]
    assert engine.run_once() == 1
    assert service.state.leases[lease_id].status == "settled"
    assert service.state.orders[order_id].status == "done"
    assert engine.due() == []
