"""Envelope throughput: sign + verify of a 1 KB body per second, printed as one JSON line.

Every state-changing request costs the client one sign and the market one verify, so this bounds
how many requests per second one core can authenticate. The body is sized so that its canonical
JSON is exactly 1024 bytes.

    python benchmarks/bench_envelope.py [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

from pasar.crypto.canonical import canonical_json
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity

BODY_BYTES = 1024
NOW_MS = 1_700_000_000_000


def make_body(size: int = BODY_BYTES) -> dict[str, Any]:
    """A realistic-looking order body padded so that its canonical JSON is ``size`` bytes."""
    body: dict[str, Any] = {
        "type": "order.create",
        "price_micros": 1_500_000,
        "resources": {"gpu": "h100", "gpus": 1, "cpus": 16, "memory_gib": 128},
        "pad": "",
    }
    body["pad"] = "x" * (size - len(canonical_json(body)))
    assert len(canonical_json(body)) == size
    return body


def run(seconds: float) -> dict[str, Any]:
    identity = Identity.from_seed(bytes(32))
    market = Identity.from_seed(bytes([1]) * 32).account_id
    body = make_body()
    # warm up (key caches, allocator) so the timed loop measures the steady state
    for _ in range(50):
        verify(sign(body, identity, now_ms=NOW_MS, market=market), now_ms=NOW_MS, market=market)
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            verify(sign(body, identity, now_ms=NOW_MS, market=market), now_ms=NOW_MS, market=market)
        ops += 100
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    return {
        "name": "envelope_sign_verify",
        "value": round(ops / elapsed, 1),
        "unit": "ops/s",
        "body_bytes": BODY_BYTES,
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
