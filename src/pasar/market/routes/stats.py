"""The network's hardware statistics: what is registered, what it costs, how busy it is."""

from __future__ import annotations

from collections import Counter
from statistics import median_low

from fastapi import APIRouter, Request

from pasar.api.stats import GpuModelStats, Stats
from pasar.core.money import Money
from pasar.core.state import MarketState
from pasar.market.routes.common import service_of

router = APIRouter(tags=["stats"])
RECENT_LEASES = 1000


def _median(prices: list[Money]) -> str | None:
    """The lower median (an actual ask, never an average of two): exact, no floats."""
    if not prices:
        return None
    return median_low(sorted(prices, key=lambda m: m.micros)).to_json()


def _cheapest(prices: list[Money]) -> str | None:
    return min(prices, key=lambda m: m.micros).to_json() if prices else None


def network_stats(state: MarketState) -> Stats:
    gpus: Counter[str] = Counter()
    free_gpus: Counter[str] = Counter()
    asks: dict[str, list[Money]] = {}
    cpus = 0
    free_cpus = 0
    for provider in state.providers.values():
        free = provider.free()
        cpus += int(provider.inventory.cpus)
        free_cpus += int(free.cpus)
        for model in provider.inventory.devices():
            gpus[model.family] += 1
            unit = provider.asks.unit_for(model)
            if unit is not None:
                asks.setdefault(model.family, []).append(unit)
        for model in free.devices():
            free_gpus[model.family] += 1
    leased: dict[str, list[Money]] = {}
    for lease in list(state.leases.values())[-RECENT_LEASES:]:
        gpu = lease.allocation.gpu
        if gpu is not None:
            per_gpu = lease.price_per_hour.scale(1, gpu.count)
            leased.setdefault(gpu.model.family, []).append(per_gpu)
    total_gpus = sum(gpus.values())
    jobs = Counter(o.status for o in state.orders.values())
    return Stats(
        providers=len(state.providers),
        gpus=total_gpus,
        free_gpus=sum(free_gpus.values()),
        h100=gpus.get("H100", 0),
        a100=gpus.get("A100", 0),
        cpus=cpus,
        free_cpus=free_cpus,
        gpu_utilization="0"
        if not total_gpus
        else str(round((total_gpus - sum(free_gpus.values())) / total_gpus, 4)),
        cpu_utilization="0" if not cpus else str(round((cpus - free_cpus) / cpus, 4)),
        models=[
            GpuModelStats(
                model=family,
                gpus=count,
                free=free_gpus.get(family, 0),
                median_ask_per_hour=_median(asks.get(family, [])),
                min_ask_per_hour=_cheapest(asks.get(family, [])),
                median_lease_price_per_hour=_median(leased.get(family, [])),
            )
            for family, count in sorted(gpus.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        jobs=dict(sorted(jobs.items())),
        leases_running=sum(1 for x in state.leases.values() if x.status == "running"),
    )


@router.get("/v1/stats", summary="GPUs, CPUs, H100/A100 counts, median prices, utilization")
def stats(request: Request) -> Stats:
    service = service_of(request)
    with service.lock:
        return network_stats(service.state)
