"""What ``resources.alternatives`` cost a clearing, printed as one JSON line.

The market clears an order with alternatives once per alternative (``pasar.core.alternatives``),
so its cost should grow with the number of alternatives and with nothing else. A market of
``--providers`` registered providers (half CPU-only, half with one to four RTX4090s, asks spread
over a range) previews (``MarketState.clear``: pure, what the engine does before each ``match``)
one open order per shape: one set of resources, then 4 and 16 (the most a spec may list)
alternatives — GPU models the fleet lacks first, so every alternative is cleared in full, then
one RTX4090 and one CPU alternative that fit. Reported: the median microseconds of a clearing
of each, its ratio to the plain order's, and the book (the default mechanism) both through the
fleet index (a fleet above ``full_scan_up_to``) and by a scan.

    python benchmarks/bench_alternatives.py [--providers 1000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

from pasar.core.private_part import order_fields
from pasar.core.state import MarketState

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from state_txs import T0, Sender, funded_state

MISSING = ["H100", "A100", "L40S", "MI300X", "H200", "B200", "L4", "T4"]  # nobody has these


def build(providers: int) -> tuple[MarketState, Sender]:
    s, send = funded_state()
    for i in range(providers):
        gpus = ["RTX4090"] * (1 + i % 4) if i % 2 else []
        inventory = {"gpus": gpus, "cpus": 16, "memory_gb": 64, "disk_gb": 500}
        asks: dict[str, Any] = {"cpu_core": f"0.{10 + i % 80:02d}"}
        if gpus:
            asks["gpu"] = {"RTX4090": f"0.{20 + i % 70:02d}"}
        s.apply(send.tx(f"p{i:06d}", T0, type="provider.register", inventory=inventory, asks=asks))
    return s, send


def alternatives(n: int) -> list[dict[str, Any]]:
    """``n`` alternatives: models nobody has (each cleared in full), then two that fit."""
    fitting: list[dict[str, Any]] = [{"accelerators": "RTX4090:1"}, {"cpus": 2}]
    missing = [{"accelerators": f"{MISSING[i % len(MISSING)]}:{1 + i // 8}"} for i in range(n)]
    return [*missing[: n - len(fitting)], *fitting]


def order(s: MarketState, send: Sender, resources: dict[str, Any]) -> str:
    spec = {
        "name": "bench",
        "run": "true",
        "resources": resources,
        "max_price_per_hour": "1 USDC",
        "max_duration": "1h",
    }
    applied = s.apply(send.tx("client", T0 + 1, type="order.create", **order_fields(spec)))
    return str(applied.result["order_id"])


def median_us(s: MarketState, order_id: str, repeat: int, *, indexed: bool) -> float:
    record = s.orders[order_id]
    times = []
    for seed in range(repeat):
        start = time.perf_counter()
        result = s.clear(record, seed, indexed=indexed)
        times.append(time.perf_counter() - start)
        assert result.awards, "the bench's orders fit"
    return round(1e6 * sorted(times)[len(times) // 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    s, send = build(args.providers)
    shapes = {
        "1": order(s, send, {"cpus": 2}),
        "4": order(s, send, {"alternatives": alternatives(4), "pick": "cheapest"}),
        "16": order(s, send, {"alternatives": alternatives(16), "pick": "cheapest"}),
    }
    indexed = {k: median_us(s, o, args.repeat, indexed=True) for k, o in shapes.items()}
    # a scan looks at every provider (explain, small markets): fewer samples of it
    scanned = {
        k: median_us(s, o, max(3, args.repeat // 5), indexed=False) for k, o in shapes.items()
    }
    print(
        json.dumps(
            {
                "name": "clear_with_16_alternatives",
                "value": indexed["16"],
                "unit": "us",
                "ratio_to_one_request": round(indexed["16"] / indexed["1"], 2),
                "scan_ratio_to_one_request": round(scanned["16"] / scanned["1"], 2),
                "median_us_indexed": indexed,
                "median_us_scan": scanned,
                "providers": args.providers,
                "machine": f"{platform.machine()} {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
