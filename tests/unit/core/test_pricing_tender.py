"""The ``tender`` mechanism (Aethir): the network's price table and the quality indexer."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, Mechanism, screen
from pasar.core.pricing.tender import PriceTable, Tender, quality
from pasar.core.resources import GpuModel, Inventory, ResourceRequest
from pasar.core.stake import FlatStake


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


TABLE = PriceTable.from_mapping(
    {"currency": "USDC", "cpu": "0.02", "H100": "2.40", "A100": "1.20", "a100-80gb": "1.60 USDC"}
)
H100 = ResourceRequest.build(gpus=1, models=["H100"], cpus=2, memory_gb=8, disk_gb=10)


def gpu_box(name: str = "H100", count: int = 1) -> Inventory:
    return Inventory.build(gpus={name: count}, cpus=32, memory_gb=128, disk_gb=500)


def order(
    request: ResourceRequest = H100,
    leases: int = 1,
    *,
    max_price: str = "3",
    together: bool = False,
) -> Order:
    return Order("o1", "client", request, usdc(max_price), 3600, leases, together)


def node(
    pid: str,
    reputation: Fraction,
    latency_ms: int,
    inventory: Inventory | None = None,
    stake: str | None = None,
) -> ProviderView:
    return ProviderView(
        pid,
        inventory or gpu_box(),
        reputation=reputation,
        latency_ms=latency_ms,
        stake=None if stake is None else Money.parse(stake),
    )


def candidates(o: Order, providers: list[ProviderView], ask: str | None = None) -> list[Candidate]:
    fitting, _ = screen(o, providers)
    return [Candidate(p, a, None if ask is None else usdc(ask)) for p, a in fitting]


FAR = node("far", Fraction(9, 10), 50)  # quality 9/10 × 50/100 = 0.45
NEAR = node("near", Fraction(3, 5), 0)  # quality 0.6
NEW = node("new", Fraction(1, 2), 10)  # quality 1/2 × 50/60 = 0.416…


# the price table -----------------------------------------------------------------------------


def test_table_keys_are_normalised() -> None:
    assert set(TABLE.prices) == {"cpu", "H100", "A100", "A100-80GB"}
    assert TABLE.to_mapping()["A100-80GB"] == "1.60 USDC"
    assert PriceTable.from_mapping(TABLE.to_mapping()) == TABLE


def test_tiers_and_prices_of_one_lease() -> None:
    cpu = ResourceRequest.build(cpus="2.5", memory_gb=4)
    assert TABLE.tier(cpu) == "cpu"
    assert TABLE.lease_price(cpu) == usdc("0.05")  # 0.02 × 2.5 cores
    two = ResourceRequest.build(gpus=2, models=["H100"])
    assert TABLE.tier(two) == "H100"
    assert TABLE.lease_price(two) == usdc("4.80")  # 2.40 × 2 GPUs
    any_a100 = ResourceRequest.build(gpus=1, models=["A100"])
    assert TABLE.tier(any_a100) == "A100"
    assert TABLE.lease_price(any_a100, GpuModel.parse("A100-80GB")) == usdc("1.60")
    assert TABLE.lease_price(any_a100, GpuModel.parse("A100-40GB")) == usdc("1.20")
    a100_80 = ResourceRequest.build(gpus=1, models=["a100-80gb"])
    assert TABLE.tier(a100_80) == "A100-80GB"
    sxm = GpuModel.parse("H100 SXM5 80GB")
    assert TABLE.tier(H100, sxm) == "H100"  # no SXM-specific price: the family's


def test_cpu_prices_round_down() -> None:
    table = PriceTable.from_mapping({"cpu": "0.000003"}, currency="USDC")
    assert table.lease_price(ResourceRequest.build(cpus="0.5")) == Money(1, "USDC")  # 1.5 → 1


def test_missing_tier_has_no_price() -> None:
    rtx = ResourceRequest.build(gpus=1, models=["RTX4090"])
    assert TABLE.tier(rtx) == "RTX4090"
    assert TABLE.lease_price(rtx) is None


def test_ambiguous_tier_needs_the_providers_gpu() -> None:
    for request in (
        ResourceRequest.build(gpus=1, models=["A100", "H100"]),
        ResourceRequest.build(gpus=1),
    ):
        with pytest.raises(PasarError, match="depends on the GPU"):
            TABLE.tier(request)
        assert TABLE.tier(request, GpuModel.parse("H100")) == "H100"


@pytest.mark.parametrize(
    "data",
    [
        {"H100": "2.40"},  # no currency
        {"currency": "USDC"},  # no tiers
        {"currency": "USDC", "H100": 2.4},  # a float
        {"currency": "USDC", "H100": "2.40 PHA"},
        {"currency": "USDC", "H100": "0"},
        {"currency": "USDC", "Z9000": "1"},
        {"currency": "USDC", "h100": "1", "H100": "2"},
    ],
)
def test_bad_tables_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(PasarError):
        PriceTable.from_mapping(data)


# quality -------------------------------------------------------------------------------------


def test_quality_formula() -> None:
    assert quality(FAR) == Fraction(9, 20)
    assert quality(NEAR) == Fraction(3, 5)
    assert quality(NEW) == Fraction(5, 12)
    assert quality(FAR, latency_scale_ms=150) == Fraction(27, 40)  # 9/10 × 150/200


# clearing ------------------------------------------------------------------------------------


def test_best_quality_wins_at_the_table_price_whatever_it_asks() -> None:
    o = order()
    result = Tender(TABLE).clear(o, candidates(o, [FAR, NEAR, NEW], ask="0.10"), random.Random(0))
    assert result.winners == ("near",)
    assert result.awards[0].price_per_hour == usdc("2.40")
    assert result.awards[0].allocation is not None
    assert result.reasons == {
        "far": "the indexer assigned providers of better quality (0.450, the last assigned has "
        "0.600)",
        "new": "the indexer assigned providers of better quality (0.416, the last assigned has "
        "0.600)",
    }


def test_a_table_price_above_the_max_lets_nobody_win() -> None:
    o = order(max_price="2")
    result = Tender(TABLE).clear(o, candidates(o, [FAR, NEAR, NEW]), random.Random(0))
    assert result.awards == () and result.unfilled == 1
    assert set(result.reasons.values()) == {"table price 2.40 > max 2.00 (tier H100)"}
    assert result.note == "the network's table price exceeds the order's max price per hour"


def test_the_tier_follows_the_gpu_each_provider_has() -> None:
    either = ResourceRequest.build(gpus=1, models=["A100", "H100"])
    a100 = node("a100", Fraction(1, 2), 0, gpu_box("A100-80GB"))
    o = order(either, 2, max_price="2")
    result = Tender(TABLE).clear(o, candidates(o, [a100, NEAR]), random.Random(0))
    assert result.winners == ("a100",)
    assert result.awards[0].price_per_hour == usdc("1.60")
    assert result.reasons["near"] == "table price 2.40 > max 2.00 (tier H100)"
    assert result.unfilled == 1


def test_a_tier_the_table_lacks() -> None:
    rtx = ResourceRequest.build(gpus=1, models=["RTX4090"])
    o = order(rtx)
    p = node("rtx", Fraction(1, 2), 0, gpu_box("RTX4090"))
    result = Tender(TABLE).clear(o, candidates(o, [p]), random.Random(0))
    assert result.reasons == {"rtx": "the network has no price for tier RTX4090"}
    assert result.note == "no candidate is eligible"


def test_stake_and_reputation_gate_eligibility() -> None:
    rich = replace(FAR, stake=usdc("100"))
    poor = replace(NEAR, stake=usdc("1"))
    shady = replace(NEW, id="shady", reputation=Fraction(1, 10), stake=usdc("100"))
    mech = Tender(TABLE, stake_rule=FlatStake(usdc("50")), min_reputation=Fraction(1, 5))
    o = order()
    result = mech.clear(o, candidates(o, [rich, poor, shady]), random.Random(0))
    assert result.winners == ("far",)
    assert result.reasons == {
        "near": "stake 1.00 USDC < required 50.00 USDC",
        "shady": "reputation 0.100 < required 0.200",
    }


def test_shards_and_clusters() -> None:
    o = order(leases=2)
    result = Tender(TABLE).clear(o, candidates(o, [FAR, NEAR, NEW]), random.Random(0))
    assert result.winners == ("near", "far")
    cluster = order(leases=4, together=True)
    none = Tender(TABLE).clear(cluster, candidates(cluster, [FAR, NEAR, NEW]), random.Random(0))
    assert none.awards == () and none.unfilled == 4
    shards = order(leases=4)
    some = Tender(TABLE).clear(shards, candidates(shards, [FAR, NEAR, NEW]), random.Random(0))
    assert some.filled == 3 and some.unfilled == 1


def test_equal_quality_goes_by_the_seed() -> None:
    twins = [node(f"t{i}", Fraction(1, 2), 0) for i in range(4)]
    o = order()
    winners = {
        Tender(TABLE).clear(o, candidates(o, twins), random.Random(s)).winners for s in range(40)
    }
    assert len(winners) > 1
    result = Tender(TABLE).clear(o, candidates(o, twins), random.Random(1))
    assert all("seeded draw" in why for why in result.reasons.values())


def test_bad_parameters() -> None:
    with pytest.raises(PasarError):
        Tender(TABLE, latency_scale_ms=0)
    with pytest.raises(PasarError):
        Tender(TABLE, min_reputation=Fraction(2))


# properties ----------------------------------------------------------------------------------


@st.composite
def markets(draw: st.DrawFn) -> tuple[Order, list[ProviderView], int]:
    request = draw(
        st.sampled_from(
            [
                H100,
                ResourceRequest.build(gpus=1, models=["A100", "H100"]),
                ResourceRequest.build(cpus=draw(st.sampled_from(["1", "2.5", "16"]))),
            ]
        )
    )
    o = order(
        request,
        draw(st.integers(min_value=1, max_value=5)),
        max_price=draw(st.sampled_from(["0.01", "1.5", "2.4", "3"])),
        together=draw(st.booleans()),
    )
    providers = [
        node(
            f"p{i}",
            draw(st.fractions(min_value=0, max_value=1, max_denominator=50)),
            draw(st.integers(min_value=0, max_value=500)),
            gpu_box(draw(st.sampled_from(["H100", "A100-40GB", "A100-80GB", "RTX4090"]))),
        )
        for i in range(draw(st.integers(min_value=0, max_value=8)))
    ]
    return o, providers, draw(st.integers())


@given(markets())
def test_awards_are_at_the_table_price_within_the_max(
    market: tuple[Order, list[ProviderView], int],
) -> None:
    o, providers, seed = market
    cands = candidates(o, providers)
    result = Tender(TABLE).clear(o, cands, random.Random(seed))
    by_id = {c.id: c for c in cands}
    for award in result.awards:
        alloc = by_id[award.provider].allocation
        model = alloc.gpu.model if alloc.gpu else None
        assert award.price_per_hour == TABLE.lease_price(o.request, model)
        assert award.price_per_hour <= o.max_price_per_hour
    assert result.filled + result.unfilled == o.leases
    if o.together:
        assert result.filled in (0, o.leases)
    assert set(result.winners) | set(result.reasons) == set(by_id)
    assert set(result.winners).isdisjoint(result.reasons)
    # the indexer never passes over a better provider for a worse one
    if result.awards:
        worst = min(quality(by_id[w].provider) for w in result.winners)
        for pid, why in result.reasons.items():
            if why.startswith(("the indexer", "equal quality")):
                assert quality(by_id[pid].provider) <= worst


@given(markets(), st.sampled_from(["0.000001", "1", "99"]))
def test_asks_never_matter(market: tuple[Order, list[ProviderView], int], ask: str) -> None:
    o, providers, seed = market
    silent = Tender(TABLE).clear(o, candidates(o, providers), random.Random(seed))
    asking = Tender(TABLE).clear(o, candidates(o, providers, ask), random.Random(seed))
    assert silent == asking


def test_decimal_cpus_price_exactly() -> None:
    request = ResourceRequest.build(cpus=Decimal("0.25"))
    assert TABLE.lease_price(request) == usdc("0.005")


def test_built_from_preset_data_and_a_mechanism() -> None:
    mech: Mechanism = Tender.from_mapping(
        {"prices": TABLE.to_mapping(), "latency_scale_ms": 80, "min_reputation": "1/5"}
    )
    assert mech == Tender(TABLE, latency_scale_ms=80, min_reputation=Fraction(1, 5))
    assert mech.name == "tender"
    for bad, field in (
        ({}, "prices"),
        ({"prices": TABLE.to_mapping(), "latency": 5}, "latency"),
        ({"prices": TABLE.to_mapping(), "latency_scale_ms": 1.5}, "latency_scale_ms"),
        ({"prices": TABLE.to_mapping(), "min_reputation": 0.5}, "min_reputation"),
    ):
        with pytest.raises(PasarError) as info:
            Tender.from_mapping(bad)
        assert info.value.field == field
