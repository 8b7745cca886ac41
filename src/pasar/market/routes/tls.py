"""``POST /v1/tls/client-certs``: a client certificate naming the signer (mutual TLS)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from pasar.api.txs import TlsCertificate
from pasar.core.errors import PasarError
from pasar.crypto.envelope import VerifiedEnvelope
from pasar.crypto.tls import ISSUE_PATH, issue_client_cert
from pasar.market.auth import signed_envelope
from pasar.market.openapi import signs

router = APIRouter(tags=["tls"])
Signed = Annotated[VerifiedEnvelope, Depends(signed_envelope)]


@router.post(
    ISSUE_PATH,
    summary="Issue a client certificate naming the signer (markets with mutual TLS)",
    openapi_extra=signs("tls.client_cert"),
)
def issue(request: Request, envelope: Signed) -> TlsCertificate:
    """The certificate is over the client's own key, so the market never holds it; it names
    ``pasar:<signer>``, which every later signed request on a connection using it must match."""
    config = request.app.state.config
    if not config.mtls:
        raise PasarError(
            "this market does not use client certificates (it runs without --mtls)",
            code="mtls_off",
            status=409,
            hint="sign your requests as usual: no certificate is needed here",
        )
    body = envelope.body
    if body.get("type") != "tls.client_cert" or set(body) != {"type", "public_key"}:
        raise PasarError(
            "this endpoint takes a body {type: tls.client_cert, public_key}",
            code="wrong_type",
            field="body",
            hint='sign {"type": "tls.client_cert", "public_key": "<EC public key PEM>"}',
        )
    public_key = body["public_key"]
    if not isinstance(public_key, str):
        raise PasarError("public_key must be PEM text", code="invalid_key", status=422,
                         field="body.public_key")  # fmt: skip
    pem = issue_client_cert(config.home, envelope.signer, public_key)
    return TlsCertificate(account=envelope.signer, certificate=pem)
