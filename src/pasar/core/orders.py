"""Orders and providers as the pricing mechanisms see them.

An :class:`Order` is what the market keeps of a signed job spec once it has escrowed the money:
the resources one lease needs, the most a lease may cost per hour, how many leases to fill.
A :class:`ProviderView` is what the market knows about a provider at matching time: its free
capacity, reputation, benchmark score and stake. Both are plain frozen data, so the market
engine and the simulator can build them from a SQL row or from a synthetic fleet alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.resources import Inventory, ResourceRequest
from pasar.core.spec import JobSpec
from pasar.core.spec_fields import Placement

NEUTRAL_REPUTATION = Fraction(1, 2)


class OrderError(PasarError):
    """An order that cannot be built: no price, no time, nothing to fill."""


@dataclass(frozen=True)
class Order:
    """A request for ``leases`` leases, each fitting ``request``, at most ``max_price_per_hour``.

    ``together`` is a multi-node cluster: every lease must be filled at once, or none is, by
    distinct providers unless ``placement`` is ``spread`` (then a provider may take several of
    its nodes, each lease its own allocation: :attr:`shares_providers`). Shards
    (``together=False``) may be filled partially and the rest later, which is how Render splits
    frames across whoever is free.
    """

    id: str
    client: str
    request: ResourceRequest
    max_price_per_hour: Money
    max_duration_s: int
    leases: int = 1
    together: bool = False
    pricing: str | None = None
    created_at: int = 0
    placement: Placement = "strict_spread"
    # SkyPilot's any_of/ordered: each a whole request a lease may take instead (``request`` is
    # then the first); ``pick`` says how the market chooses among the fitting ones
    # (:mod:`pasar.core.alternatives`). Empty: the order has the one ``request``.
    alternatives: tuple[ResourceRequest, ...] = ()
    pick: str | None = None

    def __post_init__(self) -> None:
        if self.max_price_per_hour.micros <= 0:
            raise OrderError(
                f"max price per hour must be positive, got {self.max_price_per_hour}",
                field="max_price_per_hour",
            )
        if isinstance(self.max_duration_s, bool) or self.max_duration_s <= 0:
            raise OrderError("max duration must be positive", field="max_duration")
        if self.leases < 1:
            raise OrderError("an order fills at least one lease", field="leases")

    @property
    def shares_providers(self) -> bool:
        """A gang whose nodes may share a provider (``placement: spread``)."""
        return self.together and self.placement == "spread"

    @property
    def currency(self) -> str:
        return self.max_price_per_hour.currency

    def request_of(self, alternative: int | None) -> ResourceRequest:
        """What one lease needs under ``alternative`` (None: the order's one request)."""
        return self.request if alternative is None else self.alternatives[alternative]

    def describe(self) -> str:
        """The request in words: ``2× A100 …``, or each alternative with ``or`` between."""
        if not self.alternatives:
            return self.request.describe()
        how = "first that fits" if self.pick == "ordered" else "cheapest that fits"
        alts = " or ".join(f"[{i}] {r.describe()}" for i, r in enumerate(self.alternatives))
        return f"{alts} ({how})"

    @classmethod
    def from_spec(cls, spec: JobSpec, *, id: str, client: str, created_at: int = 0) -> Order:
        """The order for a validated spec: one lease per shard or per node."""
        alternatives = (
            tuple(choice.to_request() for choice in spec.choices())
            if spec.resources.alternatives is not None
            else ()
        )
        return cls(
            id=id,
            client=client,
            request=alternatives[0] if alternatives else spec.to_request(),
            max_price_per_hour=spec.max_price_per_hour,
            max_duration_s=spec.max_duration,
            leases=spec.lease_count,
            together=spec.num_nodes > 1,
            pricing=spec.pricing,
            created_at=created_at,
            placement=spec.placement or "strict_spread",
            alternatives=alternatives,
            pick=spec.resources.pick if alternatives else None,
        )


@dataclass(frozen=True)
class ProviderView:
    """One provider at matching time. ``inventory`` is what is *free* now, not what it owns.

    ``reputation`` is in [0, 1] (see :mod:`pasar.core.reputation`), ``score`` the benchmark's
    GFLOP/s, ``latency_ms`` the market's measured round trip (the tender indexer uses it).
    """

    id: str
    inventory: Inventory
    reputation: Fraction = NEUTRAL_REPUTATION
    score: int = 0
    stake: Money | None = None
    region: str | None = None
    latency_ms: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)
