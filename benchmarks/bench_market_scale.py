"""Order → lease latency of a live market holding 40,000 providers, printed as one JSON line.

What runs: a real ``pasar market serve`` process (SQLite log, the HTTP API, the engine) whose
log already holds ``--providers`` signed ``provider.register`` transactions, and ``--clients``
HTTP clients that each send signed ``order.create`` requests one after another and long-poll
the order until it has a lease. The latency of one order is from just before its POST until
the client sees the lease; ``orders_per_s`` is leased orders over the wall time of the run.

The fleet and the orders are :mod:`bench_matching`'s (shaped like io.net's: mostly consumer
GPUs, ~6% A100/H100 machines, ~10% CPU-only, standing asks per GPU-hour and per core-hour).
The ~5% of those orders built to be unmatchable (16 GPUs, a model nobody has, a max far below
any ask) are left out: what is measured is order → lease. Leases are not released (no
provider process runs them), so the fleet slowly fills during the run.

How 40,000 providers are registered (``register_path`` in the output): not through 40,000 HTTP
calls. Each provider has its own key and signs its own ``provider.register`` envelope (on every
CPU, in chunks); the envelopes are verified and appended to the market's log in bulk
(``SqlStore.append_many``, what the group commit does) and sealed into blocks signed by the
market's key before the market starts, and the market then recovers by verifying the log
(every block and signature) and replaying it through ``MarketState.apply``, as after any
restart. ``recovery_s`` is how long that took
(``build_app``: open, verify, replay).

Liveness: the market offers only providers it has heard from within the heartbeat grace (an
open feed long-poll, or a signed request). 40,000 open long-polls are beyond this machine, so
the market process here is ``pasar market serve`` whose liveness is told, once at start, that
every provider has a feed poll open (``Liveness.polling``, entered and never left); nothing else
is touched.

    python benchmarks/bench_market_scale.py [--providers 40000] [--orders 600] [--clients 2]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport
from pasar.core.orders import Order, ProviderView
from pasar.core.pricing.book import Asks
from pasar.crypto.envelope import sign, verify, wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.market.chain import ChainBuilder
from pasar.market.config import MarketConfig
from pasar.market.store import SqlStore
from pasar.market.tx_records import TxRecord

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_matching import make_fleet, make_orders
from market_process import market

SERVE_FLAG = "--serve-market"
RECOVERY_FILE = "bench-recovery.json"
APPEND_CHUNK = 2000
WAIT_FOR_LEASE_S = 10.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# -- the fleet, straight into the log -------------------------------------------------------------


def provider_identity(i: int) -> Identity:
    return Identity.from_seed(hashlib.sha256(b"pasar-bench-provider-%d" % i).digest())


def register_body(view: ProviderView, asks: Asks) -> dict[str, Any]:
    inventory = view.inventory
    body: dict[str, Any] = {
        "type": "provider.register",
        "inventory": {
            "gpus": {spec.model.canonical: spec.count for spec in inventory.gpus},
            "cpus": int(inventory.cpus),
            "memory_gb": int(inventory.memory_gb),
            "disk_gb": int(inventory.disk_gb),
        },
        "asks": {"gpu": {k: v.to_json() for k, v in asks.gpu.items()}},
        "score": view.score,
    }
    if asks.cpu_core is not None:
        body["asks"]["cpu_core"] = asks.cpu_core.to_json()
    return body


def signed_registrations(
    first: int, bodies: list[dict[str, Any]], market_id: str, now: int
) -> list[TxRecord]:
    """Each provider signs its own registration (provider ``first + i`` signs ``bodies[i]``);
    the envelopes are verified as the API would, and stamped ``now``."""
    records = []
    for i, body in enumerate(bodies, start=first):
        envelope = sign(body, provider_identity(i), now_ms=now, market=market_id)
        records.append(
            TxRecord.from_verified(verify(envelope, now_ms=now, market=market_id), at=now)
        )
    return records


def write_registrations(home: Path, providers: int, seed: int) -> float:
    """Sign one registration per provider (on every CPU) and append them all to the log."""
    from pasar.market.serve import load_or_create_market_key

    start = time.perf_counter()
    config = MarketConfig.build(home=home, devnet=True)
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = load_or_create_market_key(config)
    market_id = identity.account_id
    bodies = [
        register_body(view, asks) for view, asks in make_fleet(providers, random.Random(seed))
    ]
    now = wall_clock_ms()
    store = SqlStore(config.db_url)
    try:
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            chunks = [
                pool.submit(
                    signed_registrations, lo, bodies[lo : lo + APPEND_CHUNK], market_id, now
                )
                for lo in range(0, len(bodies), APPEND_CHUNK)
            ]
            for chunk in chunks:  # in provider order: the log's order is the registration order
                store.append_many(chunk.result())
        # sealed into blocks, as a market that had taken them one by one would have done
        ChainBuilder(store, identity, wall_clock_ms).seal_all()
    finally:
        store.close()
    return time.perf_counter() - start


# -- the market process ---------------------------------------------------------------------------


def serve_market(argv: list[str]) -> None:
    """``pasar market serve`` with the liveness stand-in for the fleet's feed polls (see the
    module docstring); writes how long recovery took to ``<home>/bench-recovery.json``."""
    from pasar.market import serve as serving

    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--devnet", action="store_true")
    args = parser.parse_args(argv)
    build = serving.build_app
    polls = contextlib.ExitStack()  # open for the life of the process

    def build_and_keep_alive(config: MarketConfig, **kwargs: Any) -> Any:
        start = time.perf_counter()
        app = build(config, **kwargs)
        service = app.state.service
        facts = {"recovery_s": time.perf_counter() - start, "replayed": service.state.tx_count}
        (config.home / RECOVERY_FILE).write_text(json.dumps(facts))
        for provider in service.state.providers:  # as if each had its feed long-poll open
            polls.enter_context(service.liveness.polling(provider))
        return app

    serving.build_app = build_and_keep_alive
    config = MarketConfig.build(home=args.home, port=args.port, devnet=args.devnet)
    serving.serve(config)


# -- the clients ----------------------------------------------------------------------------------


def spec_of(order: Order) -> dict[str, Any]:
    request = order.request
    resources: dict[str, Any] = {
        "cpus": int(request.cpus),
        "memory": int(request.memory_gb),
        "disk": int(request.disk_gb),
    }
    if request.gpu_count:
        resources["accelerators"] = {
            "models": [s.canonical for s in request.gpu_models],
            "count": request.gpu_count,
        }
    spec: dict[str, Any] = {
        "run": "true",
        "resources": resources,
        "max_price_per_hour": order.max_price_per_hour.to_json(),
        "max_duration": "1m",
    }
    if order.leases > 1:
        spec["num_nodes" if order.together else "shards"] = order.leases
    return spec


def matchable(order: Order) -> bool:
    """Not one of bench_matching's deliberately unmatchable orders."""
    request = order.request
    models = {s.canonical for s in request.gpu_models}
    return not (
        request.gpu_count > 8
        or any("MI300X" in m for m in models)
        or (models == {"H100"} and order.max_price_per_hour.micros <= 100_000)
    )


