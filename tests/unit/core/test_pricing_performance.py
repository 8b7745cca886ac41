"""The ``performance`` mechanism (Render): score-hour quotes, reputation tiers, queue priority."""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, Mechanism, screen
from pasar.core.pricing.performance import (
    RENDER_TIERS,
    Performance,
    PerformanceParams,
    Tier,
    prioritise,
    quote,
    tiered,
)
from pasar.core.resources import Inventory, ResourceRequest
from pasar.core.stake import FlatStake


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


ONE_GPU = ResourceRequest.build(gpus=1, cpus=2, memory_gb=8, disk_gb=10)
BOX = Inventory.build(gpus={"RTX4090": 1}, cpus=16, memory_gb=64, disk_gb=500)
PARAMS = PerformanceParams()


def order(leases: int = 1, *, max_price: str = "12", together: bool = False) -> Order:
    return Order("o1", "client", ONE_GPU, usdc(max_price), 3600, leases, together)


def node(pid: str, reputation: Fraction, score: int, stake: str | None = None) -> ProviderView:
    return ProviderView(
        pid,
        BOX,
        reputation=reputation,
        score=score,
        stake=None if stake is None else Money.parse(stake),
    )


def candidates(o: Order, offers: Sequence[tuple[ProviderView, str | None]]) -> list[Candidate]:
    fitting, _ = screen(o, [p for p, _ in offers])
    asks = {p.id: None if ask is None else usdc(ask) for p, ask in offers}
    return [Candidate(p, a, asks[p.id]) for p, a in fitting]


TRUSTED = node("trusted", Fraction(19, 20), 1000)  # tier 1 ×1
PRIORITY = node("priority", Fraction(7, 10), 2000)  # tier 2 ×1/2
ECONOMY = node("economy", Fraction(1, 2), 1000)  # tier 3 ×1/8 (a newcomer)
MARKET = [(TRUSTED, "10"), (PRIORITY, "8"), (ECONOMY, "16")]


# quotes and tiers ----------------------------------------------------------------------------


def test_quote_is_rate_times_score() -> None:
    assert quote(usdc("0.0025"), 2000) == usdc("5")  # 2,000 OB × 0.0025 per OBh
    assert quote(usdc("0.04"), 52_000, per=1000) == usdc("2.08")  # per thousand points
    assert quote(Money(1, "USDC"), 1500, per=1000) == Money(1, "USDC")  # 1.5 micros, down
    assert quote(usdc("1"), 0) == usdc("0")


@pytest.mark.parametrize(
    ("rate", "score", "per"),
    [(usdc("1"), -1, 1), (usdc("1"), 10, 0), (usdc("-1"), 10, 1)],
)
def test_bad_quotes_are_refused(rate: Money, score: int, per: int) -> None:
    with pytest.raises(PasarError):
        quote(rate, score, per=per)


def test_tiers_follow_reputation() -> None:
    assert PARAMS.tiers == RENDER_TIERS
    level = {
        r: t.level if (t := PARAMS.tier_of(r)) else None
        for r in (Fraction(1), Fraction(9, 10), Fraction(89, 100), Fraction(3, 5), Fraction(1, 2))
    }
    assert list(level.values()) == [1, 1, 2, 2, 3]
    assert tiered(usdc("16"), RENDER_TIERS[2]) == usdc("2")
    assert tiered(Money(3, "USDC"), RENDER_TIERS[1]) == Money(1, "USDC")  # 1.5 micros, down


def test_params_from_preset_data_round_trip() -> None:
    data = {
        "tiers": [
            {"level": 2, "name": "economy", "min_reputation": "1/5", "multiplier": "1/4"},
            {"level": 1, "name": "trusted", "min_reputation": "80%", "multiplier": 1},
        ]
    }
    params = PerformanceParams.from_mapping(data)
    assert [t.level for t in params.tiers] == [1, 2]
    assert params.tiers[0].min_reputation == Fraction(4, 5)
    assert params.tier_of(Fraction(1, 10)) is None
    assert PerformanceParams.from_mapping(params.to_mapping()) == params
    assert PerformanceParams.from_mapping(PARAMS.to_mapping()) == PARAMS


