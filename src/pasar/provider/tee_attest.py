"""The provider's side of TEE attestation: get a nonce from the market, have the TEE sign a
quote binding this provider's key and that nonce, fetch the quote's collateral, present both.

Runs only where a :class:`~pasar.tee.sources.QuoteSource` is present (a TDX guest, a Phala
CVM). The collateral comes from a PCCS (Phala's by default) through dcap-qvl; the market
verifies everything again at its own clock, so nothing here is trusted by it.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from collections.abc import Callable
from typing import Any

from pasar.api import txs
from pasar.client import calls
from pasar.client.calls import Call
from pasar.crypto.identity import Identity
from pasar.tee.binding import report_data_for
from pasar.tee.sources import QuoteSource
from pasar.tee.verify import dcap

PCCS_URL = "https://pccs.phala.network"


def fetch_collateral(quote: bytes, pccs_url: str = PCCS_URL) -> str:
    """The quote's collateral as dcap-qvl's JSON (needs the network: a PCCS)."""
    got: Any = dcap().get_collateral(pccs_url, quote)
    if inspect.isawaitable(got):
        got = asyncio.run(_wait(got))
    return str(got.to_json())


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def attest(
    perform: Callable[[Call[Any]], Any],
    identity: Identity,
    source: QuoteSource,
    collateral_of: Callable[[bytes], str] = fetch_collateral,
) -> dict[str, Any]:
    """Attest once; the market's recorded attestation (a PasarError when it refuses)."""
    issued: txs.TeeNonce = perform(calls.tee_nonce(identity.account_id))
    report_data = report_data_for(identity.public_key, bytes.fromhex(issued.nonce))
    quote = source.quote(report_data)
    body = txs.TeePresent(
        provider=identity.account_id,
        quote=base64.b64encode(quote).decode(),
        collateral=collateral_of(quote),
        nonce=issued.nonce,
        nonce_issued_at=issued.nonce_issued_at,
    )
    answer: dict[str, Any] = perform(calls.tee_present(body))
    return answer
