"""io.net-style market pricing: providers post standing asks; an order takes the cheapest.

Two pieces, one rule:

* :class:`Book` is the mechanism as every other one is: given the fitting candidates (each with
  the provider's ask applied to this request, see :func:`book_candidates`), it awards the
  ``order.leases`` cheapest asks at once, one lease per provider, each paid its own ask (a
  posted price, not an auction). Sharded orders may be filled partially; a ``together`` order
  gets all its leases or none, and with ``placement: spread`` a provider whose free room holds
  several of its nodes takes as many as rank among the cheapest (:func:`~pasar.core.pricing.
  base.fill_nodes`). Equal asks are ordered by the seeded permutation of
  :func:`pasar.core.pricing.auction.rank`.
* :class:`BookIndex` is the same rule at market scale: an in-memory index of standing asks in
  books (one per currency and GPU model, plus one per currency for CPU cores), each split into
  shelves by free room and kept sorted by unit price with ``bisect``. :meth:`BookIndex.take`
  opens only the shelves of the models the request accepts that can hold it, walks them
  cheapest first, skips entries that still do not fit, stops at the order's max, and reserves
  what it awards. It never scans all providers, which is what lets one core match tens of
  thousands of orders a second against a 40,000-provider fleet. Equal asks are served
  first-posted first (price-time priority), so the index needs no random draw. It fills a
  gang with distinct providers whatever its placement (a valid fill of ``placement: spread``
  too, if not the cheapest); the market clears through :class:`Book`, the index serves the
  matching benchmark.

**What an ask prices.** A GPU order pays ``ask per GPU-hour of the allocated model × GPU count``
(the CPUs, memory and disk that come with the GPUs are included, as on io.net); a CPU-only order
pays ``ask per CPU-core-hour × CPUs``, rounded down to a micro-unit. An ask is looked up by the
most specific name first: ``A100-80GB-SXM``, then ``A100-80GB``, ``A100-SXM``, ``A100``.

**Reasons at scale.** :class:`Book` gives a reason to every candidate. :meth:`BookIndex.take`
cannot list 40,000 losers, so it gives reasons only for the entries it examined (skipped for
lack of room, or the first one above the max) and says in the note how many asks it looked at
out of how many in the books the order accepts; providers in other books were never candidates.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from heapq import heapify, heappop, heapreplace
from typing import ClassVar

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.auction import rank, score_text
from pasar.core.pricing.base import (
    Award,
    Candidate,
    Candidates,
    MatchResult,
    Offers,
    fill_nodes,
    price_problem,
)
from pasar.core.resources import (
    Allocation,
    GpuModel,
    GpuSelector,
    Inventory,
    ResourceRequest,
    allocation_of,
    choose_slots,
    fit,
    fmt_qty,
)

__all__ = ["Asks", "Book", "BookError", "BookIndex", "book_candidates"]


class BookError(PasarError):
    """Asks that cannot be posted, or a release that does not match what was taken."""


# -- asks ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _ask_keys(model: GpuModel) -> tuple[str, ...]:
    """The names an ask for ``model`` may be posted under, most specific first."""
    keys = [model.canonical, GpuSelector(model.family, model.vram_gb).canonical]
    if model.interface is not None:
        keys.append(GpuSelector(model.family, None, model.interface).canonical)
    keys.append(model.family)
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True)
class Asks:
    """A provider's standing prices: per GPU-hour by model name, per CPU-core-hour.

    ``gpu`` keys are any GPU spelling (``"a100-80gb"``, ``"RTX 4090"``) and are normalized to
    selector names; all prices share one currency, since a book is sorted by price.
    """

    gpu: Mapping[str, Money] = field(default_factory=dict)
    cpu_core: Money | None = None

    def __post_init__(self) -> None:
        normalized: dict[str, Money] = {}
        for name, price in self.gpu.items():
            key = GpuSelector.parse(name, field="asks.gpu").canonical
            normalized[key] = _positive(price, f"asks.gpu.{name}")
        object.__setattr__(self, "gpu", normalized)
        if self.cpu_core is not None:
            _positive(self.cpu_core, "asks.cpu_core")
        currencies = {m.currency for m in self.prices()}
        if len(currencies) > 1:
            raise BookError(
                "asks must all be in one currency, got " + ", ".join(sorted(currencies)),
                code="invalid_asks",
                field="asks",
            )

    @classmethod
    def build(
        cls,
        gpu: Mapping[str, str | Money] | None = None,
        cpu_core: str | Money | None = None,
        *,
        currency: str | None = None,
    ) -> Asks:
        """``Asks.build({"RTX4090": "0.35 USDC"}, cpu_core="0.02 USDC")``."""
        return cls(
            {k: Money.parse(v, default_currency=currency) for k, v in (gpu or {}).items()},
            None if cpu_core is None else Money.parse(cpu_core, default_currency=currency),
        )

    def prices(self) -> list[Money]:
        return [*self.gpu.values(), *([self.cpu_core] if self.cpu_core is not None else [])]

    @property
    def currency(self) -> str | None:
        prices = self.prices()
        return prices[0].currency if prices else None

    def unit_for(self, model: GpuModel) -> Money | None:
        """The ask per GPU-hour for one ``model``, or None when the provider does not sell it."""
        for key in _ask_keys(model):
            price = self.gpu.get(key)
            if price is not None:
                return price
        return None

    def price_for(self, request: ResourceRequest, allocation: Allocation) -> Money | None:
        """What one lease of ``request`` costs per hour at these asks, or None (no ask)."""
        if allocation.gpu is not None:
            unit = self.unit_for(allocation.gpu.model)
            return None if unit is None else unit * allocation.gpu.count
        if self.cpu_core is None:
            return None
        return self.cpu_core.scale(Fraction(request.cpus))


def _positive(price: object, where: str) -> Money:
    if not isinstance(price, Money) or price.micros <= 0:
        raise BookError(f"an ask must be a positive amount, got {price}", field=where)
    return price


def _allocate(inventory: Inventory, model: GpuModel, request: ResourceRequest) -> Allocation:
    """The lowest ``gpu_count`` devices of ``model`` (:func:`choose_slots`, as :func:`fit`
    picks them) plus the requested CPUs, memory and disk."""
    slots = [i for i, m in enumerate(inventory.devices()) if m == model]
    return allocation_of(inventory, model, choose_slots(slots, request.gpu_count), request)


def book_candidates(
    order: Order, providers: Iterable[tuple[ProviderView, Asks]]
) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates :class:`Book` clears over, and why every other provider is out.

    For a GPU order a provider with several accepted models offers the cheapest of them that it
    has enough of (in the order's currency when it can), which is what :class:`BookIndex` does.
    """
    request = order.request
    candidates: list[Candidate] = []
    reasons: dict[str, str] = {}
    for provider, asks in providers:
        result = fit(request, provider.inventory)
        if result.allocation is None:
            reasons[provider.id] = "; ".join(result.reasons)
            continue
        if request.gpu_count == 0:
            price = asks.price_for(request, result.allocation)
            if price is None:
                reasons[provider.id] = "posts no ask per CPU core"
            else:
                candidates.append(Candidate(provider, result.allocation, price))
            continue
        best: tuple[bool, int, GpuModel, Money] | None = None
        counts: dict[GpuModel, int] = {}
        for model in provider.inventory.devices():
            counts[model] = counts.get(model, 0) + 1
        for model, count in counts.items():
            unit = asks.unit_for(model)
            if unit is None or count < request.gpu_count or not request.accepts(model):
                continue
            rank_key = (unit.currency != order.currency, unit.micros, model, unit)
            if best is None or rank_key[:2] < best[:2]:
                best = rank_key
        if best is None:
            accepted = ", ".join(str(m) for m in counts if request.accepts(m))
            reasons[provider.id] = f"posts no ask for {accepted}"
            continue
        _, _, model, unit = best
        allocation = _allocate(provider.inventory, model, request)
        candidates.append(Candidate(provider, allocation, unit * request.gpu_count))
    return candidates, reasons


