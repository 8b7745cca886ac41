"""``pasar offers | gpus | stats | balance | faucet``: what the network sells and what you hold.

Each command is one or two reads of the market's API through the SDK (:class:`pasar.Client`),
printed as a rich table, or as one JSON document with ``--json``. Prices are exact: medians are
an actual ask (the lower median, as the market computes it), never an average of floats.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import median_low
from typing import TYPE_CHECKING, Any, TypedDict

import typer
from rich.markup import escape
from rich.table import Table

from pasar.cli.common import (
    JsonOpt,
    MarketOpt,
    make_client,
    money,
    percent,
    reputation,
    text,
)
from pasar.cli.output import console, print_json
from pasar.cli.tables import Column, OutputOpt, WideOpt, output_format, print_rows
from pasar.core.money import Money

if TYPE_CHECKING:
    from pasar.api.accounts import Balance
    from pasar.api.offers import Offer
    from pasar.api.stats import GpuModelStats, Stats

MAX_OFFERS = 10_000  # the market's cap on one /v1/providers answer


# -- offers ----------------------------------------------------------------------------------------


def _gpu_cell(offer: Offer) -> str:
    if offer.num_gpus:
        return f"{offer.num_gpus}× {offer.gpu_name}"
    return "CPU only"


def offers(
    query: str = typer.Argument(
        "", help="Offer query, e.g. 'gpu=A100:2 dph<1.5 reliability>0.98'.", show_default=False
    ),
    order: str | None = typer.Option(
        None, "--order", help="Sort keys, e.g. 'dph' or 'score-' (trailing - descends)."
    ),
    limit: int = typer.Option(20, "--limit", help="Show at most N offers."),
    explain: bool = typer.Option(
        False, "--explain", help="Also print the parsed query: conditions, defaults, order."
    ),
    include_offline: bool = typer.Option(
        False,
        "--include-offline",
        help="Also list providers that are draining, full or silent (for operators).",
    ),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
    output: str | None = OutputOpt,
    wide: bool = WideOpt,
) -> None:
    """Offers on the market that match a query (the vast.ai-style offer language); only
    providers that take work and were heard from within the heartbeat grace, unless
    --include-offline.

    Example: pasar offers 'gpu=A100:2 dph<1.5' --order dph
             pasar offers 'cpus>=8' -o csv
    """
    from pasar.api.base import parse_rows
    from pasar.api.offers import Offer
    from pasar.core.query import parse_query
    from pasar.core.resources import normalize_gpu_name

    # parsed here first, so a mistake points at its column before any request is made
    parsed = parse_query(query, order=order, limit=limit, normalize=normalize_gpu_name)
    fmt = output_format(output, json)
    with make_client(market) as client:
        found = client.offers(query, order=order, limit=limit, include_offline=include_offline)
    data: dict[str, Any] = {"offers": found, "count": len(found)}
    if explain:
        data["query"] = parsed.explain()
    if fmt == "table" and explain:
        _print_explain(parsed.explain())
    columns = [
        Column("provider", "id"),
        Column("GPUs"),
        Column("CPUs", "number"),
        Column("memory", "number", optional=True),
        Column("disk", "number", optional=True),
        Column("price/h", "money"),
        Column("reputation", "number", optional=True),
        Column("score", "number"),
        Column("region", optional=True),
        Column("capacity proof", optional=True),
    ]
    if include_offline:
        columns.append(Column("online"))
    rows: list[list[str]] = []
    for o in parse_rows(Offer, found, what="offers"):
        cells = [
            o.provider,
            _gpu_cell(o),
            text(o.cpus),
            f"{text(o.memory)} GB",
            f"{text(o.disk)} GB",
            text(o.dph) if o.rentable else "no ask",
            reputation(o.reputation),
            text(o.score),
            text(o.region),
            text(o.capacity),
        ]
        if include_offline:
            cells.append("yes" if o.online else "no")
        rows.append(cells)
    print_rows(fmt, columns, rows, data, title=f"offers ({len(found)})", wide=wide)
    if fmt == "table" and not found:
        console.print("no offer matches; `pasar offers --explain QUERY` shows what was asked")


def _print_explain(explained: dict[str, Any]) -> None:
    table = Table(title=f"query: {escape(explained['query'] or '(empty)')}")
    for column in ("field", "op", "value", "type", "from"):
        table.add_column(column)
    for c in explained["conditions"]:
        table.add_row(
            c["field"], c["op"], escape(c["value"]), c["type"], "default" if c["default"] else ""
        )
    console.print(table)
    order = ",".join(k["field"] + ("-" if k["descending"] else "") for k in explained["order"])
    waived = ", ".join(explained["waived"]) or "none"
    console.print(
        f"order: {order or 'none'}  limit: {explained['limit']}  waived defaults: {waived}",
        markup=False,
        highlight=False,
    )


# -- gpus ------------------------------------------------------------------------------------------


def _median(prices: list[Money]) -> Money | None:
    """The lower median: an actual ask, exact (no average of two prices)."""
    if not prices:
        return None
    return median_low(sorted(prices, key=lambda m: m.micros))


class GpuRow(TypedDict):
    """One GPU model of ``pasar gpus`` (``--json`` prints these)."""

    model: str
    variants: list[str]
    gpus: int
    free: int
    providers: int
    min_price_per_hour: str | None
    median_price_per_hour: str | None


def gpu_rows(stats: Stats, offers: list[Offer]) -> list[GpuRow]:
    """One row per GPU model (family): units on the network and free (``/v1/stats``), and from
    the free offers: providers with free units, the lowest and the median ask per GPU-hour."""
    from pasar.core.resources import GpuModel

    providers: dict[str, set[str]] = defaultdict(set)
    asks: dict[str, list[Money]] = defaultdict(list)
    variants: dict[str, set[str]] = defaultdict(set)
    for offer in offers:
        name = offer.gpu_name
        if not name or not offer.num_gpus:
            continue
        family = GpuModel.parse(name).family
        providers[family].add(offer.provider)
        variants[family].add(name)
        unit = money(offer.dph_per_gpu)
        if unit is not None:
            asks[family].append(unit)
    rows = []
    seen: set[str] = set()
    for model in stats.models:
        family = model.model
        seen.add(family)
        rows.append((family, model.gpus, model.free))
    for family in sorted(set(providers) - seen):  # not yet in the stats (a race): still shown
        rows.append((family, 0, 0))
    out: list[GpuRow] = []
    for family, count, free in rows:
        prices = asks.get(family, [])
        cheapest = min(prices, key=lambda m: m.micros) if prices else None
        median = _median(prices)
        out.append(
            GpuRow(
                model=family,
                variants=sorted(variants.get(family, ())),
                gpus=count,
                free=free,
                providers=len(providers.get(family, ())),
                min_price_per_hour=None if cheapest is None else cheapest.to_json(),
                median_price_per_hour=None if median is None else median.to_json(),
            )
        )
    return out


def catalogue_rows() -> list[dict[str, Any]]:
    """Every GPU model pasar knows (the catalogue the spec and offer languages accept): vendor,
    VRAM variants, and the per-GPU-hour price of each built-in preset that tables it (the
    networks with ``tender`` pricing), as a guide to what a model costs."""
    from pasar.core.gpus import FAMILIES
    from pasar.core.presets import BUILTIN_PRESETS, builtin_preset
    from pasar.core.pricing.tender import Tender

    tables = {}
    for name in BUILTIN_PRESETS:
        preset = builtin_preset(name)
        if "tender" in preset.allowed_mechanisms:
            mechanism = preset.mechanism("tender")
            if isinstance(mechanism, Tender):
                tables[name] = mechanism.table
    return [
        {
            "model": family.name,
            "vendor": family.vendor,
            "vram_gb": list(family.vram_gb),
            "preset_prices": {
                preset: table.prices[family.name].to_json()
                for preset, table in tables.items()
                if family.name in table.prices
            },
        }
        for family in FAMILIES
    ]


def _print_catalogue(fmt: str, wide: bool) -> None:
    rows = catalogue_rows()
    columns = [
        Column("model"),
        Column("vendor", optional=True),
        Column("VRAM (GB)"),
        Column("price/GPU-h in the presets' tables", optional=True),
    ]
    cells = [
        [
            r["model"],
            r["vendor"],
            " or ".join(str(v) for v in r["vram_gb"]),
            ", ".join(f"{k} {v}" for k, v in r["preset_prices"].items()) or "-",
        ]
        for r in rows
    ]
    title = f"GPU models pasar knows ({len(rows)})"
    print_rows(fmt, columns, cells, {"models": rows}, title=title, wide=wide)


def gpus(
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
    output: str | None = OutputOpt,
    wide: bool = WideOpt,
    all_models: bool = typer.Option(
        False,
        "--all",
        help="The catalogue of every GPU model pasar knows (VRAM, the presets' prices), "
        "not only those on the network; needs no market.",
    ),
) -> None:
    """One row per GPU model: GPUs, free units, providers with free units, min and median
    price per GPU-hour of the free units' asks (--all: every model pasar knows).

    Example: pasar gpus
             pasar gpus --all
    """
    from pasar.api.base import parse, parse_rows
    from pasar.api.offers import Offer
    from pasar.api.stats import Stats

    fmt = output_format(output, json)
    if all_models:
        _print_catalogue(fmt, wide)
        return
    with make_client(market) as client:
        stats = client.stats()
        free_offers = client.offers("num_gpus>=1 rentable=any", limit=MAX_OFFERS)
    rows = gpu_rows(parse(Stats, stats), parse_rows(Offer, free_offers, what="offers"))
    if fmt == "table" and not rows:
        console.print("no GPU on this network yet")
        return
    columns = [
        Column("model"),
        Column("variants", optional=True),
        Column("GPUs", "number"),
        Column("free", "number"),
        Column("providers", "number", optional=True),
        Column("min price/h", "money"),
        Column("median/h", "money", optional=True),
    ]
    cells = [
        [
            r["model"],
            ", ".join(r["variants"]) or "-",
            str(r["gpus"]),
            str(r["free"]),
            str(r["providers"]),
            text(r["min_price_per_hour"]),
            text(r["median_price_per_hour"]),
        ]
        for r in rows
    ]
    title = "GPU models on the network (prices per GPU-hour of free units)"
    print_rows(fmt, columns, cells, {"models": rows}, title=title, wide=wide)


# -- stats -----------------------------------------------------------------------------------------


def _family(stats: Stats, family: str) -> GpuModelStats | None:
    for model in stats.models:
        if model.model == family:
            return model
    return None


def stats(market: str | None = MarketOpt, json: bool = JsonOpt) -> None:
    """The network's hardware statistics: GPUs, CPUs, H100/A100, their price per hour,
    utilization and jobs by state.

    Example: pasar stats
    """
    from pasar.api.base import parse
    from pasar.api.stats import Stats

    with make_client(market) as client:
        data = client.stats()
    if json:
        print_json(data)
        return
    network = parse(Stats, data)
    h100, a100 = _family(network, "H100"), _family(network, "A100")
    table = Table(title="network statistics", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("providers", str(network.providers)),
        ("GPUs (free)", f"{network.gpus} ({network.free_gpus})"),
        ("CPUs (free)", f"{network.cpus} ({network.free_cpus})"),
        ("H100", str(network.h100)),
        ("A100", str(network.a100)),
        ("H100 median ask / leased per GPU-hour", _prices(h100)),
        ("A100 median ask / leased per GPU-hour", _prices(a100)),
        ("GPU utilization", percent(network.gpu_utilization)),
        ("CPU utilization", percent(network.cpu_utilization)),
        ("jobs", ", ".join(f"{k} {v}" for k, v in network.jobs.items()) or "none"),
        ("leases running", str(network.leases_running)),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)


def _prices(model: GpuModelStats | None) -> str:
    if model is None:
        return "- / -"
    return f"{text(model.median_ask_per_hour)} / {text(model.median_lease_price_per_hour)}"


# -- balance and faucet ----------------------------------------------------------------------------


def _print_balance(account: Balance) -> None:
    console.print(f"account {account.account}", markup=False, highlight=False)
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("amount", justify="right")
    for label, amount in (
        ("spendable", account.balance),
        ("in escrow", account.escrow),
        ("earnings", account.earnings),
        ("stake", account.stake),
    ):
        table.add_row(label, amount)
    console.print(table)


def balance(market: str | None = MarketOpt, json: bool = JsonOpt) -> None:
    """This client's spendable balance, money in escrow, earnings and stake.

    Example: pasar balance --json
    """
    from pasar.api.accounts import Balance
    from pasar.api.base import parse

    with make_client(market) as client:
        account = client.balance()
    if json:
        print_json(account)
        return
    _print_balance(parse(Balance, account))


def faucet(
    amount: str = typer.Argument(..., help="How much to mint, e.g. '10 USDC'.", show_default=False),
    market: str | None = MarketOpt,
    json: bool = JsonOpt,
) -> None:
    """Mint test money into this client's account (markets started with --devnet only).

    Example: pasar faucet '10 USDC'
    """
    from pasar.api.accounts import Balance
    from pasar.api.base import parse

    with make_client(market) as client:
        minted = client.faucet(amount)
        account = client.balance()
    if json:
        print_json({**minted, "account": account})
        return
    console.print(f"minted {minted['minted']}", markup=False, highlight=False)
    _print_balance(parse(Balance, account))
