"""Verify an Intel TDX or SGX DCAP quote offline: quote + collateral + a unix time → a
:class:`Verdict`, or a :class:`~pasar.core.errors.PasarError` saying why it is refused.

The cryptography (the PCK certificate chain to Intel's root, the CRLs, the TCB info and QE
identity signatures, the quote's signature) is done by Phala's ``dcap-qvl`` (Rust core, no
network). What this module adds is the policy a market needs on top:

* the time is always the caller's: collateral is valid for about a month after its issue, and a
  verifier that read the clock itself could not be replayed by an audit, while one that took no
  time at all would silently accept expired collateral (``dcap-qvl`` refuses it at ``at``);
* a TCB status that is not up to date enough (``OutOfDate``, ``Revoked``...) is refused even
  though the signatures hold: the platform is missing security fixes;
* the TEE type is read from the quote's header first, so a quote of an unknown kind is named as
  such rather than failing somewhere inside the parser.

``dcap-qvl`` is an optional dependency (``pip install 'pasar[tee]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from pasar.core.errors import PasarError

#: The quote header's ``tee_type`` (little-endian u32 at bytes 4..8).
TEE_TYPES = {0x00: "SGX", 0x81: "TDX"}
#: TCB statuses under which a quote is accepted: the platform is patched; configuration or
#: software-hardening advisories are reported (as advisories) but not refused.
ACCEPTED_TCB = frozenset(
    {"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"}
)
INSTALL_HINT = "pip install 'pasar[tee]' (installs dcap-qvl, Phala's offline DCAP verifier)"
#: The measurements each TEE type reports, under the names specs pin them by.
_TDX_FIELDS = {
    "mrtd": "mr_td",
    "rtmr0": "rt_mr0",
    "rtmr1": "rt_mr1",
    "rtmr2": "rt_mr2",
    "rtmr3": "rt_mr3",
}
_SGX_FIELDS = {"mrenclave": "mr_enclave", "mrsigner": "mr_signer"}


@dataclass(frozen=True)
class Verdict:
    """What a verified quote proves: which TEE, how patched, what code runs, what it binds.

    ``measurements`` are lowercase hex (TDX: ``mrtd``, ``rtmr0``-``rtmr3``; SGX: ``mrenclave``,
    ``mrsigner``); ``report_data`` is the 64 bytes the enclave chose, in hex;
    ``collateral_expires_at`` is the earliest ``nextUpdate`` of the collateral (unix seconds):
    after it the same quote no longer verifies, so an attestation recorded from it expires too.
    """

    tee: str
    tcb_status: str
    advisories: tuple[str, ...]
    measurements: dict[str, str]
    report_data: str
    quote_sha256: str
    verified_at: int
    collateral_expires_at: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "tee": self.tee,
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "measurements": dict(self.measurements),
            "report_data": self.report_data,
            "quote_sha256": self.quote_sha256,
            "verified_at": self.verified_at,
            "collateral_expires_at": self.collateral_expires_at,
        }


def refused(message: str, code: str, hint: str | None = None) -> PasarError:
    """A quote the market will not accept (422, field ``quote``)."""
    return PasarError(message, code=code, status=422, field="quote", hint=hint)


def dcap() -> ModuleType:
    """The ``dcap_qvl`` module, or one clear error saying how to install it."""
    try:
        import dcap_qvl  # optional dependency: imported where used
    except ImportError:
        raise PasarError(
            "TEE quote verification needs the dcap-qvl package, which is not installed",
            code="tee_unavailable",
            status=501,
            hint=INSTALL_HINT,
        ) from None
    module: ModuleType = dcap_qvl
    return module


def tee_type(quote: bytes) -> str:
    """``"TDX"`` or ``"SGX"`` from the quote's header; refused for anything else."""
    if len(quote) < 48:
        raise refused(
            f"the quote is {len(quote)} bytes, shorter than a DCAP quote header (48)",
            "quote_invalid",
            "send the raw quote bytes as the TEE produced them",
        )
    version = int.from_bytes(quote[0:2], "little")
    kind = int.from_bytes(quote[4:8], "little")
    if kind not in TEE_TYPES or version not in (3, 4, 5):
        raise refused(
            f"unknown TEE type 0x{kind:02x} (quote version {version}): only Intel TDX (0x81) "
            "and SGX (0x00) DCAP quotes are accepted",
            "tee_unknown_type",
            "attest from an Intel TDX or SGX machine (AMD SEV-SNP and GPU TEEs are not supported)",
        )
    return TEE_TYPES[kind]