# -- the mechanism ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """Posted prices: the cheapest fitting asks win at once and are paid what they ask."""

    name: ClassVar[str] = "book"
    takes_bids: ClassVar[bool] = False
    opens_window: ClassVar[bool] = False
    walks_cheapest_asks: ClassVar[bool] = True
    packs_gangs: ClassVar[bool] = True

    def candidates(self, order: Order, views: Sequence[ProviderView], offers: Offers) -> Candidates:
        """Each fitting provider at its standing ask applied to the request."""
        return book_candidates(order, [(view, offers.asks(view.id)) for view in views])

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Book:
        """Posted prices have no parameters: any key in the preset's table is a mistake."""
        if data:
            first = sorted(str(k) for k in data)[0]
            raise PasarError(
                f"the book mechanism takes no parameters, got {first!r}",
                code="invalid_pricing",
                field=first,
            )
        return cls()

    def clear(
        self, order: Order, candidates: Sequence[Candidate], rng: random.Random
    ) -> MatchResult:
        """Award the ``order.leases`` cheapest valid asks, each at its own price."""
        reasons: dict[str, str] = {}
        entries: list[tuple[int, str, Candidate]] = []
        seen: set[str] = set()
        for c in candidates:
            if c.id in seen:
                continue
            seen.add(c.id)
            problem = (
                "posts no ask for this request"
                if c.price_per_hour is None
                else price_problem(order, c.price_per_hour)
            )
            if problem is None:
                assert c.price_per_hour is not None
                entries.append((c.price_per_hour.micros, c.id, c))
            else:
                reasons[c.id] = problem
        wanted = order.leases
        ranked = rank(entries, rng)
        if not ranked:
            return MatchResult((), reasons, wanted, "no ask fits within the max price")
        fill = fill_nodes(order, [(_ask(c), c) for c in ranked])
        if order.together and fill.nodes < wanted:
            why = (
                f"together order needs {wanted} nodes, the {len(ranked)} fitting asks have room "
                f"for {fill.nodes} (placement: spread)"
                if order.shares_providers
                else f"together order needs {wanted} providers, only {len(ranked)} asks fit"
            )
            for c in ranked:
                reasons[c.id] = why
            return MatchResult((), reasons, wanted, why + ": nobody wins")
        awards = tuple(_posted(c, n) for _, c, n in fill.placed)
        losers = [c for c in ranked if c.id not in fill.winners]
        last = awards[-1].price_per_hour
        for c in losers:
            price = c.price_per_hour
            assert price is not None
            if price == last:
                reasons[c.id] = f"ask {price.amount_str()} ties the winning ask; lost the tie-break"
            else:
                reasons[c.id] = f"ask {price.amount_str()} > winning ask {last.amount_str()}"
        unfilled = wanted - fill.nodes
        note = f"filled {fill.nodes} of {wanted} leases: too few asks fit" if unfilled else None
        return MatchResult(awards, reasons, unfilled, note)


