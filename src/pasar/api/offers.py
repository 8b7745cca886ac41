"""Offers (one per GPU model a provider has free, or one CPU offer) and one provider's view.

Quantities and prices are exact text (``"1.5"``, ``"2.000000 USD"``), never floats. GPU offers
carry ``total_gpu_ram``, ``dph_per_gpu`` and ``interface``; a CPU offer has none of them (they
are left out, not null).
"""

from __future__ import annotations

from pasar.api.base import WireModel


class Offer(WireModel):
    online: bool
    provider: str
    cpus: str
    memory: str
    disk: str
    reliability: str
    reputation: str
    score: int
    region: str | None
    limits: str | None
    stake: str
    rentable: bool
    verified: bool
    gpu_name: str | None
    num_gpus: int
    gpu_ram: int
    total_gpu_ram: int | None = None
    dph: str | None
    dph_per_gpu: str | None = None
    interface: list[str] | None = None
    capacity: str | None = None  # the capacity proofs: passed, unchecked, or failing: why


class OfferList(WireModel):
    offers: list[Offer]
    count: int


class ProviderInfo(WireModel):
    """``GET /v1/providers/{id}``: inventory, what is free, reputation, liveness, offers."""

    provider: str
    inventory: str
    free: str
    cpus: str
    memory_gb: str
    score: int
    region: str | None
    reputation: str
    running: list[str]
    available: bool
    online: bool
    offers: list[Offer]
    stake: str
    capacity: dict[str, object] | None = None  # state, since, reason, misses, open challenge
