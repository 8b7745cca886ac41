"""The seam every pricing mechanism plugs into.

A mechanism takes an order, the providers that fit it (each with its allocation and, where the
mechanism uses one, its price), and a seeded random source the market draws; it returns who won
at what price and, for every provider that did not, why. Fitting is done once, here, by
:func:`screen`, so no mechanism can forget a constraint or word a reason differently.

Mechanisms never read clocks or global randomness: the market passes ``rng`` (seeded by a value
it records on the chain), so any audit can re-run a clearing and get the same winners.

A mechanism also answers what the rest of the market needs to know about it — does it take
sealed bids, does an order open a bidding window, how are its candidates priced — so that no
code outside this package ever compares mechanism names (DESIGN.md §2: a new mechanism is a new
file, not a new ``if``).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.resources import Allocation, Inventory, ResourceRequest, fit

if TYPE_CHECKING:
    from pasar.core.pricing.book import Asks


@dataclass(frozen=True)
class Candidate:
    """A provider that fits the order, with what it would set aside and what it asks.

    ``price_per_hour`` is for one lease of this order: a sealed bid (auction), the standing ask
    applied to the request (book), rate × score (performance). ``None`` means the provider
    offered no price: it declined an auction, or the mechanism sets prices itself (tender, stake).
    """

    provider: ProviderView
    allocation: Allocation
    price_per_hour: Money | None = None
    alternative: int | None = None  # which of the order's alternatives it fits (if it has any)

    @property
    def id(self) -> str:
        return self.provider.id


@dataclass(frozen=True)
class Award:
    """``leases`` leases of the order go to ``provider`` at ``price_per_hour`` each."""

    provider: str
    price_per_hour: Money
    leases: int = 1
    allocation: Allocation | None = None
    alternative: int | None = None  # which of the order's alternatives the leases run under


@dataclass(frozen=True)
class MatchResult:
    """The outcome of one clearing: awards, and a reason for every provider that lost.

    ``unfilled`` counts the leases nobody took; ``note`` explains an empty or partial result
    as a whole (e.g. "no provider fits").
    """

    awards: tuple[Award, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)
    unfilled: int = 0
    note: str | None = None
    alternative: int | None = None  # the alternative this clearing awarded, if the order has any

    @property
    def filled(self) -> int:
        return sum(a.leases for a in self.awards)

    @property
    def winners(self) -> tuple[str, ...]:
        return tuple(a.provider for a in self.awards)


class Offers(Protocol):
    """What providers offer for one order, as the market's state holds it.

    The candidate builders read prices through this port rather than through the market's
    state, so this package stays free of it (:mod:`pasar.core.candidates` adapts the state).
    """

    def asks(self, provider: str) -> Asks:
        """The provider's standing asks (posted prices)."""
        ...

    def rate_per_score_hour(self, provider: str) -> Money | None:
        """The provider's rate per benchmark-score-hour, if it quotes one."""
        ...

    def bids(self) -> Mapping[str, Money | None]:
        """The sealed bids of the order's open window (None: declined); empty without one."""
        ...


Candidates = tuple[list[Candidate], dict[str, str]]
"""The providers a mechanism clears over, and why every other eligible provider is out."""


class Mechanism(Protocol):
    """One way of pricing and allocating. Implementations live one per module.

    ``takes_bids``: providers answer an order with sealed bids (the provider agent bids only on
    such orders). ``opens_window``: an order (and a re-queued shard) first opens a bidding window
    of the providers that fit, and clears when it closes; otherwise it clears at once.
    ``walks_cheapest_asks``: candidates are priced at their standing asks and the cheapest
    win, ties drawn over the tied group only, so a large fleet can be searched by walking the
    asks cheapest first and stopping past the last winning price (:mod:`pasar.core.candidates`);
    otherwise the search looks at the bidders (``takes_bids``) or at every provider that may fit.
    ``packs_gangs``: a provider may take several nodes of one multi-node order when the spec
    allows it (``placement: spread``, :func:`fill_nodes`); a mechanism that cannot price that
    sensibly says False, and such an order is refused at ``order.create``.
    """

    name: ClassVar[str]
    takes_bids: ClassVar[bool]
    opens_window: ClassVar[bool]
    walks_cheapest_asks: ClassVar[bool]
    packs_gangs: ClassVar[bool]

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """The eligible ``views`` that fit ``order``, each priced the way this mechanism prices
        (ask, bid, rate × score, or no price when the mechanism sets it), and why the rest are
        out."""
        ...

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult: ...


def screen(
    order: Order, providers: Iterable[ProviderView]
) -> tuple[list[tuple[ProviderView, Allocation]], dict[str, str]]:
    """Split providers into those that fit one lease of ``order`` and why the others do not."""
    fitting: list[tuple[ProviderView, Allocation]] = []
    reasons: dict[str, str] = {}
    for provider in providers:
        result = fit(order.request, provider.inventory)
        if result.allocation is not None:
            fitting.append((provider, result.allocation))
        else:
            reasons[provider.id] = "; ".join(result.reasons)
    return fitting, reasons


