"""A nosy stranger and a replaying market: who may read a job's private data.

Before, anyone could read every order's spec (its ``envs`` too), every blob, every log, and a
request signed for one market was valid at every other market the signer used. Now reads of a
job's private data are signed requests, answered for the job's parties only, and every
signature names its market.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from attacklib import PROVIDER_ARGS, Party, assert_money_safe

from pasar.client.raw_orders import prepared_order
from pasar.core.errors import PasarError
from pasar.crypto.envelope import sign, wall_clock_ms

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

SECRET = "tok-7f3a-do-not-leak"


def _private_paths(order: dict[str, Any]) -> list[str]:
    (lease,) = order["leases"]
    output = lease["receipt"]["outputs"][0]["sha256"]
    return [
        f"/v1/orders/{order['order_id']}",
        f"/v1/orders/{order['order_id']}/wait?timeout=0",
        f"/v1/orders/{order['order_id']}/explain",
        f"/v1/leases/{lease['lease_id']}",
        f"/v1/leases/{lease['lease_id']}/logs",
        f"/v1/blobs/{order['inputs'][0]['sha256']}",
        f"/v1/blobs/{output}",
        f"/v1/accounts/{order['client']}/history",
    ]


def test_a_jobs_private_data_is_for_its_parties_only(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    alice, mallory = Party(market_server), Party(market_server)
    alice.fund()
    data = f"input holding {SECRET}\n".encode()
    sha = alice.put_blob(data)
    order_id = alice.launch(
        run="cat in.txt; echo $API_TOKEN > out.txt",
        envs={"API_TOKEN": SECRET},
        inputs=[{"path": "in.txt", "sha256": sha, "size": len(data)}],
        outputs=["out.txt"],
    )
    order = alice.wait(order_id, lambda o: o["status"] == "done")
    assert order["leases"][0]["provider"] == provider.account
    for path in _private_paths(order):
        anonymous = httpx.get(f"{market_server.url}{path}", timeout=10)
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert SECRET not in anonymous.text
        assert anonymous.json()["error"]["code"] == "unauthenticated"
        with pytest.raises(PasarError) as stranger:
            mallory.api.request("GET", path)
        assert stranger.value.status == 403, path
        assert alice.api.request("GET", path).status_code == 200, path  # the client reads all
    assert SECRET in alice.order(order_id)["spec"]["envs"]["API_TOKEN"]
    # mallory cannot list alice's orders either, nor sign a read with a made-up header
    with pytest.raises(PasarError) as listing:
        mallory.get("/v1/orders", client=alice.id)
    assert listing.value.status == 403
    bad = httpx.get(
        f"{market_server.url}/v1/orders/{order_id}",
        headers={"authorization": f"Pasar signer={alice.id},ts={wall_clock_ms()},sig={'0' * 128}"},
    )
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_signature"
    # what stays public: offers, stats, the chain (so anyone can audit)
    for path in ("/v1/providers", "/v1/stats", "/v1/chain/head", "/v1/healthz"):
        assert httpx.get(f"{market_server.url}{path}", timeout=10).status_code == 200
    assert_money_safe(market_server.url)


def test_a_request_signed_for_another_market_is_refused(
    market_server: Any, spawn_market: Any, tmp_path: Path
) -> None:
    other = spawn_market(tmp_path / "other")
    alice = Party(market_server)
    alice.fund("5 USDC")
    for_other = sign(
        {"type": "faucet", "amount": "5 USDC"},
        alice.identity,
        now_ms=wall_clock_ms(),
        market=Party(other).api.market,
    )
    replayed = httpx.post(f"{market_server.url}/v1/faucet", json=for_other, timeout=10)
    assert replayed.status_code == 403
    assert replayed.json()["error"]["code"] == "wrong_market"
    assert alice.get(f"/v1/accounts/{alice.id}")["balance"] == "5.00 USDC"
    assert_money_safe(market_server.url)


def test_a_sealed_order_naming_blobs_it_never_uploaded_is_refused(market_server: Any) -> None:
    """A sealed order names its encrypted inputs on the chain (the market cannot read its
    private part): each must be a blob its signer uploaded, or the order is refused unescrowed."""
    alice = Party(market_server)
    alice.fund("5 USDC")
    spec = {"run": "echo secret", "privacy": "sealed", "resources": {"cpus": 1},
            "max_price_per_hour": "1 USDC", "max_duration": "1m"}  # fmt: skip
    body = {**prepared_order(alice.api, alice.identity, spec), "blobs": ["ab" * 32]}
    with pytest.raises(PasarError) as err:
        alice.post("/v1/orders", **body)
    assert err.value.status == 422 and err.value.code == "missing_blob"
    assert alice.get(f"/v1/accounts/{alice.id}")["escrow"] == "0.00 USDC"
    assert_money_safe(market_server.url)
