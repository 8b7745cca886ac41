"""The ``signed_envelope`` dependency: a route that changes state gets a verified envelope.

Signatures are checked over the values parsed from the raw bytes with the strict
:func:`~pasar.crypto.canonical.parse_json` (no duplicate keys, no NaN), never over a pydantic
model: a model coerces (``"1"`` → ``1``, drops or reorders keys), and a signature must cover
exactly what the signer sent. :class:`EnvelopeIn` therefore exists for the OpenAPI document only
(:mod:`pasar.market.openapi` attaches it to every route that depends on ``signed_envelope``).

What is refused here, in order: bytes that are not strict JSON (400 ``invalid_json``), then
whatever :func:`pasar.crypto.envelope.verify` refuses — a malformed envelope (400), a bad
signature (401), a ``ts`` more than 60 s from the market's clock (401). A reused nonce (409) is
the store's to refuse: it needs the memory of every nonce seen.

The clock is ``app.state.clock`` (unix milliseconds), so tests can move time without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from pasar.core.errors import PasarError
from pasar.crypto.canonical import CanonicalError, parse_json
from pasar.crypto.envelope import VerifiedEnvelope, verify, wall_clock_ms
from pasar.crypto.request_auth import verify_authorization
from pasar.market.attachments import split_attachments, store_attachments
from pasar.market.tls_clients import check_tls_client

Clock = Callable[[], int]


class EnvelopeIn(BaseModel):
    """A signed request, as documented in ``/openapi.json`` (DESIGN.md §4)."""

    model_config = ConfigDict(extra="forbid", title="Envelope")

    body: dict[str, Any] = Field(
        description="The transaction; its `type` says what it does (see docs/market.md)."
    )
    market: str = Field(
        pattern=r"^pa1[a-z2-7]{58}$",
        description="Account id of the market the request is for (GET /v1/healthz).",
    )
    signer: str = Field(
        pattern=r"^pa1[a-z2-7]{58}$",
        description="Account id of the signer (its Ed25519 public key, 'pa1...').",
    )
    nonce: str = Field(
        pattern=r"^[0-9a-f]{16,64}$",
        description="Fresh random lower-case hex; a (signer, nonce) pair is accepted once.",
    )
    ts: int = Field(
        ge=0, le=2**63 - 1, description="Signing time in unix milliseconds (within 60 s)."
    )
    sig: str = Field(
        pattern=r"^[0-9a-f]{128}$",
        description="Ed25519 signature over b'pasar/envelope/v1\\n' + canonical JSON of "
        "{body, market, nonce, signer, ts}.",
    )


def request_clock(request: Request) -> Clock:
    """The app's clock (``app.state.clock``), else the wall clock."""
    clock = getattr(request.app.state, "clock", None)
    return clock if callable(clock) else wall_clock_ms


async def signed_envelope(request: Request) -> VerifiedEnvelope:
    """Read, strictly parse and verify the request body as an envelope; see the module doc.

    The body's size was already bounded by the limits middleware, so reading it whole is safe.
    On success the signer is left in ``request.state.signer`` for the request log.
    """
    return verified_envelope(request, await request.body())


async def signed_body(request: Request) -> bytes:
    """The raw body of a signed request, not yet parsed nor verified: for a route that runs
    :func:`verified_envelope` itself, off the event loop and in the same worker thread as the
    rest of its work (one thread hop per request: ``POST /v1/orders``). The OpenAPI document
    treats a route that depends on this exactly like one that depends on ``signed_envelope``."""
    return await request.body()


def verified_envelope(
    request: Request, raw: bytes, *, attachments: bool = False
) -> VerifiedEnvelope:
    """What :func:`signed_envelope` does once the body is read (a blocking call: the signature
    check costs tens of microseconds of CPU, better spent off the event loop). A route that
    takes ``attachments`` (:mod:`pasar.api.attachments`) says so: they are stored, as the
    verified signer's uploads, before this returns; any other route refuses the field."""
    envelope, attached = verified_with_attachments(request, raw, attachments=attachments)
    if attached:
        store_attachments(request.app.state.blobs, attached, envelope.signer)
    return envelope


def verified_with_attachments(
    request: Request, raw: bytes, *, attachments: bool = True
) -> tuple[VerifiedEnvelope, dict[str, bytes]]:
    """:func:`verified_envelope` but for storing the attachments, which the caller does (with
    :func:`~pasar.market.attachments.store_attachments`) before it reads any of them: their
    bytes are checked against their names here, but writing them durably syncs the disk, which
    ``POST /v1/orders`` does off the event loop while the rest of its work stays on it."""
    try:
        document = parse_json(raw, what="the request body")
    except CanonicalError as exc:
        raise PasarError(
            exc.message,
            code="invalid_json",
            field=exc.field,
            hint=exc.hint or "send one UTF-8 JSON document: {body, signer, nonce, ts, sig}",
            status=400,
        ) from None
    attached: dict[str, bytes] = {}
    if attachments:
        document, attached = split_attachments(document)
    market = request.app.state.market_identity.account_id
    envelope = verify(document, now_ms=request_clock(request)(), market=market)
    check_tls_client(request, envelope.signer)
    request.state.signer = envelope.signer
    _spend(request, envelope.signer)
    return envelope, attached


def _spend(request: Request, key: str) -> None:
    """One request of ``key``'s budget (:mod:`pasar.market.ratelimit`): 429 when spent."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.check(key)


def request_target(request: Request) -> str:
    """The path and query exactly as the client sent them: what a request signature covers."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = raw.decode("latin-1")
    return f"{target}?{query.decode('latin-1')}" if query else target


async def request_signer(request: Request) -> str | None:
    """Who signed this request (the ``Authorization`` header of
    :mod:`pasar.crypto.request_auth`), or None when it is not signed. A header that is
    present but wrong is refused (401): a broken signature never reads as anonymous."""
    header = request.headers.get("authorization")
    if header is None:
        _spend(request, f"address {request.client.host if request.client else '-'}")
        return None
    signer = verify_authorization(
        header,
        market=request.app.state.market_identity.account_id,
        method=request.method,
        target=request_target(request),
        now_ms=request_clock(request)(),
    )
    check_tls_client(request, signer)
    request.state.signer = signer
    _spend(request, signer)
    return signer


async def required_signer(request: Request) -> str:
    """Like :func:`request_signer`, but an unsigned request is refused (401)."""
    signer = await request_signer(request)
    if signer is None:
        raise PasarError(
            "this needs a signed request: private data is readable only by the parties of "
            "the job and the market's operator",
            code="unauthenticated",
            status=401,
            field="Authorization",
            hint="use the SDK, the CLI or the provider agent (they sign), or add "
            "Authorization: Pasar signer=<account>,ts=<unix ms>,sig=<hex>",
        )
    return signer


Reader = Annotated[str | None, Depends(request_signer)]
"""Use as a parameter type: the signer of the request, or None when it is unsigned."""
Signer = Annotated[str, Depends(required_signer)]
"""Use as a parameter type: the signer of the request; unsigned requests get a 401."""


SignedEnvelope = Annotated[VerifiedEnvelope, Depends(signed_envelope)]
"""Use as a parameter type: ``async def create(env: SignedEnvelope) -> ...``."""
SignedBody = Annotated[bytes, Depends(signed_body)]
"""Use as a parameter type: the raw body, for :func:`verified_envelope` in a worker thread."""
