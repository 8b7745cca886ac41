"""The signed envelope: ``{body, market, signer, nonce, ts, sig}`` (DESIGN.md §4).

Every state-changing request, and everything the market signs for others to rely on, travels
as one envelope. The signature covers a domain-separated message::

    b"pasar/envelope/v1\\n" + canonical_json({"body", "market", "nonce", "signer", "ts"})

``market`` is the account id of the market the request is for: a request signed for one
market is refused by every other (it cannot be replayed on a second market the signer also
uses), and the market's own decisions name the market that took them.

The prefix keeps an envelope signature from ever being valid as a signature of anything else
pasar (or another protocol using the same key) signs, and names the version so a future format
cannot be confused with this one. Signing the canonical JSON of the *parsed* fields, not the
bytes on the wire, means whitespace and key order in transit do not matter, while every value
does.

:func:`verify` checks, in this order, and raises a distinct error for each:

1. the shape — :class:`MalformedEnvelope` (400): not an object, missing or extra fields, wrong
   types, an invalid account id, a nonce or signature that is not lower-case hex, a body with
   no canonical form (e.g. a float);
2. the signature — :class:`BadSignature` (401);
3. the signer — :class:`WrongSigner` (403) when the caller expected a particular account;
4. the market — :class:`WrongMarket` (403) when it was signed for another market;
5. the clock — :class:`StaleTimestamp` (401) when ``ts`` is more than ``max_skew_ms`` away.

Authenticity comes before signer and clock so that a 403 or "stale" is only ever said about
an envelope the named signer really signed; a forgery is always just a bad signature.

**Replay is not checked here.** A valid envelope stays valid for ``max_skew_ms``; refusing a
second use of its ``(signer, nonce)`` (409) needs memory of what was seen, which is the market
store's job. Nonces need only be remembered for the skew window on either side of ``ts``,
since anything older fails the clock check.

Time is always passed in (``now_ms``) so that tests and the simulator control the clock;
:func:`wall_clock_ms` is the helper for callers that want the real one.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pasar.core.errors import ErrorDetail, PasarError
from pasar.crypto.canonical import CanonicalError, canonical_json
from pasar.crypto.hashing import sha256_hex
from pasar.crypto.identity import (
    AccountId,
    Identity,
    IdentityError,
    public_key_of,
    verify_signature,
)

ENVELOPE_DOMAIN = b"pasar/envelope/v1\n"
ENVELOPE_FIELDS = frozenset({"body", "market", "signer", "nonce", "ts", "sig"})
MAX_SKEW_MS = 60_000
NONCE_BYTES = 16
_NONCE = re.compile(r"[0-9a-f]{16,64}")  # 8 to 32 bytes; lower case so it has one spelling
_SIG = re.compile(r"[0-9a-f]{128}")
_MARKET = re.compile(r"pa1[a-z2-7]{58}")


class EnvelopeError(PasarError):
    """Any reason an envelope is refused; catch the subclasses to tell them apart."""


class MalformedEnvelope(EnvelopeError):  # noqa: N818 (reads as a verdict)
    """Not an envelope at all: wrong shape, types or encodings (HTTP 400)."""

    default_status = 400


class BadSignature(EnvelopeError):  # noqa: N818 (reads as a verdict)
    """Well formed, but the signature is not the signer's over these fields (HTTP 401)."""

    default_status = 401


class WrongSigner(EnvelopeError):  # noqa: N818 (reads as a verdict)
    """Validly signed, but by another account than the one expected (HTTP 403)."""

    default_status = 403


class WrongMarket(EnvelopeError):  # noqa: N818 (reads as a verdict)
    """Validly signed, but for another market than the one checking it (HTTP 403)."""

    default_status = 403


class StaleTimestamp(EnvelopeError):  # noqa: N818 (reads as a verdict)
    """Validly signed, but ``ts`` is too far from now: old, replayed, or a bad clock (HTTP 401)."""

    default_status = 401


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope that passed :func:`verify`; ``digest`` identifies it (e.g. as a tx id)."""

    body: dict[str, Any]
    signer: AccountId
    nonce: str
    ts: int
    sig: str
    digest: str  # sha256 hex of the signed message: equal for any re-encoding of the envelope
    market: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The envelope in wire form again (without the digest)."""
        return {
            "body": self.body,
            "market": self.market,
            "signer": self.signer,
            "nonce": self.nonce,
            "ts": self.ts,
            "sig": self.sig,
        }


