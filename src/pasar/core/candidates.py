"""How each mechanism's candidates are priced from the market's state.

A mechanism clears over candidates that carry a price: the provider's standing ask applied to
the request (book), its sealed bid (auction), rate × benchmark score (performance), or no price
at all when the mechanism sets it (tender, stake). One row per mechanism in
:data:`CANDIDATES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from pasar.core.market_records import OrderRecord
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidate, screen
from pasar.core.pricing.book import book_candidates
from pasar.core.pricing.performance import quote

if TYPE_CHECKING:
    from pasar.core.state import MarketState


CandidateBuilder: TypeAlias = (
    "Callable[[MarketState, OrderRecord, Order, list[ProviderView]], "
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
