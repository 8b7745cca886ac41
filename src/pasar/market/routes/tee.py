"""``/v1/providers/{id}/attestation``: a provider proves it runs in a TEE.

1. ``GET .../attestation/nonce`` — the market issues a nonce: its signature of
   :func:`~pasar.core.tee.nonce_message` (provider, time), so it needs no storage and anyone
   (an audit) can check that the market issued it.
2. The provider makes a quote whose report data binds its account key and that nonce
   (:mod:`pasar.tee.binding`) and ``POST``\\ s it, signed, with its collateral.
3. The market verifies the quote with dcap-qvl **at its own clock**, checks the binding, and
   records the verdict in a market-signed ``tee.attest`` (:mod:`pasar.core.tee`). A refusal is a
   4xx and records nothing; nothing is ever charged for attesting.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from pasar.api.txs import TeeAttest, TeeNonce, TeePresent
from pasar.core.errors import PasarError
from pasar.core.tee import NONCE_TTL_MS, nonce_message
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.identity import parse_account_id, public_key_of, verify_signature
from pasar.market.auth import signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of
from pasar.tee.binding import check_binding
from pasar.tee.verify import verify_quote

router = APIRouter(tags=["providers"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


def _registered(request: Request, provider_id: str) -> None:
    service = service_of(request)
    with service.lock:
        known = provider_id in service.state.providers
    if not known:
        raise PasarError(
            f"{provider_id} is not a registered provider",
            code="not_registered",
            status=404,
            field="provider",
            hint="register first (pasar provider start does it), then attest",
        )


@router.get(
    "/v1/providers/{provider_id}/attestation/nonce",
    summary="A fresh nonce for the provider's TEE quote (valid 10 minutes)",
)
def nonce(request: Request, provider_id: str) -> TeeNonce:
    parse_account_id(provider_id, field="provider_id")
    _registered(request, provider_id)
    service = service_of(request)
    issued = service.clock()
    signature = service.identity.sign(nonce_message(provider_id, issued))
    return TeeNonce(
        provider=provider_id,
        nonce=signature.hex(),
        nonce_issued_at=issued,
        valid_for_ms=NONCE_TTL_MS,
    )


@router.post(
    "/v1/providers/{provider_id}/attestation",
    summary="Present a TEE quote (TDX/SGX) bound to the provider's key and a market nonce",
    response_model_exclude_unset=True,
    openapi_extra=signs("tee.present"),
)
def present(request: Request, provider_id: str, envelope: Signed) -> dict[str, Any]:
    """Verified with dcap-qvl at the market's clock; refused (422) for a tampered quote, an
    unknown TEE type, an out-of-date TCB, expired collateral, or a quote that binds another key
    or nonce. On success the verdict is recorded in a ``tee.attest`` and returned."""
    if envelope.signer != provider_id:
        raise PasarError(
            "only the provider itself may present its attestation",
            code="forbidden",
            status=403,
            hint="sign the request with the provider's key",
        )
    body = _presented(envelope.body)
    if body.provider != provider_id:
        raise PasarError(
            f"body.provider {body.provider!r} does not match the URL's {provider_id!r}",
            code="path_mismatch",
            field="body.provider",
        )
    _registered(request, provider_id)
    service = service_of(request)
    now = service.clock()
    nonce_bytes = _fresh_nonce(service.identity.public_key, body, now)
    try:
        quote = base64.b64decode(body.quote, validate=True)
    except (binascii.Error, ValueError):
        raise PasarError(
            "quote is not base64", code="invalid_quote", status=422, field="quote"
        ) from None
    verdict = verify_quote(quote, body.collateral, now // 1000)
    check_binding(verdict.report_data, public_key_of(provider_id), nonce_bytes)
    service.submit_market(
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
    return attestation(request, provider_id)


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


@router.get(
    "/v1/providers/{provider_id}/attestation",
    summary="The provider's recorded TEE attestation (404 if none)",
)
def attestation(request: Request, provider_id: str) -> dict[str, Any]:
    service = service_of(request)
    with service.lock:
        found = service.state.attestations.get(provider_id)
        now = service.clock()
    if found is None:
        raise PasarError(
            f"{provider_id} has no TEE attestation", code="not_found", status=404, field="provider"
        )
    return {**found.to_json(), "valid": found.valid_at(now)}
