"""An in-process market state and a sender of unsigned transactions, for the benchmarks that
time :class:`~pasar.core.state.MarketState` itself (no HTTP, no signatures: what is measured
is the state machine)."""

from __future__ import annotations

import hashlib
from typing import Any

from pasar.core.market_records import Tx
from pasar.core.presets import builtin_preset
from pasar.core.state import MarketState
from pasar.crypto.identity import Identity, verify_signature

MARKET = Identity.from_seed(bytes(32))
T0 = 1_700_000_000_000


class Sender:
    """Transactions as the market would stamp them, each with a fresh nonce."""

    def __init__(self) -> None:
        self.n = 0

    def tx(self, signer: str, at: int, **body: Any) -> Tx:
        self.n += 1
        nonce = f"{self.n:032x}"
        digest = hashlib.sha256(nonce.encode()).hexdigest()
        return Tx(body["type"], body, signer, nonce, at, digest, at)


def funded_state() -> tuple[MarketState, Sender]:
    """A devnet market on the pasar preset whose ``client`` holds 10,000 USDC."""
    s = MarketState(
        builtin_preset("pasar"),
        market_id=MARKET.account_id,
        verify_market_signature=lambda m, sig: verify_signature(MARKET.public_key, m, sig),
        devnet=True,
    )
    send = Sender()
    s.apply(send.tx("client", T0, type="faucet", amount="10000 USDC"))
    return s, send
