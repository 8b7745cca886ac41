"""The presets' stake rules hold when work is handed out (state.eligible_view): a provider short
of the flat (gensyn) or per-GPU (io.net) stake gets no lease, and says why; staking the
required amount lets it in."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from test_state import ALICE, P1, T0, make_state, market, send, tx

from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState

CPU_SPEC = {
    "run": "echo hi",
    "resources": {"cpus": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
    "verification": "receipt",
}
GPU_SPEC = {
    **CPU_SPEC,
    "resources": {"accelerators": "A100", "cpus": 2},
    "max_price_per_hour": "5 USDC",
}


def create_order(s: MarketState, at: int, spec: dict[str, Any]) -> str:
    """``order.create`` with a digest of its own (the order id is its first 16 hex digits)."""
    t = tx(ALICE, at, type="order.create", **order_fields(spec))
    t = dataclasses.replace(t, digest=hashlib.sha256(t.digest.encode()).hexdigest())
    return str(s.apply(t).result["order_id"])


def setup(preset: str, gpus: dict[str, int], asks: dict[str, Any]) -> MarketState:
    s = make_state(preset)
    send(s, ALICE, T0, type="faucet", amount="100 USDC")
    send(s, P1, T0, type="faucet", amount="500 USDC")
    send(
        s,
        P1,
        T0,
        type="provider.register",
        inventory={"gpus": gpus, "cpus": 8, "memory_gb": 64, "disk_gb": 200},
        asks=asks,
        score=100,
    )
    return s


@pytest.mark.parametrize(
    "case",
    [
        ("gensyn", {}, {"cpu_core": "0.1"}, CPU_SPEC, "99 USDC", "100.00 USDC"),  # flat
        ("ionet", {"A100-80GB": 1}, {"gpu": {"A100-80GB": "1"}}, GPU_SPEC, "59 USDC", "60.00 USDC"),
    ],
)
def test_a_provider_short_of_its_stake_gets_no_lease_until_it_stakes(case: tuple[Any, ...]) -> None:
    preset, gpus, asks, spec, short, need = case
    s = setup(preset, gpus, asks)
    send(s, P1, T0 + 1, type="stake", amount=short)
    first = create_order(s, T0 + 2, spec)
    assert market(s, T0 + 3, type="match", order_id=first, seed=1)["leases"] == []
    have = Money.parse(short).to_json()
    assert s.orders[first].reasons[P1] == f"stake {have} < required {need}"
    send(s, P1, T0 + 4, type="stake", amount="1 USDC")
    second = create_order(s, T0 + 5, spec)
    (lease,) = market(s, T0 + 6, type="match", order_id=second, seed=1)["leases"]
    assert s.leases[lease].provider == P1