def unpriced_candidates(order: Order, views: Iterable[ProviderView]) -> Candidates:
    """Candidates without a price, for mechanisms that set the price themselves."""
    fitting, reasons = screen(order, views)
    return [Candidate(view, allocation) for view, allocation in fitting], reasons


def price_problem(order: Order, price: Money | None) -> str | None:
    """Why a price cannot win this order, or None: missing, wrong currency, above the max."""
    if price is None:
        return "offered no price"
    if price.currency != order.currency:
        return f"prices in {price.currency}, the order pays {order.currency}"
    if price.micros <= 0:
        return f"price {price} is not positive"
    if price > order.max_price_per_hour:
        return f"price {price.amount_str()} > max {order.max_price_per_hour.amount_str()}"
    return None


def no_fit_note(order: Order, reasons: Mapping[str, str]) -> str:
    """The whole-order explanation when nobody could be awarded."""
    if not reasons:
        return "no provider is registered"
    return f"no provider can take {order.describe()}"


# -- filling the nodes of a gang -------------------------------------------------------------------


def capacity(request: ResourceRequest, inventory: Inventory, limit: int) -> list[Allocation]:
    """Up to ``limit`` allocations of ``request`` from ``inventory``, each fitted to what the
    earlier ones left, so together they are what reserving them one by one would take.

    Every allocation's ``gpu_slots`` name devices of ``inventory`` itself (not of what was
    left), so the slots of all of them are distinct and each can be handed to its lease as is.
    """
    allocations: list[Allocation] = []
    left = inventory
    original = list(range(inventory.gpu_count))  # slot in ``left`` -> slot in ``inventory``
    while len(allocations) < limit:
        allocation = fit(request, left).allocation
        if allocation is None:
            break
        slots = tuple(original[s] for s in allocation.gpu_slots)
        allocations.append(replace(allocation, gpu_slots=slots))
        left = left.minus(allocation)
        taken = set(allocation.gpu_slots)
        original = [s for i, s in enumerate(original) if i not in taken]
    return allocations


def node_room(order: Order, candidate: Candidate) -> int:
    """How many of ``order``'s leases ``candidate`` may take in this clearing: one, or for a
    gang whose nodes may share a provider as many as its free inventory holds at once
    (:func:`capacity`, the same fitting the market's ``match`` repeats lease by lease)."""
    if not order.shares_providers:
        return 1
    return max(1, len(capacity(order.request, candidate.provider.inventory, order.leases)))


_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True)
class NodeFill(Generic[_K]):
    """Who takes the ``order.leases`` leases of one clearing, ``(key, candidate, leases)`` in
    the mechanism's rank order; ``nodes`` is how many they take in all (fewer than the order's
    when the room is short: a gang is then refused whole), ``runner_up`` the best-ranked place
    left over (a second-price auction pays it)."""

    placed: tuple[tuple[_K, Candidate, int], ...]
    runner_up: Candidate | None

    @property
    def nodes(self) -> int:
        return sum(n for _, _, n in self.placed)

    @property
    def winners(self) -> frozenset[str]:
        return frozenset(c.id for _, c, _ in self.placed)


def fill_nodes(order: Order, ranked: Sequence[tuple[_K, Candidate]]) -> NodeFill[_K]:
    """Give ``order``'s leases to ``ranked`` (candidates in the mechanism's rank order, each
    with the key it ranked by; equal keys are a tie the mechanism's draw already ordered).

    One lease each, best first — unless the order is a gang whose nodes may share a provider
    (``placement: spread``). Then each candidate offers :func:`node_room` places, the j-th of
    them ranked with its key but after the (j-1)-th places of every candidate of an equal key:
    a provider that ranks better (a cheaper ask, a lower score, better quality) takes several
    nodes when it has room for them, and among equals the gang spreads over distinct providers
    first, as Ray's SPREAD does. Deterministic given ``ranked``: no draw of its own."""
    wanted = order.leases
    if not order.shares_providers:
        placed = tuple((key, c, 1) for key, c in ranked[:wanted])
        return NodeFill(placed, ranked[wanted][1] if len(ranked) > wanted else None)
    places: list[tuple[int, int, int]] = []  # (tie group, place of the candidate, rank)
    group = -1
    for pos, (key, c) in enumerate(ranked):
        if pos == 0 or key != ranked[pos - 1][0]:
            group += 1
        places.extend((group, j, pos) for j in range(node_room(order, c)))
    places.sort()
    counts: dict[int, int] = {}
    for _, _, pos in places[:wanted]:
        counts[pos] = counts.get(pos, 0) + 1
    after = places[wanted][2] if len(places) > wanted else None
    return NodeFill(
        tuple((ranked[pos][0], ranked[pos][1], n) for pos, n in sorted(counts.items())),
        None if after is None else ranked[after][1],
    )
