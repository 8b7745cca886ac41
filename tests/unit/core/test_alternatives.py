"""The market matches an order carrying ``resources.alternatives`` (SkyPilot's any_of/ordered):
a provider fits it if it fits ANY alternative; ``ordered`` takes the first alternative someone
fits, ``cheapest`` the cheapest price over providers × alternatives; the lease records which
alternative it got and is fitted to it; a gang runs one alternative on all its nodes. Every
test that moves money checks conservation; hostile orders are refused with nothing moved."""

from __future__ import annotations

from typing import Any

import pytest
from test_state import ALICE, P1, P2, P3, SPEC, T0, conserved, make_state, market, send

from pasar.core.errors import PasarError
from pasar.core.private_part import order_fields
from pasar.core.quotes import quote_order
from pasar.core.spec import JobSpec
from pasar.core.state import MarketState

GPU_ALT = {"accelerators": "RTX4090:1", "cpus": 1}
CPU_ALT = {"cpus": 2}


def alt_spec(*alts: dict[str, Any], pick: str = "ordered", **changes: Any) -> dict[str, Any]:
    return {**SPEC, "resources": {"alternatives": list(alts), "pick": pick}, **changes}


def staked(s: MarketState, provider: str) -> None:
    """A stake behind the provider (``pricing: stake`` shares leases by it)."""
    send(s, provider, T0, type="faucet", amount="1 USDC")
    send(s, provider, T0, type="stake", amount="1 USDC")


def register_gpu(s: MarketState, provider: str, *, gpu_ask: str = "0.30", cpus: int = 1) -> None:
    """A machine with one RTX4090 and ``cpus`` CPUs: with one CPU it fits only GPU_ALT."""
    send(
        s,
        provider,
        T0,
        type="provider.register",
        inventory={"gpus": ["RTX4090"], "cpus": cpus, "memory_gb": 32, "disk_gb": 100},
        asks={"gpu": {"RTX4090": gpu_ask}, "cpu_core": "0.01"},
        rate_per_score_hour="0.000001",
        score=100_000,
    )
    staked(s, provider)


def register_cpu(s: MarketState, provider: str, *, cpu_ask: str = "0.05", cpus: int = 8) -> None:
    """A machine without a GPU: it fits only CPU_ALT."""
    send(
        s,
        provider,
        T0,
        type="provider.register",
        inventory={"gpus": [], "cpus": cpus, "memory_gb": 32, "disk_gb": 100},
        asks={"cpu_core": cpu_ask},
        rate_per_score_hour="0.000001",
        score=100_000,
    )
    staked(s, provider)


def create(s: MarketState, spec: dict[str, Any], ts: int = T0 + 1) -> str:
    send(s, ALICE, T0, type="faucet", amount="100 USDC")
    return str(send(s, ALICE, ts, type="order.create", **order_fields(spec))["order_id"])


def match(s: MarketState, order_id: str, ts: int = T0 + 2) -> list[str]:
    return list(market(s, ts, type="match", order_id=order_id, seed=7)["leases"])


@pytest.mark.parametrize("pricing", ["book", "performance", "tender", "stake"])
def test_a_provider_fitting_only_the_second_alternative_gets_the_lease(pricing: str) -> None:
    s = make_state()
    register_cpu(s, P1)
    order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, pricing=pricing))
    (lease_id,) = match(s, order_id)
    lease = s.leases[lease_id]
    assert lease.provider == P1 and lease.alternative == 1
    assert lease.allocation.cpus == 2 and lease.allocation.gpu is None  # fitted to [1]
    assert s.providers[P1].free().cpus == 6
    conserved(s)


@pytest.mark.parametrize("pricing", ["book", "performance", "tender", "stake"])
def test_ordered_takes_the_first_alternative_someone_fits(pricing: str) -> None:
    s = make_state()
    register_cpu(s, P1)
    register_gpu(s, P2)
    order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, pricing=pricing))
    (lease_id,) = match(s, order_id)
    lease = s.leases[lease_id]
    assert (lease.provider, lease.alternative) == (P2, 0)
    assert lease.allocation.gpu is not None and lease.allocation.cpus == 1
    conserved(s)


