"""A settled lease's bill: where each micro-unit of its escrow went."""

from __future__ import annotations

from pasar.api.base import WireModel
from pasar.core.fees import Charges


class Bill(WireModel):
    """Amounts as the market's money text (``"1.250000 USD"``); they add up to the escrow."""

    billed: str
    provider_payout: str
    treasury: str
    reserve: str
    refund: str
    client_fee: str

    @classmethod
    def of(cls, charges: Charges) -> Bill:
        return cls(
            billed=charges.billed.to_json(),
            provider_payout=charges.provider_payout.to_json(),
            treasury=charges.treasury.to_json(),
            reserve=charges.reserve.to_json(),
            refund=charges.refund.to_json(),
            client_fee=charges.client_fee.to_json(),
        )
