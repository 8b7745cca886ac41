"""Money: integer micro-units, one currency at a time, floats refused, rounding down documented."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pasar.core.money import MICROS_PER_UNIT, Money, MoneyError, parse_rate

micros = st.integers(min_value=-(10**15), max_value=10**15)
non_negative = st.integers(min_value=0, max_value=10**15)
currencies = st.sampled_from(["USDC", "AKT", "IO", "RNDR", "PHA"])
rates = st.fractions(min_value=0, max_value=1, max_denominator=10**6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.25 USDC", Money(1_250_000, "USDC")),
        ("3 AKT", Money(3_000_000, "AKT")),
        ("0.000001 USDC", Money(1, "USDC")),
        ("-2.5 USDC", Money(-2_500_000, "USDC")),
        (".5 USDC", Money(500_000, "USDC")),
    ],
)
def test_parse(text: str, expected: Money) -> None:
    assert Money.parse(text) == expected


def test_parse_default_currency() -> None:
    assert Money.parse("2", default_currency="USDC") == Money(2_000_000, "USDC")
    with pytest.raises(MoneyError) as err:
        Money.parse("2")
    assert err.value.code == "missing_currency"
    assert "USDC" in (err.value.hint or "")


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3 USDC", "1,5 USDC", "USDC 1", "1 U"])
def test_parse_rejects_garbage(bad: str) -> None:
    with pytest.raises(MoneyError) as err:
        Money.parse(bad, field="max_price_per_hour")
    assert err.value.field == "max_price_per_hour"
    assert err.value.hint


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("\u0661 USDC", "ASCII digits"),  # Arabic-Indic one: int("\u0661") == 1 in Python
        ("\uff11 USDC", "ASCII digits"),  # fullwidth one
        ("1\u0665 USDC", "ASCII digits"),
        ("\u0967.5 USDC", "ASCII digits"),  # Devanagari one
        ("+1 USDC", "'+'"),
        ("+1", "'+'"),
        (" 1 USDC", "spaces"),
        ("1 USDC ", "spaces"),
        ("1  USDC", "spaces"),
        ("1\tUSDC", "spaces"),
        ("1 USDC\n", "spaces"),
        ("1\u00a0USDC", ""),  # a no-break space is not the one space
        ("1 000 USDC", "spaces inside"),
        ("1. 5 USDC", "spaces inside"),
        ("1.5USDC", ""),
        ("1 usdc", "upper case (USDC, not usdc)"),
        ("1 Usdc", "upper case"),
    ],
)
def test_parse_is_strict(bad: str, words: str) -> None:
    """One written form per amount: what a signer wrote is exactly what the market reads."""
    with pytest.raises(MoneyError) as err:
        Money.parse(bad, default_currency="USDC", field="amount")
    assert err.value.code == "invalid_amount"
    assert err.value.field == "amount"
    assert words in err.value.message
    assert err.value.hint and "ASCII digits" in err.value.hint


def test_strict_form_is_what_to_json_writes() -> None:
    for money in (Money(1, "USDC"), Money(-2_500_000, "AKT"), Money(10**12, "IO")):
        assert Money.parse(money.to_json()) == money


def test_seventh_decimal_is_refused_not_rounded() -> None:
    with pytest.raises(MoneyError) as err:
        Money.parse("0.0000001 USDC")
    assert err.value.code == "too_precise"


@pytest.mark.parametrize("bad", [1.5, 0.0, float("nan")])
def test_floats_are_refused_everywhere(bad: float) -> None:
    with pytest.raises(MoneyError) as err:
        Money.parse(bad, field="price")
    assert err.value.code == "float_money"
    assert err.value.field == "price"
    with pytest.raises(MoneyError):
        Money(bad, "USDC")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "USDC") * bad
    with pytest.raises(MoneyError):
        Money(1, "USDC") + bad
    with pytest.raises(MoneyError):
        parse_rate(bad)


def test_bool_is_not_an_amount() -> None:
    with pytest.raises(MoneyError):
        Money(True, "USDC")


def test_currency_mismatch() -> None:
    with pytest.raises(MoneyError) as err:
        Money(1, "USDC") + Money(1, "AKT")
    assert err.value.code == "currency_mismatch"
    with pytest.raises(MoneyError):
        _ = Money(1, "USDC") < Money(2, "AKT")


@pytest.mark.parametrize("bad", ["usd$", "U", "1USD", "TOOLONGCURRENCY"])
def test_invalid_currency(bad: str) -> None:
    with pytest.raises(MoneyError):
        Money(1, bad)


def test_format() -> None:
    assert str(Money(1_250_000, "USDC")) == "1.25 USDC"
    assert str(Money(1, "USDC")) == "0.000001 USDC"
    assert str(Money(3 * MICROS_PER_UNIT, "AKT")) == "3.00 AKT"
    assert str(Money(-1_500_000, "USDC")) == "-1.50 USDC"


@given(micros, currencies)
def test_format_parse_round_trip(m: int, cur: str) -> None:
    money = Money(m, cur)
    assert Money.parse(str(money)) == money
    assert Money.parse(money.to_json()) == money


@given(micros, micros, currencies)
def test_addition_is_exact(a: int, b: int, cur: str) -> None:
    x, y = Money(a, cur), Money(b, cur)
    assert (x + y).micros == a + b
    assert (x + y) - y == x


@given(non_negative, rates, currencies)
def test_split_never_loses_a_micro_unit(m: int, rate: Fraction, cur: str) -> None:
    whole = Money(m, cur)
    part, rest = whole.split(rate)
    assert part + rest == whole
    assert part.micros >= 0 and rest.micros >= 0
    # rounding is down: the part is within one micro-unit below the exact share
    exact = Fraction(m) * rate
    assert part.micros <= exact < part.micros + 1


@given(non_negative, st.integers(min_value=0, max_value=10**6), currencies)
def test_scale_per_hour_rounds_down(price: int, seconds: int, cur: str) -> None:
    billed = Money(price, cur).scale(seconds, 3600)
    assert billed.micros == (price * seconds) // 3600


def test_multiply_by_int_and_decimal() -> None:
    assert Money(3, "USDC") * 4 == Money(12, "USDC")
    assert 4 * Money(3, "USDC") == Money(12, "USDC")
    assert Money(1_000_000, "USDC") * Decimal("0.025") == Money(25_000, "USDC")
    assert Money(10, "USDC") * Fraction(1, 3) == Money(3, "USDC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2%", Fraction(1, 50)),
        ("0.25%", Fraction(1, 400)),
        ("0.2", Fraction(1, 5)),
        ("1/40", Fraction(1, 40)),
    ],
)
def test_parse_rate(text: str, expected: Fraction) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("bad", ["x%", "1/0", "", "two"])
def test_parse_rate_rejects(bad: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_rate(bad, field="fees.take")
    assert err.value.field == "fees.take"


@given(
    micros,
    st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=10**9)
    | st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=1, max_value=10**7),
    currencies,
)
def test_scale_is_the_exact_product_floored(
    m: int, rate: Fraction | int, denominator: int, cur: str
) -> None:
    exact = Fraction(m) * Fraction(rate) / denominator
    assert Money(m, cur).scale(rate, denominator).micros == exact.numerator // exact.denominator
