"""Issue 13: a ``match`` on the winning provider's own feed carries its new leases' views.

The view is the one ``GET /v1/leases/{id}`` answers that provider — spec, inputs, their small
bytes inline, and the challenge of heartbeat interval 0 — so its agent starts the job and
sends its first heartbeat without two reads. Checked here against a real market process: only
the lease's own provider sees its view (another provider named by the same ``match`` sees only
its own; the order's client and a bystander never), the carried challenge works for interval 0
and nothing else, a page's views are bounded, and money is conserved throughout.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from test_market_flow import SPEC, Actor, register, total_minted, wait_for

from pasar.client.raw_orders import send_order
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.merkle import root_of_files

if TYPE_CHECKING:
    from conftest import MarketProcess


def upload(actor: Actor, data: bytes, name: str) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    actor.api.request("PUT", f"/v1/blobs/{sha}", signer=actor.identity, content=data)
    return {"path": name, "sha256": sha, "size": len(data)}


def feed_page(provider: Actor, after: int) -> dict[str, Any]:
    path = f"/v1/providers/{provider.id}/feed"
    page: dict[str, Any] = provider.api.get(
        path, {"after": after, "timeout": 5}, signer=provider.identity
    )
    return page


def matches(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in page["events"] if e["type"] == "match"]


def match_page(provider: Actor, after: int, order_id: str) -> dict[str, Any]:
    """The provider's feed from ``after`` once it holds the order's match."""
    page: dict[str, Any] = wait_for(
        lambda: (
            (p := feed_page(provider, after))
            and any(e["order_id"] == order_id for e in matches(p))
            and p
        )
    )
    return page


def head(provider: Actor) -> int:
    return int(
        provider.api.get(
            f"/v1/providers/{provider.id}/feed", {"timeout": 0}, signer=provider.identity
        )["next"]
    )


class Split:
    """A 2-shard order split between two providers by one ``match``, and their feeds' pages."""

    def __init__(self, market: MarketProcess) -> None:
        self.alice, self.first, self.second, self.bystander = (Actor(market) for _ in range(4))
        self.alice.post("/v1/faucet", type="faucet", amount="10 USDC")
        register(self.first, "0.05", cpus=2)  # each fits one shard: the match splits the order
        register(self.second, "0.06", cpus=2)
        register(self.bystander, "0.07", cpus=2)
        providers = (self.first, self.second, self.bystander)
        self.cursors = {p.id: head(p) for p in providers}
        self.call = upload(self.alice, b"the call's payload", "call.pkl")
        spec = {**SPEC, "shards": 2}
        self.order_id = send_order(self.alice.api, self.alice.identity, spec, [self.call])[
            "order_id"
        ]
        self.pages = {p.id: match_page(p, self.cursors[p.id], self.order_id) for p in providers[:2]}
        (match,) = matches(self.pages[self.first.id])
        assert match["order_id"] == self.order_id and len(match["assigned"]) == 2
        self.assigned: dict[str, str] = match["assigned"]
        # each provider's lease
        self.mine = {holder: lease for lease, holder in self.assigned.items()}

    def event(self, provider: Actor) -> dict[str, Any]:
        (event,) = matches(self.pages[provider.id])
        return event


def test_only_the_winning_provider_gets_its_lease_view(market_server: MarketProcess) -> None:
    split = Split(market_server)
    alice, first, second = split.alice, split.first, split.second
    for provider, other in ((first, second), (second, first)):
        event = split.event(provider)
        lease_id = split.mine[provider.id]
        # the same match names both leases; each provider's page carries its own view only
        assert event["assigned"] == split.assigned
        assert list(event["views"]) == [lease_id]
        view = event["views"][lease_id]
        assert view["provider"] == provider.id and view["status"] == "running"
        assert view["spec"]["run"] == SPEC["run"]
        assert view["inputs"][0]["sha256"] == split.call["sha256"]
        assert view["inline_inputs"] == {
            split.call["sha256"]: base64.b64encode(b"the call's payload").decode()
        }
        assert view["challenge"]["interval"] == 0 and view["challenge"]["lease_id"] == lease_id
        assert split.mine[other.id] not in json.dumps(event["views"])
        # the same view as GET /v1/leases/{id} answers it (the fallback), challenge included
        got = provider.api.get(f"/v1/leases/{lease_id}", {}, signer=provider.identity)
        assert got.pop("challenge")["interval"] == 0
        assert got == {k: v for k, v in view.items() if k != "challenge"}
    # a provider the match does not name hears nothing of it; the client's views carry no
    # provider's view, inputs' bytes or challenge
    bystander = split.bystander
    assert not any(
        e.get("views") or e["type"] == "match"
        for e in feed_page(bystander, split.cursors[bystander.id])["events"]
        if e.get("order_id") == split.order_id
    )
    for lease_id in split.mine.values():
        theirs = alice.api.get(f"/v1/leases/{lease_id}", {}, signer=alice.identity)
        assert "inline_inputs" not in theirs and "challenge" not in theirs
    waited = json.dumps(alice.get(f"/v1/orders/{split.order_id}/wait", timeout=0))
    assert '"views"' not in waited and '"challenge"' not in waited
    # nobody reads another's feed, views or not
    for reader in (second, alice):
        with pytest.raises(PasarError) as err:
            reader.api.get(
                f"/v1/providers/{first.id}/feed",
                {"after": split.cursors[first.id], "timeout": 0},
                signer=reader.identity,
            )
        assert err.value.status == 403


