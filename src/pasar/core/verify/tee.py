"""``verification: tee`` — the receipt rules, run only on attested TEE providers.

The result is trusted as a signed receipt is (settled on arrival, nothing re-run, nobody
slashed); what ``tee`` adds is *where* the job may run: only on a provider whose TDX/SGX quote
the market verified and recorded (``tee.attest``, :mod:`pasar.core.tee`), still valid, and
with the measurements the spec pins, if it pins any. The state asks a policy whether it
``requires_attestation``; it never branches on the policy's name.

What this proves is the provider's code and platform (measured boot, up-to-date TCB), not the
job's output: a TEE provider that runs the job it attested to cannot change the result
unseen. GPU TEEs (NVIDIA confidential computing) are out of scope: the quote covers the CPU TEE.
"""

from __future__ import annotations

from dataclasses import dataclass

from pasar.core.verify.receipt import ReceiptPolicy


@dataclass(frozen=True)
class TeePolicy(ReceiptPolicy):
    """Settle on the receipt; match only attested providers (:mod:`pasar.core.tee`)."""

    name: str = "tee"
    requires_attestation: bool = True
