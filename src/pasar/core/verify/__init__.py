"""Verification policies, one module each behind the
:class:`~pasar.core.verify.base.VerificationPolicy` protocol, and the one table that maps a
policy's name to how it is built (mirroring :mod:`pasar.core.pricing`).

A spec names a policy as ``KIND`` or ``KIND:ARGUMENT`` (``replicate:0.1``); the builder gets the
argument and the preset's ``[verification]`` rules (checkers, slash reward rate, approval
window). What this registry holds is what a market accepts: any other policy is refused at
order time (422 ``verification_unavailable``) rather than silently settled on the receipt.
Adding a policy is a new module plus one row in :data:`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from pasar.core.errors import PasarError
from pasar.core.verify.approve import build_approve
from pasar.core.verify.base import VerificationPolicy
from pasar.core.verify.pol import build_pol
from pasar.core.verify.receipt import ReceiptPolicy
from pasar.core.verify.replicate import ReplicatePolicy
from pasar.core.verify.tee import TeePolicy

if TYPE_CHECKING:
    from pasar.core.presets import Verification

PolicyBuilder = Callable[[str, "Verification"], VerificationPolicy]
"""``(argument after the ':', the preset's verification rules) -> policy``."""

BUILDERS: dict[str, PolicyBuilder] = {
    "receipt": lambda _argument, _rules: ReceiptPolicy(),
    "approve": build_approve,
    "replicate": lambda argument, rules: ReplicatePolicy(
        rate=_rate(argument),
        checkers=rules.checkers,
        check_fee_rate=rules.check_fee_rate,
        slash_rate=rules.slash_rate,
    ),
    "tee": lambda _argument, _rules: TeePolicy(),
    "pol": build_pol,
}


def _rate(argument: str) -> Fraction:
    """``replicate:RATE`` as an exact fraction (the spec normalized it: ``0.1``, ``1``)."""
    return Fraction(Decimal(argument or "1"))


#: Why a policy a spec may name is refused for now (said, never silently replaced).
NOT_YET: dict[str, str] = {}


def policy_names() -> tuple[str, ...]:
    """The policies this market accepts (read live, so a registered policy counts at once)."""
    return tuple(BUILDERS)


def build_policy(verification: str, rules: Verification) -> VerificationPolicy:
    """The policy a spec's ``verification`` value names, configured by the preset's rules."""
    kind, _, argument = verification.partition(":")
    builder = BUILDERS.get(kind)
    if builder is None:
        why = NOT_YET.get(kind, "")
        raise PasarError(
            f"verification {verification!r} is not available on this market yet" + why,
            code="verification_unavailable",
            status=422,
            field="spec.verification",
            hint="use verification: "
            + " or ".join(n + (":RATE" if n == "replicate" else "") for n in policy_names()),
        )
    return builder(argument, rules)


__all__ = ["BUILDERS", "PolicyBuilder", "VerificationPolicy", "build_policy", "policy_names"]