def beat(who: Actor, lease_id: str, interval: int, signature: str) -> Any:
    body = {"lease_id": lease_id, "interval": interval, "challenge": signature}
    return who.post("/v1/heartbeats", type="heartbeat", **body)


def test_the_carried_challenge_answers_interval_0_only(market_server: MarketProcess) -> None:
    """Interval 0's challenge, handed over with the lease, answers interval 0 of that lease
    once, for its provider; forged, for another interval or another lease, it is refused.
    Both leases then settle, and every micro-unit is accounted for."""
    split = Split(market_server)
    first, second = split.first, split.second
    lease, theirs = split.mine[first.id], split.mine[second.id]
    challenge = split.event(first)["views"][lease]["challenge"]["challenge"]
    other_challenge = split.event(second)["views"][theirs]["challenge"]["challenge"]
    forged = ("0" if challenge[0] != "0" else "1") + challenge[1:]
    refusals = [
        (first, lease, 0, forged, 401),  # not the market's signature
        (first, lease, 1, challenge, 401),  # interval 0's challenge for interval 1
        (first, lease, 0, other_challenge, 401),  # another lease's challenge
        (second, lease, 0, challenge, 403),  # another provider's lease
    ]
    for who, lease_id, interval, signature, status in refusals:
        with pytest.raises(PasarError) as err:
            beat(who, lease_id, interval, signature)
        assert err.value.status == status, (interval, err.value.code)
    assert beat(first, lease, 0, challenge)["verified_seconds"] == 5
    with pytest.raises(PasarError) as err:
        beat(first, lease, 0, challenge)
    assert err.value.code == "duplicate_heartbeat"
    assert beat(second, theirs, 0, other_challenge)["verified_seconds"] == 5

    output = upload(first, b"hi\n", "out.txt")
    upload(second, b"hi\n", "out.txt")
    for who, lease_id in ((first, lease), (second, theirs)):
        who.post(
            "/v1/receipts",
            type="receipt",
            lease_id=lease_id,
            exit_code=0,
            outputs=[output],
            root=root_of_files([("out.txt", output["sha256"])]),
        )
    alice = split.alice
    done = wait_for(
        lambda: (o := alice.get(f"/v1/orders/{split.order_id}"))["status"] == "done" and o
    )
    assert done["escrow"] == "0.00 USDC"
    assert total_minted(alice.get("/v1/state/balances")["balances"]) == Money.parse("10 USDC")


def test_the_challenge_route_answers_the_lease_s_parties_only(
    market_server: MarketProcess,
) -> None:
    """``GET /v1/leases/{id}/challenge`` is a signed read for the lease's parties, as the lease
    view is: unsigned it is 401 (an anonymous caller no longer learns whether a lease runs, nor
    its challenge) and for a signed stranger 403; the lease's provider gets the challenge of the
    interval in progress, the one its feed carried."""
    split = Split(market_server)
    first, second = split.first, split.second
    lease = split.mine[first.id]
    path = f"/v1/leases/{lease}/challenge"
    unsigned = httpx.get(f"{market_server.url}{path}", timeout=10)
    assert unsigned.status_code == 401, unsigned.text
    with pytest.raises(PasarError) as err:
        second.get(path)  # another provider named by the same match: not this lease's party
    assert err.value.status == 403
    carried = split.event(first)["views"][lease]["challenge"]
    answered = first.get(path)
    assert (answered["interval"], answered["challenge"]) == (0, carried["challenge"])
    assert split.alice.get(path)["lease_id"] == lease  # the client is a party too
    assert total_minted(split.alice.get("/v1/state/balances")["balances"]) == Money.parse("10 USDC")


def test_a_feed_page_carries_a_bounded_number_of_views_and_inline_bytes(
    market_server: MarketProcess,
) -> None:
    """A burst of matches (or a feed read from far behind): at most 32 views on a page, and
    their inline inputs 256 KiB in all; past that a lease comes without (its agent reads it)."""
    alice, prov = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="100 USDC")
    prov.post(
        "/v1/providers",
        type="provider.register",
        inventory={"gpus": [], "cpus": 64, "memory_gb": 64, "disk_gb": 100},
        asks={"cpu_core": "0.01"},
        score=100,
    )
    start = head(prov)
    spec = {**SPEC, "resources": {"cpus": 1}}
    big = [upload(alice, bytes([i]) * (60 * 1024), f"in{i}.bin") for i in range(5)]
    orders = [send_order(alice.api, alice.identity, spec, [x])["order_id"] for x in big]
    orders += [send_order(alice.api, alice.identity, spec)["order_id"] for _ in range(30)]
    wanted = set(orders)

    def all_matched() -> list[dict[str, Any]] | None:
        found = [e for e in matches(feed_page(prov, start)) if e["order_id"] in wanted]
        return found if len(found) == len(orders) else None

    found = wait_for(all_matched)
    views = [v for e in found for v in (e.get("views") or {}).values()]
    assert len(views) == 32  # 35 matches: the last 3 leases are read by GET
    assert [e["order_id"] for e in found if e.get("views")] == orders[:32]
    inlined = [v for v in views[:5] if v.get("inline_inputs")]
    assert len(inlined) == 4  # 4 × 60 KiB fit in 256 KiB; the fifth's input is fetched
    assert all(v["challenge"]["interval"] == 0 for v in views)

    for order_id in orders:  # cancelled: escrow back, nothing lost
        alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    assert total_minted(alice.get("/v1/state/balances")["balances"]) == Money.parse("100 USDC")
