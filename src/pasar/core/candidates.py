"""The market's state as the :class:`~pasar.core.pricing.base.Offers` a mechanism prices from.

Each mechanism builds its own candidates (:meth:`Mechanism.candidates`): the standing ask
applied to the request (book), the sealed bid (auction), rate × benchmark score (performance),
or no price at all when the mechanism sets it (tender, stake). What it needs from the state —
a provider's asks and rate, the order window's bids — it reads through this adapter, so the
pricing package never imports the state and nothing here knows one mechanism from another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pasar.core.market_records import OrderRecord
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Candidates, Mechanism
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
