"""The network's hardware statistics (``GET /v1/stats``)."""

from __future__ import annotations

from pasar.api.base import WireModel


class GpuModelStats(WireModel):
    model: str
    gpus: int
    free: int
    median_ask_per_hour: str | None
    min_ask_per_hour: str | None = None  # the cheapest ask (the dashboard's min/median)
    median_lease_price_per_hour: str | None


class Stats(WireModel):
    providers: int
    gpus: int
    free_gpus: int
    h100: int
    a100: int
    cpus: int
    free_cpus: int
    gpu_utilization: str
    cpu_utilization: str
    models: list[GpuModelStats]
    jobs: dict[str, int]
    leases_running: int