def _ask(c: Candidate) -> int:
    assert c.price_per_hour is not None
    return c.price_per_hour.micros


def _posted(c: Candidate, leases: int = 1) -> Award:
    assert c.price_per_hour is not None
    return Award(c.id, c.price_per_hour, leases, c.allocation)


# -- the index -------------------------------------------------------------------------------------

# An entry: (unit price in micros, sequence number, provider id, GPU model or None for CPU cores).
# Sequence numbers are unique per entry, so tuples never compare past them: price, then age.
_Entry = tuple[int, int, str, GpuModel | None]
# Where a live entry sits in its book: (free GPUs of that model, CPU class of the provider).
_Shelf = tuple[int, int]
# Which books an order walks depends only on: (currency, wants GPUs, models, min VRAM).
_BooksKey = tuple[str, bool, tuple[GpuSelector, ...], int | None]
_MAX_CACHED = 4096


def _cpu_class(cpus: Decimal) -> int:
    """``floor(log2(cpus)) + 1`` (0 below one CPU): monotone, so ``have >= need`` implies
    ``class(have) >= class(need)`` and whole shelves of too-small providers are never walked."""
    return int(cpus).bit_length()


class _Book:
    """The asks for one (currency, GPU model), or for CPU cores, in shelves by free room.

    Each shelf is a list sorted by (price, age). Shelving by free GPU count and CPU class lets
    a walk for 8 GPUs and 64 CPUs open only the shelves that can hold it, instead of skipping
    thousands of single-GPU machines at the cheap end of the book.
    """

    __slots__ = ("model", "shelves", "size")

    def __init__(self, model: GpuModel | None) -> None:
        self.model = model
        self.shelves: dict[_Shelf, list[_Entry]] = {}
        self.size = 0

    def add(self, entry: _Entry, shelf: _Shelf) -> None:
        entries = self.shelves.get(shelf)
        if entries is None:
            self.shelves[shelf] = [entry]
        else:
            insort(entries, entry)
        self.size += 1

    def remove(self, entry: _Entry, shelf: _Shelf) -> None:
        entries = self.shelves[shelf]
        i = bisect_left(entries, entry)
        if i == len(entries) or entries[i] != entry:  # pragma: no cover - index corruption
            raise BookError(f"book entry {entry} is missing", code="internal")
        del entries[i]
        if not entries:
            del self.shelves[shelf]
        self.size -= 1

    def open_shelves(self, gpus: int, cpu_class: int) -> list[list[_Entry]]:
        return [e for (g, c), e in self.shelves.items() if g >= gpus and c >= cpu_class]


