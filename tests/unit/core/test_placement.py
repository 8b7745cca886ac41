"""``placement`` of a multi-node job (issue 15): ``strict_spread`` (the default) puts every node
on a provider of its own; ``spread`` lets a provider take several nodes of the gang when its free
room holds them, each lease its own allocation, still all or nothing. Each mechanism is driven
directly (pure), then the market's state machine end to end (match, GPU slots, the quote)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from test_state import (
    ALICE,
    P1,
    P2,
    P3,
    SPEC,
    T0,
    _empty_root,
    conserved,
    heartbeat,
    make_state,
    market,
    send,
    tx,
)

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.auction import Auction
from pasar.core.pricing.base import Candidate, MatchResult, screen
from pasar.core.pricing.book import Book
from pasar.core.pricing.performance import Performance
from pasar.core.pricing.stake import StakeShare
from pasar.core.pricing.tender import PriceTable, Tender
from pasar.core.private_part import order_fields
from pasar.core.quotes import quote_order
from pasar.core.resources import Inventory, ResourceRequest
from pasar.core.spec import JobSpec, SpecError
from pasar.core.state import MarketState


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


ONE_CPU = ResourceRequest.build(cpus=1, memory_gb=1, disk_gb=1)
GANG = {**SPEC, "num_nodes": 3, "resources": {"cpus": 1}}


def gang_order(placement: str = "spread", nodes: int = 3) -> Order:
    return Order("o1", "client", ONE_CPU, usdc("1"), 3600, nodes, True, placement=placement)


def view(pid: str, cpus: int, *, stake: str | None = None, reputation: int = 1) -> ProviderView:
    inventory = Inventory.build(cpus=cpus, memory_gb=16, disk_gb=100)
    return ProviderView(
        pid, inventory, Fraction(reputation), stake=None if stake is None else usdc(stake)
    )


def priced(order: Order, views: list[ProviderView], prices: dict[str, str]) -> list[Candidate]:
    fitting, _ = screen(order, views)
    return [Candidate(v, a, usdc(prices[v.id]) if v.id in prices else None) for v, a in fitting]


def leases_of(result: MatchResult) -> dict[str, int]:
    return {a.provider: a.leases for a in result.awards}


# -- the spec --------------------------------------------------------------------------------------


def test_placement_is_public_normalized_and_absent_by_default() -> None:
    plain = JobSpec.from_dict(GANG)
    assert plain.placement is None and not plain.shares_providers
    assert "placement" not in plain.to_dict()  # specs written before it keep their digest
    spread = JobSpec.from_dict({**GANG, "placement": "SPREAD"})  # Ray's spelling
    assert spread.placement == "spread" and spread.shares_providers
    assert spread.public_dict()["placement"] == "spread"  # a requirement, like num_nodes
    assert Order.from_spec(spread, id="o", client="c").shares_providers
    assert not Order.from_spec(plain, id="o", client="c").shares_providers


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"placement": "x"}, "invalid_choice", "one of strict_spread, spread"),
        ({"placement": 3}, "invalid_choice", "one of strict_spread, spread"),
        ({"placement": "sprad"}, "invalid_choice", "did you mean 'spread'"),
        ({"placement": "pack"}, "invalid_choice", "use placement: spread"),
        ({"placement": "spread", "num_nodes": 1}, "conflicting_fields", "one node"),
        ({"placement": "strict_spread", "num_nodes": 1}, "conflicting_fields", "one node"),
        ({"placement": "spread", "num_nodes": 1, "shards": 3}, "conflicting_fields", "one node"),
    ],
)
def test_a_bad_placement_is_refused_naming_the_field(
    changes: dict[str, Any], code: str, words: str
) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec.from_dict({**GANG, **changes})
    (detail,) = err.value.details
    assert detail.field == "placement" and detail.code == code
    assert words in f"{detail.message} {detail.hint}"


# -- each mechanism: a gang of 3 on 2 providers, one with room for 2 nodes ------------------------

ROOMY, SMALL = view("roomy", 2, stake="10"), view("small", 1, stake="10")


def clear_with(mechanism: str, order: Order, views: list[ProviderView]) -> MatchResult:
    rng = random.Random(5)
    if mechanism == "book":
        prices = {v.id: "0.05" for v in views}
        return Book().clear(order, priced(order, views, prices), rng)
    if mechanism == "auction":
        prices = {v.id: "0.05" for v in views}
        return Auction().clear(order, priced(order, views, prices), rng)
    if mechanism == "tender":
        table = PriceTable.from_mapping({"currency": "USDC", "cpu": "0.02"})
        return Tender(table).clear(order, priced(order, views, {}), rng)
    assert mechanism == "stake"
    return StakeShare().clear(order, priced(order, views, {}), rng)


MECHANISMS = ("book", "auction", "tender", "stake")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_spread_puts_two_nodes_on_the_provider_with_room_for_them(mechanism: str) -> None:
    result = clear_with(mechanism, gang_order("spread"), [ROOMY, SMALL])
    assert leases_of(result) == {"roomy": 2, "small": 1} and result.unfilled == 0
    assert result.filled == 3


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_strict_spread_still_refuses_a_gang_larger_than_the_providers(mechanism: str) -> None:
    result = clear_with(mechanism, gang_order("strict_spread"), [ROOMY, SMALL])
    assert result.awards == () and result.unfilled == 3
    reason = result.reasons["roomy"]
    assert "needs 3" in reason and "providers" in reason and "placement" not in reason, reason


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_spread_is_still_all_or_nothing(mechanism: str) -> None:
    """Room for 3 nodes in all, a gang of 4: nobody wins, and the reason counts nodes."""
    result = clear_with(mechanism, gang_order("spread", nodes=4), [ROOMY, SMALL])
    assert result.awards == () and result.unfilled == 4
    assert "room for 3" in result.reasons["roomy"], result.reasons
    assert "3 of 4 nodes" in (result.note or "") or "room for 3" in (result.note or "")


def test_a_cheaper_provider_takes_several_nodes_and_equals_spread_first() -> None:
    views = [view("a", 4), view("b", 4), view("c", 4)]
    order = gang_order("spread")
    cheap_a = Book().clear(
        order, priced(order, views, {"a": "0.01", "b": "0.05", "c": "0.05"}), random.Random(1)
    )
    assert leases_of(cheap_a) == {"a": 3}  # room for 4 at the cheapest ask
    assert cheap_a.reasons["b"] == "ask 0.05 > winning ask 0.01"
    for seed in range(10):  # equal asks: a provider each, whatever the draw
        even = Book().clear(
            order, priced(order, views, dict.fromkeys("abc", "0.05")), random.Random(seed)
        )
        assert leases_of(even) == {"a": 1, "b": 1, "c": 1}


def test_a_second_price_auction_pays_the_first_place_left_over() -> None:
    """The runner-up is the best place no node took: another bidder's, or, among equal bids, a
    winner's own further node (a bidder offers at most as many places as the gang has nodes)."""
    order = gang_order("spread", nodes=2)
    views = [view("a", 3), view("b", 1)]
    result = Auction(second_price=True).clear(
        order, priced(order, views, {"a": "0.10", "b": "0.30"}), random.Random(0)
    )
    assert leases_of(result) == {"a": 2} and result.awards[0].price_per_hour == usdc("0.30")
    tied = [view("a", 2), view("b", 1), view("c", 2)]
    gang = gang_order("spread", nodes=3)
    paid = Auction(second_price=True).clear(
        gang, priced(gang, tied, {"a": "0.10", "b": "0.30", "c": "0.10"}), random.Random(0)
    )
    assert sorted(leases_of(paid).values()) == [1, 2] and set(leases_of(paid)) == {"a", "c"}
    assert {a.price_per_hour for a in paid.awards} == {usdc("0.10")}  # the other's 2nd place


