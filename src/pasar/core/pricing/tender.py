"""``tender`` (Aethir): the network sets the price; an indexer picks the best idle provider.

Why: on Aethir nobody bids. The protocol publishes a price per hardware tier, and its indexer
assigns each session to an eligible, idle node chosen by service quality (latency to the user,
reliability), so a provider competes on being fast and dependable, never on price.

The price table (:class:`PriceTable`) maps a *spec tier* to a price:

* a GPU tier — keyed by GPU family (``"H100"``), or more specifically by VRAM variant
  (``"A100-80GB"``) or interface (``"H100-80GB-SXM"``) — is priced per GPU-hour, and one lease
  costs ``price × gpu_count``; the host's CPUs, memory and disk come with the GPU, as with a
  cloud GPU instance;
* the ``"cpu"`` tier (requests without GPUs) is priced per core-hour, and one lease costs
  ``price × cpus`` rounded down (half a core is a real request).

A request that accepts several GPU models has its tier fixed by the GPU the provider actually
sets aside (the allocation's model); the most specific key the table has wins.

The indexer. Eligible: the candidate fits (the market only passes fitting, i.e. idle enough,
providers: :func:`~pasar.core.pricing.base.screen`), meets the stake rule and
``min_reputation``, its tier is in the table and the table price is within the order's
``max_price_per_hour``. Among them the best :func:`quality` wins; ties go by the seeded ``rng``.
A candidate's own ``price_per_hour`` is ignored. Each provider takes one lease (one session per
node); a ``together`` order is all-or-nothing, a shard order is filled as far as there are
eligible providers. A gang with ``placement: spread`` lets the indexer assign the next node to
the best provider again while its free room holds one (Aethir's "best idle node", asked once
per node; among equal quality, distinct providers first: :func:`~pasar.core.pricing.base.
fill_nodes`). If the table price exceeds the order's max, nobody wins, and every
candidate's reason says so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
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
    fill_nodes,
    price_problem,
    unpriced_candidates,
)
from pasar.core.resources import GpuModel, GpuSelector, ResourceRequest
from pasar.core.stake import NoStake, StakeRule, stake_problem

CPU_TIER = "cpu"


class TenderError(PasarError):
    """A malformed price table, or a tier that cannot be told without the provider's GPU."""


def _key(name: object, field_: str) -> str:
    if isinstance(name, str) and name.strip().lower() == CPU_TIER:
        return CPU_TIER
    return GpuSelector.parse(name, field=field_).canonical


