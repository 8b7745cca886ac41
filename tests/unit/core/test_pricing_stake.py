"""The ``stake`` mechanism (Phala) and exact largest-remainder apportionment."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, MatchResult, Mechanism, screen
from pasar.core.pricing.stake import StakeShare, apportion_capped, capacity, largest_remainder
from pasar.core.resources import Inventory, ResourceRequest
from pasar.core.stake import FlatStake


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


ONE_GPU = ResourceRequest.build(gpus=1, cpus=2, memory_gb=8, disk_gb=10)


def order(leases: int = 1, *, max_price: str = "2", together: bool = False) -> Order:
    return Order("o1", "client", ONE_GPU, usdc(max_price), 3600, leases, together)


def provider(pid: str, stake: str | None, gpus: int = 8) -> ProviderView:
    inv = Inventory.build(gpus={"RTX4090": gpus}, cpus=64, memory_gb=256, disk_gb=1000)
    return ProviderView(pid, inv, stake=None if stake is None else Money.parse(stake))


def candidates(
    o: Order, providers: list[ProviderView], asks: dict[str, str] | None = None
) -> list[Candidate]:
    fitting, _ = screen(o, providers)
    asks = asks or {}
    return [Candidate(p, a, usdc(asks[p.id]) if p.id in asks else None) for p, a in fitting]


def shares(result: MatchResult) -> dict[str, int]:
    return {a.provider: a.leases for a in result.awards}


# largest remainder ---------------------------------------------------------------------------


def test_exact_quotas_need_no_rounding() -> None:
    assert largest_remainder(10, {"a": 5, "b": 3, "c": 2}, random.Random(0)) == {
        "a": 5,
        "b": 3,
        "c": 2,
    }


def test_the_largest_remainder_gets_the_leftover_unit() -> None:
    # quotas 2.0, 1.2, 0.8: floors 2, 1, 0; the one unit left goes to c (remainder 0.8)
    assert largest_remainder(4, {"a": 5, "b": 3, "c": 2}, random.Random(0)) == {
        "a": 2,
        "b": 1,
        "c": 1,
    }


def test_ties_are_broken_by_the_seed_only() -> None:
    weights = {"a": 1, "b": 1, "c": 1}
    out = largest_remainder(7, weights, random.Random(42))
    assert sorted(out.values()) == [2, 2, 3]
    reordered = {"c": 1, "a": 1, "b": 1}
    assert largest_remainder(7, reordered, random.Random(42)) == out
    winners = {
        next(k for k, v in largest_remainder(7, weights, random.Random(s)).items() if v == 3)
        for s in range(40)
    }
    assert winners == {"a", "b", "c"}  # every key can win a tie


def test_zero_total_and_zero_weights() -> None:
    assert largest_remainder(0, {"a": 0, "b": 5}, random.Random(0)) == {"a": 0, "b": 0}
    assert largest_remainder(3, {"a": 0, "b": 5}, random.Random(0)) == {"a": 0, "b": 3}


def test_impossible_apportionments_are_refused() -> None:
    with pytest.raises(PasarError):
        largest_remainder(3, {}, random.Random(0))
    with pytest.raises(PasarError):
        largest_remainder(3, {"a": 0}, random.Random(0))
    with pytest.raises(PasarError):
        largest_remainder(-1, {"a": 1}, random.Random(0))
    with pytest.raises(PasarError):
        largest_remainder(1, {"a": -1, "b": 2}, random.Random(0))


weight_maps = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.integers(min_value=0, max_value=10**12),
    min_size=1,
    max_size=12,
).filter(lambda w: sum(w.values()) > 0)


@given(st.integers(min_value=0, max_value=10_000), weight_maps, st.integers())
def test_shares_sum_exactly_and_are_within_one_of_the_quota(
    total: int, weights: dict[str, int], seed: int
) -> None:
    out = largest_remainder(total, weights, random.Random(seed))
    assert set(out) == set(weights)
    assert sum(out.values()) == total
    whole = sum(weights.values())
    for key, share in out.items():
        quota = Fraction(total * weights[key], whole)
        assert abs(share - quota) < 1
        assert share >= 0
        if weights[key] == 0:
            assert share == 0


@given(st.integers(min_value=0, max_value=1000), weight_maps, st.integers())
def test_same_seed_same_shares(total: int, weights: dict[str, int], seed: int) -> None:
    a = largest_remainder(total, weights, random.Random(seed))
    b = largest_remainder(total, dict(reversed(list(weights.items()))), random.Random(seed))
    assert a == b


@given(
    st.integers(min_value=0, max_value=200),
    weight_maps,
    st.data(),
    st.integers(),
)
def test_capped_apportionment_places_all_it_can(
    total: int, weights: dict[str, int], data: st.DataObject, seed: int
) -> None:
    caps = {k: data.draw(st.integers(min_value=0, max_value=50)) for k in weights}
    out = apportion_capped(total, weights, caps, random.Random(seed))
    room = sum(caps[k] for k, w in weights.items() if w > 0)
    assert sum(out.values()) == min(total, room)
    assert all(0 <= out[k] <= caps[k] for k in weights)
    assert all(out[k] == 0 for k, w in weights.items() if w == 0)


# capacity ------------------------------------------------------------------------------------


def test_capacity_fits_again_and_again() -> None:
    inv = Inventory.build(gpus={"RTX4090": 4}, cpus=6, memory_gb=64, disk_gb=100)
    allocations = capacity(ONE_GPU, inv, 10)
    assert len(allocations) == 3  # 6 CPUs / 2 per lease, though 4 GPUs
    # slots name devices of the inventory passed in, so they are distinct
    assert [a.gpu_slots for a in allocations] == [(0,), (1,), (2,)]
    two = ResourceRequest.build(gpus=2, cpus=1, memory_gb=1, disk_gb=1)
    mixed = Inventory.build(gpus=["RTX4090", "L4", "RTX4090", "RTX4090", "L4"], cpus=8)
    mixed = Inventory(mixed.gpus, mixed.cpus, mixed.cpus, mixed.cpus)
    got = [(a.gpu.model.family if a.gpu else None, a.gpu_slots) for a in capacity(two, mixed, 5)]
    assert got == [("RTX4090", (0, 2)), ("L4", (1, 4))]
    assert len(capacity(ONE_GPU, inv, 2)) == 2


# the mechanism -------------------------------------------------------------------------------


def test_leases_follow_stake() -> None:
    o = order(10)
    ps = [provider("a", "600 USDC"), provider("b", "300 USDC"), provider("c", "100 USDC")]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"a": 6, "b": 3, "c": 1}
    assert result.filled == 10 and result.unfilled == 0 and not result.reasons
    assert all(a.price_per_hour == usdc("2") for a in result.awards)  # the order's max
    assert all(a.allocation is not None for a in result.awards)


def test_a_lower_ask_is_honoured_and_a_higher_one_refused() -> None:
    o = order(2)
    ps = [provider("a", "100 USDC"), provider("b", "100 USDC"), provider("c", "100 USDC")]
    result = StakeShare().clear(o, candidates(o, ps, {"a": "1.5", "c": "2.5"}), random.Random(0))
    assert shares(result) == {"a": 1, "b": 1}
    prices = {a.provider: a.price_per_hour for a in result.awards}
    assert prices == {"a": usdc("1.5"), "b": usdc("2")}
    assert result.reasons == {"c": "price 2.50 > max 2.00"}


def test_surplus_over_capacity_is_shared_again() -> None:
    o = order(10)
    ps = [
        provider("a", "600 USDC", gpus=2),
        provider("b", "300 USDC"),
        provider("c", "100 USDC"),
    ]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(0))
    # round 1: 6, 3, 1 — a holds only 2; the 4 left go 3 : 1 to b and c
    assert shares(result) == {"a": 2, "b": 6, "c": 2}


def test_partial_fill_when_capacity_runs_out() -> None:
    o = order(10)
    ps = [provider("a", "600 USDC", gpus=2), provider("b", "300 USDC", gpus=3)]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"a": 2, "b": 3}
    assert result.unfilled == 5
    assert result.note == "eligible providers can hold only 5 of 10 leases"


def test_a_tiny_stake_can_round_to_nothing() -> None:
    o = order(1)
    ps = [provider("whale", "1000 USDC"), provider("minnow", "1 USDC")]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"whale": 1}
    assert result.reasons["minnow"] == (
        "stake share rounded to 0 leases (quota 0.00 of 1, stake 1.00 USDC of 1001.00 USDC)"
    )


def test_ineligible_providers_say_why() -> None:
    o = order(3)
    ps = [
        provider("ok", "100 USDC"),
        provider("none", None),
        provider("zero", "0 USDC"),
        provider("pha", "100 PHA"),
        provider("short", "5 USDC"),
    ]
    mech = StakeShare(stake_rule=FlatStake(usdc("10")))
    result = mech.clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"ok": 3}
    assert result.reasons == {
        "none": "no stake (required 10.00 USDC)",
        "zero": "stake 0.00 USDC < required 10.00 USDC",
        "pha": "stake is in PHA, required 10.00 USDC",
        "short": "stake 5.00 USDC < required 10.00 USDC",
    }
    bare = StakeShare().clear(o, candidates(o, ps[1:3]), random.Random(0))
    assert bare.awards == ()
    assert bare.reasons["none"] == "no stake: compute is shared by stake"
    assert bare.note == "no candidate is eligible"


def test_stakes_weighed_in_a_native_token() -> None:
    o = order(2)
    ps = [provider("a", "300 PHA"), provider("b", "100 PHA"), provider("c", "100 USDC")]
    result = StakeShare(stake_currency="PHA").clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"a": 2}
    assert result.reasons["c"] == "stake is in USDC, this network weighs stake in PHA"


def test_a_cluster_takes_distinct_providers_or_none() -> None:
    o = order(2, together=True)
    ps = [provider("a", "900 USDC"), provider("b", "100 USDC")]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(0))
    assert shares(result) == {"a": 1, "b": 1}  # a's stake would give it both; distinct nodes
    o3 = order(3, together=True)
    none = StakeShare().clear(o3, candidates(o3, ps), random.Random(0))
    assert none.awards == () and none.unfilled == 3
    assert none.reasons["a"] == "the order needs 3 distinct providers together, only 2 are eligible"


def test_nobody_to_share_with() -> None:
    result = StakeShare().clear(order(2), [], random.Random(0))
    assert result.awards == () and result.unfilled == 2 and result.note == "no provider fits"


@st.composite
def markets(draw: st.DrawFn) -> tuple[Order, list[Candidate], int]:
    n = draw(st.integers(min_value=0, max_value=8))
    leases = draw(st.integers(min_value=1, max_value=30))
    o = order(leases, max_price=draw(st.sampled_from(["1", "2", "3.5"])))
    ps = [
        provider(
            f"p{i}",
            draw(st.sampled_from([None, "0 USDC", "1 USDC", "37 USDC", "1000 USDC", "5 PHA"])),
            gpus=draw(st.integers(min_value=1, max_value=8)),
        )
        for i in range(n)
    ]
    asks = {
        p.id: ask
        for p in ps
        if (ask := draw(st.sampled_from([None, "0.5", "2", "3", "9.99"]))) is not None
    }
    return o, candidates(o, ps, asks), draw(st.integers())


@given(markets())
def test_nobody_is_charged_above_the_max_and_everyone_is_accounted_for(
    market: tuple[Order, list[Candidate], int],
) -> None:
    o, cands, seed = market
    result = StakeShare().clear(o, cands, random.Random(seed))
    for award in result.awards:
        assert award.price_per_hour <= o.max_price_per_hour
        assert award.price_per_hour.micros > 0
        assert award.leases >= 1
    assert result.filled + result.unfilled == o.leases
    ids = {c.id for c in cands}
    assert set(result.winners).isdisjoint(result.reasons)
    assert set(result.winners) | set(result.reasons) == ids


@given(
    st.dictionaries(
        st.sampled_from("abcdefgh"), st.integers(min_value=1, max_value=10**6), min_size=1
    ),
    st.integers(min_value=1, max_value=40),
    st.integers(),
)
def test_with_room_enough_shares_are_proportional_within_one_lease(
    stakes: dict[str, int], leases: int, seed: int
) -> None:
    o = order(leases)
    ps = [provider(k, f"{v} USDC", gpus=8) for k, v in stakes.items()]
    # 8 GPUs each can still cap a big share; give everyone room for the whole order
    ps = [
        ProviderView(
            p.id,
            Inventory.build(gpus={"RTX4090": 64}, cpus=256, memory_gb=1024, disk_gb=2000),
            stake=p.stake,
        )
        for p in ps
    ]
    result = StakeShare().clear(o, candidates(o, ps), random.Random(seed))
    got = shares(result)
    assert sum(got.values()) == leases
    whole = sum(stakes.values())
    for key, stake in stakes.items():
        assert abs(got.get(key, 0) - Fraction(leases * stake, whole)) < 1


def test_built_from_preset_data_and_a_mechanism() -> None:
    rule = FlatStake(usdc("10"))
    mech: Mechanism = StakeShare.from_mapping({"stake_currency": "PHA"}, stake_rule=rule)
    assert mech == StakeShare(rule, "PHA") and mech.name == "stake"
    assert StakeShare.from_mapping({}) == StakeShare()
    for bad, field in (({"currency": "PHA"}, "currency"), ({"stake_currency": 5}, None)):
        with pytest.raises(PasarError) as info:
            StakeShare.from_mapping(bad)
        assert info.value.field == (field or "stake_currency")
