"""The chain and the log, as auditors read them.

A block and a logged envelope are JSON objects whose shape :mod:`pasar.market.chain` and
:mod:`pasar.crypto.envelope` own (an audit re-hashes them exactly as they are), so they travel
as :data:`~pasar.api.base.JSONObject`; the pages around them are typed.
"""

from __future__ import annotations

from pasar.api.base import JSONObject, WireModel


class ChainHead(WireModel):
    """The latest block (None before the first) and how many transactions the state holds."""

    market: str
    preset: str
    height: int | None
    block: JSONObject | None
    tx_count: int


class BlockList(WireModel):
    blocks: list[JSONObject]


class LoggedTx(WireModel):
    """One accepted transaction: its log position, digest, the market's stamp, the envelope."""

    seq: int
    digest: str
    at: int
    envelope: JSONObject


class TxLog(WireModel):
    txs: list[LoggedTx]


class Balances(WireModel):
    """Every non-zero ledger balance as ``{account/currency: amount}``."""

    tx_count: int
    balances: dict[str, str]