@pytest.mark.parametrize(
    "tiers",
    [
        [],
        [{"level": 1, "name": "a", "min_reputation": "1/2", "multiplier": 0.5}],
        [{"level": 1, "name": "a", "min_reputation": "1/2"}],
        [{"level": 1, "name": "a", "min_reputation": "1/2", "multiplier": "1", "x": 1}],
        [{"level": 1, "name": "a", "min_reputation": "3/2", "multiplier": "1"}],
        [{"level": 1, "name": "a", "min_reputation": "1/2", "multiplier": "0"}],
        [{"level": 2, "name": "a", "min_reputation": "1/2", "multiplier": "1"}],
        [
            {"level": 1, "name": "a", "min_reputation": "1/2", "multiplier": "1"},
            {"level": 2, "name": "b", "min_reputation": "1/2", "multiplier": "1/2"},
        ],
    ],
)
def test_bad_tiers_are_refused(tiers: list[dict[str, Any]]) -> None:
    with pytest.raises(PasarError):
        PerformanceParams.from_mapping({"tiers": tiers})


# clearing ------------------------------------------------------------------------------------


def test_the_higher_tier_has_priority_when_affordable() -> None:
    o = order(max_price="12")
    result = Performance().clear(o, candidates(o, MARKET), random.Random(0))
    assert result.winners == ("trusted",)
    assert result.awards[0].price_per_hour == usdc("10")
    assert result.reasons["priority"] == (
        "outranked: the order's 1 lease(s) went to higher tiers or lower rates "
        "(this offer: tier 2 (priority), 4.00/h for score 2000)"
    )
    assert set(result.reasons) == {"priority", "economy"}


def test_a_tight_max_falls_through_to_a_cheaper_tier() -> None:
    o = order(max_price="5")
    result = Performance().clear(o, candidates(o, MARKET), random.Random(0))
    assert result.winners == ("priority",)
    assert result.awards[0].price_per_hour == usdc("4")  # 8 × 1/2
    assert result.reasons["trusted"] == "price 10.00 > max 5.00 (tier 1 (trusted))"


def test_shards_go_in_tier_order_one_per_node() -> None:
    o = order(5)
    result = Performance().clear(o, candidates(o, MARKET), random.Random(0))
    assert result.winners == ("trusted", "priority", "economy")
    assert [a.price_per_hour for a in result.awards] == [usdc("10"), usdc("4"), usdc("2")]
    assert result.filled == 3 and result.unfilled == 2
    assert result.note == "only 3 eligible node(s) for 5 shards"


def test_within_a_tier_the_cost_of_the_work_decides() -> None:
    slow = node("slow", Fraction(1, 2), 1000)  # 8 × 1/8 = 1.00/h for 1000 points
    fast = node("fast", Fraction(1, 2), 4000)  # 16 × 1/8 = 2.00/h for 4000 points
    o = order()
    result = Performance().clear(o, candidates(o, [(slow, "8"), (fast, "16")]), random.Random(0))
    assert result.winners == ("fast",)  # half the cost per point: the work costs half


def test_at_equal_rate_the_faster_node_wins() -> None:
    a = node("a", Fraction(1, 2), 1000)
    b = node("b", Fraction(1, 2), 2000)
    o = order()
    result = Performance().clear(o, candidates(o, [(a, "8"), (b, "16")]), random.Random(0))
    assert result.winners == ("b",)


def test_exact_ties_go_by_the_seed() -> None:
    twins = [(node(f"t{i}", Fraction(1, 2), 1000), "8") for i in range(4)]
    o = order()
    winners = {
        Performance().clear(o, candidates(o, twins), random.Random(seed)).winners
        for seed in range(40)
    }
    assert len(winners) > 1
    again = Performance().clear(o, candidates(o, twins), random.Random(7))
    assert again == Performance().clear(o, candidates(o, list(reversed(twins))), random.Random(7))


def test_ineligible_candidates_say_why() -> None:
    params = PerformanceParams(
        (
            Tier(1, "trusted", Fraction(9, 10), Fraction(1)),
            Tier(2, "economy", Fraction(1, 5), Fraction(1, 4)),
        )
    )
    offers = [
        (node("unbenched", Fraction(1, 2), 0), "5"),
        (node("shunned", Fraction(1, 10), 1000), "5"),
        (node("silent", Fraction(1, 2), 1000), None),
        (node("poor", Fraction(1, 2), 1000, stake="1 USDC"), "4"),
        (node("ok", Fraction(1, 2), 1000, stake="10 USDC"), "4"),
    ]
    o = order()
    mech = Performance(params, stake_rule=FlatStake(usdc("5")))
    result = mech.clear(o, candidates(o, offers), random.Random(0))
    assert result.winners == ("ok",)
    assert result.awards[0].price_per_hour == usdc("1")  # 4 × 1/4
    assert result.reasons == {
        "unbenched": "no stake (required 5.00 USDC)",
        "shunned": "no stake (required 5.00 USDC)",
        "silent": "no stake (required 5.00 USDC)",
        "poor": "stake 1.00 USDC < required 5.00 USDC",
    }
    free = Performance(params).clear(o, candidates(o, offers[:3]), random.Random(0))
    assert free.reasons == {
        "unbenched": "no benchmark score: performance pricing charges per score-hour",
        "shunned": "reputation 0.10 is below every tier (tier 2 (economy) needs 0.20)",
        "silent": "offered no price",
    }
    assert free.awards == () and free.note == "no candidate is eligible"


