"""The quote (pure): the same checks, escrow and clearing an order gets, and no state change.

The integration test (tests/integration/test_quote.py) checks the quote against real orders on
a real market for every mechanism; here the state machine is driven in memory.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_state import ALICE, P1, P2, P3, SPEC, T0, conserved, make_state, market, register, send

from pasar.core.errors import PasarError
from pasar.core.presets import builtin_preset
from pasar.core.pricing import BUILDERS
from pasar.core.private_part import order_fields
from pasar.core.quotes import quote_order
from pasar.core.spec import JobSpec


def job(**changes: Any) -> JobSpec:
    return JobSpec.from_dict({**SPEC, **changes})


def test_every_mechanism_answers_the_questions_callers_ask() -> None:
    preset = builtin_preset("pasar")
    for name in BUILDERS:
        mechanism = preset.mechanism(name)
        assert mechanism.name == name
        assert isinstance(mechanism.takes_bids, bool) and isinstance(mechanism.opens_window, bool)
        assert isinstance(mechanism.walks_cheapest_asks, bool)
    assert [n for n in BUILDERS if preset.mechanism(n).takes_bids] == ["auction"]
    assert [n for n in BUILDERS if preset.mechanism(n).walks_cheapest_asks] == ["book"]


def test_a_book_quote_is_what_the_match_then_does_and_changes_nothing() -> None:
    s = make_state()
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.05")
    register(s, P3, cpu_ask="0.05", cpus=1)  # too small for 2 CPUs
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    before = s.balances_summary()
    quoted = quote_order(s, job(shards=2), client=ALICE)
    assert s.balances_summary() == before and s.orders == {}  # a read
    assert quoted.chosen == P2 and quoted.price_per_hour is not None
    assert str(quoted.price_per_hour) == "0.10 USDC"  # 2 CPUs × 0.05
    assert [o.provider for o in quoted.offers] == [P2, P1]  # cheapest first
    assert set(quoted.reasons) == {P3} and "CPU" in quoted.reasons[P3]

    created = send(s, ALICE, T0 + 1, type="order.create", **order_fields({**SPEC, "shards": 2}))
    assert created["escrow"] == quoted.escrow.to_json()
    market(s, T0 + 2, type="match", order_id=created["order_id"], seed=12345)
    leases = sorted((s.leases[x].provider, s.leases[x].price_per_hour) for x in s.leases)
    assert leases == sorted((a.provider, a.price_per_hour) for a in quoted.awards)
    conserved(s)


def test_a_quote_on_a_large_fleet_is_bounded_and_still_what_the_match_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quote is public: on a fleet too large to scan it goes through the fleet index and
    lists at most MAX_QUOTED offers (those taking leases first), saying it is not complete."""
    monkeypatch.setattr("pasar.core.quotes.MAX_QUOTED", 2)
    s = make_state()
    s.full_scan_up_to = 2  # three providers: "large"
    register(s, P1, cpu_ask="0.07")
    register(s, P2, cpu_ask="0.05")
    register(s, P3, cpu_ask="0.06")
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    quoted = quote_order(s, job(shards=2), client=ALICE)
    assert not quoted.complete and len(quoted.offers) <= 2
    takers = {o.provider for o in quoted.offers if o.leases}
    assert takers == {a.provider for a in quoted.awards}  # the chosen are never left out
    created = send(s, ALICE, T0 + 1, type="order.create", **order_fields({**SPEC, "shards": 2}))
    market(s, T0 + 2, type="match", order_id=created["order_id"], seed=12345)
    leases = sorted((s.leases[x].provider, s.leases[x].price_per_hour) for x in s.leases)
    assert leases == sorted((a.provider, a.price_per_hour) for a in quoted.awards)
    conserved(s)

    small = make_state()
    register(small, P1, cpu_ask="0.07")
    assert quote_order(small, job()).complete  # a scanned fleet: every offer and reason


def test_an_auction_quote_names_the_window_not_a_winner() -> None:
    s = make_state()
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.05", cpus=1)
    quoted = quote_order(s, job(pricing="auction"))
    assert quoted.takes_bids and quoted.decided_by and quoted.chosen is None
    assert [o.provider for o in quoted.offers] == [P1] and set(quoted.reasons) == {P2}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"shards": 10_001}, "too_many_leases"),
        ({"num_nodes": 10_001}, "too_many_leases"),
    ],
)
def test_a_quote_refuses_what_the_order_refuses(changes: dict[str, Any], code: str) -> None:
    s = make_state()
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    with pytest.raises(PasarError) as quoted:
        quote_order(s, job(**changes))
    with pytest.raises(PasarError) as ordered:
        send(s, ALICE, T0, type="order.create", **order_fields({**SPEC, **changes}))
    assert (quoted.value.code, quoted.value.field) == (ordered.value.code, ordered.value.field)
    assert quoted.value.code == code


def test_a_quote_tells_busy_from_never() -> None:
    """Issue 14.5: a spec no registered machine could hold (whatever it runs or asks) is
    ``fits_anywhere=False``; one that only waits for a busy or dear provider is not."""
    s = make_state()
    register(s, P1, cpu_ask="0.10", cpus=2)
    assert quote_order(s, job()).fits_anywhere
    huge = quote_order(s, job(resources={"cpus": 64}))
    assert not huge.fits_anywhere and "CPU" in huge.reasons[P1]
    dear = quote_order(s, job(max_price_per_hour="0.000001 USDC"))
    assert dear.fits_anywhere and dear.chosen is None  # too cheap now, not impossible
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    send(s, ALICE, T0, type="order.create", **order_fields(SPEC))
    market(s, T0 + 1, type="match", order_id=next(iter(s.orders)), seed=1)
    busy = quote_order(s, job())
    assert busy.fits_anywhere and busy.chosen is None  # P1 is full: it waits, it may run
    assert not quote_order(make_state(), job()).fits_anywhere  # nobody registered at all
