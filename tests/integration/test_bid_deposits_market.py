"""Akash bid deposits on a real market (``--preset akash``): a bid holds 0.5 USDC, the loser's
comes back when the window clears, the winner's when its receipt settles the lease, and a
provider that cannot pay is refused with a 409 and a hint — with money conserved throughout."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from test_market_flow import Actor, register, wait_for

from pasar.client.raw_orders import send_order
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import save_identity
from pasar.crypto.merkle import root_of_files
from pasar.provider import PROVIDER_KEY

if TYPE_CHECKING:
    from conftest import MarketProcess

SPEC = {
    "name": "deposit",
    "run": "echo hi",
    "resources": {"cpus": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}


def balances(actor: Actor) -> dict[str, Money]:
    rows = actor.get("/v1/state/balances")["balances"]
    return {k: Money.parse(v) for k, v in rows.items()}


def conserved(actor: Actor, minted: str) -> None:
    rows = balances(actor)
    assert sum(m.micros for m in rows.values()) == 0
    assert -rows["mint/USDC"].micros == Money.parse(minted).micros


def spendable(actor: Actor) -> str:
    return str(actor.get(f"/v1/accounts/{actor.id}")["balance"])


def test_bids_hold_deposits_returned_to_loser_and_winner(spawn_market: Any, tmp_path: Any) -> None:
    market: MarketProcess = spawn_market(tmp_path / "akash", "--preset", "akash")
    alice, cheap, dear, broke = Actor(market), Actor(market), Actor(market), Actor(market)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    for p in (cheap, dear, broke):
        register(p, "0.05")
    for p in (cheap, dear):
        p.post("/v1/faucet", type="faucet", amount="1 USDC")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    path = f"/v1/orders/{order_id}/bids"
    with pytest.raises(PasarError) as err:
        broke.post(path, type="bid", order_id=order_id, price="0.10")
    assert err.value.status == 409 and err.value.code == "bid_deposit_unpaid"
    assert err.value.hint and "faucet" in err.value.hint
    assert spendable(broke) == "0.00 USDC"
    assert dear.post(path, type="bid", order_id=order_id, price="0.80")["deposit"] == "0.50 USDC"
    assert spendable(dear) == "0.50 USDC"
    held = balances(alice)
    assert held[f"bid_deposit:{order_id}/{dear.id}/USDC"] == Money.parse("0.5 USDC")
    cheap.post(path, type="bid", order_id=order_id, price="0.30")
    # the broke provider never bids: the window clears at its deadline (5 s on akash)
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o, 20)
    (lease,) = order["leases"]
    assert lease["provider"] == cheap.id
    wait_for(lambda: spendable(dear) == "1.00 USDC")  # the loser's came back
    assert spendable(cheap) == "0.50 USDC"  # the winner's backs its lease
    conserved(alice, "7 USDC")
    cheap.post(
        "/v1/receipts",
        type="receipt",
        lease_id=lease["lease_id"],
        exit_code=0,
        outputs=[],
        root=root_of_files([]),
    )
    assert spendable(cheap) == "1.00 USDC"
    assert not [k for k in balances(alice) if k.startswith("bid_deposit:")]
    conserved(alice, "7 USDC")


def test_provider_status_shows_stake_unbonding_and_held_deposits(
    spawn_market: Any, tmp_path: Any
) -> None:
    market: MarketProcess = spawn_market(tmp_path / "akash", "--preset", "akash")
    alice, prov = Actor(market), Actor(market)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(prov, "0.05")
    prov.post("/v1/faucet", type="faucet", amount="3 USDC")
    prov.post("/v1/stakes", type="stake", amount="2 USDC")
    prov.post("/v1/unstakes", type="unstake", amount="0.5 USDC")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    prov.post(f"/v1/orders/{order_id}/bids", type="bid", order_id=order_id, price="0.50")

    path = f"/v1/providers/{prov.id}/stake"
    view = prov.api.get(path, signer=prov.identity)
    assert view["stake"] == "1.50 USDC" and view["slashed"] == "0.00 USDC"
    assert view["required"] is None  # akash: no standing stake, a deposit per bid
    (unbonding,) = view["unbonding"]
    assert unbonding["amount"] == "0.50 USDC" and unbonding["release_at"] > 0
    assert view["bid_deposits"] == [{"order_id": order_id, "amount": "0.50 USDC"}]
    before = balances(alice)
    assert market.stop() == 0
    market = market.restart()  # the deposits and the stake view are replayed from the log
    alice.api = Transport(market.url, identity=alice.identity)
    prov.api = Transport(market.url, identity=prov.identity)
    assert balances(alice) == before
    assert prov.api.get(path, signer=prov.identity) == view
    with pytest.raises(PasarError) as err:  # sealed bids stay sealed: the view is its own
        alice.api.get(path, signer=alice.identity)
    assert err.value.status == 403

    home = tmp_path / "prov-home"
    save_identity(prov.identity, PROVIDER_KEY, home)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pasar",
            "provider",
            "status",
            "--market",
            market.url,
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "stake bonded 1.50 USDC" in out
    assert "unbonding 0.50 USDC, free at" in out
    assert "slashed 0.00 USDC in all" in out
    assert f"bid deposit 0.50 USDC held for {order_id}" in out
