"""``POST /v1/orders/quote`` against a real market: what it quotes is what the order then does.

For every mechanism the pasar preset allows, a spec is quoted, then ordered for real: the order
escrows exactly the quoted escrow, and for mechanisms that match at once the engine awards the
leases the quote named, at the quoted prices. An auction is quoted as the window it would open
(who is invited; bids decide). The quote itself changes nothing: no order, no escrow.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from money_checks import assert_conserved
from pasar.client.client import Client
from pasar.client.raw_orders import send_order
from pasar.client.transport import Transport
from pasar.crypto.identity import Identity

if TYPE_CHECKING:
    from conftest import MarketProcess


class Actor:
    """A key and a transport: a client, or a provider without its agent."""

    def __init__(self, market: MarketProcess) -> None:
        self.identity = Identity.generate()
        self.id = self.identity.account_id
        self.api = Transport(market.url, identity=self.identity)

    def post(self, path: str, **body: Any) -> Any:
        return self.api.post_signed(path, body, self.identity)

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params)

    def register(self, cpus: int, cpu_ask: str, rate: str) -> None:
        self.post(
            "/v1/providers",
            type="provider.register",
            inventory={"gpus": [], "cpus": cpus, "memory_gb": 64, "disk_gb": 200},
            asks={"cpu_core": cpu_ask},
            rate_per_score_hour=rate,
            score=100,
        )


def spec(pricing: str, cpus: int, shards: int = 1) -> dict[str, Any]:
    return {
        "name": f"quoted-{pricing}",
        "run": "true",
        "resources": {"cpus": cpus},
        "shards": shards,
        "pricing": pricing,
        "max_price_per_hour": "1 USDC",
        "max_duration": "30m",
    }


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def market(market_server: MarketProcess) -> dict[str, Any]:
    """Three CPU providers: two small ones with distinct asks and rates, one big and dear one
    (the only one that fits a 12-CPU lease) with stake."""
    cheap, dear, big = (Actor(market_server) for _ in range(3))
    cheap.register(8, "0.05", "0.001")
    dear.register(8, "0.10", "0.002")
    big.register(16, "0.20", "0.004")
    big.post("/v1/faucet", type="faucet", amount="5 USDC")
    big.post("/v1/stakes", type="stake", amount="1 USDC")
    alice = Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="50 USDC")
    return {"cheap": cheap.id, "dear": dear.id, "big": big.id, "alice": alice}


@pytest.mark.parametrize(
    ("pricing", "cpus", "shards"),
    [("book", 2, 2), ("performance", 2, 2), ("tender", 12, 1), ("stake", 12, 1)],
)
def test_an_immediate_order_does_what_its_quote_said(
    market_server: MarketProcess, market: dict[str, Any], pricing: str, cpus: int, shards: int
) -> None:
    alice: Actor = market["alice"]
    client = Client(transport=Transport(market_server.url), identity=alice.identity)
    job = spec(pricing, cpus, shards)
    quoted = client.quote(job)
    assert quoted.mechanism == pricing and not quoted.takes_bids and quoted.decided_by is None
    assert quoted.leases == shards and quoted.unfilled == 0, quoted
    assert quoted.chosen is not None and quoted.price_per_hour is not None
    if cpus == 12:  # only the big provider fits; the others are out, with why
        assert quoted.chosen == market["big"]
        assert {market["cheap"], market["dear"]} <= quoted.reasons.keys()
    # a quote changes nothing: no order, nothing escrowed
    assert client.balance()["escrow"] == "0.00 USDC" and client.jobs() == []

    created = send_order(alice.api, alice.identity, job)
    assert created["escrow"] == quoted.escrow
    order = wait_for(
        lambda: (o := alice.get(f"/v1/orders/{created['order_id']}"))["unfilled"] == 0 and o
    )
    leases = sorted((x["provider"], x["price_per_hour"]) for x in order["leases"])
    awarded = sorted((a.provider, a.price_per_hour) for a in quoted.awards for _ in range(a.leases))
    assert leases == awarded
    assert order["leases"][0]["provider"] in {o.provider for o in quoted.offers if o.chosen}

    alice.post(
        f"/v1/orders/{created['order_id']}/cancel",
        type="order.cancel",
        order_id=created["order_id"],
    )
    assert_conserved(market_server.url)


def test_an_auction_is_quoted_as_the_window_it_would_open(
    market_server: MarketProcess, market: dict[str, Any]
) -> None:
    alice: Actor = market["alice"]
    job = spec("auction", 2)
    quoted = httpx.post(
        f"{market_server.url}/v1/orders/quote", json={"spec": job, "client": alice.id}, timeout=10
    ).json()
    assert quoted["takes_bids"] is True and quoted["decided_by"]
    assert quoted["chosen"] is None and quoted["awards"] == []  # bids decide, not the preview
    invited = sorted(o["provider"] for o in quoted["offers"])
    assert invited == sorted([market["cheap"], market["dear"], market["big"]])

    created = send_order(alice.api, alice.identity, job)
    assert created["escrow"] == quoted["escrow"]
    order = alice.get(f"/v1/orders/{created['order_id']}")
    assert order["takes_bids"] is True
    assert order["escrow"] == quoted["escrow"]  # nobody bid: all of it is still the order's
    assert order["auction"]["invited"] == invited
    alice.post(
        f"/v1/orders/{created['order_id']}/cancel",
        type="order.cancel",
        order_id=created["order_id"],
    )
    assert_conserved(market_server.url)


def test_a_signed_quote_leaves_out_the_signers_own_provider(
    market_server: MarketProcess, market: dict[str, Any]
) -> None:
    own = Actor(market_server)
    own.register(8, "0.01", "0.0001")  # the cheapest of all, but it is the client itself
    client = Client(transport=Transport(market_server.url), identity=own.identity)
    quoted = client.quote(spec("book", 2))
    assert quoted.reasons[own.id] == "is the client of this order"
    assert quoted.chosen == market["cheap"]
    anonymous = httpx.post(
        f"{market_server.url}/v1/orders/quote", json={"spec": spec("book", 2)}, timeout=10
    ).json()
    assert anonymous["chosen"] == own.id  # anyone else would get it
