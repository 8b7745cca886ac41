"""``verification: receipt`` — the provider's signed receipt is the proof.

The market checks what it can without re-running anything: the receipt is signed by the
lease's provider and its root is the Merkle root of the outputs it lists (both checked before a
policy is asked). There is nothing to compare: the lease settles at once, one lease per shard
and node, anyone may run it, and nobody is slashed. The escrow is the spec's cap
(``max_price_per_hour × max_duration``) plus the network's client-side fees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pasar.core.fees import FeeSchedule
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.money import Money
from pasar.core.spec import JobSpec
from pasar.core.verify.base import (
    Outcome,
    ReceiptDecision,
    ReceiptFacts,
    Result,
    Settle,
    Verdict,
)


@dataclass(frozen=True)
class ReceiptPolicy:
    """Trust the signed receipt: settle on arrival."""

    name: str = "receipt"

    def escrow_per_lease(self, spec: JobSpec, fees: FeeSchedule) -> Money:
        return fees.escrow_for(spec.max_escrow_per_lease())

    def leases_needed(self, spec: JobSpec) -> int:
        return spec.lease_count

    def exclusions(self, order: OrderRecord, leases: Sequence[LeaseRecord]) -> Mapping[str, str]:
        return {}

    def on_receipt(self, receipt: ReceiptFacts) -> ReceiptDecision:
        return Settle()

    def compare(self, results: Sequence[Result]) -> Verdict:
        """A receipt is its own verdict: every result stands."""
        return Verdict(accepted=tuple(r.lease_id for r in results))

    def outcome(self, verdict: Verdict, results: Sequence[Result]) -> Outcome:
        return Outcome(pay=verdict.accepted, refund=verdict.rejected)