def collateral_expiry(collateral_json: str) -> int:
    """The earliest ``nextUpdate`` of the collateral's TCB info and QE identity (unix s)."""
    try:
        doc = json.loads(collateral_json)
        dates = [json.loads(doc[k])["nextUpdate"] for k in ("tcb_info", "qe_identity")]
        return min(int(datetime.fromisoformat(d.replace("Z", "+00:00")).timestamp()) for d in dates)
    except (ValueError, KeyError, TypeError) as exc:
        raise PasarError(
            f"the collateral is not dcap-qvl's JSON form ({exc})",
            code="collateral_invalid",
            status=422,
            field="collateral",
            hint="give the collateral JSON (tcb_info, qe_identity, CRLs, issuer chains) as "
            "fetched from a PCCS with dcap-qvl",
        ) from None


def collateral_issued(collateral_json: str) -> int:
    """The TCB info's ``issueDate`` (unix s): a time at which the collateral is valid."""
    doc = json.loads(collateral_json)
    issued = json.loads(doc["tcb_info"])["issueDate"]
    return int(datetime.fromisoformat(issued.replace("Z", "+00:00")).timestamp())


def verify_quote(
    quote: bytes,
    collateral_json: str,
    at: int,
    *,
    accept: frozenset[str] = ACCEPTED_TCB,
) -> Verdict:
    """Verify ``quote`` against ``collateral_json`` at unix time ``at`` (seconds, the caller's
    clock); a :class:`Verdict` or a 422 PasarError naming why it is refused."""
    kind = tee_type(quote)
    expires = collateral_expiry(collateral_json)
    lib = dcap()
    try:
        collateral = lib.QuoteCollateralV3.from_json(collateral_json)
    except Exception as exc:  # the binding raises plain exceptions for a malformed document
        raise PasarError(
            f"the collateral could not be read: {exc}",
            code="collateral_invalid",
            status=422,
            field="collateral",
        ) from None
    try:
        report = json.loads(lib.verify(quote, collateral, at).to_json())
    except Exception as exc:  # dcap-qvl reports every refusal as an exception with a reason
        raise _refusal(str(exc), at, expires) from None
    status = str(report.get("status"))
    advisories = tuple(str(a) for a in report.get("advisory_ids", []))
    if status not in accept:
        raise refused(
            f"the quote's platform TCB is {status!r}"
            + (f" (advisories: {', '.join(advisories)})" if advisories else "")
            + ": it lacks security updates this market requires",
            "tcb_out_of_date",
            "update the machine's microcode/firmware (TCB recovery) and attest again",
        )
    body = next(iter(report["report"].values()))
    names = _TDX_FIELDS if kind == "TDX" else _SGX_FIELDS
    return Verdict(
        tee=kind,
        tcb_status=status,
        advisories=advisories,
        measurements={ours: str(body[theirs]).lower() for ours, theirs in names.items()},
        report_data=str(body["report_data"]).lower(),
        quote_sha256=hashlib.sha256(quote).hexdigest(),
        verified_at=at,
        collateral_expires_at=expires,
        extra={"ppid": report.get("ppid")},
    )


def _refusal(reason: str, at: int, expires: int) -> PasarError:
    lowered = reason.lower()
    if "expired" in lowered or at >= expires:
        return refused(
            f"the collateral is expired at {at} (valid until {expires}): {reason}",
            "collateral_expired",
            "fetch fresh collateral (PCK CRL, TCB info, QE identity) for the quote and send again",
        )
    if "tcb level" in lowered or "outofdate" in lowered.replace(" ", ""):
        return refused(
            f"the quote's TCB is not accepted: {reason}",
            "tcb_out_of_date",
            "update the machine's microcode/firmware (TCB recovery) and attest again",
        )
    return refused(
        f"the quote does not verify: {reason}",
        "quote_invalid",
        "send the quote exactly as the TEE produced it, with the collateral fetched for it",
    )