def test_cheapest_takes_the_cheapest_price_over_providers_and_alternatives() -> None:
    s = make_state()
    register_gpu(s, P1, gpu_ask="0.30")  # [0]: 0.30 + 0.01 per hour
    register_cpu(s, P2, cpu_ask="0.05")  # [1]: 2 × 0.05 = 0.10 per hour
    order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, pick="cheapest"))
    (lease_id,) = match(s, order_id)
    lease = s.leases[lease_id]
    assert (lease.provider, lease.alternative) == (P2, 1)
    assert str(lease.price_per_hour) == "0.10 USDC"
    # the loser is told why, alternative by alternative where they differ
    assert P1 in s.orders[order_id].reasons
    # the GPU now cheaper: the same spec goes to the GPU machine under [0]
    s2 = make_state()
    register_gpu(s2, P1, gpu_ask="0.02")
    register_cpu(s2, P2, cpu_ask="0.05")
    (lease2,) = match(s2, create(s2, alt_spec(GPU_ALT, CPU_ALT, pick="cheapest")))
    assert (s2.leases[lease2].provider, s2.leases[lease2].alternative) == (P1, 0)
    conserved(s)
    conserved(s2)


def test_an_order_waits_then_a_provider_fitting_one_alternative_gets_it_and_is_billed() -> None:
    s = make_state()
    spec = alt_spec(GPU_ALT, CPU_ALT)
    order_id = create(s, spec)
    escrow = s.held_for(s.orders[order_id])
    assert str(escrow) == "1.00 USDC"  # the cap × duration, whatever the alternative
    assert match(s, order_id) == []  # nobody yet: it waits, escrow kept
    assert s.orders[order_id].status == "open" and s.held_for(s.orders[order_id]) == escrow
    register_gpu(s, P1)
    (lease_id,) = match(s, order_id, T0 + 3)
    lease = s.leases[lease_id]
    assert (lease.provider, lease.alternative) == (P1, 0)
    send(s, ALICE, T0 + 10, type="order.cancel", order_id=order_id)
    assert s.leases[lease_id].status != "running"
    conserved(s)


def test_the_index_clears_an_order_with_alternatives_exactly_as_a_scan() -> None:
    for pick in ("ordered", "cheapest"):
        s = make_state()
        for i in range(6):
            register_cpu(s, f"c{i}", cpu_ask=f"0.0{i + 1}", cpus=2 + i % 3)
            register_gpu(s, f"g{i}", gpu_ask=f"0.{i + 1}0")
        order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, pick=pick, shards=4))
        record = s.orders[order_id]
        for seed in range(5):
            scan = s.clear(record, seed, indexed=False)
            index = s.clear(record, seed, indexed=True)
            assert scan.awards == index.awards and scan.alternative == index.alternative


def test_a_gang_runs_one_alternative_on_all_its_nodes() -> None:
    """Two nodes, strict_spread: one GPU machine cannot hold the gang under [0], so both nodes
    go to CPU machines under [1] — never one node under each."""
    s = make_state()
    register_gpu(s, P1)
    register_cpu(s, P2)
    register_cpu(s, P3)
    order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, num_nodes=2, on_node_loss="replace"))
    leases = match(s, order_id)
    assert len(leases) == 2
    assert {s.leases[x].alternative for x in leases} == {1}
    assert {s.leases[x].provider for x in leases} == {P2, P3}
    # a node lost and replaced runs under the gang's alternative, even where [0] would fit
    assert s.pinned_alternative(s.orders[order_id]) == 1
    lost = s.leases[leases[1]]
    send(s, lost.provider, T0 + 3, type="lease.release", lease_id=lost.id)
    assert s.orders[order_id].unfilled == 1
    register_gpu(s, "g-big", cpus=4)  # fits both alternatives; [0] is first in order
    (again,) = match(s, order_id, T0 + 4)
    assert s.leases[again].alternative == 1 and s.leases[again].allocation.gpu is None
    conserved(s)


