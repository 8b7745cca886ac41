"""What a market refuses in a job spec before it takes an order for it.

``order.create`` and the quote (``POST /v1/orders/quote``) both ask :func:`order_mechanism`,
so a spec the market would refuse is refused alike by both, with the same code, field and hint.
"""

from __future__ import annotations

from pasar.core.market_records import fail
from pasar.core.presets import Preset
from pasar.core.pricing.base import Mechanism
from pasar.core.spec import JobSpec

#: Privacy modes this market honours (a mode it did not would be refused, never ignored).
SUPPORTED_PRIVACY = ("none", "sealed")
#: Leases one order may ask for (shards × nodes): each is a slot the market keeps in memory,
#: and a near-free lease must not let one order fill the market's memory.
MAX_ORDER_LEASES = 10_000


def order_mechanism(preset: Preset, spec: JobSpec) -> Mechanism:
    """The mechanism an order for ``spec`` uses on a ``preset`` market; raises a 4xx naming the
    field for a pricing, verification, privacy or size the market does not take."""
    mechanism = preset.mechanism(spec.pricing)  # refuses one the network does not allow
    preset.verification_policy(spec.verification)  # 422 for one not available here
    verification = spec.verification or preset.verification.default
    if spec.num_nodes > 1 and verification.startswith("replicate"):
        raise fail(
            f"verification {verification!r} cannot check a multi-node job yet: a verifier "
            "re-runs one lease, and a node's result depends on the whole gang",
            code="verification_unavailable",
            status=422,
            field="spec.verification",
            hint="use verification: receipt or approve for num_nodes above 1",
        )
    if spec.shares_providers and not mechanism.packs_gangs:
        raise fail(
            f"pricing {mechanism.name!r} cannot place several nodes of a job on one provider "
            "(placement: spread): it prices a lease by the whole provider",
            code="placement_unavailable",
            status=422,
            field="spec.placement",
            hint="leave placement out (strict_spread: a provider per node), or choose another "
            "pricing mechanism",
        )
    if spec.privacy not in SUPPORTED_PRIVACY:
        # accepting it and then storing the job in plain text would be a lie to the client
        raise fail(
            f"privacy {spec.privacy!r} is not available on this market yet: the job would be "
            "stored and sent in plain text",
            code="privacy_unavailable",
            status=422,
            field="spec.privacy",
            hint="leave privacy out (none) until sealed jobs exist, or do not send secrets",
        )
    if spec.lease_count > MAX_ORDER_LEASES:
        raise fail(
            f"the job asks for {spec.lease_count} leases; one order takes at most "
            f"{MAX_ORDER_LEASES}",
            code="too_many_leases",
            status=422,
            field="spec.shards" if spec.shards > 1 else "spec.num_nodes",
            hint="split the work into several orders",
        )
    return mechanism
