"""The views on the wire keep their exact shape now that the routes build them from models:
fields that were omitted stay omitted, nulls stay null, and the SDK's parse of each answer
agrees with the raw JSON. A real app (lifespan, engine, SQLite) behind httpx, no sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pasar.api.base import parse
from pasar.api.leases import LeaseView
from pasar.api.offers import OfferList
from pasar.api.orders import OrderView
from pasar.client import calls
from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig
from pasar.market.serve import build_app

URL = "http://market.test"
LEASE_KEYS = {
    "lease_id",
    "order_id",
    "provider",
    "client",
    "shard",
    "shards",
    "status",
    "price_per_hour",
    "started_at",
    "ended_at",
    "verified_intervals",
    "billed_seconds",
    "billed_ms",
    "gpus",
    "devices",
    "cpus",
    "receipt",
    "bill",
    "checks",
}  # fmt: skip  (inputs: only in GET /v1/leases/{id}, with the spec)
ORDER_KEYS = {
    "order_id", "client", "status", "mechanism", "takes_bids", "spec", "created_at", "deadline",
    "unfilled", "escrow", "leases", "note", "inputs", "auction", "private",
}  # fmt: skip
OFFER_KEYS = {
    "online", "provider", "cpus", "memory", "disk", "reliability", "reputation", "score",
    "region", "limits", "stake", "rentable", "verified", "gpu_name", "num_gpus", "gpu_ram", "dph",
    "capacity",
}  # fmt: skip


@pytest.fixture
def market(tmp_path: Path) -> Iterator[TestClient]:
    config = MarketConfig(home=tmp_path / "m", db_url=f"sqlite:///{tmp_path / 'm.db'}", devnet=True)
    with TestClient(build_app(config), base_url=URL) as http:
        yield http


def test_order_lease_and_offer_views_keep_their_shape(market: TestClient) -> None:
    client, provider = Identity.generate(), Identity.generate()
    as_client = Transport(URL, http=market, identity=client)
    as_provider = Transport(URL, http=market, identity=provider)
    register = {
        "type": "provider.register",
        "inventory": {"gpus": {}, "cpus": 4, "memory_gb": 8, "disk_gb": 10},
        "asks": {"gpu": {}, "cpu_core": "0.05 USDC"},
        "score": 100,
    }
    as_provider.post_signed("/v1/providers", register, provider)
    as_client.perform(calls.faucet("10 USDC"), client)
    spec = {"run": "echo hi", "max_price_per_hour": "1 USDC", "max_duration": 60}
    created = as_client.perform(
        calls.create_order(prepared_order(as_client, client, spec), None), client
    )
    assert created.order_id is not None
    order_id = created.order_id

    offers = market.get("/v1/providers", params={"q": "rentable=any"}).json()
    (offer,) = offers["offers"]
    assert set(offer) == OFFER_KEYS  # a CPU offer has no GPU-only fields, not even as null
    assert offer["region"] is None and offer["limits"] is None
    assert parse(OfferList, offers).offers[0].provider == provider.account_id

    deadline = time.monotonic() + 20
    raw = as_client.perform(calls.get_order(order_id), client)
    while not raw["leases"] and time.monotonic() < deadline:  # the engine matches on its tick
        time.sleep(0.1)
        raw = as_client.perform(calls.get_order(order_id), client)
    assert set(raw) == ORDER_KEYS
    assert raw["note"] is None and raw["auction"] is None  # nulls stay on the wire
    (lease,) = raw["leases"]
    assert set(lease) == LEASE_KEYS  # no spec inside an order's lease
    assert lease["receipt"] is None and lease["bill"] is None and lease["gpus"] is None
    assert lease["devices"] == [] and raw["takes_bids"] is False  # a CPU lease; a book order
    assert parse(OrderView, raw).wire() == raw

    one = as_provider.perform(calls.lease(lease["lease_id"]), provider)
    assert isinstance(one, LeaseView) and one.spec is not None and one.spec["run"] == "echo hi"
    # what its provider runs, and (while it runs) the heartbeat challenge of the interval now
    assert set(one.wire()) == LEASE_KEYS | {"spec", "inputs", "private", "challenge"}