def order_to_lease(
    transport: Transport, who: Identity, spec: dict[str, Any]
) -> tuple[float | None, str]:
    """Seconds from sending the order to seeing a lease on it (None: no lease in time)."""
    order = prepared_order(transport, who, spec)  # its private part: uploaded first
    start = time.perf_counter()
    created = transport.post_signed("/v1/orders", {**order, "ttl_s": 600}, who)
    order_id = created["order_id"]
    after = 0
    while time.perf_counter() - start < WAIT_FOR_LEASE_S:
        reply = transport.request(
            "GET", f"/v1/orders/{order_id}/wait", signer=who, params={"after": after, "timeout": 5}
        ).json()
        if reply["order"]["leases"]:
            return time.perf_counter() - start, order_id
        after = reply["next"]
    return None, order_id


def run_clients(
    url: str, specs: list[dict[str, Any]], clients: int
) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    unmatched: list[str] = []
    lock = threading.Lock()

    def worker(chunk: list[dict[str, Any]]) -> None:
        who = Identity.generate()
        transport = Transport(url, timeout_s=30)
        try:
            transport.post_signed("/v1/faucet", {"type": "faucet", "amount": "10000 USDC"}, who)
            ready.wait()
            for spec in chunk:
                took, order_id = order_to_lease(transport, who, spec)
                with lock:
                    if took is None:
                        unmatched.append(order_id)
                    else:
                        latencies.append(took)
        finally:
            transport.close()

    ready = threading.Event()
    threads = [threading.Thread(target=worker, args=(specs[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # every client has its money
    start = time.perf_counter()
    ready.set()
    for t in threads:
        t.join()
    return latencies, len(unmatched), time.perf_counter() - start


def run(providers: int, n_orders: int, clients: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pasar-scale-") as tmp:
        home = Path(tmp) / "market"
        write_s = write_registrations(home, providers, seed)
        rng = random.Random(seed + 1)
        orders = [o for o in make_orders(n_orders * 2, rng) if matchable(o)][:n_orders]
        specs = [spec_of(o) for o in orders]
        command = (sys.executable, os.path.abspath(__file__), SERVE_FLAG)
        with market(home=home, command=command, start_timeout_s=300) as url:
            recovery = json.loads((home / RECOVERY_FILE).read_text())
            time.sleep(1.0)  # the liveness stand-in has heard from every provider
            latencies, unmatched, wall = run_clients(url, specs, clients)
    return {
        "name": "market_scale_order_to_lease",
        "value": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "unit": "ms",
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "orders_per_s": round(len(latencies) / wall, 1),
        "providers": providers,
        "orders": len(specs),
        "leased": len(latencies),
        "unmatched": unmatched,
        "clients": clients,
        "register_path": "signed provider.register envelopes appended to the log in bulk "
        "(SqlStore.append_many) and sealed before start; the market verifies and replays them",
        "registration_write_s": round(write_s, 2),
        "recovery_s": round(recovery["recovery_s"], 2),
        "replayed_txs": recovery["replayed"],
        "liveness": "every provider counted as having its feed poll open (Liveness.polling)",
        "store": "sqlite (WAL, synchronous=FULL)",
        "seed": seed,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == SERVE_FLAG:
        serve_market(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--providers", type=int, default=40_000, help="fleet size")
    parser.add_argument("--orders", type=int, default=600, help="orders to send")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--seed", type=int, default=7, help="seed of fleet and orders")
    args = parser.parse_args(argv)
    result = run(max(1, args.providers), max(1, args.orders), max(1, args.clients), args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