class _Provider:
    """The index's mutable view of one provider: what is free, and where its entries sit."""

    __slots__ = (
        "asks",
        "cpus",
        "devices",
        "disk_gb",
        "entries",
        "free",
        "inventory",
        "memory_gb",
        "shelves",
        "view",
    )

    def __init__(self, view: ProviderView, asks: Asks) -> None:
        self.view = view
        self.asks = asks
        self.inventory = view.inventory
        self.devices = view.inventory.devices()
        self.free: dict[GpuModel, list[int]] = {}
        for slot, model in enumerate(self.devices):
            self.free.setdefault(model, []).append(slot)
        self.cpus: Decimal = view.inventory.cpus
        self.memory_gb: Decimal = view.inventory.memory_gb
        self.disk_gb: Decimal = view.inventory.disk_gb
        self.entries: dict[GpuModel | None, tuple[_Entry, _Book]] = {}  # every posted ask
        self.shelves: dict[GpuModel | None, _Shelf] = {}  # the live ones, and where

    def reshelve(self) -> None:
        """Move the entries to the shelves the free room now calls for (or off the books)."""
        cpu_class = _cpu_class(self.cpus)
        has_cpus = self.cpus > 0
        shelves = self.shelves
        for model, (entry, book) in self.entries.items():
            new: _Shelf | None
            if model is None:
                new = (0, cpu_class) if has_cpus else None
            else:
                free = len(self.free[model])
                new = (free, cpu_class) if free else None
            old = shelves.get(model)
            if old == new:
                continue
            if old is not None:
                book.remove(entry, old)
            if new is None:
                del shelves[model]
            else:
                book.add(entry, new)
                shelves[model] = new


