"""A client that floods ``POST /v1/orders`` with bad signatures and bad bytes.

The order submission is served below FastAPI's routing (:mod:`pasar.market.order_fast_path`),
so every check it skips the framework for must still be there: a forged or tampered envelope,
one spending another account's money, bytes that are not JSON, a body over the limit. While
two threads flood, an honest client's orders go through; nothing of the flood is committed
and no money moves (conservation, and the audit replays the log).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
from attacklib import Party, assert_money_safe

from money_checks import balances
from pasar.client.raw_orders import prepared_order
from pasar.crypto.envelope import sign, wall_clock_ms

SPEC = {"run": "true", "max_price_per_hour": "0.01 USDC", "max_duration": "1m"}
FLOOD = 60  # per thread: bounded, the honest orders are what the test waits for


def _tampered(envelope: dict[str, Any]) -> dict[str, Any]:
    """The same envelope with one hex digit of its signature changed."""
    sig = envelope["sig"]
    return {**envelope, "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}


def test_a_flood_of_bad_orders_is_refused_and_commits_nothing(
    spawn_market: Any, tmp_path: Path
) -> None:
    market = spawn_market(tmp_path / "m", "--rate-limit", "10000")
    alice, mallory = Party(market), Party(market)
    alice.fund("5 USDC")
    mallory.fund("5 USDC")
    before = balances(market.url)
    market_id = alice.api.market
    order = prepared_order(mallory.api, mallory.identity, SPEC)
    # mallory signs with her key but names alice as the signer: alice's money, mallory's key
    as_alice = {**sign(order, mallory.identity, now_ms=wall_clock_ms(), market=market_id)}
    as_alice["signer"] = alice.id
    refusals: list[tuple[int, str]] = []
    lock = threading.Lock()

    def flood() -> None:
        with httpx.Client(base_url=market.url, timeout=30) as http:
            for i in range(FLOOD):
                envelope = sign(order, mallory.identity, now_ms=wall_clock_ms(), market=market_id)
                bad: dict[str, Any] = {
                    0: {"json": _tampered(envelope)},
                    1: {"json": as_alice},
                    2: {"content": b'{"body": {"type": "order.create"}, "sig": '},  # cut off
                    3: {"content": b"\xff\xfe not json"},
                }[i % 4]
                response = http.post("/v1/orders", **bad)
                with lock:
                    refusals.append((response.status_code, response.json()["error"]["code"]))

    threads = [threading.Thread(target=flood) for _ in range(2)]
    for t in threads:
        t.start()
    honest = [alice.launch(**SPEC) for _ in range(5)]  # while the flood goes on
    for t in threads:
        t.join()

    assert len(refusals) == 2 * FLOOD
    assert set(refusals) <= {(401, "bad_signature"), (400, "invalid_json")}
    assert (401, "bad_signature") in refusals and (400, "invalid_json") in refusals
    assert len(set(honest)) == 5
    mine = alice.get("/v1/orders")["orders"]
    assert {o["order_id"] for o in mine} == set(honest)  # none of the forged ones for alice
    assert mallory.get("/v1/orders")["orders"] == []  # nor for mallory
    after = balances(market.url)
    hers = {k: v for k, v in after.items() if mallory.id in k}
    assert hers and hers == {k: v for k, v in before.items() if mallory.id in k}  # unmoved
    assert_money_safe(market.url)


def test_an_order_body_over_the_limit_gets_the_413_before_it_is_read(
    spawn_market: Any, tmp_path: Path
) -> None:
    """The limits middleware still stands in front of the order path: announced or chunked."""
    market = spawn_market(tmp_path / "m")
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    with httpx.Client(base_url=market.url, timeout=30) as http:
        announced = http.post("/v1/orders", content=big)
        chunked = http.post("/v1/orders", content=iter([big[:1024], big[1024:]]))
        empty = http.post("/v1/orders", content=b"")
    for response in (announced, chunked):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "too_large"
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "invalid_json"


def test_order_requests_are_logged_as_every_request_is(spawn_market: Any, tmp_path: Path) -> None:
    """The order path writes the request log's line itself: the verified signer for an order
    that was taken, none for a forged one (an unverified claim is never logged as a signer)."""
    market = spawn_market(tmp_path / "m")
    alice, mallory = Party(market), Party(market)
    alice.fund("5 USDC")
    order_id = alice.launch(**SPEC)
    order = prepared_order(mallory.api, mallory.identity, SPEC)
    envelope = sign(order, mallory.identity, now_ms=wall_clock_ms(), market=alice.api.market)
    forged = httpx.post(f"{market.url}/v1/orders", json={**envelope, "signer": alice.id})
    assert forged.status_code == 401
    lines = [
        e
        for e in market.log()
        if e.get("event") == "request" and e["path"] == "/v1/orders" and e["method"] == "POST"
    ]
    assert [(e["status"], e.get("signer")) for e in lines] == [(200, alice.id), (401, None)]
    assert all(
        isinstance(e["ms"], float | int) and e["logger"] == "pasar.market.access" for e in lines
    )
    assert order_id in {o["order_id"] for o in alice.get("/v1/orders")["orders"]}