def wall_clock_ms() -> int:
    """The real time in integer unix milliseconds, for callers of :func:`sign`/:func:`verify`."""
    return time.time_ns() // 1_000_000


def new_nonce() -> str:
    """A random nonce: 16 bytes as 32 hex characters (collisions are not a concern)."""
    return secrets.token_hex(NONCE_BYTES)


def signing_message(
    body: Mapping[str, Any], signer: str, nonce: str, ts: int, market: str
) -> bytes:
    """The exact bytes an envelope's signature covers."""
    fields = {"body": body, "market": market, "nonce": nonce, "signer": signer, "ts": ts}
    return ENVELOPE_DOMAIN + canonical_json(fields)


def _check_ts(ts: object, problems: list[ErrorDetail]) -> None:
    if isinstance(ts, bool) or not isinstance(ts, int):
        problems.append(
            ErrorDetail(
                "invalid_ts",
                f"ts must be an integer of unix milliseconds, got {type(ts).__name__}",
                field="ts",
            )
        )
    elif not 0 <= ts < 2**63:
        problems.append(ErrorDetail("invalid_ts", f"ts {ts} is out of range", field="ts"))


def sign(
    body: Mapping[str, Any],
    identity: Identity,
    *,
    now_ms: int,
    market: str,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Sign ``body`` as ``identity`` at time ``now_ms`` for ``market`` (its account id);
    return the envelope as a dict.

    ``nonce`` defaults to a fresh random one; pass one only to make output reproducible.
    """
    if not isinstance(body, Mapping):
        raise MalformedEnvelope(
            f"an envelope body is a JSON object, got {type(body).__name__}",
            code="malformed_envelope",
            field="body",
        )
    nonce = new_nonce() if nonce is None else nonce
    problems: list[ErrorDetail] = []
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        problems.append(
            ErrorDetail("invalid_nonce", "nonce must be 16-64 lower-case hex", field="nonce")
        )
    _check_ts(now_ms, problems)
    _check_market(market, problems)
    if problems:
        raise MalformedEnvelope(
            problems[0].message,
            code="malformed_envelope",
            field=problems[0].field,
            details=problems if len(problems) > 1 else None,
        )
    plain_body = dict(body)
    try:
        message = signing_message(plain_body, identity.account_id, nonce, now_ms, market)
    except CanonicalError as exc:
        raise MalformedEnvelope(
            f"the body cannot be signed: {exc.message}",
            code="malformed_envelope",
            field=_under_body(exc.field),
            hint=exc.hint,
        ) from None
    return {
        "body": plain_body,
        "market": market,
        "signer": identity.account_id,
        "nonce": nonce,
        "ts": now_ms,
        "sig": identity.sign(message).hex(),
    }


def _check_market(market: object, problems: list[ErrorDetail]) -> None:
    if not isinstance(market, str) or not _MARKET.fullmatch(market):
        problems.append(
            ErrorDetail(
                "invalid_market",
                "market must be the account id of the market the request is for",
                field="market",
                hint="GET /v1/healthz names the market ('market')",
            )
        )


def _under_body(field: str | None) -> str:
    return "body" if not field else field if field.startswith("body") else f"body.{field}"


def _shape_problems(envelope: Mapping[str, Any]) -> tuple[list[ErrorDetail], bytes]:
    """Every problem with the envelope's fields and their encodings (not the signature), and
    the signer's public key when it decodes (so it is decoded once)."""
    problems: list[ErrorDetail] = []
    public_key = b""
    keys = set(envelope)
    for missing in sorted(ENVELOPE_FIELDS - keys):
        problems.append(ErrorDetail("missing_field", f"missing field {missing!r}", field=missing))
    for extra in sorted(keys - ENVELOPE_FIELDS, key=repr):
        problems.append(
            ErrorDetail("unknown_field", f"unexpected field {extra!r}", field=str(extra))
        )
    body, nonce, sig = envelope.get("body"), envelope.get("nonce"), envelope.get("sig")
    if "body" in keys and not isinstance(body, dict):
        problems.append(
            ErrorDetail(
                "invalid_body", f"body must be an object, got {type(body).__name__}", field="body"
            )
        )
    if "signer" in keys:
        try:
            public_key = public_key_of(envelope.get("signer"), field="signer")
        except IdentityError as exc:
            problems.append(ErrorDetail(exc.code, exc.message, field="signer", hint=exc.hint))
    if "nonce" in keys and (not isinstance(nonce, str) or not _NONCE.fullmatch(nonce)):
        problems.append(
            ErrorDetail(
                "invalid_nonce", "nonce must be 16-64 lower-case hex characters", field="nonce"
            )
        )
    if "ts" in keys:
        _check_ts(envelope.get("ts"), problems)
    if "market" in keys:
        _check_market(envelope.get("market"), problems)
    if "sig" in keys and (not isinstance(sig, str) or not _SIG.fullmatch(sig)):
        problems.append(
            ErrorDetail(
                "invalid_sig",
                "sig must be 128 lower-case hex characters (a 64-byte Ed25519 signature)",
                field="sig",
            )
        )
    return problems, public_key


def verify(
    envelope: object,
    *,
    now_ms: int,
    market: str,
    expected_signer: str | None = None,
    max_skew_ms: int = MAX_SKEW_MS,
) -> VerifiedEnvelope:
    """Check an envelope (already parsed from JSON) meant for ``market`` and return its
    verified contents.

    Raises :class:`MalformedEnvelope`, :class:`BadSignature`, :class:`WrongSigner`,
    :class:`WrongMarket` or :class:`StaleTimestamp` (see the module docstring for the order).
    Does **not** check nonce reuse: that is the store's job.
    """
    if not isinstance(envelope, Mapping):
        raise MalformedEnvelope(
            f"an envelope is a JSON object, got {type(envelope).__name__}",
            code="malformed_envelope",
            hint="send {body, signer, nonce, ts, sig}",
        )
    problems, public_key = _shape_problems(envelope)
    body = envelope.get("body")
    signer = envelope.get("signer")
    nonce = envelope.get("nonce")
    ts = envelope.get("ts")
    sig = envelope.get("sig")
    claimed_market = envelope.get("market")
    message = b""
    if not problems:
        assert isinstance(body, dict) and isinstance(signer, str)
        assert isinstance(nonce, str) and isinstance(ts, int)
        assert isinstance(claimed_market, str)
        try:
            message = signing_message(body, signer, nonce, ts, claimed_market)
        except CanonicalError as exc:
            problems.append(
                ErrorDetail(exc.code, exc.message, field=_under_body(exc.field), hint=exc.hint)
            )
    if problems:
        first = problems[0]
        message_text = (
            f"malformed envelope: {first.message}"
            if len(problems) == 1
            else f"malformed envelope: {len(problems)} problems"
        )
        raise MalformedEnvelope(
            message_text,
            code="malformed_envelope",
            field=first.field if len(problems) == 1 else None,
            hint=first.hint if len(problems) == 1 else None,
            details=problems if len(problems) > 1 else None,
        )
    assert isinstance(sig, str) and isinstance(ts, int) and isinstance(body, dict)
    assert isinstance(signer, str) and isinstance(nonce, str)

    if not verify_signature(public_key, message, bytes.fromhex(sig)):
        raise BadSignature(
            "the envelope's signature does not match its signer and contents",
            code="bad_signature",
            field="sig",
            hint="sign the canonical JSON of {body, nonce, signer, ts} with the signer's key, "
            "and do not change any field after signing",
        )
    if expected_signer is not None and signer != expected_signer:
        raise WrongSigner(
            f"signed by {signer}, but this action needs a signature by {expected_signer}",
            code="wrong_signer",
            field="signer",
            hint="sign with the key of the account that owns this resource",
        )
    if claimed_market != market:
        raise WrongMarket(
            f"this request was signed for market {claimed_market}, not for this one ({market})",
            code="wrong_market",
            field="market",
            hint="sign for the market you send to: GET /v1/healthz names it",
        )
    skew = now_ms - ts
    if abs(skew) > max_skew_ms:
        direction = "behind" if skew > 0 else "ahead of"
        raise StaleTimestamp(
            f"the envelope's ts is {abs(skew) / 1000:.1f} s {direction} the receiver's clock "
            f"(at most {max_skew_ms / 1000:g} s allowed)",
            code="stale_timestamp",
            field="ts",
            hint="sign just before sending, and keep the clock synchronised (NTP)",
        )
    return VerifiedEnvelope(
        body=body,
        signer=AccountId(signer),
        nonce=nonce,
        ts=ts,
        sig=sig,
        digest=sha256_hex(message),
        market=market,
    )