@dataclass(frozen=True)
class PriceTable:
    """The network's prices: ``"cpu"`` per core-hour, GPU tiers per GPU-hour, one currency."""

    currency: str
    prices: Mapping[str, Money]

    def __post_init__(self) -> None:
        normalised: dict[str, Money] = {}
        for name, price in self.prices.items():
            key = _key(name, f"prices.{name}")
            if price.currency != self.currency:
                raise TenderError(
                    f"price for {key} is in {price.currency}, the table is in {self.currency}",
                    code="currency_mismatch",
                    field=f"prices.{name}",
                )
            if price.micros <= 0:
                raise TenderError(
                    f"price for {key} must be positive, got {price}",
                    code="invalid_price_table",
                    field=f"prices.{name}",
                )
            normalised[key] = price
        object.__setattr__(self, "prices", MappingProxyType(normalised))

    def __hash__(self) -> int:
        return hash((self.currency, tuple(sorted(self.prices.items()))))

    def tier(self, request: ResourceRequest, model: GpuModel | None = None) -> str:
        """The spec tier of one lease: ``"cpu"``, or the most specific GPU key the table has
        for ``model`` (the GPU the provider sets aside) or, without one, for the single GPU
        model the request names. Falls back to the family when the table has no such key."""
        if request.gpu_count == 0:
            return CPU_TIER
        if model is not None:
            keys = [
                GpuSelector(model.family, model.vram_gb, model.interface).canonical,
                GpuSelector(model.family, model.vram_gb).canonical,
                model.family,
            ]
        elif len(request.gpu_models) == 1:
            sel = request.gpu_models[0]
            keys = [sel.canonical, GpuSelector(sel.family, sel.vram_gb).canonical, sel.family]
        else:
            raise TenderError(
                f"the price tier of {request.describe_gpus() or 'any GPU'} depends on the GPU "
                "the provider has",
                code="ambiguous_tier",
                hint="pass the allocated GPU model",
            )
        for key in keys:
            if key in self.prices:
                return key
        return keys[-1]

    def lease_price(self, request: ResourceRequest, model: GpuModel | None = None) -> Money | None:
        """The table price per hour of one lease, or None when the table lacks its tier."""
        key = self.tier(request, model)
        price = self.prices.get(key)
        if price is None:
            return None
        if key == CPU_TIER:
            return price.scale(Fraction(request.cpus))
        return price * request.gpu_count

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, currency: str | None = None) -> PriceTable:
        """Build from preset data: ``{"currency": "USDC", "cpu": "0.02", "H100": "2.40",
        "A100-80GB": "1.60 USDC"}``; amounts without a currency are in the table's."""
        if not isinstance(data, Mapping):
            raise TenderError(
                "a price table is a table of tier → price", code="invalid_price_table"
            )
        cur = currency if currency is not None else data.get("currency")
        if not isinstance(cur, str):
            raise TenderError(
                "a price table needs its currency", code="invalid_price_table", field="currency"
            )
        prices: dict[str, Money] = {}
        for name, value in data.items():
            if name == "currency":
                continue
            key = _key(name, str(name))
            if key in prices:
                raise TenderError(
                    f"tier {key} is priced twice", code="invalid_price_table", field=str(name)
                )
            prices[key] = Money.parse(value, default_currency=cur, field=str(name))
        if not prices:
            raise TenderError("a price table needs at least one tier", code="invalid_price_table")
        return cls(cur, prices)

    def to_mapping(self) -> dict[str, str]:
        out = {"currency": self.currency}
        out.update({k: str(v) for k, v in sorted(self.prices.items())})
        return out


def quality(provider: ProviderView, latency_scale_ms: int = 50) -> Fraction:
    """The indexer's quality score in [0, 1]; higher is better; price plays no part.

    ``quality = reputation × L / (L + latency_ms)`` with ``L = latency_scale_ms``: a perfect,
    zero-latency provider scores its reputation; every ``L`` ms of round trip costs as much as
    halving, then thirding, … the reputation. Product rather than sum, so that neither a close
    but unreliable node nor a reliable one on another continent can win on one virtue alone.
    """
    latency = max(0, provider.latency_ms)
    return Fraction(provider.reputation) * Fraction(latency_scale_ms, latency_scale_ms + latency)


@dataclass(frozen=True)
class _Eligible:
    candidate: Candidate
    price: Money
    quality: Fraction
    draw: int