def test_the_tender_indexer_gives_the_best_provider_the_nodes_it_has_room_for() -> None:
    table = PriceTable.from_mapping({"currency": "USDC", "cpu": "0.02"})
    views = [view("best", 2, reputation=1), view("worse", 2, reputation=0)]
    order = gang_order("spread")
    result = Tender(table).clear(order, priced(order, views, {}), random.Random(0))
    assert leases_of(result) == {"best": 2, "worse": 1}


def test_performance_pricing_never_packs_a_gang() -> None:
    """Its price is the whole node's score: it says so, and an order asking is refused."""
    assert Performance.packs_gangs is False
    assert all(m.packs_gangs for m in (Book, Auction, Tender, StakeShare))


# -- the market's state: match, allocations, the quote ---------------------------------------------


def register(s: MarketState, provider: str, *, cpus: int, ask: str = "0.05", gpus: int = 0) -> None:
    inventory: dict[str, Any] = {"gpus": [], "cpus": cpus, "memory_gb": 8, "disk_gb": 20}
    asks: dict[str, Any] = {"cpu_core": ask}
    if gpus:
        inventory["gpus"] = ["H100"] * gpus
        inventory["devices"] = [{"index": i, "uuid": f"GPU-{provider}-{i}"} for i in range(gpus)]
        asks = {"gpu": {"H100": ask}}
    send(s, provider, T0, type="provider.register", inventory=inventory, asks=asks, score=100)


