"""Signed order submissions per second over loopback HTTP, market on SQLite, with latency.

A real market process (SQLite in WAL mode, every acknowledged order fsynced to the log) takes
pre-signed ``order.create`` envelopes from ``--clients`` concurrent HTTP clients. Each order
escrows money (so the ledger works for every one) and cannot match (no provider is registered),
so what is measured is the API's write path: parse, verify, apply, log durably, answer.

    python benchmarks/bench_api.py [--orders 3000] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport, tls_for
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from market_process import market

SPEC = {"run": "true", "max_price_per_hour": "0.01 USDC", "max_duration": "1m"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run(orders: int, clients: int, *, tls: bool = False) -> dict[str, Any]:
    """``tls``: the market serves HTTPS (``--tls auto``), its certificate pinned by the
    clients, each of which keeps one connection (one handshake) for all its orders."""
    with market(*(("--tls", "auto") if tls else ())) as url, tempfile.TemporaryDirectory() as home:
        client = Identity.generate()
        transport = Transport(url, identity=client, home=home)  # pins the certificate (TLS)
        verify: Any = tls_for(url, home)
        market_id = transport.market
        faucet = {"type": "faucet", "amount": "1000 USDC"}
        transport.post_signed("/v1/faucet", faucet, client)
        # one private part for every order (the same job): uploaded once, named by each
        order = prepared_order(transport, client, SPEC)
        envelopes = [
            sign(
                {**order, "ttl_s": 3600},
                client,
                now_ms=wall_clock_ms(),
                market=market_id,
            )
            for _ in range(orders)
        ]
        latencies: list[float] = []
        errors: list[int] = []
        lock = threading.Lock()

        def worker(chunk: list[dict[str, Any]]) -> None:
            with httpx.Client(base_url=url, timeout=30, verify=verify) as http:
                for envelope in chunk:
                    t = time.perf_counter()
                    response = http.post("/v1/orders", json=envelope)
                    elapsed = time.perf_counter() - t
                    with lock:
                        latencies.append(elapsed)
                        if response.status_code != 200:
                            errors.append(response.status_code)

        chunks = [envelopes[i::clients] for i in range(clients)]
        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.perf_counter() - start
    return {
        "name": "api_order_submissions",
        "value": round(orders / total, 1),
        "unit": "orders/s",
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "orders": orders,
        "clients": clients,
        "errors": len(errors),
        "store": "sqlite (WAL, synchronous=FULL)",
        "tls": tls,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(run(args.orders, args.clients)))


if __name__ == "__main__":
    main()