class BookIndex:
    """Standing asks and free capacity of a whole fleet, indexed for immediate matching.

    Books are keyed by currency and GPU model (plus one per currency for CPU cores). A book holds
    only *live* entries — a model's entry while the provider has one such GPU free, the CPU
    entry while it has CPUs free — on shelves by free GPU count and CPU class, each sorted by
    price then age. :meth:`take` merges the shelves that can hold the order, cheapest first;
    entries that still fall short (memory, disk, CPUs within the class) are skipped with a
    reason. Allocations name GPU slots of the inventory given to :meth:`upsert_provider`, so they
    are the devices a provider agent exposes, and stay valid until :meth:`release`.
    """

    def __init__(self) -> None:
        self._providers: dict[str, _Provider] = {}
        self._books: dict[tuple[str, GpuModel | None], _Book] = {}
        self._accepted: dict[_BooksKey, list[_Book]] = {}
        self._seq = 0

    # -- membership ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._providers)

    def __contains__(self, provider: object) -> bool:
        return provider in self._providers

    def upsert_provider(self, view: ProviderView, asks: Asks) -> None:
        """Register ``view`` (its inventory is what is free now) with its standing ``asks``.

        An existing entry is replaced wholesale: allocations taken from it before are forgotten
        and must not be released afterwards.
        """
        self.remove_provider(view.id)
        p = _Provider(view, asks)
        self._providers[view.id] = p
        self._post(p)

    def set_asks(self, provider: str, asks: Asks) -> None:
        """Change a provider's prices, keeping what it has free and what it has lent out."""
        p = self._get(provider)
        self._unpost(p)
        p.asks = asks
        self._post(p)

    def remove_provider(self, provider: str) -> bool:
        """Take a provider out of the index; False when it was not in it."""
        p = self._providers.pop(provider, None)
        if p is None:
            return False
        self._unpost(p)
        return True

    def free_inventory(self, provider: str) -> Inventory:
        """What ``provider`` has free now, for inspection (not used when matching)."""
        p = self._get(provider)
        free = sorted(slot for slots in p.free.values() for slot in slots)
        return Inventory.build(
            gpus=[p.devices[s] for s in free],
            cpus=p.cpus,
            memory_gb=p.memory_gb,
            disk_gb=p.disk_gb,
            devices=[p.inventory.gpu_ids[s] for s in free],
        )

    def _get(self, provider: str) -> _Provider:
        p = self._providers.get(provider)
        if p is None:
            raise BookError(f"provider {provider} is not in the book", code="unknown_provider")
        return p

    def _post(self, p: _Provider) -> None:
        currency = p.asks.currency
        if currency is None:
            return
        models: list[GpuModel | None] = [m for m in p.free if p.asks.unit_for(m) is not None]
        if p.asks.cpu_core is not None:
            models.append(None)
        for model in models:
            unit = p.asks.cpu_core if model is None else p.asks.unit_for(model)
            assert unit is not None
            book = self._books.get((currency, model))
            if book is None:
                book = self._books[(currency, model)] = _Book(model)
                self._accepted.clear()
            self._seq += 1
            p.entries[model] = ((unit.micros, self._seq, p.view.id, model), book)
        p.reshelve()

    def _unpost(self, p: _Provider) -> None:
        for model, shelf in p.shelves.items():
            entry, book = p.entries[model]
            book.remove(entry, shelf)
        p.entries = {}
        p.shelves = {}

    # -- matching --------------------------------------------------------------------------------

    def _books_for(self, order: Order) -> list[_Book]:
        request = order.request
        key = (order.currency, request.gpu_count > 0, request.gpu_models, request.min_vram_gb)
        books = self._accepted.get(key)
        if books is None:
            if len(self._accepted) >= _MAX_CACHED:
                self._accepted.clear()
            if request.gpu_count == 0:
                cpu = self._books.get((order.currency, None))
                books = [cpu] if cpu is not None else []
            else:
                books = [
                    b
                    for (currency, model), b in self._books.items()
                    if currency == order.currency and model is not None and request.accepts(model)
                ]
            self._accepted[key] = books
        return books

    def _walk(
        self, order: Order, limit: int
    ) -> tuple[list[tuple[_Provider, GpuModel | None, int]], dict[str, str], int, int, bool]:
        """Cheapest-first fitting entries, up to ``limit`` distinct providers.

        Returns (chosen, reasons, entries examined, entries in the accepted books, whether the
        walk stopped at the max price).
        """
        request = order.request
        gpus = request.gpu_count
        cpus, memory, disk = request.cpus, request.memory_gb, request.disk_gb
        books = self._books_for(order)
        total = sum(b.size for b in books)
        cpu_class = _cpu_class(cpus)
        shelves = [s for b in books for s in b.open_shelves(gpus, cpu_class)]
        walk = shelves[0] if len(shelves) == 1 else _cheapest_first(shelves)
        max_micros = order.max_price_per_hour.micros
        num, den = cpus.as_integer_ratio() if gpus == 0 else (1, 1)
        chosen: list[tuple[_Provider, GpuModel | None, int]] = []
        reasons: dict[str, str] = {}
        seen: set[str] = set()
        providers = self._providers
        examined = 0
        above_max = False
        for unit, _, pid, model in walk:
            examined += 1
            price = unit * gpus if model is not None else unit * num // den
            if price > max_micros:
                if pid not in seen:
                    reasons[pid] = (
                        f"price {score_text(price)} > max {order.max_price_per_hour.amount_str()}"
                    )
                above_max = True
                break
            if pid in seen:
                continue
            p = providers[pid]
            if price <= 0:
                reasons[pid] = f"price {score_text(price)} is not positive"
                continue
            if model is not None and len(p.free[model]) < gpus:
                # shelving keeps these out of the walk; another model of p may still fit
                reasons[pid] = f"needs {gpus}× {model}, has {len(p.free[model])} free"
                continue
            seen.add(pid)
            if p.cpus < cpus:
                reasons[pid] = f"needs {fmt_qty(cpus)} CPUs, has {fmt_qty(p.cpus)} free"
            elif p.memory_gb < memory:
                reasons[pid] = f"needs {fmt_qty(memory)} GB memory, has {fmt_qty(p.memory_gb)} GB"
            elif p.disk_gb < disk:
                reasons[pid] = f"needs {fmt_qty(disk)} GB disk, has {fmt_qty(p.disk_gb)} GB"
            else:
                reasons.pop(pid, None)
                chosen.append((p, model, price))
                if len(chosen) >= limit:
                    break
        return chosen, reasons, examined, total, above_max

    def cheapest(self, order: Order) -> Iterator[tuple[int, str]]:
        """``(price per lease in micros, provider id)`` of every live ask that might hold one
        lease of ``order``, cheapest first; nothing is checked beyond the shelves (room within
        the GPU count and CPU class, memory, disk, the max price) and nothing is reserved.

        Why: the market's state clears over the exact candidates of a full scan, but needs
        only the cheap end of the book to find them (see :mod:`pasar.core.candidates`). The
        price is exact for the entry (ask × GPUs, or ask × CPUs rounded down), so it is never
        above what :func:`book_candidates` prices that provider at. A provider may appear once
        per model it sells; callers skip the repeats.
        """
        request = order.request
        gpus = request.gpu_count
        num, den = request.cpus.as_integer_ratio() if gpus == 0 else (1, 1)
        books = self._books_for(order)
        shelves = [s for b in books for s in b.open_shelves(gpus, _cpu_class(request.cpus))]
        walk = iter(shelves[0]) if len(shelves) == 1 else _cheapest_first(shelves)
        for unit, _, pid, model in walk:
            yield (unit * gpus if model is not None else unit * num // den), pid

    def fitting(self, order: Order, limit: int | None = None) -> list[Candidate]:
        """Up to ``limit`` providers that fit ``order`` within its max, cheapest first, priced
        at their asks; nothing is reserved (e.g. to invite them to an auction window).

        A candidate's ``provider`` is the view as registered; its ``allocation`` is taken from
        what is free now.
        """
        chosen = self._walk(order, limit if limit is not None else len(self._providers))[0]
        request = order.request
        return [
            Candidate(p.view, _lend(p, model, request), Money(price, order.currency))
            for p, model, price in chosen
        ]

    def take(self, order: Order) -> MatchResult:
        """Fill ``order`` from the cheapest fitting asks at once and reserve the allocations."""
        wanted = order.leases
        chosen, reasons, examined, total, above_max = self._walk(order, wanted)
        request = order.request
        if total == 0:
            what = request.describe_gpus() or "CPU cores"
            return MatchResult((), reasons, wanted, f"no ask in {order.currency} for {what}")
        scope = (
            f"examined {examined} of {total} asks in the {order.currency} books this order "
            "accepts; providers not examined are not listed"
        )
        if not chosen or (order.together and len(chosen) < wanted):
            why = f"together order needs {wanted} providers, only {len(chosen)} fit"
            for p, _, _ in chosen:
                reasons[p.view.id] = why
            head = (
                f"{why}: nobody wins"
                if chosen
                else f"no ask fits {request.describe()}"
                + (" within the max price" if above_max else "")
            )
            return MatchResult((), reasons, wanted, f"{head}; {scope}")
        awards = []
        for p, model, price in chosen:
            allocation = _lend(p, model, request)
            if model is not None:
                taken = set(allocation.gpu_slots)
                p.free[model] = [s for s in p.free[model] if s not in taken]
            p.cpus -= request.cpus
            p.memory_gb -= request.memory_gb
            p.disk_gb -= request.disk_gb
            p.reshelve()
            awards.append(Award(p.view.id, Money(price, order.currency), 1, allocation))
        unfilled = wanted - len(awards)
        note = f"filled {len(awards)} of {wanted} leases; {scope}" if unfilled else scope
        return MatchResult(tuple(awards), reasons, unfilled, note)

    def release(self, provider: str, allocation: Allocation) -> None:
        """Give back what :meth:`take` reserved for ``provider`` when its lease ends."""
        p = self._get(provider)
        total = p.inventory
        if (
            p.cpus + allocation.cpus > total.cpus
            or p.memory_gb + allocation.memory_gb > total.memory_gb
            or p.disk_gb + allocation.disk_gb > total.disk_gb
        ):
            raise BookError(
                f"release to {provider} exceeds its registered capacity",
                code="invalid_release",
                hint="release each allocation once, and not after re-registering the provider",
            )
        if allocation.gpu is not None:
            model = allocation.gpu.model
            free = p.free.get(model, [])
            for slot in allocation.gpu_slots:
                if slot >= len(p.devices) or p.devices[slot] != model or slot in free:
                    raise BookError(
                        f"GPU slot {slot} of {provider} was not lent as {model}",
                        code="invalid_release",
                    )
            p.free[model] = sorted([*free, *allocation.gpu_slots])
        p.cpus += allocation.cpus
        p.memory_gb += allocation.memory_gb
        p.disk_gb += allocation.disk_gb
        p.reshelve()


def _cheapest_first(shelves: list[list[_Entry]]) -> Iterator[_Entry]:
    """The entries of several sorted shelves in one sorted stream (a lean heapq.merge)."""
    heap = [(shelf[0], i, 0) for i, shelf in enumerate(shelves) if shelf]
    heapify(heap)
    while heap:
        entry, i, pos = heap[0]
        yield entry
        pos += 1
        shelf = shelves[i]
        if pos < len(shelf):
            heapreplace(heap, (shelf[pos], i, pos))
        else:
            heappop(heap)


def _lend(p: _Provider, model: GpuModel | None, request: ResourceRequest) -> Allocation:
    """The allocation ``p`` would give ``request`` from ``model`` now: the devices
    :func:`choose_slots` picks from the free ones, the same rule :func:`fit` follows."""
    if model is None:
        return allocation_of(p.inventory, None, (), request)
    slots = choose_slots(p.free[model], request.gpu_count)
    return allocation_of(p.inventory, model, slots, request)
