"""What a user of ``@pasar.remote`` feels, end to end, on a real local network (issue 13).

A devnet (``pasar market serve`` + ``pasar provider start`` processes, bubblewrap sandbox on,
the default preset, verifiers off: ``receipt`` verification) runs a trivial function
(``x + 1``) and measures:

- ``call_p50_ms`` / ``call_p95_ms``: sequential ``f.remote(x)`` calls, submit → value, on
  ``--providers`` (3) providers (targets: p50 < 100 ms, p95 < 200 ms);
- ``map_calls_per_s``: ``f.map(range(N))`` for N = ``--map`` (200) on 2 providers (target
  ≥ 250/s), and for ``--map-large`` (10,000 with ``--full``; 1,000 by default, so the default
  run stays near a minute) with the client's peak memory growth (``map_large_rss_mib``);
- ``kill_recovery_s``: a call whose provider is SIGKILLed while it runs → its value from
  another provider (target < 10 s);
- ``cold_start_s``: ``Devnet.start()`` with 3 providers → the first value, on a second start
  of the same homes (the first runs each provider's hardware benchmark) (target < 3 s).

The latency and ``.map`` figures are taken once every provider's capacity proof (the one
challenge each gets on joining) has its verdict — a network at rest (``call_proofs_wait_s``
says how long that took; ``--busy`` measures at once instead, while they prove); cold start
and kill recovery do not wait.

Prints one JSON line: ``value`` is the call p50 in ms, the other figures beside it.

    python benchmarks/bench_e2e.py [--calls 50] [--map 200] [--map-large 1000] [--full]
        [--only latency,map,kill,cold] [--warm-pool N] [--busy]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pasar.client.client import Client
from pasar.client.remote import RemoteFunction, remote
from pasar.devnet import Devnet, DevnetConfig

FIGURES = ("latency", "map", "kill", "cold")


def add_one(x: int) -> int:
    return x + 1


def slow_add_one(x: int) -> int:
    """Runs long enough (3 s) for its provider to be killed while it does."""
    time.sleep(3)
    return x + 1


PROOFS_WAIT_S = 90.0  # the providers' capacity proofs (seconds each, one at a time)
SETTINGS: dict[str, int | None] = {"warm_pool": None, "settle": 1}  # --warm-pool, --busy


@contextmanager
def network(home: Path, providers: int, **extra: Any) -> Iterator[Devnet]:
    config = DevnetConfig(
        home=home, providers=providers, verifiers=0, warm_pool=SETTINGS["warm_pool"], **extra
    )
    with Devnet(config) as net:
        net.start()
        yield net


def proofs_settled(net: Devnet) -> float:
    """Wait until every provider's capacity proof has its verdict; the seconds waited.

    Each provider that joins is challenged once (:mod:`pasar.market.capacity_checks`): seconds
    of matrix products on the provider and a second of checking on the market, one provider
    at a time — on a 3-provider devnet sharing 2 cores, the first ~20 s after ``up`` are busy
    proving. The latency and ``.map`` figures are of a network at rest, as a user of a running
    market meets it; the cold-start figure does not wait (it is the first call's time)."""
    client = Client(net.url, home=net.config.client_home)
    started = time.perf_counter()
    while SETTINGS["settle"] and time.perf_counter() - started < PROOFS_WAIT_S:
        views = [client.transport.get(f"/v1/providers/{m.ready}") for m in net.providers]
        proofs = [v.get("capacity") or {} for v in views]
        if all(p.get("state") != "unchecked" and "open" not in p for p in proofs):
            break
        time.sleep(0.25)
    return round(time.perf_counter() - started, 1)


def function(net: Devnet, fn: Callable[[int], int], **options: Any) -> RemoteFunction[Any, int]:
    client = Client(net.url, home=net.config.client_home)
    return remote(client=client, max_duration="5m", **options)(fn)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(home: Path, providers: int, calls: int) -> dict[str, Any]:
    with network(home, providers) as net:
        settled = proofs_settled(net)
        fn = function(net, add_one)
        assert fn.remote(0) == 1  # warm: the first call imports and connects
        took = []
        for i in range(calls):
            t = time.perf_counter()
            value = fn.remote(i)
            took.append((time.perf_counter() - t) * 1000)
            assert value == i + 1, value
    return {
        "call_p50_ms": round(statistics.median(took), 1),
        "call_p95_ms": round(percentile(took, 0.95), 1),
        "calls": calls,
        "call_providers": providers,
        "call_proofs_wait_s": settled,
    }


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def map_rate(home: Path, small: int, large: int) -> dict[str, Any]:
    with network(home, 2) as net:
        proofs_settled(net)
        fn = function(net, add_one)
        assert fn.map(range(2)) == [1, 2]  # warm
        t = time.perf_counter()
        assert fn.map(range(small)) == list(range(1, small + 1))
        small_rate = small / (time.perf_counter() - t)
        before = max_rss_mib()
        t = time.perf_counter()
        found = fn.map(range(large))
        large_rate = large / (time.perf_counter() - t)
        assert found == list(range(1, large + 1))
        grew = max_rss_mib() - before
    return {
        "map_calls_per_s": round(small_rate, 1),
        "map_calls": small,
        "map_large_calls_per_s": round(large_rate, 1),
        "map_large_calls": large,
        "map_large_rss_mib": round(grew, 1),
    }


def kill_recovery(home: Path) -> dict[str, Any]:
    """Two providers; the one that takes the call is SIGKILLed one second into it."""
    with network(home, 2) as net:
        fn = function(net, slow_add_one)
        call = fn.spawn(41)
        client = fn.client
        assert client is not None
        victim = None
        deadline = time.monotonic() + 30
        while victim is None and time.monotonic() < deadline:
            order = call.job.status()
            running = [x for x in order.get("leases", []) if x.get("status") == "running"]
            if running:
                victim = running[0]["provider"]
            else:
                time.sleep(0.02)
        if victim is None:
            raise RuntimeError("no lease started within 30 s")
        time.sleep(1.0)
        member = next(m for m in net.providers if m.ready == victim)
        killed = time.perf_counter()
        os.kill(member.pid, signal.SIGKILL)
        value = call.get(timeout=120)
        took = time.perf_counter() - killed
        assert value == 42, value
        order = call.job.status()
        reasons = [x.get("note", "") for x in order.get("leases", []) if x["provider"] == victim]
    # what remains of the call after the kill (3 s less the 1 s it ran) is not recovery
    return {"kill_recovery_s": round(took - 2.0, 2), "kill_reason": "; ".join(reasons)[:200]}


def cold_start(home: Path) -> dict[str, Any]:
    with network(home, 3):  # the first start: hardware benchmarks, keys
        pass
    t = time.perf_counter()
    with network(home, 3) as net:
        up = time.perf_counter() - t
        assert function(net, add_one).remote(1) == 2
        first = time.perf_counter() - t
    return {"cold_start_s": round(first, 2), "cold_start_up_s": round(up, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--map", type=int, default=200)
    parser.add_argument("--map-large", type=int, default=1000)
    parser.add_argument("--full", action="store_true", help="--map-large 10000")
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to measure")
    parser.add_argument(
        "--warm-pool", type=int, default=None, help="providers' --warm-pool (0: cold sandboxes)"
    )
    parser.add_argument(
        "--busy",
        action="store_true",
        help="measure at once, while the providers prove their capacity (a devnet's first ~20 s)",
    )
    args = parser.parse_args()
    SETTINGS["warm_pool"] = args.warm_pool
    SETTINGS["settle"] = 0 if args.busy else 1
    wanted = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(wanted) - set(FIGURES)
    if unknown:
        parser.error(f"--only: unknown figure(s) {sorted(unknown)}; choose from {FIGURES}")
    large = 10_000 if args.full else args.map_large
    out: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pasar-bench-e2e-") as tmp:
        root = Path(tmp)
        if "latency" in wanted:
            out |= latency(root / "latency", args.providers, args.calls)
        if "map" in wanted:
            out |= map_rate(root / "map", args.map, large)
        if "kill" in wanted:
            out |= kill_recovery(root / "kill")
        if "cold" in wanted:
            out |= cold_start(root / "cold")
    value = out.get("call_p50_ms")
    print(
        json.dumps(
            {
                "name": "e2e",
                "value": value,
                "unit": "ms (call p50)" if value is not None else "",
                **out,
                "runtime": "sandbox",
                "warm_pool": "default" if args.warm_pool is None else args.warm_pool,
                "seconds": round(time.perf_counter() - started, 1),
                "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
