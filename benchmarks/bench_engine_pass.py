"""One pass of the market's engine over a long history, printed as one JSON line.

The engine asks on every pass (after each transaction that may give it work) what is due:
orders to match or expire, leases overdue or waiting for a verdict, checks past their deadline.
It holds the service's lock while it asks, and every order's apply waits for that lock. Here a
market service (in-memory SQLite, the pasar preset) holds ``--orders`` orders in its history
(each created and cancelled: the history a busy market accumulates) and ``--open`` open ones,
and ``Engine.due`` is timed; ``value`` is its median in ms.

In the same run, ``scan_ms`` is what the same questions cost as scans of every record (the
index's own check, :meth:`pasar.core.live_index.LiveIndex.problems`, walks them all): what a
pass cost before the engine walked the live index, and ``scan_ratio`` the factor saved.

    python benchmarks/bench_engine_pass.py [--orders 10000] [--open 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import time
from typing import Any

from pasar.core.presets import builtin_preset
from pasar.core.private_part import PrivatePart
from pasar.crypto.envelope import sign, verify
from pasar.crypto.identity import Identity
from pasar.market.chain import ChainBuilder
from pasar.market.engine import Engine
from pasar.market.service import MarketService
from pasar.market.store import SqlStore

T0 = 1_800_000_000_000
SPEC = {"max_price_per_hour": "0.01 USDC", "max_duration": "1m"}


class History:
    """A market service whose clock moves 1 ms per transaction, and one client's orders."""

    def __init__(self) -> None:
        self.market = Identity.from_seed(bytes(32))
        self.now = T0
        store = SqlStore("sqlite:///:memory:")
        self.service = MarketService(
            store=store,
            identity=self.market,
            preset=builtin_preset("pasar"),
            clock=lambda: self.now,
            devnet=True,
        )
        chain = ChainBuilder(store, self.market, lambda: self.now)
        self.engine = Engine(self.service, chain, capacity_checks=False)
        self.client = Identity.generate()
        self.part = PrivatePart(secrets.token_bytes(32).hex(), {"run": "true"}, ())

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        self.now += 1
        market = self.market.account_id
        envelope = sign(body, self.client, market=market, now_ms=self.now)
        return self.service.submit(verify(envelope, market=market, now_ms=self.now)).result

    def order(self) -> str:
        body = {"type": "order.create", "spec": SPEC, "private": self.part.commitment}
        return str(self.send({**body, "ttl_s": 3600})["order_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="ended orders in the history")
    parser.add_argument("--open", type=int, default=50, help="orders still open")
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    history = History()
    for _ in range(args.orders // 10_000 + 1):
        history.send({"type": "faucet", "amount": "10000 USDC"})
    for _ in range(args.orders):
        history.send({"type": "order.cancel", "order_id": history.order()})
    for _ in range(args.open):
        history.order()
    built_s = time.perf_counter() - started
    state = history.service.state
    passes, scans = [], []
    for _ in range(args.passes):
        t = time.perf_counter()
        history.engine.due()
        passes.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        assert not state.live.problems(state.orders, state.leases, state.checks)
        scans.append((time.perf_counter() - t) * 1000)
    value, scan = statistics.median(passes), statistics.median(scans)
    print(
        json.dumps(
            {
                "name": "engine_pass",
                "value": round(value, 3),
                "unit": "ms (Engine.due, median)",
                "scan_ms": round(scan, 3),
                "scan_ratio": round(scan / value, 1),
                "history_orders": args.orders,
                "open_orders": args.open,
                "passes": args.passes,
                "build_s": round(built_s, 1),
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
