"""TEE attestations as market state: the ``tee.attest`` transaction and who it lets take
``verification: tee`` work.

Verifying a quote needs dcap-qvl and a clock, neither of which belongs in core. So the market
verifies a provider's quote at its own clock (:mod:`pasar.market.routes.tee`) and records what
it found in a *market-signed* ``tee.attest``; core trusts the market's signature for the verdict
(as it does for a capacity verdict) and checks what it can check purely:

* the nonce the quote binds is the market's signature over :func:`nonce_message` (checked with
  the market's key, so an audit sees that every attestation answered a challenge the market
  issued, at most :data:`NONCE_TTL_MS` before it was recorded);
* the TEE type, TCB status, measurements and expiry are well formed, and the attestation has
  not expired when recorded.

An attestation lets its provider take ``verification: tee`` orders until ``expires_at`` (the
collateral's own expiry, capped at :data:`MAX_ATTESTATION_MS`); a spec may pin accepted
measurements (``tee: {mrtd: [...]}``), and a provider whose attested value is not pinned is
excluded with the reason (:func:`attestation_problem`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pasar.core.market_records import Applied, Tx, fail
from pasar.core.spec import TeePins

if TYPE_CHECKING:
    from pasar.core.state import MarketState

TEE_KINDS = ("TDX", "SGX")
MEASUREMENT_NAMES = {
    "TDX": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"),
    "SGX": ("mrenclave", "mrsigner"),
}
#: How long a market nonce may be answered after it was issued.
NONCE_TTL_MS = 10 * 60 * 1000
#: The longest an attestation counts, whatever the collateral says: a provider re-attests.
MAX_ATTESTATION_MS = 7 * 24 * 3600 * 1000
_HEX = re.compile(r"^[0-9a-f]+$")


def nonce_message(provider: str, issued_at_ms: int) -> bytes:
    """What the market signs to issue an attestation nonce to ``provider`` (the signature, 64
    bytes, is the nonce the provider's quote must bind)."""
    return f"pasar-tee-nonce\n{provider}\n{issued_at_ms}".encode()


@dataclass(frozen=True)
class Attestation:
    """A provider's verified TEE attestation, as the market recorded it."""

    provider: str
    tee: str
    tcb_status: str
    advisories: tuple[str, ...]
    measurements: Mapping[str, str]
    quote_sha256: str
    attested_at: int  # ms, the tx's market stamp
    expires_at: int  # ms

    def valid_at(self, now_ms: int) -> bool:
        return now_ms < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "tee": self.tee,
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "measurements": dict(self.measurements),
            "quote_sha256": self.quote_sha256,
            "attested_at": self.attested_at,
            "expires_at": self.expires_at,
        }


def _hex(value: object, field: str, *, size: int | None = None) -> str:
    text = str(value).lower() if isinstance(value, str) else ""
    if not _HEX.match(text) or (size is not None and len(text) != size):
        raise fail(
            f"{field} must be {'' if size is None else f'{size} '}lowercase hex digits",
            code="invalid_attestation",
            field=field,
        )
    return text


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{field} must be a whole number of ms", code="invalid_attestation", field=field)
    return value


def parse_attestation(tx: Tx) -> Attestation:
    """The attestation a ``tee.attest`` body records (every field checked)."""
    body = tx.body
    tee = body.get("tee")
    if tee not in TEE_KINDS:
        raise fail(
            f"unknown TEE type {tee!r}: one of {', '.join(TEE_KINDS)}",
            code="tee_unknown_type",
            field="tee",
        )
    measurements = body.get("measurements")
    names = MEASUREMENT_NAMES[str(tee)]
    if not isinstance(measurements, Mapping) or set(measurements) != set(names):
        raise fail(
            f"a {tee} attestation records exactly the measurements {', '.join(names)}",
            code="invalid_attestation",
            field="measurements",
        )
    advisories = body.get("advisories", [])
    if not isinstance(advisories, list) or not all(isinstance(a, str) for a in advisories):
        raise fail(
            "advisories must be a list of text", code="invalid_attestation", field="advisories"
        )
    status = body.get("tcb_status")
    if not isinstance(status, str) or not status:
        raise fail("tcb_status must be text", code="invalid_attestation", field="tcb_status")
    return Attestation(
        provider=str(body.get("provider")),
        tee=str(tee),
        tcb_status=status,
        advisories=tuple(advisories),
        measurements={k: _hex(measurements[k], f"measurements.{k}") for k in names},
        quote_sha256=_hex(body.get("quote_sha256"), "quote_sha256", size=64),
        attested_at=tx.at,
        expires_at=min(_int(body.get("expires_at"), "expires_at"), tx.at + MAX_ATTESTATION_MS),
    )


