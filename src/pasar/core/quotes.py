"""A quote: what the market would do with an order for a spec, computed without taking it.

``pasar launch`` shows it before the client escrows anything, so the client never re-derives
fit, price or escrow (DESIGN.md §2). It runs the very code an order runs — the spec checks of
``order.create`` (:func:`~pasar.core.order_checks.order_mechanism`), its escrow
(:meth:`MarketState.order_escrow`), the eligibility, candidate screening and clearing of a
``match`` (:meth:`MarketState.candidates`, :meth:`MarketState.clear`) — over a hypothetical
order record that is never stored, so the state does not change.

A mechanism that opens a window (an auction) cannot be previewed by price: the prices are the
bids the window has not received yet. Its quote names the providers the window would invite,
and says that bids decide.

The seed of a real ``match`` is drawn when it happens; the quote clears with a fixed one, so
among offers that tie exactly the pick may differ. Everything else is the same computation.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from pasar.core.account_handlers import offered_clusters
from pasar.core.alternatives import Clearing, alternative_orders, merge_reasons
from pasar.core.market_records import OrderRecord, ProviderRecord
from pasar.core.money import Money
from pasar.core.order_checks import order_mechanism
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.base import Award, MatchResult, capacity, screen
from pasar.core.resources import ResourceRequest, fit
from pasar.core.spec import JobSpec
from pasar.core.state import MarketState

QUOTE_ORDER_ID = "o-quote"  # the hypothetical order's id; never stored
QUOTE_SEED = 0
BIDS_DECIDE = "sealed bids within the window decide the winner and the price"
#: Offers and reasons a quote lists at most (``pasar offers`` / ``explain`` list everything).
MAX_QUOTED = 100
#: The cap a spec without ``max_price_per_hour`` is quoted under, in whole units of the market's
#: currency per hour: far above any real ask, so the quote shows what providers ask (the client
#: then sets its cap from that price, :mod:`pasar.client.defaults`). Never escrowed.
UNCAPPED_UNITS = 1_000_000


def uncapped_spec(spec: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """``spec`` (wire data) with :data:`UNCAPPED_UNITS` as its cap if it names none."""
    if "max_price_per_hour" in spec:
        return dict(spec)
    return {**spec, "max_price_per_hour": Money.units(UNCAPPED_UNITS, currency).to_json()}


@dataclass(frozen=True)
class QuotedOffer:
    """A provider that fits the spec: its price for one lease (None when the mechanism sets it
    or bids decide), how many leases it would take, and why not if it would take none."""

    provider: str
    price_per_hour: Money | None
    reputation: Fraction
    score: int
    leases: int = 0
    reason: str | None = None
    alternative: int | None = None  # which of the spec's alternatives it would satisfy

    @property
    def chosen(self) -> bool:
        return self.leases > 0


@dataclass(frozen=True)
class OrderQuote:
    """What an order for ``spec`` would escrow, and whom it would match now, at what price."""

    mechanism: str
    takes_bids: bool
    request: str
    leases: int
    max_price_per_hour: Money
    escrow_per_lease: Money
    escrow: Money
    awards: tuple[Award, ...] = ()
    unfilled: int = 0
    note: str | None = None
    decided_by: str | None = None  # set when the preview cannot name a winner (bids decide)
    offers: tuple[QuotedOffer, ...] = ()  # the providers that fit, cheapest first
    reasons: Mapping[str, str] = field(default_factory=dict)  # every other provider: why not
    complete: bool = True  # offers and reasons cover the whole fleet (else: the deciding few)
    # some registered provider's whole machine (free or busy, any price, online or not) could
    # hold one lease: False means no order for this spec can ever match on this network
    fits_anywhere: bool = True
    # registered providers whose whole machine could hold one lease (a gang needs as many as
    # it has nodes, each on its own provider, under the default placement: strict_spread)
    providers_fit: int = 0
    # nodes of the job those machines could hold at once: one per provider, or under
    # placement: spread as many as each machine holds (counted up to the job's nodes each)
    nodes_fit: int = 0

    @property
    def chosen(self) -> str | None:
        """The provider of the first lease, if the order would be matched now."""
        return self.awards[0].provider if self.awards else None

    @property
    def price_per_hour(self) -> Money | None:
        """The price of the first lease, if the order would be matched now."""
        return self.awards[0].price_per_hour if self.awards else None


def quote_order(
    state: MarketState,
    spec: JobSpec,
    *,
    client: str | None = None,
    offline: Container[str] = frozenset(),
) -> OrderQuote:
    """Quote an order for ``spec`` on ``state`` (pure: the state is only read).

    Raises the 4xx ``order.create`` raises for a spec the market does not take. ``client`` is
    who would send the order (its own provider, if any, cannot take it); ``offline`` the
    providers the market would leave out of a clearing now.
    """
    mechanism = order_mechanism(state.preset, spec)
    per_lease, escrow = state.order_escrow(spec)
    policy = state.preset.verification_policy(spec.verification)
    leases = policy.leases_needed(spec)  # what order.create would open, replicas included
    currency = spec.max_price_per_hour.currency
    who = client or ""
    record = OrderRecord(
        id=QUOTE_ORDER_ID,
        client=who,
        spec=spec,
        order=Order.from_spec(spec, id=QUOTE_ORDER_ID, client=who, created_at=state.last_ts),
        mechanism=mechanism.name,
        fees=state.preset.fees.for_currency(currency),
        escrow_per_lease=per_lease,
        created_at=state.last_ts,
        deadline=state.last_ts,
        free_shards=list(range(leases)),
        verification=policy.name,
    )
    base = OrderQuote(
        mechanism=mechanism.name,
        takes_bids=mechanism.takes_bids,
        request=record.order.describe(),
        leases=leases,
        max_price_per_hour=spec.max_price_per_hour,
        escrow_per_lease=per_lease,
        escrow=escrow,
        unfilled=leases,
        fits_anywhere=fits_anywhere(state, record),
        providers_fit=providers_fit(state, record),
        nodes_fit=nodes_fit(state, record),
    )
    if mechanism.opens_window:
        return _window_quote(state, record, base)
    candidates, result = state.clear_over(record, QUOTE_SEED, offline)
    taken: dict[str, int] = {}
    for award in result.awards:
        taken[award.provider] = taken.get(award.provider, 0) + award.leases
    offers = [
        _offer(
            c.provider,
            c.price_per_hour,
            taken.get(c.id, 0),
            result.reasons.get(c.id),
            _satisfied(c.id, c.alternative, result),
        )
        for c in candidates
    ]
    fitting = {c.id for c in candidates}
    reasons = {p: r for p, r in result.reasons.items() if p not in fitting}
    return _bounded(
        replace(base, awards=result.awards, unfilled=result.unfilled, note=result.note),
        offers,
        reasons,
        complete=not state.indexed,
    )


def fits_anywhere(state: MarketState, record: OrderRecord) -> bool:
    """Whether the network's registered providers could ever hold ``record``, whatever they
    run now, ask or whether they are online: one lease on some provider, or for a multi-node
    job all its nodes (one on each of as many providers, or several on one under ``placement:
    spread``). The difference between a job that waits for capacity and one no provider of
    this network could ever run (``pasar launch`` refuses the second unless told to queue)."""
    needed = record.order.leases if record.order.together else 1
    return nodes_fit(state, record, enough=needed) >= needed


def providers_fit(state: MarketState, record: OrderRecord, *, enough: int | None = None) -> int:
    """How many registered providers' whole inventories could hold one lease of ``record``
    (with the ``cluster:`` it asks for), counting up to ``enough`` if given. The fleet index
    narrows a GPU request first."""
    count = 0
    for _ in _fitting(state, record):
        count += 1
        if enough is not None and count >= enough:
            break
    return count


def nodes_fit(state: MarketState, record: OrderRecord, *, enough: int | None = None) -> int:
    """How many of ``record``'s leases the registered providers' whole inventories could hold
    at once: :func:`providers_fit`, except that a gang whose nodes may share a provider
    (``placement: spread``) counts every node a machine holds (:func:`capacity`, up to the
    gang's size each). Counts up to ``enough`` if given."""
    order = record.order
    if not order.shares_providers:
        return providers_fit(state, record, enough=enough)
    count = 0
    for provider in _fitting(state, record):
        # one alternative for every node of a gang: the one whose machine holds the most
        count += max(
            len(capacity(alt.request, provider.inventory, order.leases))
            for _, alt in alternative_orders(order)
        )
        if enough is not None and count >= enough:
            break
    return count


def _fitting(state: MarketState, record: OrderRecord) -> Iterator[ProviderRecord]:
    """The registered providers whose whole inventory could hold one lease of ``record`` (under
    any of its alternatives) and that offer its ``cluster:``, in registration order (the fleet
    index narrows a GPU request)."""
    requests = [alt.request for _, alt in alternative_orders(record.order)]
    cluster = record.spec.cluster
    among = _may_fit_any(state, requests) if state.indexed else None
    ids = state.providers.keys() if among is None else among
    for p in ids:
        provider = state.providers.get(p)
        if provider is None or not any(fit(r, provider.inventory).ok for r in requests):
            continue
        if cluster is not None and cluster not in offered_clusters(provider):
            continue
        yield provider


def _may_fit_any(state: MarketState, requests: list[ResourceRequest]) -> list[str] | None:
    """The providers the fleet index says may fit one of ``requests``, in registration order
    (None: it cannot narrow one of them, so every provider is looked at)."""
    found: set[str] = set()
    for request in requests:
        among = state.index.may_fit(request)
        if among is None:
            return None
        found.update(among)
    return sorted(found, key=state.index.rank)


def _bounded(
    quote: OrderQuote, offers: list[QuotedOffer], reasons: dict[str, str], *, complete: bool
) -> OrderQuote:
    """At most :data:`MAX_QUOTED` offers (the ones that would take leases, then the cheapest)
    and reasons: a quote is public and must cost the market (and the client) little however
    large the fleet. ``complete`` is false when the fleet index narrowed the search, or rows
    were left out: ``pasar offers`` and ``pasar explain`` then give the whole picture."""
    kept = sorted(offers, key=lambda o: (o.leases == 0, *_cheapest_first(o)))[:MAX_QUOTED]
    kept_reasons = dict(sorted(reasons.items())[:MAX_QUOTED])
    whole = complete and len(kept) == len(offers) and len(kept_reasons) == len(reasons)
    return replace(
        quote,
        offers=tuple(sorted(kept, key=_cheapest_first)),
        reasons=kept_reasons,
        complete=whole,
    )


def _window_quote(state: MarketState, record: OrderRecord, base: OrderQuote) -> OrderQuote:
    """The window the order would open (as ``order.create`` opens it): who is invited to bid."""
    order = state.remaining_order(record)
    # as order.create opens the window: among the providers the fleet index says may fit
    requests = [alt.request for _, alt in alternative_orders(order)]
    among = _may_fit_any(state, requests) if state.indexed else None
    views, reasons = state.eligible(record, among=among)
    offers: dict[str, QuotedOffer] = {}
    screened: list[Clearing] = []
    for i, alt in alternative_orders(order):
        fitting, why = screen(alt, views)
        for view, _ in fitting:  # the first alternative each fits
            offers.setdefault(view.id, _offer(view, None, 0, "invited to bid", i))
        screened.append(Clearing.of(i, [], MatchResult(reasons=why)))
    more = merge_reasons(screened, winners=offers)  # who fits no alternative, and why
    return _bounded(
        replace(
            base,
            note=f"{len(offers)} provider(s) would be invited to bid" if offers else None,
            decided_by=BIDS_DECIDE,
        ),
        list(offers.values()),
        {**reasons, **more},
        complete=not state.indexed,
    )


def _satisfied(provider: str, alternative: int | None, result: MatchResult) -> int | None:
    """The alternative a provider would satisfy: the one it was awarded under, if awarded."""
    for award in result.awards:
        if award.provider == provider:
            return award.alternative
    return alternative


def _offer(
    view: ProviderView,
    price: Money | None,
    leases: int,
    reason: str | None,
    alternative: int | None = None,
) -> QuotedOffer:
    return QuotedOffer(
        provider=view.id,
        price_per_hour=price,
        reputation=view.reputation,
        score=view.score,
        leases=leases,
        reason=None if leases else reason,
        alternative=alternative,
    )


def _cheapest_first(offer: QuotedOffer) -> tuple[bool, int, str]:
    price = offer.price_per_hour
    return (price is None, price.micros if price is not None else 0, offer.provider)
