"""``verification: approve`` — the client judges each shard's result (Render's frame approval).

A successful receipt is not paid on arrival: the lease is *held* until the client approves its
result (``result.approve``), rejects it (``result.reject``), or the preset's
``approve_window_s`` passes and the market approves it on the client's behalf
(``result.auto_approve``). Approval pays the provider for its verified time up to the receipt,
as ``receipt`` would have; a rejection pays nothing, the lease's whole escrow goes back to the
order and the shard is re-run on another provider (:meth:`ApprovePolicy.exclusions`), paid
from that escrow at the new provider's price. The rejected run costs the client nothing, so
each re-run has a full lease's escrow and the order escrows exactly what ``receipt`` does.
After ``max_reruns`` rejected runs of one shard the job ends and the client is refunded
(:mod:`pasar.core.approval_handlers`).

A failure receipt has no result to judge: it keeps the ``receipt`` behaviour (settled as
failed, re-queued when the provider was at fault).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pasar.core.errors import PasarError
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

if TYPE_CHECKING:
    from pasar.core.presets import Verification as VerificationRules

MS = 1000
#: A lease status that says the client rejected the lease's result (set by ``carry_out``).
REJECTED = "rejected"


@dataclass(frozen=True)
class ApprovePolicy:
    """Hold each successful receipt until the client judges it, at most ``window_s``."""

    window_s: int
    max_reruns: int
    name: str = "approve"

    @property
    def max_rejections(self) -> int:
        """Rejected runs of one shard after which the job ends (at least one)."""
        return max(1, self.max_reruns)

    def escrow_per_lease(self, spec: JobSpec, fees: FeeSchedule) -> Money:
        # a rejected run is paid nothing: its whole escrow carries the re-run
        return fees.escrow_for(spec.max_escrow_per_lease())

    def leases_needed(self, spec: JobSpec) -> int:
        return spec.lease_count

    def exclusions(self, order: OrderRecord, leases: Sequence[LeaseRecord]) -> Mapping[str, str]:
        """Providers whose run of a shard waiting for a re-run was rejected. A clearing may
        hand out several of the order's shards at once, so a provider rejected on any waiting
        shard sits the whole clearing out: a rejected shard never goes back to it."""
        waiting = set(order.free_shards)
        return {
            lease.provider: f"its result for shard {lease.shard} of this order was rejected"
            for lease in leases
            if lease.status == REJECTED and lease.shard in waiting
        }

    def on_receipt(self, receipt: ReceiptFacts) -> ReceiptDecision:
        if receipt.failed:
            return Settle()
        return Hold(
            reason="waiting for the client's approval",
            until_ms=receipt.at + self.window_s * MS,
        )

    def compare(self, results: Sequence[Result]) -> Verdict:
        """Nothing to compare: the client's word is the verdict (given by the handlers)."""
        return Verdict(pending=True)

    def outcome(self, verdict: Verdict, results: Sequence[Result]) -> Outcome:
        return Outcome(pay=verdict.accepted, refund=verdict.rejected)


def build_approve(argument: str, rules: VerificationRules) -> ApprovePolicy:
    """The policy for a preset's rules; refused on a network with no approval window (the
    preset's ``approve_window_s`` is 0: "no approval step"), where every result would be
    approved for the client before it could look."""
    if rules.approve_window_s <= 0:
        raise PasarError(
            "verification 'approve' is not available on this market: its preset has no "
            "approval window",
            code="verification_unavailable",
            status=422,
            field="spec.verification",
            hint="use a network whose preset approves by the client (e.g. --preset render), "
            "or verification: receipt",
        )
    return ApprovePolicy(rules.approve_window_s, rules.max_reruns)
