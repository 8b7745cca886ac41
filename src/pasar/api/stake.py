"""A provider's stake as ``pasar provider status`` shows it: bonded, unbonding, slashed and
why, and the bid deposits it holds (``GET /v1/providers/{id}/stake``, the provider's own)."""

from __future__ import annotations

from pasar.api.base import WireModel


class UnbondingView(WireModel):
    """Stake leaving bond: slashable until ``release_at`` (unix seconds), then withdrawable."""

    amount: str
    release_at: int


class SlashView(WireModel):
    """One slash: when (market ms), how much, who got what, why, and from what
    (``stake`` or ``bid_deposit``)."""

    at: int
    amount: str
    reward: str
    burned: str
    reason: str
    source: str


class BidDepositView(WireModel):
    """A deposit held for a bid on ``order_id`` (akash): returned when the bid loses or its
    lease ends honestly, slashed when the lease is lost."""

    order_id: str
    amount: str


class StakeView(WireModel):
    """``stake`` is what is bonded now; ``required`` what the market's stake rule asks of this
    provider's registered hardware (None: not registered); ``slashed`` the total ever taken."""

    provider: str
    currency: str
    stake: str
    required: str | None = None
    unbonding: list[UnbondingView]
    slashed: str
    slashes: list[SlashView]
    bid_deposits: list[BidDepositView]
