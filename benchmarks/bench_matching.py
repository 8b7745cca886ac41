"""Matching throughput of the `book` and `auction` mechanisms, printed as one JSON line.

The fleet is synthetic but shaped like io.net's published one: mostly consumer GPUs (RTX 30/40
series, workstation cards), about 6% A100/H100 machines (usually 8 GPUs each), about 10% CPU-only
machines. Each provider posts an ask per GPU-hour for its model (a reference price × 0.7-1.4) and
some post an ask per CPU-core-hour. Orders are mostly 1-4 consumer GPUs or CPU-only, some
A100/H100 up to 8 GPUs, a few sharded (several leases) or multi-node (``together``), and ~5%
that cannot match (16 GPUs on one machine, a model nobody has, a max price far below any ask).

What is measured:

* **book** — ``BookIndex.take`` for every order, in order, plus ``BookIndex.release`` of each
  lease when it ends (every lease lasts a random 1-20,000 orders), so the fleet reaches a steady
  state instead of draining. ``book_matches_per_s`` is the number of orders that got at least
  one lease divided by the time spent in take *and* release for all orders, matched or not.
* **auction** — for each order, up to ``--bids`` fitting providers (from ``BookIndex.fitting``,
  with the fleet as the book left it) bid their ask × a markup of 0.9-1.3 drawn once per
  provider (so some bids exceed the max and are rejected with a reason). Building the bids is
  not timed; ``auction_clearings_per_s`` is orders divided by the time spent in
  ``Auction.clear`` (second price) alone.

Everything is seeded: the same ``--seed`` gives the same fleet, orders and outcomes.

    python benchmarks/bench_matching.py [--providers 40000] [--orders 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import random
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pasar.core.money import Money
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.auction import Auction
from pasar.core.pricing.base import Candidate
from pasar.core.pricing.book import Asks, BookIndex
from pasar.core.resources import GpuModel, GpuSelector, GpuSpec, Inventory, ResourceRequest

CURRENCY = "USDC"
LEASE_LIFE_ORDERS = (1, 20_000)


@dataclass(frozen=True)
class Kind:
    """A GPU model of the fleet: how common, how many per machine, reference price, speed."""

    model: str
    weight: int  # per mille of providers
    price_micros: int  # reference ask per GPU-hour
    gflops: int
    counts: tuple[int, ...]  # GPUs per machine, drawn uniformly (repeats weight it)


CONSUMER_COUNTS = (1, 1, 1, 1, 1, 2, 2, 4, 4, 8)
DATACENTRE_COUNTS = (1, 4, 8, 8, 8)
KINDS: tuple[Kind, ...] = (
    Kind("RTX4090", 210, 350_000, 82_000, CONSUMER_COUNTS),
    Kind("RTX3090", 130, 220_000, 35_000, CONSUMER_COUNTS),
    Kind("RTX3080-10GB", 70, 150_000, 29_000, CONSUMER_COUNTS),
    Kind("RTX4080", 60, 250_000, 48_000, CONSUMER_COUNTS),
    Kind("RTX3060-12GB", 60, 80_000, 12_000, CONSUMER_COUNTS),
    Kind("RTX4070", 50, 130_000, 29_000, CONSUMER_COUNTS),
    Kind("RTX3070", 50, 100_000, 20_000, CONSUMER_COUNTS),
    Kind("RTX4060Ti-16GB", 30, 100_000, 22_000, CONSUMER_COUNTS),
    Kind("RTXA6000", 30, 600_000, 38_000, CONSUMER_COUNTS),
    Kind("RTXA5000", 20, 300_000, 27_000, CONSUMER_COUNTS),
    Kind("RTXA4000", 30, 180_000, 19_000, CONSUMER_COUNTS),
    Kind("L40S", 20, 900_000, 91_000, DATACENTRE_COUNTS),
    Kind("V100-32GB", 10, 300_000, 15_000, DATACENTRE_COUNTS),
    Kind("T4", 10, 120_000, 8_000, CONSUMER_COUNTS),
    Kind("A100-80GB-SXM", 30, 1_300_000, 156_000, DATACENTRE_COUNTS),
    Kind("A100-40GB-PCIe", 10, 1_000_000, 156_000, DATACENTRE_COUNTS),
    Kind("H100-80GB-SXM", 20, 2_000_000, 495_000, DATACENTRE_COUNTS),
)
CPU_ONLY_PER_MILLE = 1000 - sum(k.weight for k in KINDS)  # ~10%
CPU_CORE_PRICE_MICROS = 10_000
CONSUMER = tuple(k for k in KINDS if not k.model.startswith(("A100", "H100")))
BIG = tuple(k for k in KINDS if k.model.startswith(("A100", "H100")))


def _jitter(rng: random.Random, micros: int, low: int, high: int) -> int:
    """``micros × U(low, high) / 1000`` in integers (money is never a float)."""
    return max(1, micros * rng.randint(low, high) // 1000)


def make_fleet(n: int, rng: random.Random) -> list[tuple[ProviderView, Asks]]:
    """``n`` providers with io.net-like proportions and their standing asks."""
    models = {k.model: GpuModel.parse(k.model) for k in KINDS}
    population = [*KINDS, None]
    weights = [*(k.weight for k in KINDS), CPU_ONLY_PER_MILLE]
    fleet: list[tuple[ProviderView, Asks]] = []
    for i in range(n):
        kind = rng.choices(population, weights)[0]
        rep = Fraction(rng.randint(20, 100), 100)
        cpu_ask = Money(_jitter(rng, CPU_CORE_PRICE_MICROS, 500, 2000), CURRENCY)
        if kind is None:
            cpus = rng.choice((8, 16, 32, 64, 128))
            inventory = Inventory((), Decimal(cpus), Decimal(cpus * 4), Decimal(1000))
            asks = Asks({}, cpu_ask)
            score = cpus * 50
        else:
            count = rng.choice(kind.counts)
            cpus = max(8, count * rng.choice((4, 8, 16)))
            inventory = Inventory(
                (GpuSpec(models[kind.model], count),),
                Decimal(cpus),
                Decimal(count * 64),
                Decimal(count * rng.choice((250, 500, 1000))),
            )
            gpu_ask = Money(_jitter(rng, kind.price_micros, 700, 1400), CURRENCY)
            asks = Asks({kind.model: gpu_ask}, cpu_ask if rng.random() < 0.3 else None)
            score = kind.gflops * rng.randint(90, 110) // 100
        fleet.append((ProviderView(f"p{i:05d}", inventory, rep, score), asks))
    return fleet


def make_orders(n: int, rng: random.Random) -> list[Order]:
    """``n`` orders: ~62% consumer GPU, ~15% A100/H100, ~18% CPU-only, ~5% unmatchable."""
    requests: dict[tuple[Any, ...], ResourceRequest] = {}

    def request(
        gpus: int, models: tuple[str, ...], cpus: int, memory: int, disk: int
    ) -> ResourceRequest:
        key = (gpus, models, cpus, memory, disk)
        if key not in requests:
            requests[key] = ResourceRequest(
                gpus,
                tuple(GpuSelector.parse(m) for m in models),
                None,
                Decimal(cpus),
                Decimal(memory),
                Decimal(disk),
            )
        return requests[key]

    orders: list[Order] = []
    consumer_weights = [k.weight for k in CONSUMER]
    for i in range(n):
        roll = rng.random()
        leases, together = 1, False
        if roll < 0.62:
            picks = rng.choices(CONSUMER, consumer_weights, k=rng.choice((1, 1, 2)))
            count = rng.choice((1, 1, 1, 2, 2, 4))
            names = tuple(dict.fromkeys(k.model for k in picks))
            req = request(count, names, 2 * count, 16 * count, rng.choice((20, 50, 100)))
            top = max(k.price_micros for k in picks)
            cap = _jitter(rng, top * count, 900, 2000)
            if rng.random() < 0.05:
                leases = rng.randint(2, 4)
                together = rng.random() < 0.3
        elif roll < 0.77:
            kind = rng.choice(BIG)
            family = kind.model.split("-")[0]
            count = rng.choice((1, 2, 4, 8))
            req = request(count, (family,), 8 * count, 32 * count, 200)
            cap = _jitter(rng, kind.price_micros * count, 900, 2000)
        elif roll < 0.95:
            cpus = rng.choice((1, 2, 4, 8, 16))
            req = request(0, (), cpus, cpus * 2, 20)
            cap = _jitter(rng, CPU_CORE_PRICE_MICROS * cpus, 1500, 3000)
        else:
            unfit = rng.randrange(3)
            if unfit == 0:  # no machine has 16 GPUs
                req = request(16, ("H100",), 64, 512, 200)
                cap = 80_000_000
            elif unfit == 1:  # nobody in the fleet has this model
                req = request(1, ("MI300X",), 8, 64, 100)
                cap = 5_000_000
            else:  # far below any ask
                req = request(1, ("H100",), 8, 64, 100)
                cap = 100_000
        orders.append(
            Order(
                f"o{i:06d}",
                "client",
                req,
                Money(cap, CURRENCY),
                3600,
                leases=leases,
                together=together,
            )
        )
    return orders


def bench_book(index: BookIndex, orders: list[Order], rng: random.Random) -> dict[str, Any]:
    """Take every order, releasing leases as they end; time take + release together."""
    ends: list[tuple[int, int, str, Any]] = []  # (release at order #, tiebreak, provider, alloc)
    lives = [rng.randint(*LEASE_LIFE_ORDERS) for _ in range(len(orders))]
    matched = leases = tiebreak = 0
    take, release = index.take, index.release
    start = time.perf_counter()
    for i, order in enumerate(orders):
        while ends and ends[0][0] <= i:
            _, _, provider, allocation = heapq.heappop(ends)
            release(provider, allocation)
        result = take(order)
        if result.awards:
            matched += 1
            for award in result.awards:
                leases += 1
                tiebreak += 1
                heapq.heappush(ends, (i + lives[i], tiebreak, award.provider, award.allocation))
    elapsed = time.perf_counter() - start
    return {
        "book_matches_per_s": round(matched / elapsed, 1),
        "book_orders_per_s": round(len(orders) / elapsed, 1),
        "book_matched": matched,
        "book_unmatched": len(orders) - matched,
        "book_leases": leases,
        "book_leases_open_at_end": len(ends),
        "book_seconds": round(elapsed, 3),
    }


def bench_auction(
    index: BookIndex, orders: list[Order], bids: int, rng: random.Random
) -> dict[str, Any]:
    """Clear one sealed-bid auction per order; only ``Auction.clear`` is timed."""
    auction = Auction(second_price=True)
    clear_rng = random.Random(rng.random())
    markup: dict[str, int] = {}  # each provider bids its ask x a markup of its own (per mille)
    bid_money: dict[int, Money] = {}  # Money is immutable: share one object per amount

    def bid(provider: str, ask: Money) -> Money:
        m = markup.get(provider)
        if m is None:
            m = markup[provider] = rng.randint(900, 1300)
        micros = ask.micros * m // 1000
        money = bid_money.get(micros)
        if money is None:
            money = bid_money[micros] = Money(micros, CURRENCY)
        return money

    matched = total_bids = 0
    elapsed = 0.0
    batch = 2000
    for lo in range(0, len(orders), batch):
        prepared: list[tuple[Order, list[Candidate]]] = []
        for order in orders[lo : lo + batch]:
            cands = [
                Candidate(c.provider, c.allocation, bid(c.id, c.price_per_hour))
                for c in index.fitting(order, bids)
                if c.price_per_hour is not None
            ]
            total_bids += len(cands)
            prepared.append((order, cands))
        start = time.perf_counter()
        for order, cands in prepared:
            if auction.clear(order, cands, clear_rng).awards:
                matched += 1
        elapsed += time.perf_counter() - start
    return {
        "auction_clearings_per_s": round(len(orders) / elapsed, 1),
        "auction_matched": matched,
        "auction_unmatched": len(orders) - matched,
        "auction_mean_bids": round(total_bids / max(1, len(orders)), 2),
        "auction_seconds": round(elapsed, 3),
    }


def run(providers: int, n_orders: int, seed: int, bids: int) -> dict[str, Any]:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    fleet = make_fleet(providers, rng)
    orders = make_orders(n_orders, rng)
    index = BookIndex()
    for view, asks in fleet:
        index.upsert_provider(view, asks)
    setup = time.perf_counter() - t0
    book = bench_book(index, orders, rng)
    auction = bench_auction(index, orders, bids, rng)
    return {
        "name": "matching",
        "value": book["book_matches_per_s"],
        "unit": "matches/s",
        **book,
        **auction,
        "providers": providers,
        "orders": n_orders,
        "bids_per_order": bids,
        "seed": seed,
        "setup_seconds": round(setup, 3),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", type=int, default=40_000, help="fleet size")
    parser.add_argument("--orders", type=int, default=100_000, help="orders to match")
    parser.add_argument("--seed", type=int, default=7, help="seed of fleet, orders and bids")
    parser.add_argument("--bids", type=int, default=20, help="bids per auction")
    args = parser.parse_args(argv)
    print(json.dumps(run(max(1, args.providers), max(1, args.orders), args.seed, args.bids)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
