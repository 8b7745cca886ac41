"""The market's side of TEE attestation: verify a provider's presented quote and record it.

The route (:mod:`pasar.market.routes.tee`) checks who signed; this module does the rest, in
the order that refuses cheapest first: the body's shape, that the provider is registered, that
the nonce is one this market issued to it within :data:`~pasar.core.tee.NONCE_TTL_MS`, the quote
itself (dcap-qvl **at the market's clock**: signatures, TCB status, collateral expiry), and that
its report data binds the provider's key and that nonce. Only then is a market-signed
``tee.attest`` submitted. A refusal records nothing and charges nothing.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import ValidationError

from pasar.api.txs import TeeAttest, TeePresent
from pasar.core.errors import PasarError
from pasar.core.market_records import Applied
from pasar.core.tee import NONCE_TTL_MS, nonce_message
from pasar.crypto.identity import public_key_of, verify_signature
from pasar.market.service import MarketService
from pasar.tee.binding import check_binding
from pasar.tee.verify import verify_quote


def accept(service: MarketService, data: object, provider_id: str) -> Applied:
    """Verify the presented ``data`` (a ``tee.present`` body) for ``provider_id`` and record
    its verdict; a 4xx PasarError when anything is wrong."""
    body = _presented(data)
    if body.provider != provider_id:
        raise PasarError(
            f"body.provider {body.provider!r} does not match the URL's {provider_id!r}",
            code="path_mismatch",
            field="body.provider",
        )
    with service.lock:
        known = provider_id in service.state.providers
    if not known:
        raise not_registered(provider_id)
    now = service.clock()
    nonce = _fresh_nonce(service.identity.public_key, body, now)
    try:
        quote = base64.b64decode(body.quote, validate=True)
    except (binascii.Error, ValueError):
        raise PasarError(
            "quote is not base64", code="invalid_quote", status=422, field="quote"
        ) from None
    verdict = verify_quote(quote, body.collateral, now // 1000)
    check_binding(verdict.report_data, public_key_of(provider_id), nonce)
    return service.submit_market(
        TeeAttest(
            provider=provider_id,
            tee="TDX" if verdict.tee == "TDX" else "SGX",
            tcb_status=verdict.tcb_status,
            advisories=list(verdict.advisories),
            measurements=dict(verdict.measurements),
            quote_sha256=verdict.quote_sha256,
            expires_at=verdict.collateral_expires_at * 1000,
            nonce=body.nonce,
            nonce_issued_at=body.nonce_issued_at,
        )
    )


def not_registered(provider_id: str) -> PasarError:
    return PasarError(
        f"{provider_id} is not a registered provider",
        code="not_registered",
        status=404,
        field="provider",
        hint="register first (pasar provider start does it), then attest",
    )


def _presented(data: object) -> TeePresent:
    """The signed body as a :class:`TeePresent`, or a 422 naming the first bad field."""
    try:
        return TeePresent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PasarError(
            f"body.{where}: {first['msg']}",
            code="invalid_attestation",
            status=422,
            field=f"body.{where}",
            hint="send {type: tee.present, provider, quote (base64), collateral (JSON text), "
            "nonce, nonce_issued_at}",
        ) from None


def _fresh_nonce(market_key: bytes, body: TeePresent, now_ms: int) -> bytes:
    """The nonce's bytes, if this market issued it to this provider within the TTL."""
    try:
        nonce_bytes = bytes.fromhex(body.nonce)
    except ValueError:
        nonce_bytes = b""
    issued = body.nonce_issued_at
    if not (
        0 <= now_ms - issued <= NONCE_TTL_MS
        and verify_signature(market_key, nonce_message(body.provider, issued), nonce_bytes)
    ):
        raise PasarError(
            "the nonce was not issued by this market to this provider in the last "
            f"{NONCE_TTL_MS // 60_000} minutes",
            code="tee_wrong_nonce",
            status=422,
            field="nonce",
            hint="GET /v1/providers/{id}/attestation/nonce and make a new quote for it",
        )
    return nonce_bytes
