"""Mutual TLS (``pasar market serve --tls auto --mtls``): the connection's certificate must be
the signer's — Akash's model, where a tenant's certificate names its account.

The market is the authority for client certificates (:func:`pasar.crypto.tls.client_ca`): an
account asks for one over its own key with a signed ``tls.client_cert`` envelope
(``POST /v1/tls/client-certs``) and gets back a certificate naming ``pasar:<account>``. With
``--mtls`` the market asks every TLS client for a certificate (optional, so that the request
for the first one can be made) and, on every signed request — an envelope or a signed read —
requires that the certificate presented on the connection names the signer: 403
``client_cert_required`` without one, ``client_cert_mismatch`` for another account's.

uvicorn does not put the peer certificate in the ASGI scope, so ``PeerCertProtocol`` (its h11
protocol, told where to look; :func:`peer_cert_protocol`) reads it when the connection is made
and hands the account it names to every request of that connection as
``request.state.tls_client``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from fastapi import Request

from pasar.core.errors import PasarError
from pasar.crypto.tls import ISSUE_PATH, account_of_cert

NO_CERT = ""  # a TLS connection that presented no client certificate


@functools.cache
def peer_cert_protocol() -> type[Any]:
    """:class:`PeerCertProtocol`, made the first time a market serves with ``--mtls``: h11 is
    not loaded otherwise (uvicorn's parser is httptools, a dependency of pasar)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class PeerCertProtocol(H11Protocol):
        """uvicorn's h11 protocol, plus the account the client certificate names (if any)."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object: Any = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            account = account_of_cert(der) if der else None
            # the per-request scope["state"] is a copy of this dict: request.state.tls_client
            self.app_state = {**self.app_state, "tls_client": account or NO_CERT}

    return PeerCertProtocol


def check_tls_client(request: Request, signer: str) -> None:
    """With mTLS on, the connection's certificate must name ``signer`` (see the module doc)."""
    config = getattr(request.app.state, "config", None)
    if config is None or not getattr(config, "mtls", False):
        return
    if request.url.path == ISSUE_PATH:
        return  # asking for the first certificate: the signature is the proof
    peer = getattr(request.state, "tls_client", NO_CERT)
    if peer == NO_CERT:
        raise PasarError(
            "this market requires a client certificate naming the signer (mutual TLS)",
            code="client_cert_required",
            status=403,
            hint=f"get one with a signed request to POST {ISSUE_PATH} (the SDK and CLI do)",
        )
    if peer != signer:
        raise PasarError(
            f"the connection's client certificate names {peer}, but the request is signed by "
            f"{signer}",
            code="client_cert_mismatch",
            status=403,
            hint="connect with the certificate issued to the signing account",
        )