def on_tee_attest(state: MarketState, tx: Tx) -> Applied:
    """Record a provider's attestation (market-signed: the market verified the quote)."""
    attestation = parse_attestation(tx)
    if attestation.provider not in state.providers:
        raise fail(
            f"{attestation.provider} is not a registered provider",
            code="not_registered",
            status=404,
            field="provider",
            hint="register the provider before presenting its attestation",
        )
    issued = _int(tx.body.get("nonce_issued_at"), "nonce_issued_at")
    nonce = _hex(tx.body.get("nonce"), "nonce", size=128)
    if not 0 <= tx.at - issued <= NONCE_TTL_MS or not state._verify_market(
        nonce_message(attestation.provider, issued), bytes.fromhex(nonce)
    ):
        raise fail(
            "the attestation does not answer a fresh nonce this market issued to the provider",
            code="tee_wrong_nonce",
            status=422,
            field="nonce",
            hint="ask the market for a new nonce and attest again",
        )
    if not attestation.valid_at(tx.at):
        raise fail(
            "the attestation is already expired", code="collateral_expired", field="expires_at"
        )
    state._put(state.attestations, attestation.provider, attestation)
    return Applied(
        tx.type,
        {
            "provider": attestation.provider,
            "tee": attestation.tee,
            "expires_at": attestation.expires_at,
        },
        providers={attestation.provider},
    )


def attestation_problem(
    attestation: Attestation | None, pins: TeePins | None, now_ms: int
) -> str | None:
    """Why a provider with ``attestation`` may not take a ``verification: tee`` order pinning
    ``pins`` at ``now_ms``; None when it may."""
    if attestation is None:
        return "has no TEE attestation (verification: tee needs an attested provider)"
    if not attestation.valid_at(now_ms):
        return "its TEE attestation expired: it must attest again with fresh collateral"
    for name, accepted in (pins.pinned() if pins is not None else {}).items():
        value = attestation.measurements.get(name)
        if value is None:
            return f"is a {attestation.tee} TEE, which has no {name} (the spec pins {name})"
        if value not in accepted:
            return f"its attested {name} {value[:16]}… is not one the spec accepts"
    return None


def requires_attestation(state: MarketState, verification: str) -> bool:
    """Whether orders with this verification policy go only to attested providers."""
    policy = state.preset.verification_policy(verification)
    return bool(getattr(policy, "requires_attestation", False))


def check_attested_supply(state: MarketState, verification: str, pins: TeePins | None) -> None:
    """Refuse a ``verification: tee`` order (before anything is escrowed) on a market where no
    provider's attestation would let it run: say what is missing rather than hold the money of
    a job nobody may take."""
    if not requires_attestation(state, verification):
        return
    if any(attestation_problem(a, pins, state.now) is None for a in state.attestations.values()):
        return
    attested = sum(1 for a in state.attestations.values() if a.valid_at(state.now))
    what = (
        "no provider on this market has a valid TEE attestation"
        if not attested
        else f"none of the {attested} attested provider(s) has the measurements the spec pins"
    )
    raise fail(
        f"verification: tee cannot be served here: {what} (a provider attests with a TDX/SGX "
        "quote: pasar provider start --tee auto)",
        code="tee_unavailable",
        status=422,
        field="spec.verification" if not attested else "spec.tee",
        hint="use verification: receipt, or a market with attested TEE providers",
    )
