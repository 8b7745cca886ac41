"""``performance`` (Render): providers price per benchmark-score-hour, tiered by reputation.

Why per score-hour: on Render a node is paid per OctaneBench-hour (OBh), so a card twice as
fast earns twice as much per hour and the client pays the same for the same work whichever
card does it: ``cost = score × hours × rate`` and ``hours ≈ work / score``, hence
``cost ≈ work × rate``. Here the score is the provider's benchmark (``ProviderView.score``,
GFLOP/s) and a provider's ask for one lease is :func:`quote` of its rate and score — that is
what its :class:`~pasar.core.pricing.base.Candidate` carries as ``price_per_hour``.

Tiers. Render sorts nodes into three tiers and prices work by tier with an "OctaneBench
multiplier": Tier 1 (*Trusted*) at 1×, Tier 2 (*Priority*) giving the client 2–4× more OB-work
per token, Tier 3 (*Economy*) 8–16×, i.e. price multipliers of 1, 1/2–1/4 and 1/8–1/16 of the
Tier 1 price. Higher tiers get rendering-queue priority. Here a provider's tier follows its
reputation (:mod:`pasar.core.reputation`): the first tier whose ``min_reputation`` it reaches.
:data:`RENDER_TIERS` is the preset reading; of each published range it takes the end nearest
Tier 1 (1/2 and 1/8); a preset may pick any other positive multiplier:

===== ========== ================== ===========
tier  name       min reputation     multiplier
===== ========== ================== ===========
1     trusted    9/10               1
2     priority   3/5                1/2
3     economy    0                  1/8
===== ========== ================== ===========

A newcomer starts at the neutral 1/2 and so in *economy*; it earns *priority* after a run of
verified leases. A preset may set the lowest threshold above 0 to bar providers outright.

Clearing. Eligible candidates (stake rule met, a benchmark score, a tier, a price) are charged
``quote × tier multiplier`` per hour (rounded down, money.py's rule) and must be within the
order's ``max_price_per_hour``. They are ranked by tier first (queue priority), then by the
tiered *rate per score-point* (the cost of the work, see above), then by the higher score
(the work finishes sooner), then by the seeded ``rng``. Each provider takes at most one lease
per clearing: its score measures the whole node, so the node renders one shard at a time (as
a Render node renders one frame at a time) and the rest of a shard order stays ``unfilled``
for the next clearing. A ``together`` order is all-or-nothing, on distinct providers: a gang's
``placement: spread`` is refused at ``order.create`` (``packs_gangs`` is False), since a lease
here is priced by the whole node's score, and two nodes sharing one machine would each pay
for all of it.

Order side: :func:`prioritise` sorts the queue of waiting orders by the tier each client chose,
then by age — Render's "Tier 2 provides rendering queue priority" seen from the client.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, ClassVar

from pasar.core.errors import PasarError
from pasar.core.money import Money, parse_rate
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import (
    Award,
    Candidate,
    Candidates,
    MatchResult,
    Offers,
    price_problem,
    screen,
)
from pasar.core.stake import NoStake, StakeRule, stake_problem


class PerformanceError(PasarError):
    """Malformed performance-pricing parameters (tiers), or a bad quote."""


@dataclass(frozen=True)
class Tier:
    """One reputation tier: ``level`` 1 is the best; ``multiplier`` scales the provider's quote."""

    level: int
    name: str
    min_reputation: Fraction
    multiplier: Fraction

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int) or self.level < 1:
            raise PerformanceError(
                f"a tier level is a whole number >= 1, got {self.level!r}",
                code="invalid_tiers",
                field="level",
            )
        rep = parse_rate(self.min_reputation, field="min_reputation")
        if not 0 <= rep <= 1:
            raise PerformanceError(
                f"tier {self.level}: min_reputation must be in [0, 1], got {rep}",
                code="invalid_tiers",
                field="min_reputation",
            )
        mult = parse_rate(self.multiplier, field="multiplier")
        if mult <= 0:
            raise PerformanceError(
                f"tier {self.level}: multiplier must be positive, got {mult}",
                code="invalid_tiers",
                field="multiplier",
            )
        object.__setattr__(self, "min_reputation", rep)
        object.__setattr__(self, "multiplier", mult)

    def __str__(self) -> str:
        return f"tier {self.level} ({self.name})"


RENDER_TIERS: tuple[Tier, ...] = (
    Tier(1, "trusted", Fraction(9, 10), Fraction(1)),
    Tier(2, "priority", Fraction(3, 5), Fraction(1, 2)),
    Tier(3, "economy", Fraction(0), Fraction(1, 8)),
)


