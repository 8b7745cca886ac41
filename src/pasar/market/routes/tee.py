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

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from pasar.api.txs import TeeNonce
from pasar.core.errors import PasarError
from pasar.core.tee import NONCE_TTL_MS, nonce_message
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.identity import parse_account_id
from pasar.market.attestations import accept, not_registered
from pasar.market.auth import signed_envelope
from pasar.market.openapi import signs
from pasar.market.routes.common import service_of

router = APIRouter(tags=["providers"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


def _registered(request: Request, provider_id: str) -> None:
    service = service_of(request)
    with service.lock:
        known = provider_id in service.state.providers
    if not known:
        raise not_registered(provider_id)


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
    """Verified with dcap-qvl at the market's clock; refused (4xx) for a tampered quote, an
    unknown TEE type, an out-of-date TCB, expired collateral, or a quote that binds another key
    or nonce. On success the verdict is recorded in a ``tee.attest`` and returned."""
    if envelope.signer != provider_id:
        raise PasarError(
            "only the provider itself may present its attestation",
            code="forbidden",
            status=403,
            hint="sign the request with the provider's key",
        )
    accept(service_of(request), envelope.body, provider_id)
    return attestation(request, provider_id)


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
