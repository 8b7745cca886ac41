"""Fee schedules: building them from preset data, and dividing an escrow exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.errors import PasarError
from pasar.core.fees import Charges, FeeError, FeeSchedule, FeeTable, billed_cost
from pasar.core.money import Money


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


IONET = FeeSchedule.from_mapping(
    {"take_rate": "2%", "client_reservation_rate": "0.25%", "provider_reservation_rate": "0.25%"},
    currency="USDC",
)


def assert_exact(c: Charges) -> None:
    parts = [c.provider_payout, c.treasury, c.reserve, c.refund]
    assert all(not p.is_negative() for p in parts)
    assert c.provider_payout + c.treasury + c.reserve + c.refund == c.escrow
    assert c.provider_payout + c.provider_fee == c.billed
    assert c.billed + c.client_fee + c.refund == c.escrow
    assert c.client_fee + c.provider_fee == c.fee_total


# building ------------------------------------------------------------------------------------


def test_from_mapping_reads_rates_and_amounts_exactly() -> None:
    s = FeeSchedule.from_mapping(
        {
            "currency": "USDC",
            "take_rate": "2%",
            "client_reservation_rate": "0.0025",
            "provider_reservation_rate": "1/400",
            "per_job_fee": "0.01",
            "min_fee": "0.05 USDC",
            "reserve_share": "25%",
        }
    )
    assert s.take_rate == Fraction(1, 50)
    assert s.client_reservation_rate == s.provider_reservation_rate == Fraction(1, 400)
    assert s.job_fee == usdc("0.01")
    assert s.minimum == usdc("0.05")
    assert s.reserve_share == Fraction(1, 4)


def test_defaults_are_zero() -> None:
    s = FeeSchedule.zero("USDC")
    assert s.take_rate == 0 and s.reserve_share == 0
    assert s.job_fee == Money.zero("USDC") and s.minimum == Money.zero("USDC")


def test_mapping_round_trip() -> None:
    s = FeeSchedule.from_mapping(
        {"take_rate": "1/3", "per_job_fee": "0.000001", "min_fee": "2", "reserve_share": "10%"},
        currency="AKT",
    )
    assert FeeSchedule.from_mapping(s.to_mapping()) == s


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"take_rte": "2%"}, "invalid_fee_schedule"),  # a typo must not mean "no fee"
        ({"take_rate": 0.02}, "float_money"),
        ({"take_rate": "abc"}, "invalid_rate"),
        ({"take_rate": "150%"}, "invalid_rate"),
        ({"take_rate": "-1%"}, "invalid_rate"),
        ({"take_rate": "80%", "provider_reservation_rate": "30%"}, "invalid_rate"),
        ({"reserve_share": "2"}, "invalid_rate"),
        ({"per_job_fee": "1 AKT"}, "currency_mismatch"),
        ({"min_fee": "-1"}, "invalid_amount"),
        ({"min_fee": "0.0000001"}, "too_precise"),
        ({"currency": "AKT"}, "currency_mismatch"),
    ],
)
def test_bad_schedules_are_refused(data: dict[str, object], code: str) -> None:
    with pytest.raises(PasarError) as info:
        FeeSchedule.from_mapping(data, currency="USDC")
    assert info.value.code == code


def test_schedule_needs_a_currency() -> None:
    with pytest.raises(FeeError) as info:
        FeeSchedule.from_mapping({"take_rate": "2%"})
    assert info.value.code == "invalid_fee_schedule"
    with pytest.raises(FeeError):
        FeeSchedule("usd coin")


def test_constructor_refuses_float_rates() -> None:
    with pytest.raises(FeeError) as info:
        FeeSchedule("USDC", take_rate=0.2)
    assert info.value.code == "invalid_rate"


def test_fee_table_per_currency_akash() -> None:
    akash = FeeTable.from_mapping({"USDC": {"take_rate": "20%"}, "AKT": {"take_rate": "4%"}})
    assert akash.currencies == ("USDC", "AKT")
    assert akash.for_currency("USDC").take_rate == Fraction(1, 5)
    assert akash.for_currency("AKT").take_rate == Fraction(1, 25)
    with pytest.raises(FeeError) as info:
        akash.for_currency("EUR")
    assert info.value.code == "unsupported_currency"
    assert FeeTable.from_mapping(akash.to_mapping()) == akash


def test_fee_table_refuses_two_schedules_for_one_currency() -> None:
    with pytest.raises(FeeError):
        FeeTable.of([FeeSchedule.zero("USDC"), FeeSchedule.zero("USDC")])


# billing -------------------------------------------------------------------------------------


def test_billed_cost_rounds_down_to_a_micro_unit() -> None:
    assert billed_cost(usdc("3"), 1000) == Money(833, "USDC")  # 833.33… micros
    assert billed_cost(usdc("1"), 1000) == Money(277, "USDC")  # 277.77…: down, not nearest
    assert billed_cost(usdc("2.5"), 5_400_000) == usdc("3.75")
    assert billed_cost(usdc("3.6"), 1) == Money(1, "USDC")  # one millisecond is billed too
    assert billed_cost(usdc("3.6"), 800) == Money(800, "USDC")  # sub-second leases pay
    assert billed_cost(usdc("1"), 0) == Money.zero("USDC")


@pytest.mark.parametrize("seconds", [-1, True, 1.5])
def test_billed_cost_refuses_bad_durations(seconds: object) -> None:
    with pytest.raises(FeeError):
        billed_cost(usdc("1"), seconds)


# dividing an escrow --------------------------------------------------------------------------


def test_ionet_split() -> None:
    c = IONET.charges(usdc("10"), usdc("4"))
    assert c.billed == usdc("4")
    assert c.take_fee == usdc("0.08")
    assert c.provider_reservation_fee == usdc("0.01")
    assert c.client_reservation_fee == usdc("0.01")
    assert c.provider_payout == usdc("3.91")
    assert c.treasury == usdc("0.10") and c.reserve == Money.zero("USDC")
    assert c.refund == usdc("5.99")
    assert c.client_paid == usdc("4.01")
    assert_exact(c)


def test_cost_is_capped_at_the_escrow_and_client_fees_at_what_is_left() -> None:
    c = IONET.charges(usdc("4"), usdc("9"))
    assert c.billed == usdc("4")
    assert c.client_reservation_fee == Money.zero("USDC")  # nothing left to take it from
    assert c.refund == Money.zero("USDC")
    assert_exact(c)


def test_nothing_billed_means_no_fees() -> None:
    s = FeeSchedule.from_mapping(
        {"take_rate": "20%", "per_job_fee": "1", "min_fee": "1"}, currency="USDC"
    )
    c = s.charges(usdc("5"), Money.zero("USDC"))
    assert c.refund == usdc("5") and c.fee_total == Money.zero("USDC")
    assert_exact(c)


def test_minimum_fee_tops_up_from_the_provider_side() -> None:
    s = FeeSchedule.from_mapping(
        {"take_rate": "1%", "per_job_fee": "0.01", "min_fee": "0.05"}, currency="USDC"
    )
    c = s.charges(usdc("10"), usdc("1"))
    assert c.take_fee == usdc("0.01") and c.job_fee == usdc("0.01")
    assert c.min_fee_topup == usdc("0.03")
    assert c.fee_total == usdc("0.05")
    assert c.provider_payout == usdc("0.96")
    assert c.refund == usdc("8.99")
    assert_exact(c)


def test_minimum_fee_is_capped_at_the_payout() -> None:
    s = FeeSchedule.from_mapping({"min_fee": "5"}, currency="USDC")
    c = s.charges(usdc("10"), usdc("1"))
    assert c.min_fee_topup == usdc("1") and c.provider_payout == Money.zero("USDC")
    assert_exact(c)


def test_reserve_share_rounds_down_and_treasury_takes_the_remainder() -> None:
    s = FeeSchedule("USDC", take_rate=Fraction(1, 10), reserve_share=Fraction(1, 3))
    c = s.charges(usdc("1"), Money(1001, "USDC"))
    assert c.take_fee == Money(100, "USDC")
    assert c.reserve == Money(33, "USDC") and c.treasury == Money(67, "USDC")
    assert_exact(c)


def test_charges_refuse_wrong_currency_and_negative_amounts() -> None:
    with pytest.raises(FeeError) as info:
        IONET.charges(Money.parse("1 AKT"), Money.parse("1 AKT"))
    assert info.value.code == "currency_mismatch"
    with pytest.raises(FeeError):
        IONET.charges(usdc("1"), usdc("-1"))


def test_escrow_for_covers_client_side_fees() -> None:
    s = FeeSchedule.from_mapping(
        {"client_reservation_rate": "0.25%", "per_job_fee": "0.02"}, currency="USDC"
    )
    need = s.escrow_for(usdc("8"))
    assert need == usdc("8.04")
    c = s.charges(need, usdc("8"))
    assert c.client_fee == usdc("0.04") and c.refund == Money.zero("USDC")


rates = st.fractions(min_value=0, max_value=1, max_denominator=10_000)


@st.composite
def schedules(draw: st.DrawFn) -> FeeSchedule:
    take = draw(rates)
    return FeeSchedule(
        "USDC",
        take_rate=take,
        provider_reservation_rate=draw(st.fractions(0, 1 - take, max_denominator=10_000)),
        client_reservation_rate=draw(rates),
        per_job_fee=Money(draw(st.integers(0, 10**6)), "USDC"),
        min_fee=Money(draw(st.integers(0, 10**7)), "USDC"),
        reserve_share=draw(rates),
    )


micros = st.integers(0, 10**13).map(lambda m: Money(m, "USDC"))


@given(schedules(), micros, micros)
def test_charges_always_sum_exactly_to_the_escrow(
    s: FeeSchedule, escrow: Money, cost: Money
) -> None:
    c = s.charges(escrow, cost)
    assert_exact(c)
    assert c.billed == min(escrow, cost)
    for part in (c.take_fee, c.provider_reservation_fee, c.client_reservation_fee, c.job_fee):
        assert not part.is_negative()
    assert c.take_fee == c.billed.scale(s.take_rate)  # fees round down
    assert c.client_reservation_fee <= c.billed.scale(s.client_reservation_rate)
    if c.billed and c.fee_total < s.minimum:  # the minimum is short only when nothing is left
        assert c.provider_payout == Money.zero("USDC")


@given(schedules(), micros)
def test_escrow_for_never_caps_client_fees(s: FeeSchedule, cost: Money) -> None:
    c = s.charges(s.escrow_for(cost), cost)
    assert c.billed == cost
    if cost:
        assert c.client_reservation_fee == cost.scale(s.client_reservation_rate)
        assert c.job_fee == s.job_fee
    assert_exact(c)