def test_an_auction_invites_whoever_fits_any_alternative_and_the_bid_decides() -> None:
    s = make_state()
    register_gpu(s, P1)
    register_cpu(s, P2)
    register_cpu(s, P3, cpus=1)  # fits neither (one CPU, no GPU)
    order_id = create(s, alt_spec(GPU_ALT, CPU_ALT, pricing="auction"))
    window = s.orders[order_id].window
    assert window is not None and window.invited == {P1, P2}
    send(s, P1, T0 + 2, type="bid", order_id=order_id, price="0.20")
    send(s, P2, T0 + 3, type="bid", order_id=order_id, price="0.40")
    (lease_id,) = match(s, order_id, T0 + 4)
    assert (s.leases[lease_id].provider, s.leases[lease_id].alternative) == (P1, 0)
    conserved(s)


def test_the_quote_shows_which_alternative_each_provider_would_satisfy() -> None:
    s = make_state()
    register_gpu(s, P1, gpu_ask="0.30")
    register_cpu(s, P2, cpu_ask="0.05")
    register_cpu(s, P3, cpus=1)
    spec = JobSpec.from_dict(alt_spec(GPU_ALT, CPU_ALT, pick="cheapest"))
    quoted = quote_order(s, spec, client=ALICE)
    by = {o.provider: o.alternative for o in quoted.offers}
    assert by == {P1: 0, P2: 1}
    assert quoted.chosen == P2 and quoted.awards[0].alternative == 1
    assert "[0]" in quoted.request and "[1]" in quoted.request
    assert set(quoted.reasons) == {P3}
    assert quoted.fits_anywhere and quoted.providers_fit == 2
    assert s.orders == {}


def test_an_alternative_bigger_than_any_provider_waits_like_any_order() -> None:
    s = make_state()
    register_cpu(s, P1, cpus=8)
    huge = {"cpus": 64}
    order_id = create(s, alt_spec(huge, {"accelerators": "H100:8"}))
    assert match(s, order_id) == []
    record = s.orders[order_id]
    assert record.status == "open" and "CPU" in record.reasons[P1]
    assert not quote_order(s, JobSpec.from_dict(alt_spec(huge)), client=ALICE).fits_anywhere
    conserved(s)


@pytest.mark.parametrize(
    ("resources", "code"),
    [
        ({"alternatives": [CPU_ALT] * 17, "pick": "ordered"}, "too_many_alternatives"),
        ({"alternatives": [], "pick": "ordered"}, "too_many_alternatives"),
        (
            {
                "alternatives": [{"cpus": 1, "alternatives": [CPU_ALT], "pick": "ordered"}],
                "pick": "ordered",
            },
            "nested_alternatives",
        ),
        ({"alternatives": [CPU_ALT]}, "conflicting_fields"),
        ({"alternatives": [CPU_ALT], "pick": "random"}, "invalid_choice"),
        ({"alternatives": [{"cpus": -1}], "pick": "ordered"}, None),
        ({"alternatives": "A100", "pick": "ordered"}, None),
    ],
)
def test_hostile_alternatives_are_refused_and_nothing_moves(
    resources: dict[str, Any], code: str | None
) -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    before = s.balances_summary()
    fields = order_fields(SPEC)  # a hostile client signs what it likes: no client-side check
    fields["spec"] = {**fields["spec"], "resources": resources}
    with pytest.raises(PasarError) as err:
        send(s, ALICE, T0 + 1, type="order.create", **fields)
    assert err.value.status // 100 == 4
    if code is not None:
        assert code in (err.value.code, *(d.code for d in err.value.details or ())), (
            err.value.code,
            err.value.details,
        )
    assert s.orders == {} and s.balances_summary() == before
    conserved(s)


def test_an_auction_quote_names_the_alternative_each_invited_provider_fits() -> None:
    s = make_state()
    register_gpu(s, P1)
    register_cpu(s, P2)
    register_cpu(s, P3, cpus=1)
    spec = JobSpec.from_dict(alt_spec(GPU_ALT, CPU_ALT, pricing="auction"))
    quoted = quote_order(s, spec, client=ALICE)
    assert quoted.decided_by is not None
    assert {o.provider: o.alternative for o in quoted.offers} == {P1: 0, P2: 1}
    assert set(quoted.reasons) == {P3} and "[0]" in quoted.reasons[P3]  # why, per alternative
