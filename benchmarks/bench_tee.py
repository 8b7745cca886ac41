"""TEE quote verifications per second with dcap-qvl, printed as one JSON line.

Each verification is what the market does when a provider presents a quote: parse the Intel
TDX quote and its collateral, check the PCK chain to Intel's root, the CRLs, the TCB info and QE
identity signatures and the quote's own signature, and match the TCB level
(:func:`pasar.tee.verify.verify_quote`). The quote is Phala's sample TDX quote
(tests/data/tee), verified at a time its collateral is valid. One core, offline.

    python benchmarks/bench_tee.py [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from pasar.tee.verify import collateral_issued, verify_quote

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "tee"


def run(seconds: float) -> dict[str, Any]:
    quote = (DATA / "tdx_quote").read_bytes()
    collateral = (DATA / "tdx_quote_collateral.json").read_text()
    at = collateral_issued(collateral) + 3600
    for _ in range(5):  # warm up
        verify_quote(quote, collateral, at)
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            verify_quote(quote, collateral, at)
        ops += 10
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {
        "name": "tee_quote_verify",
        "value": round(ops / elapsed, 1),
        "unit": "verifications/s",
        "tee": "TDX",
        "quote_bytes": len(quote),
        "ops": ops,
        "seconds": round(elapsed, 3),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to measure")
    args = parser.parse_args(argv)
    print(json.dumps(run(max(args.seconds, 0.01))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
