"""The real sample quotes in tests/data/tee (Phala's dcap-qvl samples, MIT) and the times at
which their collateral is valid: its TCB info's issue date + 1 h (tests/data/tee/README.md)."""

from __future__ import annotations

from pathlib import Path

from pasar.tee.verify import collateral_issued

DATA = Path(__file__).resolve().parents[2] / "data" / "tee"


def sample(name: str) -> tuple[bytes, str, int]:
    """``(quote, collateral JSON, a unix time at which the collateral is valid)``."""
    quote = (DATA / name).read_bytes()
    collateral = (DATA / f"{name}_collateral.json").read_text()
    return quote, collateral, collateral_issued(collateral) + 3600