def test_a_cluster_is_all_or_nothing() -> None:
    o = order(4, together=True)
    result = Performance().clear(o, candidates(o, MARKET), random.Random(0))
    assert result.awards == () and result.unfilled == 4
    assert result.reasons["trusted"] == (
        "the order needs 4 distinct providers together, only 3 are eligible"
    )
    o3 = order(3, together=True)
    assert Performance().clear(o3, candidates(o3, MARKET), random.Random(0)).filled == 3


def test_nobody_fits() -> None:
    result = Performance().clear(order(), [], random.Random(0))
    assert result.note == "no provider fits" and result.unfilled == 1


def test_the_order_queue_serves_chosen_tiers_first() -> None:
    def o(oid: str, at: int) -> Order:
        return Order(oid, "c", ONE_GPU, usdc("1"), 60, created_at=at)

    queue = [o("old-economy", 1), o("new-priority", 9), o("old-priority", 5), o("unset", 0)]
    ranked = prioritise(queue, {"new-priority": 2, "old-priority": 2, "old-economy": 3}, PARAMS)
    assert [x.id for x in ranked] == ["old-priority", "new-priority", "unset", "old-economy"]


# properties ----------------------------------------------------------------------------------

reputations = st.fractions(min_value=0, max_value=1, max_denominator=100)


@st.composite
def markets(draw: st.DrawFn) -> tuple[Order, list[Candidate], int]:
    o = order(
        draw(st.integers(min_value=1, max_value=6)),
        max_price=draw(st.sampled_from(["0.5", "2", "5", "12"])),
        together=draw(st.booleans()),
    )
    offers = [
        (
            node(f"p{i}", draw(reputations), draw(st.integers(min_value=0, max_value=5000))),
            draw(st.sampled_from([None, "0.000001", "1", "3", "8", "20", "40"])),
        )
        for i in range(draw(st.integers(min_value=0, max_value=8)))
    ]
    return o, candidates(o, offers), draw(st.integers())


@given(markets())
def test_nobody_is_charged_above_the_max(market: tuple[Order, list[Candidate], int]) -> None:
    o, cands, seed = market
    result = Performance().clear(o, cands, random.Random(seed))
    by_id = {c.id: c for c in cands}
    for award in result.awards:
        assert 0 < award.price_per_hour.micros <= o.max_price_per_hour.micros
        c = by_id[award.provider]
        tier = PARAMS.tier_of(c.provider.reputation)
        assert tier is not None and c.price_per_hour is not None
        assert award.price_per_hour == tiered(c.price_per_hour, tier)
        assert award.leases == 1
    assert len(set(result.winners)) == len(result.winners) <= o.leases
    assert result.filled + result.unfilled == o.leases
    if o.together:
        assert result.filled in (0, o.leases)
    assert set(result.winners).isdisjoint(result.reasons)
    assert set(result.winners) | set(result.reasons) == set(by_id)


@given(markets())
def test_no_loser_outranks_a_winner_by_tier(market: tuple[Order, list[Candidate], int]) -> None:
    o, cands, seed = market
    result = Performance().clear(o, cands, random.Random(seed))
    if not result.awards:
        return
    level = {c.id: t.level for c in cands if (t := PARAMS.tier_of(c.provider.reputation))}
    worst_winner = max(level[w] for w in result.winners)
    for pid, why in result.reasons.items():
        if why.startswith("outranked"):
            assert level[pid] >= worst_winner


def test_built_from_preset_data_and_a_mechanism() -> None:
    mech: Mechanism = Performance.from_mapping({}, stake_rule=FlatStake(usdc("1")))
    assert mech == Performance(PARAMS, FlatStake(usdc("1"))) and mech.name == "performance"
    custom = Performance.from_mapping(
        {"tiers": [{"level": 1, "name": "only", "min_reputation": "0", "multiplier": "1"}]}
    )
    assert len(custom.params.tiers) == 1
    with pytest.raises(PasarError) as info:
        Performance.from_mapping({"tier": []})
    assert info.value.field == "tier"
