"""Signed order submissions per second over loopback HTTP, as a fraction of a bare-FastAPI floor.

In one run, driven by the same ``--clients`` threads (one keep-alive connection each):

1. the market on SQLite (WAL, every acknowledged order fsynced to the log, group commit) takes
   pre-signed ``order.create`` envelopes, each client thread its own client's (its own key,
   money and request budget). Each order escrows money (so the ledger works for
   every one) and cannot match (no provider is registered), so what is measured is the API's
   write path: parse, verify, apply, log durably, answer;
2. the floor: a bare FastAPI app (``floor_app.py``: one uvicorn worker on 127.0.0.1, an endpoint
   that parses the JSON body and answers 201) gets exactly the same envelopes;
3. with ``--db URL`` (a PostgreSQL server; a fresh database is created on it and dropped) or
   ``--postgres`` (``PASAR_TEST_DATABASE_URL``), the market on PostgreSQL, like 1.

It prints one JSON line: each rate, the market's ratio to the floor, p50/p99 latencies, and
the CPU seconds each server process spent per request while it was driven (``psutil``: user +
system, every thread of it) with their ratio ``cpu_ratio = floor_cpu / market_cpu``, and the
clients' CPU per request. On a machine shared with other work the wall-clock rates swing with
the load; CPU per request does not. On a quiet two-core machine the clients (one process)
take about one core and the server the other, so each rate is bounded by the busier side:
``bound_ratio`` = max(client, floor) / max(client, market), roughly the rates' ratio there.

    python benchmarks/bench_api.py [--orders 3000] [--clients 4] [--postgres | --db URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil

from pasar.client.raw_orders import prepared_order
from pasar.client.transport import Transport, tls_for
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from market_process import market

HERE = __file__.rsplit("/", 1)[0]
SPEC = {"run": "true", "max_price_per_hour": "0.01 USDC", "max_duration": "1m"}
FLOOR_COMMAND = (sys.executable, f"{HERE}/floor_app.py")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def server_process(url: str) -> psutil.Process:
    """The child process (started by :func:`market_process.market`) listening on ``url``'s port."""
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    for child in psutil.Process().children(recursive=True):
        try:
            if any(c.laddr.port == port for c in child.net_connections("tcp")):
                return child
        except psutil.Error:
            continue
    raise RuntimeError(f"no child process listens on port {port}")


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` so far (all its threads)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def drive(
    url: str, envelopes: list[dict[str, Any]], clients: int, verify: Any = True
) -> dict[str, Any]:
    """POST every envelope to ``url``/v1/orders from ``clients`` threads; the rate, latencies
    the server process's CPU milliseconds per request (``cpu_ms``) and this process's, the
    clients' (``client_cpu_ms``)."""
    server = server_process(url)
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
                    if response.status_code >= 300:
                        errors.append(response.status_code)

    chunks = [envelopes[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    me = psutil.Process()
    cpu_before, client_before = cpu_seconds(server), cpu_seconds(me)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - start
    cpu = cpu_seconds(server) - cpu_before
    client_cpu = cpu_seconds(me) - client_before
    return {
        "per_s": round(len(envelopes) / total, 1),
        "cpu_ms": round(cpu / len(envelopes) * 1000, 4),
        "client_cpu_ms": round(client_cpu / len(envelopes) * 1000, 4),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": len(errors),
    }


def run(
    orders: int,
    clients: int,
    *,
    tls: bool = False,
    db_url: str | None = None,
    keep: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The market's figures. ``tls``: it serves HTTPS (``--tls auto``), its certificate pinned
    by the clients, each of which keeps one connection (one handshake) for all its orders.
    ``db_url``: its database (default SQLite in its home). ``keep``: receives the envelopes."""
    extra = [*(("--tls", "auto") if tls else ()), *(("--db", db_url) if db_url else ())]
    with market(*extra) as url, tempfile.TemporaryDirectory() as home:
        market_id = Transport(url, home=home).market  # pins the certificate (TLS)
        verify: Any = tls_for(url, home)
        # one identity per client thread, as ``clients`` clients would be: each with its own
        # money and its own request budget (the market allows one key 1,000 requests a second)
        signed: list[list[dict[str, Any]]] = []
        for i in range(clients):
            client = Identity.generate()
            transport = Transport(url, identity=client, home=home)
            faucet = {"type": "faucet", "amount": "1000 USDC"}
            transport.post_signed("/v1/faucet", faucet, client)
            # one private part for every order of this client (the same job): uploaded once
            order = prepared_order(transport, client, SPEC)
            signed.append(
                [
                    sign({**order, "ttl_s": 3600}, client, now_ms=wall_clock_ms(), market=market_id)
                    for _ in range(i, orders, clients)  # drive's chunk i
                ]
            )
        # interleaved, so that ``drive``'s chunk ``i`` (every ``clients``-th) is client i's
        envelopes = [signed[i % clients][i // clients] for i in range(orders)]
        figures = drive(url, envelopes, clients, verify)
    if keep is not None:
        keep.extend(envelopes)
    return {
        "name": "api_order_submissions",
        "value": figures["per_s"],
        "unit": "orders/s",
        **{k: v for k, v in figures.items() if k != "per_s"},
        "orders": orders,
        "clients": clients,
        "store": "postgresql" if db_url else "sqlite (WAL, synchronous=FULL)",
        "tls": tls,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def floor(envelopes: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """The bare-FastAPI floor's figures for the same envelopes and client threads."""
    with market(command=FLOOR_COMMAND) as url:
        return drive(url, envelopes, clients)


def bound_ratio(market: dict[str, Any], bare: dict[str, Any]) -> float:
    """The ratio of the rates a quiet two-core machine would show, from CPU per request alone:
    the clients (one process, one GIL) and the server each have about one core, so each rate
    is bounded by the busier of the two, ``1 / max(client, server)``."""
    market_bound = float(max(market["client_cpu_ms"], market["cpu_ms"]))
    floor_bound = float(max(bare["client_cpu_ms"], bare["cpu_ms"]))
    return round(floor_bound / market_bound, 3)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the PostgreSQL server of ``server_url`` (dropped afterwards)."""
    import psycopg

    name = f"pasar_bench_{uuid.uuid4().hex[:12]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--db", help="a PostgreSQL URL (postgresql+psycopg://user@host:port/db)")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL at $PASAR_TEST_DATABASE_URL"
    )
    args = parser.parse_args()
    pg_url = args.db or (os.environ.get("PASAR_TEST_DATABASE_URL") if args.postgres else None)
    if args.postgres and not pg_url:
        parser.error("--postgres needs PASAR_TEST_DATABASE_URL (or pass --db URL)")
    envelopes: list[dict[str, Any]] = []
    sqlite = run(args.orders, args.clients, keep=envelopes)
    bare = floor(envelopes, args.clients)
    out: dict[str, Any] = {
        "name": "api_order_submissions",
        "value": sqlite["value"],
        "unit": "orders/s",
        "floor_per_s": bare["per_s"],
        "ratio": round(sqlite["value"] / bare["per_s"], 3),
        "p50_ms": sqlite["p50_ms"],
        "p99_ms": sqlite["p99_ms"],
        "cpu_ms": sqlite["cpu_ms"],
        "floor_cpu_ms": bare["cpu_ms"],
        "cpu_ratio": round(bare["cpu_ms"] / sqlite["cpu_ms"], 3),
        "client_cpu_ms": sqlite["client_cpu_ms"],
        "bound_ratio": bound_ratio(sqlite, bare),
        "floor_p50_ms": bare["p50_ms"],
        "floor_p99_ms": bare["p99_ms"],
    }
    errors = sqlite["errors"] + bare["errors"]
    if pg_url:
        with fresh_database(pg_url) as db_url:
            pg = run(args.orders, args.clients, db_url=db_url)
        out.update(
            postgres_per_s=pg["value"],
            postgres_ratio=round(pg["value"] / bare["per_s"], 3),
            postgres_p50_ms=pg["p50_ms"],
            postgres_p99_ms=pg["p99_ms"],
            postgres_cpu_ms=pg["cpu_ms"],
            postgres_cpu_ratio=round(bare["cpu_ms"] / pg["cpu_ms"], 3),
            postgres_bound_ratio=bound_ratio(pg, bare),
        )
        errors += pg["errors"]
    out.update(
        errors=errors,
        orders=args.orders,
        clients=args.clients,
        python=platform.python_version(),
        machine=platform.machine(),
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
