"""``stake`` (Phala): an order's leases are shared among fitting providers in proportion to stake.

Why: on Phala a worker's share of the network's compute work (and of the reward pool) follows
the stake behind it, so capital at risk, not a price war, decides who serves. Here the order's
``leases`` (its shards) are the work to share.

The rule, step by step:

1. **Eligible**: a candidate whose stake satisfies the network's :class:`~pasar.core.stake.
   StakeRule`, whose stake is positive and in the stake currency (the order's currency unless
   ``stake_currency`` says otherwise), and whose ask, if it gave one, is a valid price for the
   order (:func:`~pasar.core.pricing.base.price_problem`).
2. **Capacity**: how many leases each can hold at once — :func:`capacity` fits the request
   again and again against what the previous leases left. A multi-node order (``together``)
   wants distinct machines, so each provider holds at most one of its leases — unless its
   spec says ``placement: spread``, and then a provider holds as many nodes as it has room for.
3. **Apportion** the leases by :func:`largest_remainder` over the stakes (exact integers;
   ties between equal remainders are broken by the market's seeded ``rng``). A provider whose
   share exceeds its capacity keeps what it can hold, and the surplus is apportioned again
   among the others, by stake, until every lease is placed or nobody has room left.
4. **Price**: each lease at the order's ``max_price_per_hour`` unless the provider quotes lower
   (its ``Candidate.price_per_hour``). Phala pays workers from a stake-weighted pool rather
   than by auction; the nearest reading for a single order is that the client's stated maximum
   *is* the pool rate, and a provider may undercut it to attract clients but never exceed it.

A ``together`` order is all-or-nothing: if the eligible providers have room for fewer nodes
than it has (fewer providers, under the default ``placement: strict_spread``), nobody wins.
A shard order is filled as far as capacity allows; the rest is ``unfilled``.

Each award is one provider with its lease count; ``Award.allocation`` is its *first* lease's
allocation. The engine gets all of them from :func:`capacity` on the provider's inventory
(deterministic, so the same as here; their GPU slots are the provider's own and distinct).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import (
    Award,
    Candidate,
    Candidates,
    MatchResult,
    Offers,
    capacity,
    price_problem,
    unpriced_candidates,
)
from pasar.core.resources import Allocation
from pasar.core.stake import NoStake, StakeRule, stake_problem


class ApportionError(PasarError):
    """Apportionment asked of impossible inputs (negative counts, no weight to share by)."""


def largest_remainder(total: int, weights: Mapping[str, int], rng: random.Random) -> dict[str, int]:
    """Split ``total`` whole units among ``weights`` proportionally (Hamilton's method).

    Each key first gets the floor of its exact quota ``total × w / Σw``; the units left over
    (fewer than the number of keys) go one each to the largest fractional remainders. So the
    shares sum to ``total`` exactly and each is within one unit of its exact quota (floor or
    ceiling). Equal remainders are ordered by ``rng`` after sorting keys, so the outcome
    depends only on the seed and the mapping's content, never on its insertion order.
    A key of weight 0 gets 0.
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ApportionError(f"cannot apportion {total!r} units", code="invalid_apportionment")
    for key, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ApportionError(
                f"weight of {key!r} must be an int >= 0, got {w!r}", code="invalid_apportionment"
            )
    shares = dict.fromkeys(sorted(weights), 0)
    whole = sum(weights.values())
    if total == 0:
        return shares
    if whole == 0:
        raise ApportionError(
            f"cannot apportion {total} units: every weight is 0", code="invalid_apportionment"
        )
    remainders: dict[str, int] = {}
    for key in shares:
        shares[key], remainders[key] = divmod(total * weights[key], whole)
    left = total - sum(shares.values())
    order = list(shares)
    rng.shuffle(order)  # the tie-break: a stable sort keeps this order among equal remainders
    order.sort(key=lambda k: remainders[k], reverse=True)
    for key in order[:left]:
        shares[key] += 1
    return shares


def apportion_capped(
    total: int, weights: Mapping[str, int], caps: Mapping[str, int], rng: random.Random
) -> dict[str, int]:
    """:func:`largest_remainder`, then re-apportion whatever exceeds ``caps`` among those
    with room left, by the same weights, until all ``total`` is placed or nobody has room.

    Terminates: each round either places everything or fills at least one key to its cap,
    which then takes no part in later rounds.
    """
    given = dict.fromkeys(sorted(weights), 0)
    remaining = total
    active = {k: w for k, w in weights.items() if w > 0 and caps.get(k, 0) > 0}
    while remaining > 0 and active:
        shares = largest_remainder(remaining, active, rng)
        full: list[str] = []
        for key, share in shares.items():
            room = caps[key] - given[key]
            take = min(share, room)
            given[key] += take
            remaining -= take
            if take == room:
                full.append(key)
        for key in full:
            del active[key]
    return given


@dataclass(frozen=True)
class StakeShare:
    """The ``stake`` mechanism. ``stake_rule`` is the minimum to take part; ``stake_currency``
    is the currency stakes are weighed in (None: the order's currency)."""

    name: ClassVar[str] = "stake"
    takes_bids: ClassVar[bool] = False
    opens_window: ClassVar[bool] = False
    walks_cheapest_asks: ClassVar[bool] = False
    packs_gangs: ClassVar[bool] = True

    stake_rule: StakeRule = field(default_factory=NoStake)
    stake_currency: str | None = None

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """Every fitting provider, unpriced: the share of stake sets who gets what."""
        return unpriced_candidates(order, views)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, stake_rule: StakeRule | None = None
    ) -> StakeShare:
        """Build from preset data: ``{"stake_currency": "PHA"}`` (optional; default: stakes
        are weighed in each order's currency)."""
        if not isinstance(data, Mapping):
            raise PasarError("stake-share parameters are a table", code="invalid_pricing")
        unknown = sorted(str(k) for k in data if k != "stake_currency")
        if unknown:
            raise PasarError(
                f"unknown stake-share parameter(s): {', '.join(unknown)}",
                code="invalid_pricing",
                field=unknown[0],
                hint="known: stake_currency",
            )
        currency = data.get("stake_currency")
        if currency is not None:
            try:
                Money.zero(currency)  # validates the currency code
            except PasarError as exc:
                raise PasarError(
                    exc.message, code="invalid_currency", field="stake_currency", hint=exc.hint
                ) from exc
        return cls(stake_rule if stake_rule is not None else NoStake(), currency)

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult:
        reasons: dict[str, str] = {}
        currency = self.stake_currency or order.currency
        weights: dict[str, int] = {}
        caps: dict[str, int] = {}
        allocations: dict[str, list[Allocation]] = {}
        prices: dict[str, Money] = {}
        per_provider = 1 if order.together and not order.shares_providers else order.leases
        for c in candidates:
            stake = self._stake(order, c, currency)
            if isinstance(stake, str):
                reasons[c.id] = stake
                continue
            weights[c.id] = stake.micros
            held = capacity(order.request, c.provider.inventory, per_provider) or [c.allocation]
            allocations[c.id] = held
            caps[c.id] = len(held)
            prices[c.id] = (
                order.max_price_per_hour if c.price_per_hour is None else c.price_per_hour
            )
        if not weights:
            note = "no candidate is eligible" if candidates else "no provider fits"
            return MatchResult((), reasons, order.leases, note)
        room = sum(caps.values())
        if order.together and room < order.leases:
            for key in weights:
                reasons[key] = (
                    f"the order needs {order.leases} nodes together, the {len(weights)} "
                    f"eligible providers have room for {room} (placement: spread)"
                    if order.shares_providers
                    else f"the order needs {order.leases} distinct providers together, "
                    f"only {len(weights)} are eligible"
                )
            return MatchResult(
                (), reasons, order.leases, f"only {room} of {order.leases} nodes available"
            )
        shares = apportion_capped(order.leases, weights, caps, rng)
        total_stake = sum(weights.values())
        awards: list[Award] = []
        for key in sorted(shares, key=lambda k: (-shares[k], k)):
            n = shares[key]
            if n == 0:
                quota = Fraction(order.leases * weights[key], total_stake)
                reasons[key] = (
                    f"stake share rounded to 0 leases (quota {_fmt(quota)} of {order.leases}, "
                    f"stake {Money(weights[key], currency)} of {Money(total_stake, currency)})"
                )
                continue
            awards.append(Award(key, prices[key], n, allocations[key][0]))
        filled = sum(a.leases for a in awards)
        unfilled = order.leases - filled
        partial = f"eligible providers can hold only {filled} of {order.leases} leases"
        return MatchResult(tuple(awards), reasons, unfilled, partial if unfilled else None)

    def _stake(self, order: Order, c: Candidate, currency: str) -> Money | str:
        """The candidate's stake if it may take part, else why not."""
        problem = stake_problem(self.stake_rule, c.provider)
        if problem is not None:
            return problem
        stake = c.provider.stake
        if stake is None or stake.micros <= 0:
            return "no stake: compute is shared by stake"
        if stake.currency != currency:
            return f"stake is in {stake.currency}, this network weighs stake in {currency}"
        ask = None if c.price_per_hour is None else price_problem(order, c.price_per_hour)
        return stake if ask is None else ask


def _fmt(quota: Fraction) -> str:
    """A quota to two decimals, rounded down, without floats: ``0.41``."""
    hundredths = quota.numerator * 100 // quota.denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}"
