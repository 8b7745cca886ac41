"""A lease as its parties see it (with its allocation and, once settled, its bill), the
heartbeat challenge a provider answers, and the answer to a log append."""

from __future__ import annotations

from pydantic import Field

from pasar.api.base import JSONObject, WireModel
from pasar.api.bills import Bill
from pasar.api.receipts import FileEntry
from pasar.api.status import LeaseStatus


class GpuDeviceView(WireModel):
    """One physical GPU a lease holds: its NVML index on the provider's machine and, when the
    provider registered it, its UUID (what the runtime hands the job)."""

    index: int
    uuid: str | None = None


class NodeView(WireModel):
    """One node of a multi-node job (``num_nodes`` above 1): its rank (the lease's shard; 0 is
    the head), its lease and provider, and the address its provider registered (its
    ``node_address``: where the other nodes reach it)."""

    rank: int
    lease_id: str
    provider: str
    address: str | None = None


class Challenge(WireModel):
    """The market's signed challenge for a lease's current heartbeat interval."""

    lease_id: str
    interval: int
    challenge: str
    interval_s: int
    next_at_ms: int


class LeaseView(WireModel):
    """One lease. The allocation is ``gpus`` (``"2× A100"``, None without GPUs), ``devices``
    (the physical GPUs behind them, so the agent runs the job on exactly these) and ``cpus``
    (exact text). ``receipt`` echoes the signed receipt body the market accepted (untrusted
    JSON: the market checks only what settlement needs); ``spec`` (the order's job spec, which
    :class:`~pasar.core.spec.JobSpec` validates) is present only in ``GET /v1/leases/{id}``."""

    lease_id: str
    order_id: str
    provider: str
    client: str
    shard: int
    shards: int = 1
    status: LeaseStatus
    price_per_hour: str
    started_at: int
    ended_at: int | None = None
    verified_intervals: int = 0
    billed_seconds: int = 0
    billed_ms: int = 0
    gpus: str | None = None
    devices: list[GpuDeviceView] = Field(default_factory=list)
    cpus: str = "1"
    receipt: JSONObject | None = None
    inputs: list[FileEntry] = Field(default_factory=list)
    bill: Bill | None = None
    checks: list[str] = Field(default_factory=list)  # verifiers' checks of it (GET /v1/checks/…)
    spec: JSONObject | None = None
    private: str | None = None  # sha256 of the private part (GET /v1/leases/{id} only)
    box_key: str | None = None  # a sealed job: the X25519 key its provider announced
    sealed_keys: dict[str, str] = Field(default_factory=dict)  # recipient → sealed data key
    held_until: int | None = None  # only while held: when it must be judged by (ms)
    note: str | None = None  # only once lost: why (a missed liveness challenge, its reason)
    # a multi-node job's gang and its shared secret (GET /v1/leases/{id} only, for its parties)
    nodes: list[NodeView] = Field(default_factory=list)
    cluster_secret: str | None = None
    # which of the spec's resources.alternatives the lease got (0-based; absent without them):
    # its allocation was fitted to it, and its provider sizes the job by it
    alternative: int | None = None
    # the bytes (base64) of small inputs, by sha256: GET /v1/leases/{id} for the lease's own
    # provider, when all its inputs together are small (a remote call's payload), so that it
    # need not fetch them one round trip later; it checks each against its sha256 as a download
    inline_inputs: dict[str, str] = Field(default_factory=dict)
    # the heartbeat challenge of the interval in progress (interval 0 on the feed's ``match``):
    # for the lease's own provider while it runs, so that its first heartbeat needs no
    # ``GET /v1/leases/{id}/challenge`` (:func:`pasar.market.routes.leases.party_view`)
    challenge: Challenge | None = None


class LogAppended(WireModel):
    """A log chunk was appended; ``size`` is the offset of the next one."""

    ok: bool
    size: int
