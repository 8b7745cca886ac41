"""The wire models are the API's one description: they agree with the state machine's
transaction fields, tolerate a newer market's extra fields in clients, refuse stray fields on
the server, and are what ``/openapi.json`` documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pasar.api.base import parse
from pasar.api.feed import FeedPage
from pasar.api.leases import LeaseView
from pasar.api.orders import OrderView, OrderWait, PublicOrderView
from pasar.api.status import LEASE_STATUSES, ORDER_STATUSES, lease_status, order_status
from pasar.api.txs import TX_BODIES, Bid, OrderCreate, Receipt
from pasar.core.errors import PasarError
from pasar.core.tx_fields import TX_FIELDS as _FIELDS

LEASE = {
    "lease_id": "l-1",
    "order_id": "o-1",
    "provider": "pa1p",
    "client": "pa1c",
    "shard": 0,
    "status": "running",
    "price_per_hour": "1.000000 USDC",
    "started_at": 5,
}
ORDER = {
    "order_id": "o-1",
    "client": "pa1c",
    "status": "running",
    "mechanism": "book",
    "takes_bids": False,
    "spec": {"run": "echo hi"},
    "created_at": 1,
    "deadline": 2,
    "unfilled": 0,
    "escrow": "1.000000 USDC",
    "leases": [LEASE],
    "note": None,
    "inputs": [],
    "auction": None,
}


@pytest.mark.parametrize("tx_type", sorted(_FIELDS))
def test_each_tx_body_model_has_the_state_machines_fields(tx_type: str) -> None:
    model = TX_BODIES[tx_type]
    assert set(model.model_fields) - {"type"} == _FIELDS[tx_type]
    assert model.model_fields["type"].default == tx_type


def test_every_tx_type_has_a_model() -> None:
    assert set(TX_BODIES) == set(_FIELDS)


def test_a_body_signs_what_was_given_and_nothing_else() -> None:
    assert OrderCreate(spec={"cpus": 1}, private="a" * 64).body() == {
        "type": "order.create",
        "spec": {"cpus": 1},
        "private": "a" * 64,
    }
    # a declined bid sends its null price: the state machine reads it as a decline
    assert Bid(order_id="o-1", price=None).body() == {
        "type": "bid",
        "order_id": "o-1",
        "price": None,
    }


def test_a_client_ignores_fields_a_newer_market_added() -> None:
    newer = {**ORDER, "shiny": 1, "leases": [{**LEASE, "topology": ["nvlink"]}]}
    order = parse(OrderView, newer)
    assert order.leases[0].lease_id == "l-1"
    assert order.status == "running"


def test_a_malformed_answer_is_a_bad_response_naming_the_field() -> None:
    with pytest.raises(PasarError) as err:
        parse(OrderView, {**ORDER, "status": "exploded"})
    assert err.value.code == "bad_response"
    assert err.value.status == 502
    assert err.value.field == "status"


def test_the_server_refuses_stray_fields() -> None:
    with pytest.raises(ValidationError):
        LeaseView.model_validate({**LEASE, "stray": True})
    with pytest.raises(ValidationError):
        Receipt.model_validate(
            {
                "lease_id": "l",
                "exit_code": 0,
                "root": "r",
                "outputs": [],
                "started_at": 1,
                "ended_at": 2,
                "extra": 1,
            }
        )


def test_omitted_fields_stay_omitted_on_the_wire() -> None:
    # a lease inside an order has no spec; only GET /v1/leases/{id} sets it
    order = parse(OrderView, ORDER)
    assert "spec" not in order.leases[0].wire()
    assert "spec" in parse(LeaseView, {**LEASE, "spec": {"run": "x"}}).wire()


def test_the_wait_answer_is_a_full_or_a_public_view() -> None:
    full = parse(OrderWait, {"order": ORDER, "next": 3})
    assert isinstance(full.order, OrderView)
    public = {k: v for k, v in ORDER.items() if k not in ("escrow", "leases", "note", "inputs")}
    assert isinstance(parse(OrderWait, {"order": public, "next": 3}).order, PublicOrderView)


def test_a_feed_event_keeps_its_transactions_result() -> None:
    page = parse(
        FeedPage,
        {
            "events": [
                {
                    "seq": 4,
                    "type": "match",
                    "order_id": "o-1",
                    "leases": ["l-1"],
                    "assigned": {"l-1": "pa1p"},
                }
            ],
            "next": 4,
        },
    )
    event = page.events[0]
    assert event.assigned == {"l-1": "pa1p"}
    assert event.leases == ["l-1"]


def test_status_literals_check_core_values() -> None:
    assert order_status("done") == "done"
    assert lease_status("lost") == "lost"
    assert "released" in LEASE_STATUSES and "expired" in ORDER_STATUSES
    with pytest.raises(ValueError):
        order_status("finished")


def test_openapi_documents_each_transaction_body(tmp_path: Path) -> None:
    from pasar.market.config import MarketConfig
    from pasar.market.serve import build_app

    app = build_app(
        MarketConfig(home=tmp_path / "m", db_url=f"sqlite:///{tmp_path / 'm.db'}", devnet=True)
    )
    schema = app.openapi()
    schemas = schema["components"]["schemas"]
    body = schema["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/OrderCreateEnvelope"}
    envelope = schemas["OrderCreateEnvelope"]
    assert envelope["properties"]["body"] == {"$ref": "#/components/schemas/OrderCreate"}
    assert set(schemas["OrderCreate"]["properties"]) == {"type", *_FIELDS["order.create"]}
    answer = schema["paths"]["/v1/orders/{order_id}"]["get"]["responses"]["200"]
    refs = {x["$ref"] for x in answer["content"]["application/json"]["schema"]["anyOf"]}
    assert refs == {"#/components/schemas/OrderView", "#/components/schemas/PublicOrderView"}
    statuses = schemas["OrderView"]["properties"]["status"]["enum"]
    assert set(statuses) == set(ORDER_STATUSES)
