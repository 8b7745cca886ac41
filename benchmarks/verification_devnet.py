"""``bench_verification.py --devnet``: the same figures on a real local network.

A devnet of real processes (a market, three sandboxed providers — the first, and cheapest, with
``--cheat garble:RATE`` — and three verifiers), ``orders`` one-shard orders of a tiny
deterministic job launched at once per policy, each policy on a fresh network. Counted from
what the market and the cheater's own log say: wrong results sent (``cheats.jsonl``), caught
(their lease ``rejected``), paid anyway (``settled``), slashes of honest parties (stake below
what they staked), the client's spend, and the wall-clock time from launch to ``done``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from pasar.client.client import Client
from pasar.core.money import Money
from pasar.devnet import Devnet, DevnetConfig
from pasar.provider.cheat import read_cheats

STAKE = "2 USDC"
JOB = {
    "run": 'echo "shard of $PASAR_LEASE" | sha256sum > out.txt; sleep 1',
    "outputs": ["out.txt"],
    "resources": {"cpus": 1},
    "max_price_per_hour": "0.5 USDC",
    "max_duration": "2m",
}


def run_policy(policy: str, orders: int, cheat_rate: float) -> dict[str, Any]:
    """One fresh devnet, ``orders`` orders under ``policy``; the figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="pasar-bench-") as tmp:
        cfg = DevnetConfig(
            home=Path(tmp),
            providers=3,
            prices=("0.05", "0.20", "0.30"),
            cheaters=1,
            cheat=f"garble:{cheat_rate}",
            verifiers=3,
        )
        net = Devnet(cfg, say=lambda _line: None)
        net.start()
        try:
            return _measure(net, policy, orders)
        finally:
            net.stop()


def _measure(net: Devnet, policy: str, orders: int) -> dict[str, Any]:
    staked: dict[str, Money] = {}
    for member in net.providers:
        net.stake_provider(member, Money.parse(STAKE))
        staked[member.ready] = Money.parse(STAKE)
    with Client(net.url, home=net.config.client_home) as client:
        before = Money.parse(client.balance()["balance"])
        started = time.monotonic()
        jobs = [client.launch({**JOB, "verification": policy}) for _ in range(orders)]
        done_at: dict[str, float] = {}
        views: dict[str, dict[str, Any]] = {}
        deadline = started + 600
        while len(done_at) < len(jobs) and time.monotonic() < deadline:
            for job in jobs:
                if job.id in done_at:
                    continue
                view = job.status()
                if view["status"] in ("done", "expired", "cancelled"):
                    done_at[job.id] = time.monotonic() - started
                    views[job.id] = view
            time.sleep(0.2)
        spent = before - Money.parse(client.balance()["balance"])
        leases = {x["lease_id"]: x for v in views.values() for x in v["leases"]}
        cheater = net.providers[0]
        cheated = {c["lease_id"] for c in read_cheats(cheater.home)}
        honest = [m.ready for m in net.providers[1:]] + [v.ready for v in net.verifiers]
        false_slashes = sum(
            Money.parse(client.balance(a)["stake"]) < staked.get(a, Money.parse("0 USDC"))
            for a in honest
        )
        caught = sum(leases.get(x, {}).get("status") == "rejected" for x in cheated)
        paid = sum(leases.get(x, {}).get("status") == "settled" for x in cheated)
        return {
            "orders": orders,
            "finished": len(done_at),
            "cheated": len(cheated),
            "caught": caught,
            "detection_rate": round(caught / len(cheated), 4) if cheated else None,
            "wrong_results_paid": paid,
            "false_slashes": false_slashes,
            "client_spent": spent.to_json(),
            "done_p50_s": round(median(done_at.values()), 2) if done_at else None,
        }