@dataclass(frozen=True)
class PerformanceParams:
    """The tiers, best first: levels 1, 2, … with strictly falling reputation thresholds."""

    tiers: tuple[Tier, ...] = RENDER_TIERS

    def __post_init__(self) -> None:
        tiers = tuple(sorted(self.tiers, key=lambda t: t.level))
        if not tiers:
            raise PerformanceError("performance pricing needs at least one tier", field="tiers")
        for i, tier in enumerate(tiers):
            if tier.level != i + 1:
                raise PerformanceError(
                    "tier levels must be 1, 2, 3, … without gaps or repeats",
                    code="invalid_tiers",
                    field="tiers",
                )
            if i and tier.min_reputation >= tiers[i - 1].min_reputation:
                raise PerformanceError(
                    f"tier {tier.level} must need less reputation than tier {tier.level - 1}",
                    code="invalid_tiers",
                    field="tiers",
                    hint="higher tiers (smaller levels) have higher min_reputation",
                )
        object.__setattr__(self, "tiers", tiers)

    def tier_of(self, reputation: Fraction) -> Tier | None:
        """The best tier ``reputation`` reaches, or None when it is below every threshold."""
        for tier in self.tiers:
            if reputation >= tier.min_reputation:
                return tier
        return None

    @property
    def lowest(self) -> Tier:
        return self.tiers[-1]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PerformanceParams:
        """Build from preset data::

        [[pricing.tiers]]
        level = 1
        name = "trusted"
        min_reputation = "9/10"
        multiplier = "1"
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("tiers"), list | tuple):
            raise PerformanceError(
                "performance pricing needs a list of tiers", code="invalid_tiers", field="tiers"
            )
        known = {f.name for f in fields(Tier)}
        tiers: list[Tier] = []
        for i, raw in enumerate(data["tiers"]):
            where = f"tiers[{i}]"
            if not isinstance(raw, Mapping):
                raise PerformanceError(
                    "a tier is a table of fields", code="invalid_tiers", field=where
                )
            unknown = sorted(str(k) for k in raw if k not in known)
            missing = sorted(k for k in known if k not in raw)
            if unknown or missing:
                bad = (unknown or missing)[0]
                raise PerformanceError(
                    f"{where}: " + ("unknown field " if unknown else "missing field ") + bad,
                    code="invalid_tiers",
                    field=f"{where}.{bad}",
                    hint="a tier has: " + ", ".join(sorted(known)),
                )
            tiers.append(
                Tier(
                    raw["level"],
                    str(raw["name"]),
                    parse_rate(raw["min_reputation"], field=f"{where}.min_reputation"),
                    parse_rate(raw["multiplier"], field=f"{where}.multiplier"),
                )
            )
        return cls(tuple(tiers))

    def to_mapping(self) -> dict[str, Any]:
        return {
            "tiers": [
                {
                    "level": t.level,
                    "name": t.name,
                    "min_reputation": str(t.min_reputation),
                    "multiplier": str(t.multiplier),
                }
                for t in self.tiers
            ]
        }


def quote(rate_per_score_hour: Money, score: int, *, per: int = 1) -> Money:
    """A provider's price per hour for one lease: ``rate × score / per``, rounded down.

    ``per`` lets a rate be stated per thousand points (``quote(rate, 52_000, per=1000)``):
    one micro-unit per GFLOP/s-hour is already too coarse for a modern GPU's score.
    """
    if isinstance(score, bool) or not isinstance(score, int) or score < 0:
        raise PerformanceError(
            f"a benchmark score is a whole number >= 0, got {score!r}", field="score"
        )
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise PerformanceError(f"per must be a whole number >= 1, got {per!r}", field="per")
    if rate_per_score_hour.is_negative():
        raise PerformanceError("a rate cannot be negative", field="rate")
    return rate_per_score_hour.scale(score, per)


def tiered(price_per_hour: Money, tier: Tier) -> Money:
    """What the client is charged per hour: the provider's quote × its tier's multiplier."""
    return price_per_hour.scale(tier.multiplier)


def prioritise(
    orders: Iterable[Order], chosen_tier: Mapping[str, int], params: PerformanceParams
) -> list[Order]:
    """The queue of waiting orders, served first by the tier each client chose (by order id;
    an order that chose none is economy, the lowest tier), then oldest first, then by id."""
    lowest = params.lowest.level
    return sorted(orders, key=lambda o: (chosen_tier.get(o.id, lowest), o.created_at, o.id))


@dataclass(frozen=True)
class _Offer:
    candidate: Candidate
    tier: Tier
    price: Money  # tiered, per hour
    draw: int  # the seeded tie-break

    def key(self) -> tuple[int, Fraction, int, int]:
        score = self.candidate.provider.score
        return (self.tier.level, Fraction(self.price.micros, score), -score, self.draw)


@dataclass(frozen=True)
class Performance:
    """The ``performance`` mechanism: tier first, then cost of the work, one lease per node."""

    name: ClassVar[str] = "performance"
    takes_bids: ClassVar[bool] = False
    opens_window: ClassVar[bool] = False
    walks_cheapest_asks: ClassVar[bool] = False
    packs_gangs: ClassVar[bool] = False

    params: PerformanceParams = field(default_factory=PerformanceParams)
    stake_rule: StakeRule = field(default_factory=NoStake)

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """Each fitting provider at its rate per score-hour × its benchmark score."""
        fitting, reasons = screen(order, views)
        candidates = []
        for view, allocation in fitting:
            rate = offers.rate_per_score_hour(view.id)
            if rate is None or view.score <= 0:
                reasons[view.id] = "quotes no rate per score-hour (or has no benchmark score)"
                continue
            candidates.append(Candidate(view, allocation, quote(rate, view.score)))
        return candidates, reasons

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, stake_rule: StakeRule | None = None
    ) -> Performance:
        """Build from preset data: ``{"tiers": [...]}`` (see :meth:`PerformanceParams.
        from_mapping`); without ``tiers`` the Render tiers (:data:`RENDER_TIERS`) apply."""
        if not isinstance(data, Mapping):
            raise PerformanceError("performance parameters are a table", code="invalid_pricing")
        unknown = sorted(str(k) for k in data if k != "tiers")
        if unknown:
            raise PerformanceError(
                f"unknown performance parameter(s): {', '.join(unknown)}",
                code="invalid_pricing",
                field=unknown[0],
                hint="known: tiers",
            )
        params = PerformanceParams.from_mapping(data) if "tiers" in data else PerformanceParams()
        return cls(params, stake_rule if stake_rule is not None else NoStake())

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult:
        reasons: dict[str, str] = {}
        draws = {c.id: rng.getrandbits(64) for c in sorted(candidates, key=lambda c: c.id)}
        offers: list[_Offer] = []
        for c in candidates:
            offer = self._offer(order, c, draws[c.id])
            if isinstance(offer, str):
                reasons[c.id] = offer
            else:
                offers.append(offer)
        offers.sort(key=_Offer.key)
        if not offers:
            note = "no candidate is eligible" if candidates else "no provider fits"
            return MatchResult((), reasons, order.leases, note)
        if order.together and len(offers) < order.leases:
            for o in offers:
                reasons[o.candidate.id] = (
                    f"the order needs {order.leases} distinct providers together, "
                    f"only {len(offers)} are eligible"
                )
            return MatchResult(
                (), reasons, order.leases, f"only {len(offers)} of {order.leases} nodes available"
            )
        winners, losers = offers[: order.leases], offers[order.leases :]
        for o in losers:
            reasons[o.candidate.id] = (
                f"outranked: the order's {order.leases} lease(s) went to higher tiers or lower "
                f"rates (this offer: {o.tier}, {o.price.amount_str()}/h "
                f"for score {o.candidate.provider.score})"
            )
        awards = tuple(Award(o.candidate.id, o.price, 1, o.candidate.allocation) for o in winners)
        unfilled = order.leases - len(awards)
        partial = f"only {len(awards)} eligible node(s) for {order.leases} shards"
        return MatchResult(awards, reasons, unfilled, partial if unfilled else None)

    def _offer(self, order: Order, c: Candidate, draw: int) -> _Offer | str:
        """The candidate's ranked offer, or why it cannot take part."""
        problem = stake_problem(self.stake_rule, c.provider)
        if problem is not None:
            return problem
        if c.provider.score <= 0:
            return "no benchmark score: performance pricing charges per score-hour"
        tier = self.params.tier_of(c.provider.reputation)
        if tier is None:
            low = self.params.lowest
            return (
                f"reputation {_fmt(c.provider.reputation)} is below every tier "
                f"({low} needs {_fmt(low.min_reputation)})"
            )
        if c.price_per_hour is None:
            return "offered no price"
        price = tiered(c.price_per_hour, tier)
        problem = price_problem(order, price)
        if problem is not None:
            return f"{problem} ({tier})"
        return _Offer(c, tier, price, draw)


def _fmt(value: Fraction) -> str:
    """A fraction in [0, 1] to two decimals, rounded down, without floats: ``0.59``."""
    hundredths = value.numerator * 100 // value.denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}"
