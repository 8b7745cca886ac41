"""Hostile quotes: ``POST /v1/orders/quote`` is public, so anyone may send it anything.

A bad spec gets the very 4xx ``order.create`` gives it (same status, code and field: one set
of checks), never a 500; a spec asking for a billion near-free leases is refused (by the order
too: each lease is a slot in the market's memory); garbage bodies get the one JSON error shape.
Quotes move no money and create nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from attacklib import Party

from money_checks import assert_conserved
from pasar.client.raw_orders import send_order
from pasar.core.errors import PasarError
from pasar.core.quotes import UNCAPPED_UNITS

BASE: dict[str, Any] = {
    "run": "true",
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1m",
}

BAD_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("no duration", {k: v for k, v in BASE.items() if k != "max_duration"}),
    # alternatives are taken (the market chooses among them); malformed ones are not
    (
        "17 alternatives",
        {**BASE, "resources": {"alternatives": [{"cpus": 1}] * 17, "pick": "ordered"}},
    ),
    (
        "nested alternatives",
        {
            **BASE,
            "resources": {
                "alternatives": [{"alternatives": [{"cpus": 1}], "pick": "ordered"}],
                "pick": "ordered",
            },
        },
    ),
    ("empty alternatives", {**BASE, "resources": {"alternatives": [], "pick": "cheapest"}}),
    ("negative cpus", {**BASE, "resources": {"cpus": -1}}),
    ("unknown mechanism", {**BASE, "pricing": "lottery"}),
    # a billion leases at a price that rounds the escrow to nothing: free to ask, not to hold
    (
        "huge lease count",
        {**BASE, "shards": 10**9, "max_price_per_hour": "0.000001 USDC", "max_duration": "1s"},
    ),
    ("cluster too big", {**BASE, "num_nodes": 10**6}),
]


def quote(url: str, payload: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/orders/quote", json=payload, timeout=10)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"] and "Traceback" not in response.text
    return error


@pytest.mark.parametrize(("what", "spec"), BAD_SPECS, ids=[w for w, _ in BAD_SPECS])
def test_a_bad_spec_is_refused_by_the_quote_as_by_the_order(
    market_server: Any, what: str, spec: dict[str, Any]
) -> None:
    alice = Party(market_server)
    alice.fund()
    answer = quote(market_server.url, {"spec": spec})
    got = error_of(answer)
    with pytest.raises(PasarError) as refused:
        send_order(alice.api, alice.identity, spec)
    assert (answer.status_code, got["code"]) == (refused.value.status, refused.value.code), what
    if got.get("field") is not None or refused.value.field is not None:
        # the order's spec is body.spec, the quote's is spec: the same field under each
        assert got["field"].removeprefix("body.") == str(refused.value.field).removeprefix(
            "body."
        ), (got, refused.value.field)
    if what in ("huge lease count", "cluster too big"):
        assert got["code"] == "too_many_leases" and got["hint"]
    assert alice.get(f"/v1/accounts/{alice.id}")["escrow"] == "0.00 USDC"
    assert_conserved(market_server.url)


def test_a_spec_without_a_price_cap_is_quoted_uncapped_but_never_ordered(
    market_server: Any,
) -> None:
    """Issue 18: the client sets a missing cap from the quote, so the quote answers one (with
    a cap no ask reaches, never escrowed); an order without a cap is still refused."""
    alice = Party(market_server)
    alice.fund()
    spec = {k: v for k, v in BASE.items() if k != "max_price_per_hour"}
    answer = quote(market_server.url, {"spec": spec})
    assert answer.status_code == 200, answer.text
    assert answer.json()["max_price_per_hour"] == f"{UNCAPPED_UNITS}.00 USDC"
    with pytest.raises(PasarError) as refused:
        send_order(alice.api, alice.identity, spec)
    assert refused.value.field is not None and "max_price_per_hour" in refused.value.field
    assert alice.get(f"/v1/accounts/{alice.id}")["escrow"] == "0.00 USDC"
    assert_conserved(market_server.url)


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        {"spec": "not a spec"},
        {"spec": BASE, "unknown": 1},
        {"spec": BASE, "client": "x" * 1000},
        {},
        {"spec": {**BASE, "resources": {"cpus": 1, "gpus": 1}}},
    ],
    ids=["string", "spec-string", "extra-field", "long-client", "empty", "unknown-resource"],
)
def test_garbage_quotes_get_a_json_4xx(market_server: Any, payload: object) -> None:
    error_of(quote(market_server.url, payload))


def test_not_json_and_a_huge_body_are_refused(market_server: Any) -> None:
    url = f"{market_server.url}/v1/orders/quote"
    error_of(httpx.post(url, content=b"{not json", timeout=10))
    error_of(httpx.post(url, content=b'{"spec": "' + b"x" * (8 << 20) + b'"}', timeout=30))


def test_quotes_create_nothing_and_move_no_money(market_server: Any) -> None:
    alice = Party(market_server)
    alice.fund()
    before = alice.get(f"/v1/accounts/{alice.id}")
    for _ in range(20):
        answer = quote(market_server.url, {"spec": BASE, "client": alice.id})
        assert answer.status_code == 200, answer.text
    assert answer.json()["escrow"] != "0.00 USDC"
    assert alice.get(f"/v1/accounts/{alice.id}") == before
    assert alice.get("/v1/orders")["orders"] == []
    assert_conserved(market_server.url)