def create(s: MarketState, **spec: Any) -> str:
    """An order for the gang spec changed by ``spec`` (its own id: a digest of its nonce)."""
    t = tx(ALICE, T0 + 1, type="order.create", **order_fields({**GANG, **spec}))
    unique = replace(t, digest=hashlib.sha256(t.nonce.encode()).hexdigest())
    return str(s.apply(unique).result["order_id"])


def test_a_spread_gang_of_three_runs_on_two_providers_each_lease_its_own_gpus() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpus=8, gpus=4)  # room for 2 nodes of 2 GPUs
    register(s, P2, cpus=8, gpus=2)  # room for 1
    gpus = {"cpus": 2, "memory": 3, "accelerators": "H100:2"}
    order_id = create(s, placement="spread", resources=gpus)
    leases = market(s, T0 + 2, type="match", order_id=order_id, seed=3)["leases"]
    assert len(leases) == 3 and s.orders[order_id].status == "running"
    by_provider: dict[str, list[str]] = {}
    for x in leases:
        by_provider.setdefault(s.leases[x].provider, []).append(x)
    assert sorted(len(v) for v in by_provider.values()) == [1, 2]
    two = by_provider[P1]
    # the devices a lease is handed (by NVML index and UUID, what its provider exposes)
    held = [{d.uuid for d in s.leases[x].allocation.devices} for x in two]
    assert held[0].isdisjoint(held[1]) and len(held[0]) == len(held[1]) == 2  # none twice
    assert held[0] | held[1] == {f"GPU-{P1}-{i}" for i in range(4)}
    free = s.providers[P1].free()
    assert free.gpu_count == 0 and free.cpus == 4 and free.memory_gb == 2  # each node subtracted
    assert sorted(s.leases[x].shard for x in leases) == [0, 1, 2]
    # every node is billed for its own verified time; the ledger is conserved
    for x in leases:
        lease = s.leases[x]
        heartbeat(s, x, 0, lease.started_at + 100)
        send(s, lease.provider, lease.started_at + 4000, type="receipt", lease_id=x,
             exit_code=0, outputs=[], root=_empty_root())  # fmt: skip
    assert {s.leases[x].status for x in leases} == {"settled"}
    assert all(s.ledger.balance(LedgerAccount.earnings(p), "USDC").micros > 0 for p in (P1, P2))
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC").micros == 0
    conserved(s)


def test_strict_spread_waits_where_spread_matches() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpus=2)
    register(s, P2, cpus=1)
    strict = create(s)
    assert market(s, T0 + 2, type="match", order_id=strict, seed=1)["leases"] == []
    assert s.orders[strict].status == "open" and "only 2 asks fit" in (s.orders[strict].note or "")
    spread = create(s, placement="spread")
    leases = market(s, T0 + 3, type="match", order_id=spread, seed=1)["leases"]
    assert sorted(s.leases[x].provider for x in leases) == [P1, P1, P2]
    conserved(s)