@dataclass(frozen=True)
class Tender:
    """The ``tender`` mechanism: table price, best quality, one lease per provider."""

    name: ClassVar[str] = "tender"
    takes_bids: ClassVar[bool] = False
    opens_window: ClassVar[bool] = False
    walks_cheapest_asks: ClassVar[bool] = False
    packs_gangs: ClassVar[bool] = True

    table: PriceTable
    stake_rule: StakeRule = field(default_factory=NoStake)
    latency_scale_ms: int = 50
    min_reputation: Fraction = Fraction(0)

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """Every fitting provider, unpriced: the network's table sets the price."""
        return unpriced_candidates(order, views)

    def __post_init__(self) -> None:
        if self.latency_scale_ms < 1:
            raise TenderError("latency_scale_ms must be >= 1", field="latency_scale_ms")
        rep = parse_rate(self.min_reputation, field="min_reputation")
        if not 0 <= rep <= 1:
            raise TenderError("min_reputation must be in [0, 1]", field="min_reputation")
        object.__setattr__(self, "min_reputation", rep)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, stake_rule: StakeRule | None = None
    ) -> Tender:
        """Build from preset data::

        [pricing]
        mechanism = "tender"
        latency_scale_ms = 50        # optional
        min_reputation = "1/5"       # optional
        [pricing.prices]
        currency = "USDC"
        cpu = "0.02"
        H100 = "2.40"
        """
        known = {"prices", "latency_scale_ms", "min_reputation"}
        _refuse_unknown(data, known)
        if "prices" not in data:
            raise TenderError(
                "tender pricing needs the network's price table",
                code="invalid_price_table",
                field="prices",
            )
        latency = data.get("latency_scale_ms", 50)
        if isinstance(latency, bool) or not isinstance(latency, int):
            raise TenderError(
                "latency_scale_ms must be a whole number of milliseconds",
                field="latency_scale_ms",
            )
        return cls(
            PriceTable.from_mapping(data["prices"]),
            stake_rule if stake_rule is not None else NoStake(),
            latency,
            parse_rate(data.get("min_reputation", 0), field="min_reputation"),
        )

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult:
        reasons: dict[str, str] = {}
        draws = {c.id: rng.getrandbits(64) for c in sorted(candidates, key=lambda c: c.id)}
        eligible: list[_Eligible] = []
        over_max: list[str] = []
        for c in candidates:
            problem = self._problem(c)
            if problem is not None:
                reasons[c.id] = problem
                continue
            model = c.allocation.gpu.model if c.allocation.gpu is not None else None
            tier = self.table.tier(order.request, model)
            price = self.table.lease_price(order.request, model)
            if price is None:
                reasons[c.id] = f"the network has no price for tier {tier}"
                continue
            problem = price_problem(order, price)
            if problem is not None:
                reasons[c.id] = f"table {problem} (tier {tier})"
                if price.currency == order.currency and price > order.max_price_per_hour:
                    over_max.append(c.id)
                continue
            eligible.append(
                _Eligible(c, price, quality(c.provider, self.latency_scale_ms), draws[c.id])
            )
        if not eligible:
            if over_max:
                note = "the network's table price exceeds the order's max price per hour"
            else:
                note = "no candidate is eligible" if candidates else "no provider fits"
            return MatchResult((), reasons, order.leases, note)
        eligible.sort(key=lambda e: (-e.quality, e.draw))
        fill = fill_nodes(order, [(e.quality, e.candidate) for e in eligible])
        if order.together and fill.nodes < order.leases:
            for e in eligible:
                reasons[e.candidate.id] = (
                    f"the order needs {order.leases} nodes together, the {len(eligible)} "
                    f"eligible providers have room for {fill.nodes} (placement: spread)"
                    if order.shares_providers
                    else f"the order needs {order.leases} distinct providers together, "
                    f"only {len(eligible)} are eligible"
                )
            return MatchResult(
                (), reasons, order.leases, f"only {fill.nodes} of {order.leases} nodes available"
            )
        by_id = {e.candidate.id: e for e in eligible}
        winners = [(by_id[c.id], n) for _, c, n in fill.placed]
        losers = [e for e in eligible if e.candidate.id not in fill.winners]
        cutoff = winners[-1][0].quality
        for e in losers:
            reasons[e.candidate.id] = (
                f"the indexer assigned providers of better quality "
                f"({_fmt(e.quality)}, the last assigned has {_fmt(cutoff)})"
                if e.quality < cutoff
                else f"equal quality ({_fmt(e.quality)}); the seeded draw went to others"
            )
        awards = tuple(
            Award(e.candidate.id, e.price, n, e.candidate.allocation) for e, n in winners
        )
        unfilled = order.leases - fill.nodes
        partial = f"only {len(awards)} eligible provider(s) for {order.leases} leases"
        return MatchResult(awards, reasons, unfilled, partial if unfilled else None)

    def _problem(self, c: Candidate) -> str | None:
        problem = stake_problem(self.stake_rule, c.provider)
        if problem is not None:
            return problem
        if c.provider.reputation < self.min_reputation:
            return (
                f"reputation {_fmt(c.provider.reputation)} < required {_fmt(self.min_reputation)}"
            )
        return None


def _refuse_unknown(data: Mapping[str, Any], known: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise TenderError("tender parameters are a table of fields", code="invalid_pricing")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise TenderError(
            f"unknown tender parameter(s): {', '.join(unknown)}",
            code="invalid_pricing",
            field=unknown[0],
            hint="known: " + ", ".join(sorted(known)),
        )


def _fmt(value: Fraction) -> str:
    """A fraction in [0, 1] to three decimals, rounded down, without floats: ``0.416``."""
    thousandths = value.numerator * 1000 // value.denominator
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"
