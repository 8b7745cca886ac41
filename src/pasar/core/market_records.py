"""The records the market's state is made of: transactions, providers, orders, leases.

Plain mutable dataclasses owned by :class:`pasar.core.state.MarketState`; kept apart so that
the state machine's module holds only the transitions. ``fail`` and ``not_found`` are the
state machine's one way of building its errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pasar.core.capacity import CapacityStatus
from pasar.core.errors import PasarError
from pasar.core.fees import Charges, FeeSchedule
from pasar.core.money import Money
from pasar.core.orders import Order
from pasar.core.pricing.book import Asks
from pasar.core.record_journal import REPLACED_WHOLE
from pasar.core.reputation import Reputation
from pasar.core.resources import Allocation, GpuModel, Inventory
from pasar.core.spec import JobSpec

#: Lease statuses that keep their order going: running, or held while its result is checked.
LIVE_LEASE = frozenset({"running", "held"})


def fail(message: str, *, code: str, status: int = 400, **kw: Any) -> PasarError:
    return PasarError(message, code=code, status=status, **kw)


def not_found(what: str, ident: object) -> PasarError:
    return fail(f"no {what} {ident!r}", code="not_found", status=404, field=f"{what}_id")


@dataclass(frozen=True)
class Tx:
    """A verified transaction: the envelope's body, who signed it, and when the market took it.

    ``ts`` is the signer's claim (it only proves freshness); ``at`` is the market's own stamp,
    recorded with the transaction in the log and the blocks, and the only time any rule uses:
    a signer cannot backdate a cancel or forward-date a receipt.
    """

    type: str
    body: Mapping[str, Any]
    signer: str
    nonce: str
    ts: int
    digest: str
    at: int

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any], digest: str, *, at: int) -> Tx:
        body = envelope.get("body")
        if not isinstance(body, Mapping) or not isinstance(body.get("type"), str):
            raise fail(
                "the envelope's body needs a string 'type'", code="invalid_tx", field="body.type"
            )
        return cls(
            type=body["type"],
            body=body,
            signer=str(envelope["signer"]),
            nonce=str(envelope["nonce"]),
            ts=int(envelope["ts"]),
            digest=digest,
            at=at,
        )


# -- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LivenessProbe:
    """A liveness challenge of a provider suspected dead (its feed dropped, a heartbeat came
    late): it must answer by ``deadline`` (ms) or its running leases are lost. Frozen: a
    handler replaces it whole (answered), so the record journal keeps it by reference."""

    id: str
    at: int
    deadline: int
    reason: str
    answered_at: int | None = None

    def missed(self, now_ms: int) -> bool:
        """Unanswered past its deadline: the provider's leases may be declared lost."""
        return self.answered_at is None and now_ms > self.deadline

    def open(self, now_ms: int) -> bool:
        """Waiting for its answer: unanswered, deadline not yet passed."""
        return self.answered_at is None and now_ms <= self.deadline


@dataclass
class ProviderRecord:
    """A registered provider: what it owns, what it asks, how it has behaved."""

    id: str
    inventory: Inventory
    asks: Asks
    rate_per_score_hour: Money | None
    score: int
    region: str | None
    attributes: dict[str, str]
    registered_at: int
    reputation: Reputation = field(default_factory=Reputation.initial)
    running: dict[str, Allocation] = field(default_factory=dict)
    available: bool = True  # False while draining: keeps its leases, takes no new work
    capacity: CapacityStatus = field(default_factory=CapacityStatus)  # its capacity proofs
    # the market's latest liveness challenge of it (core/liveness_handlers.py), if any
    probe: LivenessProbe | None = None

    def free(self) -> Inventory:
        """The inventory minus what running leases hold: their own devices (by NVML index),
        so what is free keeps the identity of every GPU and a new lease can never be handed one
        that a running lease holds."""
        cpus, memory, disk = self.inventory.cpus, self.inventory.memory_gb, self.inventory.disk_gb
        held: list[int] = []
        for allocation in self.running.values():
            held.extend(d.index for d in allocation.devices)
            cpus -= allocation.cpus
            memory -= allocation.memory_gb
            disk -= allocation.disk_gb
        models, ids = self.inventory.without(held)
        gpus: list[str | GpuModel] = list(models)
        return Inventory.build(gpus=gpus, cpus=cpus, memory_gb=memory, disk_gb=disk, devices=ids)


@dataclass
class AuctionWindowState:
    """The current sealed-bid window of an auction order."""

    opened_at: int
    deadline: int
    invited: frozenset[str]
    bids: dict[str, Money | None] = field(default_factory=dict)  # None: declined

    def ready(self, now_ms: int) -> bool:
        return self.invited <= self.bids.keys() or now_ms >= self.deadline


