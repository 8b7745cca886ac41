"""Push-feed latency: from an order's creation to its provider hearing of it, over loopback.

A provider long-polls ``GET /v1/providers/{id}/feed``; the client signs and posts an order the
provider fits. Measured per order: from just before the client's POST is sent to the moment the
provider's long-poll returns with the event (the client's 2xx is not waited for). Target from
the issue: within 100 ms on loopback.

    python benchmarks/bench_feed.py [--orders 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from typing import Any

import httpx

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from market_process import market

SPEC = {"run": "true", "max_price_per_hour": "0.01 USDC", "max_duration": "1m", "shards": 1}


def post(http: httpx.Client, path: str, body: dict[str, Any], who: Identity) -> Any:
    market_id = http.get("/v1/healthz").json()["market"]
    response = http.post(path, json=sign(body, who, now_ms=wall_clock_ms(), market=market_id))
    response.raise_for_status()
    return response.json()


def run(orders: int) -> dict[str, Any]:
    with market() as url, httpx.Client(base_url=url, timeout=30) as http:
        client, provider = Identity.generate(), Identity.generate()
        post(http, "/v1/faucet", {"type": "faucet", "amount": "100 USDC"}, client)
        # a provider with no capacity for these orders still hears of every new order: the
        # book mechanism tells all providers, and nothing is matched, so nothing else happens
        post(
            http,
            "/v1/providers",
            {"type": "provider.register", "inventory": {"cpus": 0, "memory_gb": 0, "disk_gb": 0}},
            provider,
        )
        market_id = http.get("/v1/healthz").json()["market"]
        feed = f"/v1/providers/{provider.account_id}/feed"
        signer = Transport(url, identity=provider)  # a provider's feed is read with its key
        cursor = http.send(signer.build("GET", feed, params={"timeout": 0})).json()["next"]
        latencies: list[float] = []
        order = prepared_order(Transport(url, identity=client), client, SPEC)
        for _ in range(orders):
            envelope = sign(
                order,
                client,
                now_ms=wall_clock_ms(),
                market=market_id,
            )
            got: dict[str, Any] = {}

            def listen(after: int = cursor, got: dict[str, Any] = got) -> None:
                request = signer.build("GET", feed, params={"after": after, "timeout": 10})
                with httpx.Client(base_url=url, timeout=30) as poll:
                    got["reply"] = poll.send(request).json()
                    got["at"] = time.perf_counter()

            listener = threading.Thread(target=listen)
            listener.start()
            time.sleep(0.005)  # let the long-poll reach the server and wait
            sent = time.perf_counter()
            http.post("/v1/orders", json=envelope).raise_for_status()
            listener.join()
            latencies.append(got["at"] - sent)
            cursor = got["reply"]["next"]
        signer.close()
    ordered = sorted(latencies)
    return {
        "name": "feed_notify_latency",
        "value": round(statistics.median(latencies) * 1000, 2),
        "unit": "ms (p50)",
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
        "orders": orders,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    print(json.dumps(run(parser.parse_args().orders)))


if __name__ == "__main__":
    main()
