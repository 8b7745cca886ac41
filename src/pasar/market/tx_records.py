"""What the market's log stores, apart from how: a transaction as stored (:class:`TxRecord`,
made from a verified envelope and checked again when read back) and the store's errors. Kept
out of :mod:`pasar.market.store` so that readers of records need no database code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pasar.core.errors import PasarError
from pasar.crypto.canonical import canonical_json, parse_json
from pasar.crypto.envelope import VerifiedEnvelope

# --------------------------------------------------------------------------- errors


class StoreError(PasarError):
    """The store cannot do what was asked: unreachable, busy, or its data is damaged."""

    default_status = 503


class NonceReused(PasarError):  # noqa: N818 (reads as a verdict, like BadSignature)
    """This ``(signer, nonce)`` — or this very envelope — is already in the log (HTTP 409)."""

    default_status = 409


class BlockConflictError(PasarError):
    """A block that does not extend the stored head (HTTP 409): another sealer got there first."""

    default_status = 409


class CorruptRecordError(StoreError):
    """A stored row that no longer reads back as what was written."""

    default_status = 500


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TxRecord:
    """One logged transaction: the wire envelope plus the columns the store indexes it by.

    ``seq`` is 0 until :meth:`SqlStore.append` assigns it. ``envelope`` is the wire envelope
    ``{body, signer, nonce, ts, sig}``; the other fields repeat parts of it so that the log can
    be searched without parsing, and chain verification checks that they still agree.
    """

    seq: int
    digest: str
    type: str
    signer: str
    nonce: str
    ts: int  # unix ms, the envelope's own ts (the signer's claim: freshness only)
    envelope: dict[str, Any]
    at: int = 0  # unix ms, the market's stamp: when it accepted the transaction
    # made from an envelope :func:`~pasar.crypto.envelope.verify` passed (see envelope_json)
    verified: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def from_verified(cls, v: VerifiedEnvelope, *, at: int | None = None) -> TxRecord:
        """The record of an envelope that passed :func:`pasar.crypto.envelope.verify`, stamped
        ``at`` by the market (default: the envelope's own ``ts``, for tools and tests)."""
        tx_type = v.body.get("type")
        if not isinstance(tx_type, str) or not tx_type:
            raise PasarError(
                "a transaction body needs a string 'type'",
                code="missing_tx_type",
                field="body.type",
                hint='e.g. {"type": "order.create", ...}',
            )
        return cls(
            seq=0,
            digest=v.digest,
            type=tx_type,
            signer=v.signer,
            nonce=v.nonce,
            ts=v.ts,
            envelope=v.to_dict(),
            at=v.ts if at is None else at,
            verified=True,
        )

    def envelope_json(self) -> str:
        """The envelope's canonical JSON text: exactly what is stored.

        A verified envelope is only encoded, not checked again: ``verify`` checked its body
        for canonical JSON when it built the signed message, and validated the other fields
        (strings and an integer). The check walks the whole body in Python, every order."""
        if self.verified:
            return orjson.dumps(self.envelope, option=orjson.OPT_SORT_KEYS).decode("utf-8")
        return canonical_json(self.envelope).decode("utf-8")

    @classmethod
    def from_stored(
        cls,
        *,
        seq: int,
        digest: str,
        type: str,
        signer: str,
        nonce: str,
        ts: int,
        envelope: str | bytes,
        at: int | None = None,
    ) -> TxRecord:
        """Rebuild a record from a row; :class:`CorruptRecordError` if the envelope is damaged."""
        raw = envelope.encode("utf-8") if isinstance(envelope, str) else envelope
        try:
            parsed = parse_json(raw, what="stored envelope")
            canonical = isinstance(parsed, dict) and canonical_json(parsed) == raw
        except (PasarError, UnicodeError):
            canonical = False
        if not canonical:
            raise CorruptRecordError(
                f"tx seq {seq} ({digest}): the stored envelope is not the canonical JSON that "
                "was written",
                code="corrupt_tx",
                hint="the log was altered or damaged; restore it from a good copy",
            )
        return cls(seq, digest, type, signer, nonce, ts, parsed, ts if at is None else at)
