"""A provider that tries to pull its stake out from under a running lease (to escape a slash).

``unstake`` existed in the docs but not in the API. Now it does, with the preset's unbonding
delay: the stake leaves at once but stays slashable until the cooldown ends, and it is refused
while the stake backs running leases.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from attacklib import Party, assert_money_safe

from pasar.client.raw_orders import send_order
from pasar.core.errors import PasarError

GPU_SPEC = {
    "resources": {"accelerators": "A100", "cpus": 2},
    "max_price_per_hour": "2 USDC",
    "max_duration": "1h",
    "run": "sleep 600",
}


def test_stake_cannot_escape_a_running_lease_nor_its_cooldown(
    spawn_market: Any, tmp_path: Path
) -> None:
    market = spawn_market(tmp_path / "ionet", "--preset", "ionet")
    provider, alice = Party(market), Party(market)
    provider.fund("500 USDC")
    provider.post(
        "/v1/providers",
        type="provider.register",
        inventory={"gpus": {"A100-80GB": 1}, "cpus": 8, "memory_gb": 64, "disk_gb": 200},
        asks={"gpu": {"A100-80GB": "1.0"}},
        score=100,
    )
    provider.post("/v1/stakes", type="stake", amount="300 USDC")
    alice.fund("50 USDC")
    order_id = send_order(alice.api, alice.identity, GPU_SPEC)["order_id"]
    deadline = time.monotonic() + 10
    while not alice.order(order_id)["leases"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alice.order(order_id)["leases"], "the engine did not match the order"

    with pytest.raises(PasarError) as busy:
        provider.post("/v1/unstakes", type="unstake", amount="300 USDC")
    assert busy.value.status == 409 and busy.value.code == "stake_in_use"
    assert provider.get(f"/v1/accounts/{provider.id}")["stake"] == "300.00 USDC"

    alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    done = provider.post("/v1/unstakes", type="unstake", amount="300 USDC")
    assert done["unstaked"] == "300.00 USDC"
    assert provider.get(f"/v1/accounts/{provider.id}")["stake"] == "0.00 USDC"
    with pytest.raises(PasarError) as early:  # 14 days of unbonding on io.net
        provider.post("/v1/unstakes/withdraw", type="unbonded.withdraw")
    assert early.value.status == 409 and early.value.code == "cooldown"
    assert_money_safe(market.url)
