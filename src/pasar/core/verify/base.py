"""The verification seam: what a policy decides, as data the market state carries out.

A job spec names how its results are checked (``verification: receipt``, ``replicate:0.1``,
``pol``, ``approve``, ``tee``; docs/jobspec.md). Like a pricing :class:`Mechanism`, a
verification policy is pure: it never touches the ledger or the records. It answers the
market's questions, and :class:`~pasar.core.state.MarketState` executes the answers through
the ledger, so a replay of the log (the audit) re-derives every decision:

* **escrow** — how much an order locks per lease (:meth:`VerificationPolicy.escrow_per_lease`)
  and how many leases it needs (:meth:`~VerificationPolicy.leases_needed`): a policy that re-runs
  shards on verifiers must escrow for the re-runs too;
* **placement** — who may not take a lease of this order (:meth:`~VerificationPolicy.exclusions`):
  a replica must not run on the provider whose result it checks;
* **a receipt** — :class:`Settle` it at once, or :class:`Hold` the lease's escrow while the
  result is checked (:meth:`~VerificationPolicy.on_receipt`);
* **comparison** — the results gathered for one shard give a :class:`Verdict`
  (:meth:`~VerificationPolicy.compare`): roots equal, a checker majority, a client's approval;
* **outcome** — who is paid, who is refunded, who is slashed and who earns the reward for
  proving the fraud (:meth:`~VerificationPolicy.outcome`), as an :class:`Outcome`.

Adding a policy is a new module in this package and one row in its registry
(:data:`pasar.core.verify.BUILDERS`); nothing in the state machine branches on policy names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pasar.core.fees import FeeSchedule
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.money import Money
from pasar.core.spec import JobSpec

if TYPE_CHECKING:
    from pasar.core.verify.replicate import Tally


@dataclass(frozen=True)
class ReceiptFacts:
    """What a policy sees of a receipt when it decides what happens to the lease.

    ``root`` is the Merkle root of the outputs (already checked against them); ``failed`` says
    the receipt reports a failure (no result to check); ``at`` is the market's stamp.
    """

    lease_id: str
    order_id: str
    provider: str
    shard: int
    root: str
    failed: bool
    at: int
    # a failure whose claim a re-run can check (``missing_outputs``: the receipt carries what
    # the job did write): a re-running policy holds it like a result (see
    # :data:`pasar.core.receipts.CHECKED_FAILURES`)
    checkable: bool = False


@dataclass(frozen=True)
class Settle:
    """Settle the lease now on its receipt: the provider is paid for its verified time."""


@dataclass(frozen=True)
class Hold:
    """Keep the lease's escrow where it is until a check decides (a re-run, a client's approval).

    The lease ends (its time stops at the receipt and its capacity is freed) but is not paid;
    ``reason`` is told to the client, ``until_ms`` is when the check must be decided by, if the
    policy has a deadline.
    """

    reason: str
    until_ms: int | None = None


ReceiptDecision = Settle | Hold
"""What :meth:`VerificationPolicy.on_receipt` answers."""


@dataclass(frozen=True)
class Result:
    """One lease's answer for a shard: who ran it and the Merkle root of what it produced.

    A verifier's check is a result too (``lease_id`` is then the check's id, ``provider`` the
    verifier); ``agrees`` says whether it matched the provider's result."""

    lease_id: str
    provider: str
    root: str
    agrees: bool | None = None


@dataclass(frozen=True)
class Verdict:
    """What comparing one shard's results decided.

    ``accepted``: the leases whose results stand; ``rejected``: those proven wrong; ``pending``:
    nothing is decided yet (a mismatch waiting for a checker majority, an approval window).
    """

    accepted: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    pending: bool = False


@dataclass(frozen=True)
class SlashOrder:
    """Take ``amount`` of ``provider``'s stake; the preset's ``slash_reward_rate`` of it goes to
    ``reward_to`` (whoever proved the fraud: a verifier, a whistleblower), the rest is burned."""

    provider: str
    amount: Money
    reward_to: str


@dataclass(frozen=True)
class Outcome:
    """Who gets what once a verdict is in, as data the state carries out through the ledger.

    ``pay``: leases settled for their verified time (their provider is paid); ``refund``: leases
    paid nothing, their escrow going back to the order (re-queued while the order is open);
    ``slash``: stake taken from cheats.
    """

    pay: tuple[str, ...] = ()
    refund: tuple[str, ...] = ()
    slash: tuple[SlashOrder, ...] = ()


class VerificationPolicy(Protocol):
    """How one verification policy answers the market's questions (all pure)."""

    @property
    def name(self) -> str:
        """The policy's kind as a spec names it (``receipt``, ``replicate``...)."""
        ...

    def escrow_per_lease(self, spec: JobSpec, fees: FeeSchedule) -> Money:
        """What the order locks for each of its leases, fees included."""
        ...

    def leases_needed(self, spec: JobSpec) -> int:
        """How many leases the order needs in all (shards × nodes, plus any re-runs)."""
        ...

    def exclusions(self, order: OrderRecord, leases: Sequence[LeaseRecord]) -> Mapping[str, str]:
        """Providers that may not take this order's next lease, each with the reason."""
        ...

    def on_receipt(self, receipt: ReceiptFacts) -> ReceiptDecision:
        """Settle the lease at once, or hold its escrow while its result is checked."""
        ...

    def compare(self, results: Sequence[Result]) -> Verdict:
        """Judge the results gathered for one shard."""
        ...

    def outcome(self, verdict: Verdict, results: Sequence[Result]) -> Outcome:
        """Who is paid, refunded or slashed once ``verdict`` is in."""
        ...


@runtime_checkable
class CheckedPolicy(Protocol):
    """A policy whose held results verifiers re-check (``replicate``): the market draws which
    receipts are checked, assigns checks to verifiers, and tallies their verdicts. The state
    asks a policy whether it is one (``isinstance``), never its name.

    ``verdict_by_match``: a verdict's ``matches`` is the comparison (a sampled replay, pol),
    not its root against the provider's (a full re-run)."""

    @property
    def verdict_by_match(self) -> bool: ...

    def check_fee(self, cost: Money) -> Money:
        """What a verifier earns for re-running a lease whose work cost ``cost``."""
        ...

    def drawn(self, draw_signature: bytes) -> bool:
        """Whether the market's draw selects the lease for a check."""
        ...

    def tally(self, agrees: Sequence[bool], *, needed: int) -> Tally:
        """Where the verdicts so far leave the lease."""
        ...
