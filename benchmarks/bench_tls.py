"""What TLS costs the API: signed order submissions per second over HTTPS vs plain HTTP.

The same benchmark as ``bench_api.py`` (pre-signed ``order.create`` envelopes from concurrent
clients, SQLite, every order fsynced) run twice in one go: against a plain-HTTP market and
against one serving ``--tls auto`` with its certificate pinned by the clients. Absolute rates
differ across machines; the ratio is the figure.

    python benchmarks/bench_tls.py [--orders 1500] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_api import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    plain = run(args.orders, args.clients)
    tls = run(args.orders, args.clients, tls=True)
    print(
        json.dumps(
            {
                "name": "api_order_submissions_tls",
                "value": tls["value"],
                "unit": "orders/s over HTTPS",
                "plain_http": plain["value"],
                "ratio_to_plain": round(tls["value"] / plain["value"], 3),
                "p99_ms": tls["p99_ms"],
                "plain_p99_ms": plain["p99_ms"],
                "errors": tls["errors"] + plain["errors"],
                "orders": args.orders,
                "clients": args.clients,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
