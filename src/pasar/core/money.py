"""Money: an integer number of micro-units and a currency code; never a float.

Why integers: a market moves many small amounts (per-second billing, fractional-percent fees)
and must conserve every unit; binary floats cannot represent 0.1 and drift under addition.

Rounding rule (one for the whole code base): multiplying by a rate rounds **down** (toward
zero for non-negative amounts) to a whole micro-unit. Whoever computes a share with
:meth:`Money.scale` and gives the remainder to a named account (see :meth:`Money.split`) loses
nothing: ``part + rest == whole`` exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from pasar.core.errors import PasarError

MICROS_PER_UNIT = 1_000_000
DECIMALS = 6
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
# The one written form of an amount: ASCII digits (``\d`` would also take Arabic-Indic or
# fullwidth digits), an optional minus, an optional single space then an upper-case code. The
# form is strict because amounts are signed: two spellings of one amount would let a signer and
# a reader disagree about what was signed, and a lenient reader invites look-alike input.
_AMOUNT = re.compile(r"(?P<num>-?[0-9]+(?:\.[0-9]+)?|-?\.[0-9]+)(?: (?P<cur>[A-Z][A-Z0-9]{1,9}))?")
_CODE_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9]{1,9}")
_AMOUNT_HINT = 'write ASCII digits, then one space and the currency code, e.g. "1.5 USDC"'


class MoneyError(PasarError):
    """A malformed amount, a float, or arithmetic across currencies."""


def _check_currency(currency: object, field: str | None = None) -> str:
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise MoneyError(
            f"invalid currency code {currency!r}",
            code="invalid_currency",
            field=field,
            hint="use 2-10 upper-case letters or digits starting with a letter, e.g. USDC",
        )
    return currency


def _refuse_float(value: object, field: str | None) -> None:
    if isinstance(value, float):
        raise MoneyError(
            f"a float ({value!r}) cannot be money",
            code="float_money",
            field=field,
            hint='write the amount as a string with its currency, e.g. "1.5 USDC"',
        )


@dataclass(frozen=True, order=False)
class Money:
    """An amount of ``micros`` millionths of one unit of ``currency`` (e.g. USDC)."""

    micros: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.micros, bool) or not isinstance(self.micros, int):
            _refuse_float(self.micros, None)
            raise MoneyError(
                f"micro-units must be an integer, got {type(self.micros).__name__}",
                code="invalid_amount",
            )
        _check_currency(self.currency)

    # construction -----------------------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def units(cls, units: int, currency: str) -> Money:
        """Whole units, e.g. ``Money.units(5, "USDC")`` is 5 USDC."""
        if isinstance(units, bool) or not isinstance(units, int):
            _refuse_float(units, None)
            raise MoneyError("units must be an integer", code="invalid_amount")
        return cls(units * MICROS_PER_UNIT, currency)

    @classmethod
    def parse(
        cls, text: object, *, default_currency: str | None = None, field: str | None = None
    ) -> Money:
        """Parse ``"1.25 USDC"`` (or ``"1.25"`` when a default currency is given).

        Only the form :meth:`to_json` writes is read: ASCII digits, an optional ``-``, one space,
        the currency code in upper case. No ``+``, no surrounding or inner spaces, no Unicode
        digits (``int("١")`` is 1 in Python), no ``usdc`` for ``USDC``: an amount is part of a
        signed body, and one spelling per amount keeps what was signed what is read.

        At most six decimals are accepted: a seventh would be a fraction of a micro-unit, and
        silently rounding a price the user typed is worse than refusing it.
        """
        _refuse_float(text, field)
        if isinstance(text, Money):
            return text
        if isinstance(text, int) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            raise MoneyError(
                f'expected an amount like "1.5 USDC", got {type(text).__name__}',
                code="invalid_amount",
                field=field,
                hint='write the amount as a string with its currency, e.g. "1.5 USDC"',
            )
        match = _AMOUNT.fullmatch(text)
        if not match:
            raise MoneyError(
                f"cannot read {text!r} as an amount{_why_not_an_amount(text)}",
                code="invalid_amount",
                field=field,
                hint=_AMOUNT_HINT,
            )
        cur = match.group("cur")
        if cur is None:
            if default_currency is None:
                raise MoneyError(
                    f"{text!r} has no currency",
                    code="missing_currency",
                    field=field,
                    hint=f'add a currency code, e.g. "{text} USDC"',
                )
            cur = default_currency
        currency = _check_currency(cur, field)
        try:
            dec = Decimal(match.group("num"))
        except InvalidOperation as exc:  # pragma: no cover - the regex already rules this out
            raise MoneyError(f"cannot read {text!r}", code="invalid_amount", field=field) from exc
        exponent = dec.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -DECIMALS:
            raise MoneyError(
                f"{text!r} has more than {DECIMALS} decimals",
                code="too_precise",
                field=field,
                hint="the smallest amount is 0.000001 (one micro-unit)",
            )
        return cls(int(dec * MICROS_PER_UNIT), currency)

    # formatting ------------------------------------------------------------------------------

    def amount_str(self) -> str:
        """The number alone, with trailing zeros trimmed but at least two decimals: ``1.25``."""
        sign = "-" if self.micros < 0 else ""
        whole, frac = divmod(abs(self.micros), MICROS_PER_UNIT)
        frac_s = f"{frac:06d}".rstrip("0")
        frac_s = frac_s.ljust(2, "0")
        return f"{sign}{whole}.{frac_s}"

    def __str__(self) -> str:
        return f"{self.amount_str()} {self.currency}"

    def __repr__(self) -> str:
        return f"Money({str(self)!r})"

    def to_json(self) -> str:
        """The wire form: the same string :meth:`parse` reads back exactly."""
        return str(self)

    # arithmetic (same currency only) ---------------------------------------------------------

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            _refuse_float(other, None)
            raise MoneyError(
                f"cannot combine money with {type(other).__name__}",
                code="invalid_amount",
                hint="convert the number with Money.parse first",
            )
        if other.currency != self.currency:
            raise MoneyError(
                f"currency mismatch: {self.currency} vs {other.currency}",
                code="currency_mismatch",
                hint="amounts in different currencies cannot be added or compared",
            )
        return other

    def __add__(self, other: object) -> Money:
        return Money(self.micros + self._same(other).micros, self.currency)

    def __sub__(self, other: object) -> Money:
        return Money(self.micros - self._same(other).micros, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.micros, self.currency)

    def __lt__(self, other: object) -> bool:
        return self.micros < self._same(other).micros

    def __le__(self, other: object) -> bool:
        return self.micros <= self._same(other).micros

    def __gt__(self, other: object) -> bool:
        return self.micros > self._same(other).micros

    def __ge__(self, other: object) -> bool:
        return self.micros >= self._same(other).micros

    def __bool__(self) -> bool:
        return self.micros != 0

    def is_negative(self) -> bool:
        return self.micros < 0

    def __mul__(self, factor: object) -> Money:
        """Multiply by an integer exactly, or by a rate (Fraction/Decimal) rounding down."""
        if isinstance(factor, bool) or not isinstance(factor, int | Fraction | Decimal):
            _refuse_float(factor, None)
            raise MoneyError(
                f"cannot multiply money by {type(factor).__name__}",
                code="invalid_rate",
                hint="use an int, a fractions.Fraction or a decimal.Decimal",
            )
        if isinstance(factor, int):
            return Money(self.micros * factor, self.currency)
        return self.scale(Fraction(factor))

    __rmul__ = __mul__

    def scale(self, rate: Fraction | int, denominator: int = 1) -> Money:
        """``self × rate / denominator``, rounded down (floor) to a whole micro-unit.

        Floor is used for negative amounts too, so ``x.scale(r) + (-x).scale(r)`` may be -1:
        callers scale non-negative amounts and assign remainders explicitly.
        """
        if isinstance(rate, bool) or not isinstance(rate, int | Fraction):
            _refuse_float(rate, None)
            raise MoneyError("a rate must be an int or a Fraction", code="invalid_rate")
        if denominator <= 0:
            raise MoneyError("denominator must be positive", code="invalid_rate")
        # floor(micros × n / (d × denominator)) in integers (d, denominator > 0): the same
        # number as the exact Fraction product floored, without building three Fractions
        # (every order's escrow scales twice)
        micros = self.micros * rate.numerator // (rate.denominator * denominator)
        return Money(micros, self.currency)

    def split(self, rate: Fraction) -> tuple[Money, Money]:
        """``(part, rest)`` with ``part = self × rate`` rounded down and ``part + rest == self``."""
        part = self.scale(rate)
        return part, self - part


def _why_not_an_amount(text: str) -> str:
    """The reason a string is not an amount, for the error message (empty when not obvious)."""
    if text != text.strip() or "  " in text or "\t" in text or "\n" in text:
        return ": no spaces before or after it, and exactly one between number and currency"
    if text.startswith("+"):
        return ": no leading '+' (an amount is positive unless it starts with '-')"
    if any(ch.isdigit() and not ("0" <= ch <= "9") for ch in text):
        return ": only the ASCII digits 0-9 are accepted"
    code = text.partition(" ")[2]
    if code and _CODE_LIKE.fullmatch(code) and code != code.upper():
        return f": currency codes are upper case ({code.upper()}, not {code})"
    if text.count(" ") > 1:
        return ": no spaces inside the number"
    return ""


def parse_rate(text: object, *, field: str | None = None) -> Fraction:
    """Parse a rate such as ``"0.02"``, ``"2%"`` or ``"1/40"`` into an exact Fraction.

    Floats are refused for the same reason as in money: ``0.1`` is not 1/10.
    """
    _refuse_float(text, field)
    if isinstance(text, Fraction):
        return text
    if isinstance(text, int) and not isinstance(text, bool):
        return Fraction(text)
    if not isinstance(text, str):
        raise MoneyError(
            f'expected a rate like "2%", got {type(text).__name__}',
            code="invalid_rate",
            field=field,
        )
    s = text.strip()
    try:
        if s.endswith("%"):
            return Fraction(Decimal(s[:-1].strip())) / 100
        if "/" in s:
            num, den = s.split("/", 1)
            return Fraction(int(num), int(den))
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError, ZeroDivisionError) as exc:
        raise MoneyError(
            f"cannot read {text!r} as a rate",
            code="invalid_rate",
            field=field,
            hint='write a decimal ("0.02"), a percentage ("2%") or a fraction ("1/50")',
        ) from exc


def money_from_wire(value: Any, *, field: str | None = None) -> Money:
    """Read money from JSON/YAML input: a string with a currency, or a Money already."""
    return Money.parse(value, field=field)