@dataclass
class OrderRecord:
    id: str
    client: str
    spec: JobSpec
    order: Order
    mechanism: str
    fees: FeeSchedule
    escrow_per_lease: Money
    created_at: int
    deadline: int
    status: str = "open"  # open | running | done | expired | cancelled
    leases: list[str] = field(default_factory=list)
    free_shards: list[int] = field(default_factory=list)
    # why each provider did not get a lease: replaced by each match, never changed in place
    reasons: dict[str, str] = field(default_factory=dict, metadata=REPLACED_WHOLE)
    note: str | None = None
    window: AuctionWindowState | None = None
    # the sha256 of the job's private part (:mod:`pasar.core.private_part`): the chain's
    # commitment to the command, environment and inputs it never carries
    private: str = ""
    # whether verifiers compare outputs within the spec's tolerances (its private ``compare``)
    tolerant: bool = False
    # a re-queued shard carries on with what was left of its lease's escrow
    shard_escrow: dict[int, Money] = field(default_factory=dict)
    # the verification policy (normalized spec value, or the network's default at creation)
    verification: str = "receipt"
    # rejected runs of each shard (``verification: approve``): the job ends at the policy's limit
    rejections: dict[int, int] = field(default_factory=dict)
    # a running cluster's steps (``cluster.exec``): the sha256 of each command's blob, in order
    steps: list[str] = field(default_factory=list)

    def escrow_for_shard(self, shard: int) -> Money:
        return self.shard_escrow.get(shard, self.escrow_per_lease)

    def unfilled_escrow(self) -> Money:
        total = Money.zero(self.escrow_per_lease.currency)
        for shard in self.free_shards:
            total += self.escrow_for_shard(shard)
        return total

    @property
    def unfilled(self) -> int:
        return len(self.free_shards)


@dataclass
class LeaseRecord:
    id: str
    order_id: str
    provider: str
    client: str
    shard: int
    price_per_hour: Money
    allocation: Allocation
    started_at: int
    # running | held (receipt in, result being checked) | settled | failed | lost | cancelled
    # | released | rejected (its held result was rejected: paid nothing, its shard re-run)
    status: str = "running"
    beats: set[int] = field(default_factory=set)
    ended_at: int | None = None
    receipt: dict[str, Any] | None = field(default=None, metadata=REPLACED_WHOLE)
    charges: Charges | None = None
    billed_ms: int = 0
    # while held: when its check must be decided by (the policy's deadline), if it has one
    held_until: int | None = None
    settled_at: int | None = None  # when it was paid (later than ended_at when it was checked)
    # what signed the receipt (its digest): the replication draw is the market's signature of it
    receipt_digest: str | None = None
    # verification of a held lease: the market's draw (hex), the checks given to verifiers,
    # and how many verdicts the policy needs (0 until drawn; 1 for a spot check; the preset's
    # ``checkers`` once a spot check disagreed)
    draw: str | None = None
    checks: list[str] = field(default_factory=list)
    checks_needed: int = 0
    # a sealed job's key exchange (core/sealed_handlers.py): the X25519 key the provider
    # announced for this lease, and the data key sealed to each recipient (provider, verifiers)
    box_key: str | None = None
    sealed_keys: dict[str, str] = field(default_factory=dict)
    # why it ended, when that is not in its receipt (lost: which liveness check it failed)
    note: str | None = None
    # the part of its refund that went back into the order's escrow to re-run its shard
    # (released, lost, rejected): the client did not get it back, the next lease holds it
    rerun_escrow: Money | None = None
    # which of the order's resources.alternatives it runs under (None: the order has none);
    # its allocation was fitted to that one and its provider sizes the job by it
    alternative: int | None = None

    @property
    def billed_seconds(self) -> int:
        """Whole seconds billed (rounded down), for people; money uses :attr:`billed_ms`."""
        return self.billed_ms // 1000


@dataclass
class VerifierRecord:
    """A registered verifier: it re-runs leases' work and signs verdicts for a fee.

    ``operator`` is who runs it (an organisation's name, as providers may also declare in their
    ``operator`` attribute): a verifier never checks a provider of its own operator.
    ``available`` turns False when it misses a check's deadline, until it registers again.
    """

    id: str
    registered_at: int
    operator: str | None = None
    available: bool = True
    checks_done: int = 0
    checks_missed: int = 0


@dataclass
class CheckRecord:
    """One verifier's check of one held lease.

    ``status``: ``assigned`` (waiting for its verdict), ``done`` (verdict in), ``expired`` (the
    verifier missed ``deadline``; the lease gets another check). ``agrees`` is whether the
    verifier's result matched the provider's (exactly, or within the spec's tolerance).
    """

    id: str
    lease_id: str
    order_id: str
    verifier: str
    assigned_at: int
    deadline: int
    status: str = "assigned"
    root: str | None = None
    agrees: bool | None = None
    note: str | None = None
    challenge_id: str | None = None  # a check of a whistleblower's challenge, not of a hold
    # a pol verdict: "bitwise" or "tolerance" (another environment), and the distance it
    # measured in tolerance mode (decimal text) — :mod:`pasar.core.verify.pol`
    mode: str | None = None
    distance: str | None = None
    # tolerance mode calibrated per job: the noise between the verifier's own two replays and
    # the threshold it gave (decimal text) — :func:`pasar.core.verify.pol.calibrated_threshold`
    noise: str | None = None
    threshold: str | None = None


@dataclass
class ChallengeRecord:
    """A whistleblower's claim that a settled result is wrong, backed by a bond.

    ``status``: ``open`` (checkers re-run the lease), ``upheld`` (the majority found the result
    wrong: the provider is slashed, the whistleblower rewarded and its bond returned) or
    ``rejected`` (the result stands: the bond pays the checks and the rest goes to the
    provider it wrongly accused)."""

    id: str
    lease_id: str
    order_id: str
    whistleblower: str
    claim: str
    bond: Money
    opened_at: int
    status: str = "open"
    checks: list[str] = field(default_factory=list)


@dataclass
class Applied:
    """What one transaction did, for notifications and the API's answer."""

    type: str
    result: dict[str, Any] = field(default_factory=dict)
    providers: set[str] = field(default_factory=set)  # whose feeds to wake
    orders: set[str] = field(default_factory=set)  # whose watchers to wake
    # every provider's feed (a new posted-price order): said in one flag, not a set of 40,000
    all_providers: bool = False
