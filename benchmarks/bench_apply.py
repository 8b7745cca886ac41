"""What all-or-nothing records cost in ``MarketState.apply``, printed as one JSON line.

A market with ``--providers`` registered providers (40,000 by default, the scale ``pasar sim``
plans for) runs an order of ``--leases`` shards through ``apply``: ``order.create``, one
``match`` (book) that starts every lease, then a ``heartbeat`` and a ``receipt`` per lease. The
same lifecycle runs on two identical states, step by step in turn (so the machine's load hits
both alike): one as shipped, one with the record journal's saves turned into no-ops (what
``apply`` cost before records were journaled). Reported: median microseconds per transaction
of each kind, both ways (one sample of ``order.create`` and ``match``, ``--leases`` of the
others), and of a refused ``receipt`` whose handler ran to the end (the whole rollback). The
journal's cost follows what a transaction touches (a handful of records), not what the market
holds, so the overhead must stay flat as ``--providers`` grows. (A ``match`` itself still scans
every provider to build its candidates; that is the matching index's business, not this one's.)

    python benchmarks/bench_apply.py [--providers 40000] [--leases 50]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from pasar.core import state as state_module
from pasar.core.market_records import Applied, Tx, fail
from pasar.core.private_part import order_fields
from pasar.core.record_journal import RecordJournal
from pasar.core.state import MarketState
from pasar.core.timelock import challenge_message
from pasar.crypto.merkle import root_of_files

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from state_txs import MARKET, T0, Sender, funded_state

SPEC = {
    "name": "bench",
    "run": "true",
    "resources": {"cpus": 1},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}


def build(providers: int) -> tuple[MarketState, Sender]:
    s, send = funded_state()
    for i in range(providers):
        inventory = {"gpus": [], "cpus": 64, "memory_gb": 256, "disk_gb": 1000}
        ask = {"cpu_core": f"0.{10 + i % 80:02d}"}
        s.apply(send.tx(f"p{i:06d}", T0, type="provider.register", inventory=inventory, asks=ask))
    return s, send


def lifecycles(
    shipped: tuple[MarketState, Sender], baseline: tuple[MarketState, Sender], leases: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """One order of ``leases`` shards on each state, matched at once (a lease per provider),
    then a heartbeat and a receipt for each lease; each step runs on ``shipped`` and then on
    ``baseline`` (journal off), interleaved so that load on the machine hits both alike."""
    times: tuple[dict[str, list[float]], dict[str, list[float]]] = (
        defaultdict(list),
        defaultdict(list),
    )
    root = root_of_files([])
    now = T0 + 1_000

    def both(make: Callable[[MarketState, Sender], Tx | None]) -> list[Applied]:
        out = []
        for side, (s, send) in enumerate((shipped, baseline)):
            t = make(s, send)
            if t is None:
                continue
            gc.collect()  # time the transaction, not the collector cleaning up after a match
            with journal_off() if side else nullcontext():
                start = time.perf_counter()
                out.append(s.apply(t))
                times[side][t.type].append(time.perf_counter() - start)
        return out

    spec = {**SPEC, "shards": leases}
    created = both(
        lambda s, send: send.tx("client", now, type="order.create", **order_fields(spec))
    )
    orders = [a.result["order_id"] for a in created]
    matched = both(
        lambda s, send: send.tx(
            MARKET.account_id, now, type="match", order_id=orders[s is baseline[0]], seed=1
        )
    )
    started = [a.result["leases"] for a in matched]
    assert all(len(x) == leases for x in started), "every shard should find a provider"

    def beat(i: int) -> Callable[[MarketState, Sender], Tx]:
        def make(s: MarketState, send: Sender) -> Tx:
            lease = started[s is baseline[0]][i]
            sig = MARKET.sign(challenge_message(lease, 0)).hex()
            body = {"type": "heartbeat", "lease_id": lease, "interval": 0, "challenge": sig}
            return send.tx(s.leases[lease].provider, now + 100, **body)

        return make

    def receipt(i: int) -> Callable[[MarketState, Sender], Tx]:
        def make(s: MarketState, send: Sender) -> Tx:
            lease = started[s is baseline[0]][i]
            body = {"lease_id": lease, "exit_code": 0, "outputs": [], "root": root}
            return send.tx(s.leases[lease].provider, now + 2_000, type="receipt", **body)

        return make

    for i in range(leases):
        both(beat(i))
    for i in range(leases):
        both(receipt(i))
    return times


@contextmanager
def journal_off() -> Iterator[None]:
    save, save_key = RecordJournal.save, RecordJournal.save_key
    RecordJournal.save = lambda self, record: None  # type: ignore[method-assign]
    RecordJournal.save_key = lambda self, mapping, key: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        RecordJournal.save, RecordJournal.save_key = save, save_key  # type: ignore[method-assign]


def refused_receipt_us(s: MarketState, send: Sender) -> float:
    """A receipt whose handler settles everything and then fails: the full rollback."""
    t0 = T0 + 10_000_000
    order_id = s.apply(send.tx("client", t0, type="order.create", **order_fields(SPEC))).result[
        "order_id"
    ]
    match = send.tx(MARKET.account_id, t0, type="match", order_id=order_id, seed=1)
    (lease,) = s.apply(match).result["leases"]
    provider = s.leases[lease].provider
    root = root_of_files([])
    body = {"type": "receipt", "lease_id": lease, "exit_code": 0, "outputs": [], "root": root}
    real = state_module._HANDLERS["receipt"]

    def failing(state: MarketState, tx: Tx) -> Applied:
        real(state, tx)
        raise fail("refused at the end", code="bench", status=409)

    state_module._HANDLERS["receipt"] = failing
    try:
        runs: list[float] = []
        for _ in range(200):
            t = send.tx(provider, t0 + 1_000, **body)
            if not runs:
                gc.collect()
            start = time.perf_counter()
            try:
                s.apply(t)
            except Exception:
                runs.append(time.perf_counter() - start)
    finally:
        state_module._HANDLERS["receipt"] = real
    assert s.leases[lease].status == "running"
    return 1e6 * sorted(runs)[len(runs) // 2]


def median_us(values: list[float]) -> float:
    return round(1e6 * sorted(values)[len(values) // 2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=40_000)
    parser.add_argument("--leases", type=int, default=50)
    args = parser.parse_args()
    shipped, send = build(args.providers)
    baseline, send_b = build(args.providers)
    with_journal, without = lifecycles((shipped, send), (baseline, send_b), args.leases)
    shipped_us = {k: median_us(v) for k, v in with_journal.items()}
    bare_us = {k: median_us(v) for k, v in without.items()}
    overhead = round(shipped_us["heartbeat"] / bare_us["heartbeat"], 2)
    print(
        json.dumps(
            {
                "name": "apply_heartbeat_with_record_journal",
                "value": shipped_us["heartbeat"],
                "unit": "us",
                # what all-or-nothing records cost, measured against the same code without them
                "ratio_to_without_journal": overhead,
                "providers": args.providers,
                "leases": args.leases,
                "median_us": shipped_us,
                "median_us_without_record_journal": bare_us,
                "refused_receipt_rollback_us": round(refused_receipt_us(shipped, send), 1),
                "machine": f"{platform.machine()} {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
