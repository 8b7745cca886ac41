"""The market's state as the :class:`~pasar.core.pricing.base.Offers` a mechanism prices from,
and where a clearing's candidates are found.

Each mechanism builds its own candidates (:meth:`Mechanism.candidates`): the standing ask
applied to the request (book), the sealed bid (auction), rate × benchmark score (performance),
or no price at all when the mechanism sets it (tender, stake). What it needs from the state —
a provider's asks and rate, the order window's bids — it reads through :class:`StateOffers`,
so the pricing package never imports the state and nothing here knows one mechanism from
another.

:func:`indexed_candidates` finds the candidates that decide a clearing *without* scanning the
fleet, using the state's :class:`~pasar.core.fleet_index.FleetIndex`. The rule it keeps: the
mechanism must award exactly what it awards over the full scan (audits replay clearings), so
it may leave out only providers that provably cannot change the outcome, and keeps the others
in registration order, as the scan sees them. Which search fits is asked of the mechanism:

* one that ``walks_cheapest_asks`` (posted prices) has the standing asks walked cheapest first,
  stopping once ``order.leases`` valid asks are found and the walk has passed the price of the
  last of them: it ranks by price and draws ties over the tied group only
  (:func:`~pasar.core.pricing.auction.rank`), so asks above the last winning price change
  neither the winners nor the draw;
* one that ``takes_bids`` looks only at the providers that bid in the window (others are never
  candidates);
* any other looks at the providers with enough free GPUs of an accepted model and CPUs of a
  class that can hold the request (all of them for a CPU-only request): providers left out do
  not fit, so they were never candidates.

Reasons are given to the providers examined; the others are not listed.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pasar.core.market_records import OrderRecord
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, Candidates, Mechanism, price_problem
from pasar.core.pricing.book import Asks

if TYPE_CHECKING:
    from pasar.core.state import MarketState


@dataclass(frozen=True)
class StateOffers:
    """What the providers of ``state`` offer for ``record`` (read-only)."""

    state: MarketState
    record: OrderRecord

    def asks(self, provider: str) -> Asks:
        return self.state.providers[provider].asks

    def rate_per_score_hour(self, provider: str) -> Money | None:
        return self.state.providers[provider].rate_per_score_hour

    def bids(self) -> Mapping[str, Money | None]:
        window = self.record.window
        return window.bids if window is not None else {}


def build_candidates(
    state: MarketState,
    record: OrderRecord,
    mechanism: Mechanism,
    order: Order,
    views: list[ProviderView],
) -> Candidates:
    """The candidates ``mechanism`` clears ``order`` over, priced from ``state``."""
    return mechanism.candidates(order, views, StateOffers(state, record))


# -- finding them without a scan of the fleet ------------------------------------------------------


def indexed_candidates(
    state: MarketState,
    record: OrderRecord,
    mechanism: Mechanism,
    order: Order,
    offline: Container[str],
) -> Candidates:
    """The candidates that decide ``record``'s clearing, found through the fleet index:
    ``mechanism`` awards over them exactly what it awards over :meth:`MarketState.candidates`."""
    if mechanism.walks_cheapest_asks:
        return _cheapest_asks(state, record, mechanism, order, offline)
    if mechanism.takes_bids:
        bids = record.window.bids if record.window else {}
        among: list[str] | None = sorted(
            (p for p in bids if p in state.providers), key=state.index.rank
        )
    else:
        among = state.index.may_fit(order.request)
    views, reasons = state.eligible(record, offline, among=among)
    candidates, more = build_candidates(state, record, mechanism, order, views)
    return candidates, {**reasons, **more}


def _cheapest_asks(
    state: MarketState,
    record: OrderRecord,
    mechanism: Mechanism,
    order: Order,
    offline: Container[str],
) -> Candidates:
    wanted = order.leases
    max_micros = order.max_price_per_hour.micros
    offers = StateOffers(state, record)
    excluded = state.exclusions(record)
    candidates: list[Candidate] = []
    reasons: dict[str, str] = {}
    seen: set[str] = set()
    valid: list[int] = []  # prices of the valid asks found so far, sorted
    for price, pid in state.index.cheapest(order):
        # ``price`` is never above the provider's real one, and the walk is cheapest first:
        # once it passes the max, or the wanted-th cheapest valid ask, nobody left can win
        if price > max_micros or (len(valid) >= wanted and price > valid[wanted - 1]):
            break
        if pid in seen:
            continue
        seen.add(pid)
        view, problem = state.eligible_view(state.providers[pid], record, offline, excluded)
        if view is None:
            reasons[pid] = problem
            continue
        found, more = mechanism.candidates(order, [view], offers)
        reasons.update(more)
        for c in found:
            candidates.append(c)
            if c.price_per_hour is not None and price_problem(order, c.price_per_hour) is None:
                insort(valid, c.price_per_hour.micros)
    candidates.sort(key=lambda c: state.index.rank(c.id))
    return candidates, reasons
