"""An account's balances and its signed history."""

from __future__ import annotations

from pasar.api.base import JSONObject, WireModel


class Balance(WireModel):
    """Spendable, earnings, stake and escrowed amounts, as money text."""

    account: str
    currency: str
    balance: str
    earnings: str
    stake: str
    escrow: str


class HistoryTx(WireModel):
    """One transaction the account signed; ``body`` is the signed body as sent."""

    seq: int
    type: str
    ts: int
    digest: str
    body: JSONObject


class History(WireModel):
    account: str
    txs: list[HistoryTx]
    next: int
