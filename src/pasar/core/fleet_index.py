"""Where in a fleet of tens of thousands of providers an order's candidates can be.

The market clears each order over exactly the candidates a scan of every provider would find,
in registration order (audits replay those clearings and must agree). Scanning 40,000 providers
per order is what made matching slow, so the state keeps this index current instead: one entry
per provider, refreshed by :meth:`FleetIndex.update` whenever its free capacity, asks or
registration change (``MarketState._reindex``), and read to find *where to look*:

* :meth:`cheapest` walks the standing asks cheapest first (a :class:`BookIndex` over what each
  provider has free now), which is all the posted-price mechanism needs: the first few asks that
  fit decide the awards;
* :meth:`may_fit` lists, in registration order, the providers that have enough free GPUs of a
  model the request accepts and a CPU class that can hold it: a superset of those that fit,
  so the exact screen runs on them and not on the whole fleet.

The index never decides anything: every provider it names is checked by the same code as in a
full scan (eligibility, :func:`~pasar.core.resources.fit`, prices), and every provider it leaves
out provably could not have fitted. Pure and in memory: it is rebuilt by the replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.book import Asks, BookIndex
from pasar.core.resources import GpuModel, Inventory, ResourceRequest


def _cpu_class(cpus: Decimal) -> int:
    """``floor(log2(cpus)) + 1``, 0 below one CPU: ``have >= need`` implies the same of classes."""
    return int(cpus).bit_length()


class FleetIndex:
    """Free capacity and standing asks of every registered provider, indexed for lookup."""

    def __init__(self) -> None:
        self.book = BookIndex()
        self._rank: dict[str, int] = {}  # registration order: the order a full scan sees
        self._next_rank = 0
        # model -> provider -> free GPUs of that model (only providers with at least one free)
        self._by_model: dict[GpuModel, dict[str, int]] = {}
        self._models: dict[str, tuple[GpuModel, ...]] = {}  # provider -> keys it has above
        self._cpu_class: dict[str, int] = {}  # provider -> class of its free CPUs

    def __len__(self) -> int:
        return len(self._rank)

    def rank(self, provider: str) -> int:
        """The provider's position in registration order (a full scan's order)."""
        return self._rank[provider]

    def update(self, provider: str, free: Inventory | None, asks: Asks | None = None) -> None:
        """Record what ``provider`` has free now and what it asks; ``None`` removes it (a
        provider rolled back out of the state). A provider seen for the first time goes last
        in registration order, as in the state's dict of providers."""
        self._forget(provider)
        if free is None:
            self._rank.pop(provider, None)
            self.book.remove_provider(provider)
            return
        if provider not in self._rank:
            self._rank[provider] = self._next_rank
            self._next_rank += 1
        counts: dict[GpuModel, int] = {}
        for model in free.devices():
            counts[model] = counts.get(model, 0) + 1
        for model, count in counts.items():
            self._by_model.setdefault(model, {})[provider] = count
        self._models[provider] = tuple(counts)
        self._cpu_class[provider] = _cpu_class(free.cpus)
        view = ProviderView(provider, free)
        self.book.upsert_provider(view, asks if asks is not None else Asks())

    def _forget(self, provider: str) -> None:
        for model in self._models.pop(provider, ()):
            holders = self._by_model[model]
            holders.pop(provider, None)
            if not holders:
                del self._by_model[model]
        self._cpu_class.pop(provider, None)

    def cheapest(self, order: Order) -> Iterator[tuple[int, str]]:
        """Standing asks that might hold one lease, cheapest first: see
        :meth:`BookIndex.cheapest` (a price there is never above the provider's real one)."""
        return self.book.cheapest(order)

    def may_fit(self, request: ResourceRequest) -> list[str] | None:
        """Providers that might fit one lease of ``request``, in registration order; ``None``
        when the index cannot narrow it (a CPU-only request: nearly every machine qualifies,
        so the caller scans)."""
        if request.gpu_count == 0:
            return None
        need = request.gpu_count
        cpu_class = _cpu_class(request.cpus)
        found: set[str] = set()
        for model, holders in self._by_model.items():
            if not request.accepts(model):
                continue
            for provider, count in holders.items():
                if count >= need and self._cpu_class[provider] >= cpu_class:
                    found.add(provider)
        return sorted(found, key=self._rank.__getitem__)
