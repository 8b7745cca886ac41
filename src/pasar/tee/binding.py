"""The report-data binding: what a provider's quote must carry so it proves *this* provider's
key in a TEE *now*, not a quote copied from another machine or replayed from last month.

A TEE lets the code inside choose 64 bytes of report data that the hardware signs with the
measurements. A pasar provider puts there ``H(DOMAIN ‖ 0x00 ‖ account public key ‖ nonce)``
where the nonce is one the market issued and signed moments before (so the quote is fresh) and
``H`` is SHA-512 (64 bytes) or SHA-256 (32 bytes followed by 32 zero bytes, what tools that
expect a 32-byte hash write). The domain string keeps a quote made for another protocol from
being accepted here.
"""

from __future__ import annotations

import hashlib
import hmac

from pasar.core.errors import PasarError

DOMAIN = b"pasar-tee-attest-v1"
REPORT_DATA_BYTES = 64


def _preimage(public_key: bytes, nonce: bytes) -> bytes:
    return DOMAIN + b"\x00" + public_key + nonce


def report_data_for(public_key: bytes, nonce: bytes, *, digest: str = "sha512") -> bytes:
    """The 64 bytes of report data binding ``public_key`` and ``nonce``."""
    if digest == "sha512":
        return hashlib.sha512(_preimage(public_key, nonce)).digest()
    if digest == "sha256":
        return hashlib.sha256(_preimage(public_key, nonce)).digest() + bytes(32)
    raise ValueError(f"unknown digest {digest!r}: sha512 or sha256")


def binds(report_data: bytes, public_key: bytes, nonce: bytes) -> bool:
    """Whether ``report_data`` is the binding of ``public_key`` and ``nonce`` (either digest)."""
    if len(report_data) != REPORT_DATA_BYTES:
        return False
    return any(
        hmac.compare_digest(report_data, report_data_for(public_key, nonce, digest=d))
        for d in ("sha512", "sha256")
    )


def check_binding(report_data_hex: str, public_key: bytes, nonce: bytes) -> None:
    """Raise a 422 unless the quote's report data binds this key and this market nonce."""
    try:
        data = bytes.fromhex(report_data_hex)
    except ValueError:
        data = b""
    if not binds(data, public_key, nonce):
        raise PasarError(
            "the quote's report data does not bind this provider's key and the market's "
            "nonce: it was made for another key or another (older) nonce",
            code="tee_wrong_nonce",
            status=422,
            field="quote",
            hint="ask the market for a fresh nonce and put sha512(domain ‖ 0 ‖ public key ‖ "
            "nonce) in the quote's report data (pasar provider start --tee does it)",
        )
