"""Signed requests without a body to sign: reads of private data, and blob uploads.

A state change travels as an envelope (:mod:`pasar.crypto.envelope`); a ``GET`` of an order, a
lease's log or a blob, or a ``PUT`` of a blob, has no JSON body, so the signer proves who it is
with one header instead::

    Authorization: Pasar signer=<account id>,ts=<unix ms>,sig=<hex>

    sig = Ed25519(b"pasar/request/v1\\n" + canonical_json({market, method, signer, target, ts}))

``target`` is the request's path and query exactly as sent (``/v1/leases/x/logs?offset=10``),
so a signature for one object or one offset is worthless for another; ``market`` is the account
id of the market, so it is worthless at another market; ``ts`` must be within
:data:`~pasar.crypto.envelope.MAX_SKEW_MS` of the receiver's clock, so a captured header goes
stale in a minute. Reads change nothing, so no nonce (and no session store) is needed: replaying
a fresh header within its minute only re-reads what its signer could read anyway. A blob upload
is bound to its content by the hash in its path.
"""

from __future__ import annotations

import re

from pasar.crypto.canonical import canonical_json
from pasar.crypto.envelope import (
    MAX_SKEW_MS,
    BadSignature,
    MalformedEnvelope,
    StaleTimestamp,
)
from pasar.crypto.identity import (
    AccountId,
    Identity,
    IdentityError,
    public_key_of,
    verify_signature,
)

REQUEST_DOMAIN = b"pasar/request/v1\n"
SCHEME = "Pasar"
_HEADER = re.compile(
    r"Pasar signer=(?P<signer>pa1[a-z2-7]{58}),ts=(?P<ts>[0-9]{1,19}),sig=(?P<sig>[0-9a-f]{128})"
)
_HINT = (
    "sign the request: Authorization: Pasar signer=<account>,ts=<unix ms>,sig=<hex> "
    "(the SDK, the CLI and the provider agent do it for you)"
)


def request_message(*, market: str, method: str, target: str, signer: str, ts: int) -> bytes:
    """The exact bytes a request signature covers."""
    fields = {
        "market": market,
        "method": method.upper(),
        "signer": signer,
        "target": target,
        "ts": ts,
    }
    return REQUEST_DOMAIN + canonical_json(fields)


def authorization(identity: Identity, *, market: str, method: str, target: str, now_ms: int) -> str:
    """The ``Authorization`` header value for one request by ``identity``."""
    signer = identity.account_id
    message = request_message(market=market, method=method, target=target, signer=signer, ts=now_ms)
    return f"{SCHEME} signer={signer},ts={now_ms},sig={identity.sign(message).hex()}"


def verify_authorization(
    header: str,
    *,
    market: str,
    method: str,
    target: str,
    now_ms: int,
    max_skew_ms: int = MAX_SKEW_MS,
) -> AccountId:
    """The account that signed this request; raises 400/401 (never a 500) otherwise."""
    found = _HEADER.fullmatch(header.strip())
    if found is None:
        raise MalformedEnvelope(
            "the Authorization header is not a pasar request signature",
            code="malformed_authorization",
            field="Authorization",
            hint=_HINT,
            status=401,
        )
    signer, ts, sig = found["signer"], int(found["ts"]), found["sig"]
    try:
        key = public_key_of(signer, field="Authorization.signer")
    except IdentityError as exc:
        raise MalformedEnvelope(
            exc.message, code=exc.code, field="Authorization", hint=_HINT, status=401
        ) from None
    message = request_message(market=market, method=method, target=target, signer=signer, ts=ts)
    if not verify_signature(key, message, bytes.fromhex(sig)):
        # a signature for another market is indistinguishable from a forgery here: say both
        raise BadSignature(
            "the request's signature does not match its signer, method, path and market",
            code="bad_signature",
            field="Authorization",
            hint="sign exactly the path and query you send, for this market (GET /v1/healthz)",
        )
    skew = now_ms - ts
    if abs(skew) > max_skew_ms:
        raise StaleTimestamp(
            f"the request was signed {abs(skew) / 1000:.1f} s away from the market's clock "
            f"(at most {max_skew_ms / 1000:g} s)",
            code="stale_timestamp",
            field="Authorization",
            hint="sign just before sending, and keep the clock synchronised (NTP)",
        )
    return AccountId(signer)


__all__ = [
    "REQUEST_DOMAIN",
    "SCHEME",
    "authorization",
    "request_message",
    "verify_authorization",
]
