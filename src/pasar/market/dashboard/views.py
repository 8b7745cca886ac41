"""The dashboard's page builders: what each page shows, from the same typed views as the API.

Every builder reads the market's state under its lock (or the store, a page at a time) and
returns a plain dict for a template; none renders HTML, so the unit tests can check the numbers
without parsing a page. Where the CLI has a view, the builder uses it: the statistics table is
:func:`pasar.market.routes.stats.network_stats` (what ``pasar stats --json`` prints), a job is
:func:`pasar.market.routes.orders.public_order_view` (the chain's part: never the private spec)
and :func:`~pasar.market.routes.orders.full_order_view` only for the signed-in client's own.

Bounded everywhere: lists are pages (``PAGE`` rows), and series read the newest
``RECENT`` orders or leases of the state only; nothing here reads the whole log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Reversible
from decimal import Decimal
from fractions import Fraction
from itertools import islice
from pathlib import Path
from statistics import median_low
from typing import Any, TypeVar

from pasar.api.bills import Bill
from pasar.api.orders import OrderView, PublicOrderView
from pasar.api.status import end_reason
from pasar.core.errors import PasarError
from pasar.core.ledger import TREASURY
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.money import Money
from pasar.crypto.identity import parse_account_id
from pasar.market.access import check_order_party
from pasar.market.dashboard.samples import SampleRing
from pasar.market.routes.leases import lease_view
from pasar.market.routes.orders import full_order_view, public_order_view
from pasar.market.routes.providers import offer_rows
from pasar.market.routes.stats import network_stats
from pasar.market.service import MarketService

PAGE = 50  # rows per page of every list
RECENT = 5_000  # the newest orders or leases a series reads
HOUR_MS = 3_600_000
HOURS = 24  # the "per hour" series cover the last day
MAX_LOG_TAIL = 16_384  # bytes of each lease's log a signed-in client sees on a job's page

_T = TypeVar("_T")


def newest(values: Reversible[_T], n: int = RECENT) -> Iterator[_T]:
    """The last ``n`` values, newest first (the state's dicts keep insertion order)."""
    return islice(reversed(values), n)


def _units(money: Money) -> float:
    """For drawing only: tables print the exact text."""
    return money.micros / 1_000_000


def _per_hour_bucket(at_ms: int) -> int:
    return at_ms - at_ms % HOUR_MS


def page_of(rows: list[_T], page: int) -> tuple[list[_T], int]:
    """One page of ``rows`` (1-based, clamped) and the number of pages."""
    pages = max(1, -(-len(rows) // PAGE))
    page = min(max(page, 1), pages)
    return rows[(page - 1) * PAGE : page * PAGE], pages


# -- network --------------------------------------------------------------------------------------


def sample(service: MarketService, ring: SampleRing) -> None:
    """Add a utilization sample if one is due (see :mod:`~pasar.market.dashboard.samples`)."""
    now = service.clock()
    if ring.due(now):
        with service.lock:
            stats = network_stats(service.state)
        ring.add(now, stats)


def network_page(service: MarketService, ring: SampleRing) -> dict[str, Any]:
    sample(service, ring)
    now = service.clock()
    currency = service.preset.currency
    with service.lock:
        state = service.state
        stats = network_stats(state)
        since = _per_hour_bucket(now) - (HOURS - 1) * HOUR_MS
        jobs: dict[int, int] = defaultdict(int)
        for order in newest(state.orders.values()):
            if order.created_at < since:
                break
            jobs[_per_hour_bucket(order.created_at)] += 1
        fees: dict[int, Money] = defaultdict(lambda: Money.zero(currency))
        for lease in newest(state.leases.values()):
            settled = lease.settled_at
            if lease.charges is not None and settled is not None and settled >= since:
                fees[_per_hour_bucket(settled)] += lease.charges.treasury
        treasury = state.ledger.balance(TREASURY, currency)
    samples = ring.samples()
    return {
        "stats": stats,
        "currency": currency,
        "treasury": treasury.to_json(),
        "jobs_per_hour": sorted(jobs.items()),
        "fees_per_hour": [(at, m.to_json()) for at, m in sorted(fees.items())],
        "samples": samples,
        "sample_every_s": ring.every_ms // 1000,
        "charts": {
            "utilization": {
                "GPU %": [(s.at, 100 * s.gpu_utilization) for s in samples],
                "CPU %": [(s.at, 100 * s.cpu_utilization) for s in samples],
            },
            "jobs": {"jobs/h": [(at, float(n)) for at, n in sorted(jobs.items())]},
            "fees": {f"{currency}/h": [(at, _units(m)) for at, m in sorted(fees.items())]},
        },
    }


# -- prices ---------------------------------------------------------------------------------------


def _unit_price(lease: LeaseRecord) -> tuple[str, Money] | None:
    """What the lease paid per GPU-hour (``"A100"``) or, without GPUs, per CPU core-hour."""
    gpu = lease.allocation.gpu
    if gpu is not None:
        return gpu.model.family, lease.price_per_hour.scale(1, gpu.count)
    cores = Fraction(Decimal(lease.allocation.cpus))
    if cores <= 0:
        return None
    return "CPU core", lease.price_per_hour.scale(1 / cores)


def _median(prices: list[Money]) -> Money:
    return median_low(sorted(prices, key=lambda m: m.micros))


def prices_page(service: MarketService, ring: SampleRing) -> dict[str, Any]:
    """Lease prices per GPU model (or CPU core) per hour, and per mechanism, from the newest
    leases; the asks standing now (the statistics' models) and as sampled (the ring)."""
    sample(service, ring)
    asks: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for s in ring.samples():
        for model, ask in s.asks.items():
            asks[model].append((s.at, ask))
    by_hour: dict[str, dict[int, list[Money]]] = defaultdict(lambda: defaultdict(list))
    by_mechanism: dict[tuple[str, str], list[Money]] = defaultdict(list)
    with service.lock:
        state = service.state
        stats = network_stats(state)
        for lease in newest(state.leases.values()):
            unit = _unit_price(lease)
            if unit is None:
                continue
            kind, price = unit
            by_hour[kind][_per_hour_bucket(lease.started_at)].append(price)
            by_mechanism[(kind, state.orders[lease.order_id].mechanism)].append(price)
    series_rows = [
        {
            "kind": kind,
            "hour": hour,
            "leases": len(prices),
            "min": min(prices, key=lambda m: m.micros).to_json(),
            "median": _median(prices).to_json(),
        }
        for kind, hours in sorted(by_hour.items())
        for hour, prices in sorted(hours.items())
    ]
    mechanism_rows = [
        {
            "kind": kind,
            "mechanism": mechanism,
            "leases": len(prices),
            "median": _median(prices).to_json(),
            "median_units": _units(_median(prices)),
        }
        for (kind, mechanism), prices in sorted(by_mechanism.items())
    ]
    return {
        "stats": stats,
        "currency": service.preset.currency,
        "series_rows": series_rows,
        "mechanism_rows": mechanism_rows,
        "chart": {
            kind: [(hour, _units(_median(prices))) for hour, prices in sorted(hours.items())]
            for kind, hours in sorted(by_hour.items())
        },
        "ask_chart": dict(sorted(asks.items())),
        "sample_every_s": ring.every_ms // 1000,
        "mechanism_bars": [
            (f"{r['kind']} · {r['mechanism']}", r["median_units"]) for r in mechanism_rows
        ],
    }


# -- providers ------------------------------------------------------------------------------------

PROVIDER_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "provider": lambda r: r["provider"],
    "gpus": lambda r: r["gpu_count"],
    "cpus": lambda r: Decimal(r["cpus"]),
    "score": lambda r: r["score"],
    "reputation": lambda r: r["reputation_value"],
    "stake": lambda r: r["stake_micros"],
    "earnings": lambda r: r["earnings_micros"],
    "online": lambda r: r["online"],
}


def _earnings(service: MarketService) -> dict[str, Money]:
    """Each provider's payouts from settled leases (one pass over the leases in memory)."""
    currency = service.preset.currency
    out: dict[str, Money] = defaultdict(lambda: Money.zero(currency))
    for lease in service.state.leases.values():
        if lease.charges is not None:
            out[lease.provider] += lease.charges.provider_payout
    return out


def providers_page(
    service: MarketService, *, sort: str = "provider", descending: bool = False, page: int = 1
) -> dict[str, Any]:
    if sort not in PROVIDER_SORTS:
        raise PasarError(
            f"cannot sort providers by {sort!r}",
            code="invalid_query",
            field="sort",
            hint="one of " + ", ".join(PROVIDER_SORTS),
        )
    offline = service.offline_providers()
    with service.lock:
        state = service.state
        earnings = _earnings(service)
        rows = []
        for p in state.providers.values():
            stake = state.stake_of(p.id)
            earned = earnings.get(p.id, Money.zero(service.preset.currency))
            score = p.reputation.score
            rows.append(
                {
                    "provider": p.id,
                    "gpus": p.inventory.describe_gpus() or "none",
                    "gpu_count": len(list(p.inventory.devices())),
                    "cpus": str(p.inventory.cpus),
                    "memory_gb": str(p.inventory.memory_gb),
                    "score": p.score,
                    "reputation": f"{float(score):.2f}",
                    "reputation_value": Fraction(score),
                    "stake": stake.to_json(),
                    "stake_micros": stake.micros,
                    "capacity": p.capacity.state,
                    "online": p.available and p.id not in offline,
                    "running": len(p.running),
                    "earnings": earned.to_json(),
                    "earnings_micros": earned.micros,
                }
            )
    rows.sort(key=PROVIDER_SORTS[sort], reverse=descending)
    shown, pages = page_of(rows, page)
    return {
        "rows": shown,
        "total": len(rows),
        "page": min(max(page, 1), pages),
        "pages": pages,
        "sort": sort,
        "descending": descending,
    }


def _lease_row(service: MarketService, lease: LeaseRecord) -> dict[str, Any]:
    """A lease as the public chain has it: who, what, when, the bill (no receipt, no spec)."""
    bill = None if lease.charges is None else Bill.of(lease.charges, lease.rerun_escrow)
    return {
        "lease_id": lease.id,
        "order_id": lease.order_id,
        "provider": lease.provider,
        "status": lease.status,
        "gpus": None if lease.allocation.gpu is None else str(lease.allocation.gpu),
        "cpus": str(lease.allocation.cpus),
        "price_per_hour": lease.price_per_hour.to_json(),
        "started_at": lease.started_at,
        "ended_at": lease.ended_at,
        "billed_seconds": lease.billed_seconds,
        "bill": bill,
        "why": end_reason(lease_view(service.state, lease).model_dump()),
    }


def provider_page(service: MarketService, provider_id: str, page: int = 1) -> dict[str, Any]:
    account = parse_account_id(provider_id, field="provider_id")
    offline = service.offline_providers()
    with service.lock:
        state = service.state
        record = state.providers.get(account)
        if record is None:
            raise PasarError(f"no provider {account}", code="not_found", status=404)
        mine = [x for x in reversed(state.leases.values()) if x.provider == account]
        shown, pages = page_of(mine, page)
        online = record.available and account not in offline
        info = {
            "provider": account,
            "gpus": record.inventory.describe_gpus() or "none",
            "free_gpus": record.free().describe_gpus() or "none",
            "cpus": str(record.inventory.cpus),
            "memory_gb": str(record.inventory.memory_gb),
            "score": record.score,
            "region": record.region,
            "reputation": f"{float(record.reputation.score):.2f}",
            "stake": state.stake_of(account).to_json(),
            "capacity": record.capacity.state,
            "online": online,
            "available": record.available,
            "earnings": _earnings(service)
            .get(account, Money.zero(service.preset.currency))
            .to_json(),
            "offers": offer_rows(state, record, online=online),
        }
        leases = [_lease_row(service, x) for x in shown]
    return {"info": info, "leases": leases, "page": min(max(page, 1), pages), "pages": pages}


# -- jobs -----------------------------------------------------------------------------------------


def _order_row(service: MarketService, record: OrderRecord) -> dict[str, Any]:
    state = service.state
    currency = service.preset.currency
    billed = Money.zero(currency)
    for lease_id in record.leases:
        charges = state.leases[lease_id].charges
        if charges is not None:
            billed += charges.billed
    return {
        "order_id": record.id,
        "client": record.client,
        "status": record.status,
        "mechanism": record.mechanism,
        "request": record.order.describe(),
        "max_price_per_hour": record.order.max_price_per_hour.to_json(),
        "created_at": record.created_at,
        "leases": len(record.leases),
        "billed": billed.to_json(),
    }


def jobs_page(
    service: MarketService, *, page: int = 1, status: str | None = None, client: str | None = None
) -> dict[str, Any]:
    """The newest jobs, a page at a time, as the public chain has them."""
    with service.lock:
        wanted = page * PAGE + 1
        found: list[OrderRecord] = []
        for record in newest(service.state.orders.values(), RECENT):
            if (status is None or record.status == status) and (
                client is None or record.client == client
            ):
                found.append(record)
                if len(found) >= wanted:
                    break
        shown = found[(max(page, 1) - 1) * PAGE : max(page, 1) * PAGE]
        rows = [_order_row(service, r) for r in shown]
    return {
        "rows": rows,
        "page": max(page, 1),
        "more": len(found) >= wanted,
        "status": status,
        "total": len(service.state.orders),
    }


def _order_record(service: MarketService, order_id: str) -> OrderRecord:
    record = service.state.orders.get(order_id)
    if record is None:
        raise PasarError(f"no job {order_id!r}", code="not_found", status=404, field="order_id")
    return record


def job_page(service: MarketService, order_id: str) -> dict[str, Any]:
    """One job as the public chain has it: :class:`PublicOrderView` and its leases' bills."""
    with service.lock:
        record = _order_record(service, order_id)
        view: PublicOrderView = public_order_view(service.state, record)
        leases = [_lease_row(service, service.state.leases[x]) for x in record.leases]
        row = _order_row(service, record)
    return {"order": view, "row": row, "leases": leases}


def my_job_page(
    service: MarketService, account: str, order_id: str, logs_dir: Path
) -> dict[str, Any]:
    """A job its signed-in client (or another party) sees whole: the full view, each lease's
    log tail and the outputs its receipt lists (:func:`check_order_party` refuses others)."""
    with service.lock:
        record = _order_record(service, order_id)
        check_order_party(service.state, record, account)
        view: OrderView = full_order_view(service, record)
        row = _order_row(service, record)
    logs = {lease.lease_id: _log_tail(logs_dir / f"{lease.lease_id}.log") for lease in view.leases}
    outputs = {
        lease.lease_id: list((lease.receipt or {}).get("outputs") or []) for lease in view.leases
    }
    return {"order": view, "row": row, "logs": logs, "outputs": outputs}


def _log_tail(path: Path) -> str:
    """The last :data:`MAX_LOG_TAIL` bytes of a lease's log (the file the logs route writes)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - MAX_LOG_TAIL))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


# -- chain ----------------------------------------------------------------------------------------

MAX_BLOCK_TXS = 200  # transactions of a block listed on its page


def chain_page(service: MarketService, page: int = 1) -> dict[str, Any]:
    """The newest blocks first, a page at a time (read from the store by height)."""
    head = service.store.head_block()
    height = -1 if head is None else head.height
    pages = max(1, -(-(height + 1) // PAGE))
    page = min(max(page, 1), pages)
    top = height - (page - 1) * PAGE
    low = max(0, top - PAGE + 1)
    blocks = [] if top < 0 else service.store.blocks(from_height=low, limit=top - low + 1)
    with service.lock:
        tx_count = service.state.tx_count
    return {
        "height": None if head is None else head.height,
        "tx_count": tx_count,
        "verified_at_start": service.verified_at_start,
        "blocks": [b.to_dict() for b in reversed(blocks)],
        "page": page,
        "pages": pages,
    }


def block_page(service: MarketService, height: int) -> dict[str, Any]:
    """One block, the block before it (the browser checks the hash link) and its first
    :data:`MAX_BLOCK_TXS` transactions (type, signer, the market's stamp)."""
    block = service.store.block(height)
    if block is None:
        raise PasarError(f"no block at height {height}", code="not_found", status=404)
    prev = service.store.block(height - 1) if height > 0 else None
    txs = service.store.txs(after_seq=block.first_seq - 1, limit=MAX_BLOCK_TXS)
    rows = [
        {"seq": t.seq, "digest": t.digest, "type": t.type, "signer": t.signer, "at": t.at}
        for t in txs
        if t.seq <= block.last_seq
    ]
    return {
        "block": block.to_dict(),
        "prev": None if prev is None else prev.to_dict(),
        "txs": rows,
        "more_txs": len(block.txs) - len(rows),
    }
