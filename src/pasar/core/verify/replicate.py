"""``verification: replicate:p`` — a verifier re-runs a share ``p`` of the results.

Why: a provider's signed receipt proves who answered, not that the answer is the job's. A
re-run by somebody else, on a share of the shards nobody can predict, makes cheating a bet
that loses with probability ``p`` per shard, and a 2N+1 majority of checkers (Aethir's checker
nodes) settles who was wrong when two results differ.

The steps, each a transaction the audit replays:

1. **receipt** — a successful receipt holds the lease (:class:`Hold`): its time stops, its
   escrow waits. A failure receipt has no result to check and settles as under ``receipt``.
2. **draw** (market) — the market signs ``draw_message(lease, receipt digest)``; Ed25519 is
   deterministic, so the market cannot grind it, and neither client nor provider can compute
   it before the receipt is in. :meth:`ReplicatePolicy.drawn` turns the signature into a
   yes/no with probability ``p``. No → the lease is paid at once. Yes → one check is needed.
3. **check** (market assigns, verifier answers) — a verifier re-runs the shard from the same
   inputs and signs its result's Merkle root. Roots equal (or, for outputs the spec compares
   with a tolerance, the verifier's comparison agrees) → the provider is paid and so is the
   verifier. A disagreement escalates to ``checkers`` (2N+1) checks in all, the first one
   counting; the provider never votes.
4. **majority** — as soon as N+1 verdicts agree, :meth:`ReplicatePolicy.tally` decides.
   The provider right: it is paid, the verifiers who disagreed are slashed. The provider
   wrong: it is paid nothing, its lease's escrow goes back to the order and the shard runs
   again on another provider (:meth:`exclusions`), it is slashed, and so is any verifier who
   sided with it. Verifiers in the majority earn their check fee from the lease's escrow.

A check earns ``check_fee_rate`` × what the checked lease's work cost (its verified time at
its price): re-running is the same work. The order escrows each lease's cap plus fees (as
``receipt``) plus room for ``checkers`` such fees on a lease that used its whole cap; what no
check used goes back at settlement. The client's overhead is then about ``p × rate`` of the
work on an honest fleet (``benchmarks/bench_verification.py`` measures it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from pasar.core.fees import FeeSchedule
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.money import Money
from pasar.core.spec import JobSpec
from pasar.core.verify.base import (
    Hold,
    Outcome,
    ReceiptDecision,
    ReceiptFacts,
    Result,
    Settle,
    Verdict,
)

DRAW_SCALE = 1 << 64
WAITING_FOR_DRAW = "waiting for the market's replication draw"


def draw_message(lease_id: str, receipt_digest: str) -> bytes:
    """What the market signs to draw whether a receipt is re-run: it names the lease and the
    digest of the signed receipt, so the draw exists only once the receipt does."""
    return f"pasar-replication-draw\n{lease_id}\n{receipt_digest}".encode()


@dataclass(frozen=True)
class Tally:
    """Where the verdicts on one lease stand.

    ``needed``: how many verdicts the policy wants in all now (it grows from 1 to
    ``checkers`` on a disagreement); ``provider_right``: None while undecided;
    ``majority``/``minority``: the verdicts' indexes on each side once decided.
    """

    needed: int
    provider_right: bool | None = None
    majority: tuple[int, ...] = ()
    minority: tuple[int, ...] = ()

    @property
    def decided(self) -> bool:
        return self.provider_right is not None


@dataclass(frozen=True)
class ReplicatePolicy:
    """Re-run a share ``rate`` of the results; 2N+1 checkers settle a disagreement."""

    rate: Fraction
    checkers: int = 3
    check_fee_rate: Fraction = Fraction(1)
    slash_rate: Fraction = Fraction(1, 2)
    name: str = "replicate"
    # a verdict's ``matches`` decides (pol: the verifier compared what it replayed), rather
    # than its root against the provider's (a full re-run)
    verdict_by_match: bool = False

    # -- the seam's questions -----------------------------------------------------------------

    def escrow_per_lease(self, spec: JobSpec, fees: FeeSchedule) -> Money:
        """The receipt escrow, plus room for ``checkers`` checks of a lease that used its cap."""
        cap = spec.max_escrow_per_lease()
        return fees.escrow_for(cap) + self.check_fee(cap) * self.checkers

    def leases_needed(self, spec: JobSpec) -> int:
        return spec.lease_count

    def exclusions(self, order: OrderRecord, leases: Sequence[LeaseRecord]) -> Mapping[str, str]:
        """A shard proven wrong does not go back to the provider that got it wrong."""
        return {
            lease.provider: f"its result for shard {lease.shard} of this order was proven wrong"
            for lease in leases
            if lease.status == "rejected"
        }

    def on_receipt(self, receipt: ReceiptFacts) -> ReceiptDecision:
        if receipt.failed and not receipt.checkable:
            return Settle()
        return Hold(WAITING_FOR_DRAW)

    def compare(self, results: Sequence[Result]) -> Verdict:
        """``results[0]`` is the provider's, the rest are checks with their ``agrees``."""
        provider, checks = results[0], results[1:]
        tally = self.tally([bool(r.agrees) for r in checks], needed=len(checks) or 1)
        if not tally.decided:
            return Verdict(pending=True)
        majority = tuple(checks[i].lease_id for i in tally.majority)
        minority = tuple(checks[i].lease_id for i in tally.minority)
        if tally.provider_right:
            return Verdict(accepted=(provider.lease_id, *majority), rejected=minority)
        return Verdict(accepted=majority, rejected=(provider.lease_id, *minority))

    def outcome(self, verdict: Verdict, results: Sequence[Result]) -> Outcome:
        """Only the provider's lease carries escrow: paid when accepted, refunded (and
        re-queued) when rejected. Slashes and check fees are the check handlers' to carry out,
        since they need the stakes and the lease's cap (:mod:`pasar.core.check_handlers`)."""
        provider = results[0].lease_id
        if provider in verdict.accepted:
            return Outcome(pay=(provider,))
        if provider in verdict.rejected:
            return Outcome(refund=(provider,))
        return Outcome()

    # -- what checks need -----------------------------------------------------------------------

    def check_fee(self, cost: Money) -> Money:
        """What a verifier earns for re-running a lease whose work cost ``cost``: the preset's
        ``check_fee_rate`` of it (1 = paid what the provider was paid: it did the same work)."""
        return cost.scale(self.check_fee_rate)

    def drawn(self, draw_signature: bytes) -> bool:
        """Whether the market's draw signature selects the lease for a re-run (chance ``rate``)."""
        digest = hashlib.sha256(draw_signature).digest()
        return Fraction(int.from_bytes(digest[:8], "big"), DRAW_SCALE) < self.rate

    def tally(self, agrees: Sequence[bool], *, needed: int) -> Tally:
        """Decide from the verdicts in so far (``agrees[i]``: check i matched the provider).

        While one check is needed (a spot check), its verdict decides when it agrees; a
        disagreement asks for ``checkers`` in all. With ``checkers`` wanted, the first side to
        reach N+1 wins."""
        if needed <= 1 and self.checkers > 1:
            if not agrees:
                return Tally(needed=1)
            if agrees[0]:
                return Tally(needed=1, provider_right=True, majority=(0,))
            return Tally(needed=self.checkers)
        quorum = self.checkers // 2 + 1
        yes = tuple(i for i, a in enumerate(agrees) if a)
        no = tuple(i for i, a in enumerate(agrees) if not a)
        if len(yes) >= quorum:
            return Tally(needed=self.checkers, provider_right=True, majority=yes, minority=no)
        if len(no) >= quorum:
            return Tally(needed=self.checkers, provider_right=False, majority=no, minority=yes)
        return Tally(needed=self.checkers)
