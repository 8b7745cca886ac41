"""Small blobs attached to the signed request that names them (:mod:`pasar.api.attachments`).

Against a real market process: an order whose private part and input come attached (no PUT)
is accepted and its blobs are its signer's; every malformed, oversized, mismatched or
unsigned attachment is refused with the field to fix, nothing stored and no money moved; a
route that takes no attachments refuses the field.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from money_checks import assert_conserved, balances
from pasar.api.attachments import INLINE_BYTES, MAX_ATTACHMENTS
from pasar.client.transport import Transport
from pasar.core.money import Money
from pasar.core.private_part import PrivatePart, order_fields
from pasar.core.spec import JobSpec
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

SPEC = {
    "run": "cat in.txt",
    "inputs": [],
    "resources": {"cpus": 64},  # nobody fits: the order just waits
    "max_price_per_hour": "1 USDC",
    "max_duration": "1m",
}
INPUT = b"attached input\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def blob_files(home: Path) -> set[str]:
    return {p.name for p in (home / "blobs").glob("??/*")}


class Order:
    """A signed order.create whose private part (and one input) are to be attached."""

    def __init__(self, transport: Transport, identity: Identity) -> None:
        job = JobSpec.build(**SPEC)
        manifest = [{"path": "in.txt", "sha256": sha(INPUT), "size": len(INPUT)}]
        self.part = PrivatePart.of(job, manifest, secrets.token_bytes(32))
        self.blobs = {self.part.commitment: self.part.to_bytes(), sha(INPUT): INPUT}
        body = {"type": "order.create", **order_fields(job, self.part)}
        self.document: dict[str, Any] = sign(
            body, identity, now_ms=wall_clock_ms(), market=transport.market
        )

    def with_attachments(self, attachments: object) -> dict[str, Any]:
        return {**self.document, "attachments": attachments}


@pytest.fixture
def alice(market_server: Any) -> tuple[Transport, Identity]:
    identity = Identity.generate()
    transport = Transport(market_server.url, identity=identity)
    transport.post_signed("/v1/faucet", {"type": "faucet", "amount": "5 USDC"}, identity)
    return transport, identity


def post(url: str, document: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/orders", json=document, timeout=10)


def test_an_order_with_its_blobs_attached_needs_no_upload(
    market_server: Any, alice: tuple[Transport, Identity]
) -> None:
    transport, identity = alice
    order = Order(transport, identity)
    answer = post(
        market_server.url,
        order.with_attachments({k: b64(v) for k, v in order.blobs.items()}),
    )
    assert answer.status_code == 200, answer.text
    order_id = answer.json()["order_id"]
    assert order.blobs.keys() <= blob_files(market_server.home)
    # stored as the signer's uploads: it reads them back, a stranger is told nothing
    for key, data in order.blobs.items():
        assert transport.request("GET", f"/v1/blobs/{key}", signer=identity).content == data
        stranger = Identity.generate()
        refused = transport.build("GET", f"/v1/blobs/{key}", stranger)
        assert httpx.Client().send(refused).status_code == 403
    assert transport.request("GET", f"/v1/orders/{order_id}", signer=identity).json()["status"]
    assert Money.parse(balances(market_server.url)[f"order_escrow:{order_id}/USDC"]).micros > 0
    assert_conserved(market_server.url)


def _refused(
    market_server: Any,
    alice: tuple[Transport, Identity],
    attachments: object,
    *,
    status: int,
    code: str,
    field: str,
) -> None:
    transport, identity = alice
    order = Order(transport, identity)
    before, stored = balances(market_server.url), blob_files(market_server.home)
    answer = post(market_server.url, order.with_attachments(attachments))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert error["hint"]
    assert balances(market_server.url) == before  # no order, no escrow
    assert blob_files(market_server.home) == stored  # nothing stored
    assert_conserved(market_server.url)


def test_attachments_that_do_not_hash_to_their_keys_are_refused(
    market_server: Any, alice: tuple[Transport, Identity]
) -> None:
    part_sha = Order(*alice).part.commitment  # any real key: the bytes are someone else's
    _refused(
        market_server,
        alice,
        {part_sha: b64(b"not the private part")},
        status=400,
        code="hash_mismatch",
        field=f"attachments.{part_sha[:16]}",
    )


@pytest.mark.parametrize(
    ("attachments", "code", "field"),
    [
        (["not", "an", "object"], "invalid_attachments", "attachments"),
        ({"NOT-A-SHA": b64(b"x")}, "invalid_attachments", "attachments.NOT-A-SHA"),
        ({sha(b"x"): 7}, "invalid_attachments", f"attachments.{sha(b'x')[:16]}"),
        ({sha(b"x"): "%%% not base64"}, "invalid_attachments", f"attachments.{sha(b'x')[:16]}"),
        (
            {sha(bytes([i])): b64(bytes([i])) for i in range(MAX_ATTACHMENTS + 1)},
            "invalid_attachments",
            "attachments",
        ),
    ],
    ids=["list", "key", "number", "base64", "too-many"],
)
def test_malformed_attachments_are_refused_naming_the_field(
    market_server: Any,
    alice: tuple[Transport, Identity],
    attachments: object,
    code: str,
    field: str,
) -> None:
    _refused(market_server, alice, attachments, status=400, code=code, field=field)


def test_attachments_over_the_limit_are_refused_before_being_stored(
    market_server: Any, alice: tuple[Transport, Identity]
) -> None:
    half = b"a" * (INLINE_BYTES // 2 + 1)  # two of them: over the limit together
    other = b"b" * (INLINE_BYTES // 2 + 1)
    _refused(
        market_server,
        alice,
        {sha(half): b64(half), sha(other): b64(other)},
        status=413,
        code="too_large",
        field="attachments",
    )


def test_attachments_that_fit_the_quota_one_by_one_but_not_together_are_refused(
    spawn_market: Any, tmp_path: Path
) -> None:
    """The quota holds for a request's attachments together: each of two fits in what is
    left of the account's quota, both do not — nothing is stored, no order, no money moved."""
    market = spawn_market(tmp_path / "m", "--blob-quota-mb", "1")
    identity = Identity.generate()
    transport = Transport(market.url, identity=identity)
    transport.post_signed("/v1/faucet", {"type": "faucet", "amount": "5 USDC"}, identity)
    free = 24 << 10
    filler = secrets.token_bytes((1 << 20) - free)
    transport.request("PUT", f"/v1/blobs/{sha(filler)}", signer=identity, content=filler)
    one, two = (secrets.token_bytes(free * 2 // 3) for _ in range(2))  # each fits, not both
    _refused(
        market,
        (transport, identity),
        {sha(one): b64(one), sha(two): b64(two)},
        status=413,
        code="quota_exceeded",
        field="attachments",
    )


def test_attachments_of_a_badly_signed_request_are_not_stored(
    market_server: Any, alice: tuple[Transport, Identity]
) -> None:
    transport, identity = alice
    order = Order(transport, identity)
    forged = order.with_attachments({k: b64(v) for k, v in order.blobs.items()})
    forged["sig"] = ("0" if forged["sig"][0] != "0" else "1") + forged["sig"][1:]
    before, stored = balances(market_server.url), blob_files(market_server.home)
    answer = post(market_server.url, forged)
    assert answer.status_code == 401, answer.text
    assert blob_files(market_server.home) == stored  # the uploader was never known
    assert balances(market_server.url) == before


def test_a_route_that_takes_no_attachments_refuses_the_field(
    market_server: Any, alice: tuple[Transport, Identity]
) -> None:
    transport, identity = alice
    document = sign(
        {"type": "faucet", "amount": "1 USDC"},
        identity,
        now_ms=wall_clock_ms(),
        market=transport.market,
    )
    document["attachments"] = {sha(b"x"): b64(b"x")}
    before = balances(market_server.url)
    answer = httpx.post(f"{market_server.url}/v1/faucet", json=document, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "attachments"
    assert balances(market_server.url) == before
    assert sha(b"x") not in blob_files(market_server.home)
