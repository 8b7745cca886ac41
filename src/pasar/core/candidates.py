"""How each mechanism's candidates are priced from the market's state, and where they are found.

A mechanism clears over candidates that carry a price: the provider's standing ask applied to
the request (book), its sealed bid (auction), rate × benchmark score (performance), or no price
at all when the mechanism sets it (tender, stake). One row per mechanism in
:data:`CANDIDATES`, which builds them from a list of eligible providers (a scan of the fleet).

:data:`SEARCH` finds, for each mechanism, the candidates that decide a clearing *without*
scanning the fleet, using the state's :class:`~pasar.core.fleet_index.FleetIndex`. The rule
each row keeps: the mechanism must award exactly what it awards over the full scan (audits
replay clearings), so a row may leave out only providers that provably cannot change the
outcome, and keeps the others in registration order, as the scan sees them:

* ``book`` walks the standing asks cheapest first and stops once ``order.leases`` valid asks
  are found and the walk has passed the price of the last of them. The book ranks by price
  and draws ties from the seed over the tied group only (:func:`~pasar.core.pricing.auction.rank`),
  so asks above the last winning price change neither the winners nor the draw;
* ``auction`` looks only at the providers that bid in the window (others are never
  candidates);
* ``performance``, ``tender`` and ``stake`` look at the providers with enough free GPUs of an
  accepted model and CPUs of a class that can hold the request (all of them for a CPU-only
  request): providers left out do not fit, so they were never candidates.

Reasons are given to the providers examined; the others are not listed.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, TypeAlias

from pasar.core.market_records import OrderRecord
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, price_problem, screen
from pasar.core.pricing.book import book_candidates
from pasar.core.pricing.performance import quote

if TYPE_CHECKING:
    from pasar.core.state import MarketState


CandidateBuilder: TypeAlias = (
    "Callable[[MarketState, OrderRecord, Order, list[ProviderView]], "
    "tuple[list[Candidate], dict[str, str]]]"
)
CandidateSearch: TypeAlias = (
    "Callable[[MarketState, OrderRecord, Order, Container[str]], "
    "tuple[list[Candidate], dict[str, str]]]"
)


def _book(
    state: MarketState, record: OrderRecord, order: Order, views: list[ProviderView]
) -> tuple[list[Candidate], dict[str, str]]:
    return book_candidates(order, [(v, state.providers[v.id].asks) for v in views])


def _auction(
    state: MarketState, record: OrderRecord, order: Order, views: list[ProviderView]
) -> tuple[list[Candidate], dict[str, str]]:
    fitting, reasons = screen(order, views)
    bids = record.window.bids if record.window else {}
    candidates = []
    for view, allocation in fitting:
        if view.id in bids:
            candidates.append(Candidate(view, allocation, bids[view.id]))
        else:
            reasons[view.id] = "did not bid in this window"
    return candidates, reasons


def _performance(
    state: MarketState, record: OrderRecord, order: Order, views: list[ProviderView]
) -> tuple[list[Candidate], dict[str, str]]:
    fitting, reasons = screen(order, views)
    candidates = []
    for view, allocation in fitting:
        rate = state.providers[view.id].rate_per_score_hour
        if rate is None or view.score <= 0:
            reasons[view.id] = "quotes no rate per score-hour (or has no benchmark score)"
            continue
        candidates.append(Candidate(view, allocation, quote(rate, view.score)))
    return candidates, reasons


def _unpriced(
    state: MarketState, record: OrderRecord, order: Order, views: list[ProviderView]
) -> tuple[list[Candidate], dict[str, str]]:
    fitting, reasons = screen(order, views)
    return [Candidate(view, allocation) for view, allocation in fitting], reasons


CANDIDATES: dict[str, CandidateBuilder] = {
    "book": _book,
    "auction": _auction,
    "performance": _performance,
    "tender": _unpriced,
    "stake": _unpriced,
}


# -- finding them without a scan of the fleet ------------------------------------------------------


def indexed_candidates(
    state: MarketState, record: OrderRecord, order: Order, offline: Container[str]
) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates that decide ``record``'s clearing, found through the fleet index: the
    mechanism awards over them exactly what it awards over :meth:`MarketState.candidates`."""
    return SEARCH[record.mechanism](state, record, order, offline)


def _book_search(
    state: MarketState, record: OrderRecord, order: Order, offline: Container[str]
) -> tuple[list[Candidate], dict[str, str]]:
    wanted = order.leases
    max_micros = order.max_price_per_hour.micros
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
        provider = state.providers[pid]
        view, problem = state.eligible_view(provider, record, offline)
        if view is None:
            reasons[pid] = problem
            continue
        found, more = book_candidates(order, [(view, provider.asks)])
        reasons.update(more)
        for c in found:
            candidates.append(c)
            if c.price_per_hour is not None and price_problem(order, c.price_per_hour) is None:
                insort(valid, c.price_per_hour.micros)
    candidates.sort(key=lambda c: state.index.rank(c.id))
    return candidates, reasons


def _auction_search(
    state: MarketState, record: OrderRecord, order: Order, offline: Container[str]
) -> tuple[list[Candidate], dict[str, str]]:
    bids = record.window.bids if record.window else {}
    bidders = sorted((p for p in bids if p in state.providers), key=state.index.rank)
    views, reasons = state.eligible(record, offline, among=bidders)
    candidates, more = _auction(state, record, order, views)
    return candidates, {**reasons, **more}


def _narrowed(build: CandidateBuilder) -> CandidateSearch:
    """Search with ``build`` over the providers the index says might fit (all for CPU-only)."""

    def search(
        state: MarketState, record: OrderRecord, order: Order, offline: Container[str]
    ) -> tuple[list[Candidate], dict[str, str]]:
        among = state.index.may_fit(order.request)
        views, reasons = state.eligible(record, offline, among=among)
        candidates, more = build(state, record, order, views)
        return candidates, {**reasons, **more}

    return search


SEARCH: dict[str, CandidateSearch] = {
    "book": _book_search,
    "auction": _auction_search,
    "performance": _narrowed(_performance),
    "tender": _narrowed(_unpriced),
    "stake": _narrowed(_unpriced),
}