def test_a_quote_counts_node_places_under_spread() -> None:
    s = make_state()
    register(s, P1, cpus=2)
    register(s, P2, cpus=1)
    register(s, P3, cpus=4, ask="0.50")  # busy or dear: its whole machine still counts
    gang = {**GANG, "num_nodes": 8}
    strict = quote_order(s, JobSpec.from_dict(gang), client=ALICE)
    assert strict.providers_fit == strict.nodes_fit == 3 and not strict.fits_anywhere
    spread = quote_order(s, JobSpec.from_dict({**gang, "placement": "spread"}), client=ALICE)
    assert spread.providers_fit == 3 and spread.nodes_fit == 7 and not spread.fits_anywhere
    seven = quote_order(
        s, JobSpec.from_dict({**gang, "num_nodes": 7, "placement": "spread"}), client=ALICE
    )
    assert seven.fits_anywhere and seven.unfilled == 0 and seven.awards


def test_a_spread_clearing_is_the_same_through_the_fleet_index() -> None:
    """Audits replay clearings: the cheapest-asks walk must award what the full scan does."""
    rng = random.Random(7)
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="100 USDC")
    for i in range(30):
        register(
            s, f"prov-{i:02d}", cpus=rng.randint(1, 3), ask=rng.choice(["0.01", "0.02", "0.03"])
        )
    for nodes in (2, 5, 9, 20):
        order_id = create(s, placement="spread", num_nodes=nodes)
        record = s.orders[order_id]
        for seed in range(8):
            full = s.clear(record, seed, indexed=False)
            walked = s.clear(record, seed, indexed=True)
            assert full.awards == walked.awards and full.filled == nodes


def test_a_strict_gang_leases_a_lost_node_again_on_a_provider_of_its_own() -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpus=8, ask="0.01")
    register(s, P2, cpus=8, ask="0.02")
    register(s, P3, cpus=8, ask="0.05")
    order_id = create(s, num_nodes=2, on_node_loss="replace")
    head, worker = sorted(
        market(s, T0 + 2, type="match", order_id=order_id, seed=1)["leases"],
        key=lambda x: s.leases[x].shard,
    )
    assert {s.leases[head].provider, s.leases[worker].provider} == {P1, P2}
    lost = s.leases[worker].provider
    market(s, s.leases[worker].started_at + 20_000, type="lease.lost", lease_id=worker)
    again = market(s, s.leases[worker].started_at + 21_000, type="match", order_id=order_id,
                   seed=2)["leases"]  # fmt: skip
    member = s.leases[head].provider  # the cheapest, with room: but it runs a node already
    assert [s.leases[x].provider for x in again] == [P3] and lost != P3
    assert "placement: strict_spread" in s.orders[order_id].reasons[member]
    conserved(s)


# -- hostile clients: refused, nothing moved -------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "code", "field"),
    [
        ({"placement": "everywhere"}, "invalid_choice", "placement"),
        ({"placement": "spread", "num_nodes": 1}, "conflicting_fields", "placement"),
        ({"placement": "spread", "pricing": "performance"}, "placement_unavailable",
         "spec.placement"),
    ],
)  # fmt: skip
def test_a_bad_placement_in_an_order_is_refused_and_nothing_moves(
    spec: dict[str, Any], code: str, field: str
) -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpus=4)
    before = s.balances_summary()
    public = {k: v for k, v in {**GANG, **spec}.items() if k != "run"}
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 1, type="order.create", spec=public, private="ab" * 32)
    error = err.value
    assert 400 <= error.status < 500 and error.hint
    assert code in (error.code, *(d.code for d in getattr(error, "details", ()))), error
    assert field in (error.field or "") or any(
        field == d.field for d in getattr(error, "details", ())
    ), error
    assert s.balances_summary() == before and s.orders == {}
    conserved(s)
