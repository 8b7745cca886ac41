"""Fee schedules: what the network keeps when a lease is settled, per currency.

A network may charge differently per currency (Akash takes 20% on the stable coin but 4% on
its native token), so a :class:`FeeSchedule` is for one currency and a :class:`FeeTable` holds
one per currency a network accepts. Presets (TOML data files) build both with ``from_mapping``.

The fields, and who pays each:

============================= ============ ==================================================
field                         paid by      charged on
============================= ============ ==================================================
``take_rate``                 provider     the billed amount (deducted from the payout)
``provider_reservation_rate`` provider     the billed amount (deducted from the payout)
``client_reservation_rate``   client       the billed amount (on top, from the escrow)
``per_job_fee``               client       each settled lease that billed anything
``min_fee``                   provider     tops the total fee up to this, from the payout
``reserve_share``             —            share of all fees sent to the reserve, rest to
                                           the treasury
============================= ============ ==================================================

How the published fees of each network map onto these fields (the preset files hold the
numbers; this table is the reading of the sources the presets follow):

========== ============= ======================================================================
network    currency      fields
========== ============= ======================================================================
io.net     stable coin   ``take_rate = 2%``, ``client_reservation_rate = 0.25%``,
                         ``provider_reservation_rate = 0.25%`` ("2% on stable-coin payments
                         + 0.25% reservation fee on both sides")
Akash      stable coin   ``take_rate = 20%``
Akash      native token  ``take_rate = 4%``
Aethir     any           ``take_rate = 20%`` ("20% per session": a lease is a session)
Render     any           ``take_rate`` between ``0.5%`` and ``5%`` ("0.5–5% per job", by
                         priority tier): a preset picks one schedule per tier
Gensyn     any           no published protocol fee: all zero unless the preset says otherwise
Phala      any           no published protocol fee: all zero unless the preset says otherwise
========== ============= ======================================================================

``per_job_fee`` and ``min_fee`` exist so that a network can price very short jobs (whose
percentage fees round to nothing) without changing the mechanism; no surveyed network
publishes one, so they default to zero.

Rounding rule: every fee is a rate times an amount, rounded **down** to a whole micro-unit
(:meth:`pasar.core.money.Money.scale`), i.e. in favour of whoever pays it. No micro-unit is
lost, because every remainder is named: the provider's payout is ``billed − provider fees``,
the treasury gets ``fees − reserve``, and the client's refund is ``escrow − billed − client
fees``. :meth:`FeeSchedule.charges` therefore returns parts that sum exactly to the escrow.

Nothing is charged on a lease that billed nothing (a provider that vanished): the client
should not pay the network for work that did not happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from pasar.core.errors import PasarError
from pasar.core.money import Money, MoneyError, parse_rate

SECONDS_PER_HOUR = 3600
MS_PER_HOUR = SECONDS_PER_HOUR * 1000


class FeeError(PasarError):
    """A malformed fee schedule, or a schedule used with the wrong currency."""


_RATE_FIELDS = (
    "take_rate",
    "client_reservation_rate",
    "provider_reservation_rate",
    "reserve_share",
)
_MONEY_FIELDS = ("per_job_fee", "min_fee")


def billed_cost(price_per_hour: Money, billed_ms: int) -> Money:
    """``price_per_hour × billed_ms / 3,600,000``, rounded down to a whole micro-unit.

    Billing is by the millisecond, so a lease shorter than a second still pays for what it
    used; micro-units keep the product exact.
    """
    if isinstance(billed_ms, bool) or not isinstance(billed_ms, int):
        raise FeeError(
            f"billed milliseconds must be an integer, got {billed_ms!r}",
            code="invalid_duration",
            field="billed_ms",
        )
    if billed_ms < 0 or price_per_hour.is_negative():
        raise FeeError("billed time and price cannot be negative", code="invalid_amount")
    return price_per_hour.scale(billed_ms, MS_PER_HOUR)


@dataclass(frozen=True)
class Charges:
    """How one lease's escrow is divided at settlement. The parts are disjoint and
    ``provider_payout + treasury + reserve + refund == escrow`` exactly.

    ``billed`` is what the work cost (``provider_payout + provider_fee``); ``client_fee`` and
    ``provider_fee`` are what each side paid the network (``treasury + reserve``).
    """

    escrow: Money
    billed: Money
    take_fee: Money
    provider_reservation_fee: Money
    min_fee_topup: Money
    client_reservation_fee: Money
    job_fee: Money
    provider_payout: Money
    treasury: Money
    reserve: Money
    refund: Money

    @property
    def provider_fee(self) -> Money:
        return self.take_fee + self.provider_reservation_fee + self.min_fee_topup

    @property
    def client_fee(self) -> Money:
        return self.client_reservation_fee + self.job_fee

    @property
    def fee_total(self) -> Money:
        return self.treasury + self.reserve

    @property
    def client_paid(self) -> Money:
        """What the client was charged in all: the work plus its side of the fees."""
        return self.billed + self.client_fee


@dataclass(frozen=True)
class FeeSchedule:
    """The fees of one currency. Rates are exact fractions in ``[0, 1]``; build from text
    (``"2%"``, ``"0.0025"``, ``"1/40"``) with :meth:`from_mapping`."""

    currency: str
    take_rate: Fraction = Fraction(0)
    client_reservation_rate: Fraction = Fraction(0)
    provider_reservation_rate: Fraction = Fraction(0)
    per_job_fee: Money | None = None  # None means zero in this schedule's currency
    min_fee: Money | None = None  # None means zero in this schedule's currency
    reserve_share: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        try:
            Money.zero(self.currency)
        except MoneyError as exc:
            raise FeeError(exc.message, code="invalid_currency", field="currency") from exc
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | Fraction):
                raise FeeError(
                    f"{name} must be a Fraction (use parse_rate), got {value!r}",
                    code="invalid_rate",
                    field=name,
                )
            rate = Fraction(value)
            if not 0 <= rate <= 1:
                raise FeeError(
                    f"{name} must be between 0 and 1, got {rate}", code="invalid_rate", field=name
                )
            object.__setattr__(self, name, rate)
        if self.take_rate + self.provider_reservation_rate > 1:
            raise FeeError(
                "take_rate + provider_reservation_rate exceed 100% of earnings",
                code="invalid_rate",
                field="take_rate",
            )
        for name in _MONEY_FIELDS:
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, Money.zero(self.currency))
                continue
            if not isinstance(value, Money):
                raise FeeError(
                    f"{name} must be Money, got {value!r}", code="invalid_amount", field=name
                )
            if value.currency != self.currency:
                raise FeeError(
                    f"{name} is in {value.currency}, the schedule in {self.currency}",
                    code="currency_mismatch",
                    field=name,
                )
            if value.is_negative():
                raise FeeError(f"{name} cannot be negative", code="invalid_amount", field=name)

    # the two Money fields are never None after __post_init__; these say so to the type checker
    @property
    def job_fee(self) -> Money:
        assert self.per_job_fee is not None
        return self.per_job_fee

    @property
    def minimum(self) -> Money:
        assert self.min_fee is not None
        return self.min_fee

    @classmethod
    def zero(cls, currency: str) -> FeeSchedule:
        """No fees at all."""
        return cls(currency)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, currency: str | None = None) -> FeeSchedule:
        """Build from preset data, e.g. ``{"take_rate": "2%", "min_fee": "0.01"}``.

        The currency comes from ``currency`` or the mapping's ``"currency"`` key; amounts
        without a currency are in it. Unknown keys are refused: a misspelt fee in a preset
        would otherwise silently be zero.
        """
        if not isinstance(data, Mapping):
            raise FeeError("a fee schedule is a table of fields", code="invalid_fee_schedule")
        cur = currency if currency is not None else data.get("currency")
        if not isinstance(cur, str):
            raise FeeError(
                "a fee schedule needs its currency", code="invalid_fee_schedule", field="currency"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise FeeError(
                f"unknown fee field(s): {', '.join(unknown)}",
                code="invalid_fee_schedule",
                field=unknown[0],
                hint=f"known fields: {', '.join(sorted(known))}",
            )
        if "currency" in data and data["currency"] != cur:
            raise FeeError(
                f"schedule for {cur} says currency {data['currency']!r}",
                code="currency_mismatch",
                field="currency",
            )
        kwargs: dict[str, Any] = {}
        for name in _RATE_FIELDS:
            if name in data:
                kwargs[name] = parse_rate(data[name], field=name)
        for name in _MONEY_FIELDS:
            if name in data:
                kwargs[name] = Money.parse(data[name], default_currency=cur, field=name)
        return cls(cur, **kwargs)

    def to_mapping(self) -> dict[str, str]:
        """The inverse of :meth:`from_mapping`: plain strings, exact."""
        out = {"currency": self.currency}
        for name in _RATE_FIELDS:
            out[name] = str(getattr(self, name))
        out["per_job_fee"] = self.job_fee.to_json()
        out["min_fee"] = self.minimum.to_json()
        return out

    def escrow_for(self, max_cost: Money) -> Money:
        """What to escrow so that a lease costing at most ``max_cost`` can always pay the
        client's side of the fees too (the client-side fees are capped at what the escrow
        holds beyond the billed amount, so escrowing less would under-collect them)."""
        self._check(max_cost, "max_cost")
        return max_cost + max_cost.scale(self.client_reservation_rate) + self.job_fee

    def charges(self, escrow: Money, cost: Money) -> Charges:
        """Divide ``escrow`` for a lease whose work cost ``cost`` (see the module docstring).

        ``billed = min(cost, escrow)``; provider-side fees come out of ``billed``; client-side
        fees come out of what is left of the escrow, capped at it; the minimum fee tops up the
        provider side, capped at the payout; the rest of the escrow is refunded.
        """
        self._check(escrow, "escrow")
        self._check(cost, "cost")
        zero = Money.zero(self.currency)
        billed = min(cost, escrow)
        if not billed:
            return Charges(escrow, zero, zero, zero, zero, zero, zero, zero, zero, zero, escrow)
        room = escrow - billed
        client_res = min(billed.scale(self.client_reservation_rate), room)
        job_fee = min(self.job_fee, room - client_res)
        take = billed.scale(self.take_rate)
        provider_res = billed.scale(self.provider_reservation_rate)
        so_far = client_res + job_fee + take + provider_res
        topup = min(max(self.minimum - so_far, zero), billed - take - provider_res)
        fee_total = so_far + topup
        reserve, treasury = fee_total.split(self.reserve_share)
        return Charges(
            escrow=escrow,
            billed=billed,
            take_fee=take,
            provider_reservation_fee=provider_res,
            min_fee_topup=topup,
            client_reservation_fee=client_res,
            job_fee=job_fee,
            provider_payout=billed - take - provider_res - topup,
            treasury=treasury,
            reserve=reserve,
            refund=room - client_res - job_fee,
        )

    def _check(self, amount: Money, field: str) -> None:
        if not isinstance(amount, Money):
            raise FeeError(
                f"{field} must be Money, got {type(amount).__name__}",
                code="invalid_amount",
                field=field,
            )
        if amount.currency != self.currency:
            raise FeeError(
                f"{field} is in {amount.currency}, the fee schedule in {self.currency}",
                code="currency_mismatch",
                field=field,
            )
        if amount.is_negative():
            raise FeeError(f"{field} cannot be negative", code="invalid_amount", field=field)


@dataclass(frozen=True)
class FeeTable:
    """A network's fee schedules, one per accepted currency."""

    schedules: tuple[FeeSchedule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        seen: set[str] = set()
        for schedule in self.schedules:
            if not isinstance(schedule, FeeSchedule):
                raise FeeError("a fee table holds FeeSchedules", code="invalid_fee_schedule")
            if schedule.currency in seen:
                raise FeeError(
                    f"two fee schedules for {schedule.currency}",
                    code="invalid_fee_schedule",
                    field=schedule.currency,
                )
            seen.add(schedule.currency)

    @classmethod
    def of(cls, schedules: Iterable[FeeSchedule]) -> FeeTable:
        return cls(tuple(schedules))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FeeTable:
        """Build from ``{"USDC": {"take_rate": "20%"}, "AKT": {"take_rate": "4%"}}``."""
        if not isinstance(data, Mapping):
            raise FeeError("fees are a table of currency → schedule", code="invalid_fee_schedule")
        return cls(tuple(FeeSchedule.from_mapping(v, currency=str(k)) for k, v in data.items()))

    def to_mapping(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for s in self.schedules:
            body = s.to_mapping()
            del body["currency"]
            out[s.currency] = body
        return out

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(s.currency for s in self.schedules)

    def for_currency(self, currency: str) -> FeeSchedule:
        for schedule in self.schedules:
            if schedule.currency == currency:
                return schedule
        raise FeeError(
            f"this network takes no payments in {currency}",
            code="unsupported_currency",
            field="currency",
            hint=f"accepted: {', '.join(self.currencies) or 'none'}",
        )
