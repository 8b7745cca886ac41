"""A settled lease's bill: where each micro-unit of its escrow went."""

from __future__ import annotations

from pasar.api.base import WireModel
from pasar.core.fees import Charges
from pasar.core.money import Money


class Bill(WireModel):
    """Amounts as the market's money text (``"1.250000 USD"``); they add up to the escrow:
    ``provider_payout + treasury + reserve + refund + rerun``.

    ``refund`` is what this lease gave back to the client; ``rerun`` what it passed back to
    the order's escrow for its shard's next lease (a released, lost or rejected run), which
    the client gets back only if that lease does not use it. Summing ``refund`` over a job's
    leases never counts the same money twice."""

    billed: str
    provider_payout: str
    treasury: str
    reserve: str
    refund: str
    client_fee: str
    rerun: str

    @classmethod
    def of(cls, charges: Charges, rerun_escrow: Money | None = None) -> Bill:
        rerun = rerun_escrow or Money.zero(charges.refund.currency)
        return cls(
            billed=charges.billed.to_json(),
            provider_payout=charges.provider_payout.to_json(),
            treasury=charges.treasury.to_json(),
            reserve=charges.reserve.to_json(),
            refund=(charges.refund - rerun).to_json(),
            client_fee=charges.client_fee.to_json(),
            rerun=rerun.to_json(),
        )
