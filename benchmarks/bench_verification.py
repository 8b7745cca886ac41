"""The verification ladder's figures: one cheater among honest providers, per policy.

For each policy, ``--shards`` one-shard orders (200 by default) run on the real state machine
(:mod:`pasar.sim.verification`: the market's transactions, draws signed with a real key, the
ledger; the work itself on a virtual clock) with ``--honest`` honest providers, one cheater
that returns a wrong result on a share ``--cheat-rate`` of its leases (the cheapest, so it
takes every order it may), and ``--verifiers`` honest verifiers. Printed, per policy:

* ``detection_rate`` — wrong results found wrong / wrong results sent; beside it the theory:
  ``p`` for ``replicate:p`` (each wrong result is re-run with chance p), 0 for ``receipt``;
* ``caught_within_n`` — the theory ``1 − (1 − p·q)^n`` that a cheater cheating with rate q is
  caught at least once in its first n leases, for n = 10 and 50, next to how many leases it
  took before its first catch here;
* ``false_slashes`` — slashes of an honest provider or verifier (must be 0);
* ``wrong_results_paid`` — wrong results that were settled (paid) anyway;
* ``client_overhead`` — what the client spent in all (work, fees, check fees) over what it
  spent under ``receipt`` on the same orders and preset, minus one (wrong results included:
  under ``receipt`` the client pays for them);
* ``settle_p50_s`` — receipt to payment, in virtual seconds (a re-run takes ``--job-s``).

``approve`` runs on the render preset with a client that judges every result the moment it
is held (a diligent artist): detection is then the client's, and its cost the re-runs; a client
that never looks gets ``receipt``'s detection, only later (auto-approval).

    python benchmarks/bench_verification.py [--shards 200] [--cheat-rate 0.5] [--job-s 10]
        [--devnet ORDERS]   # also on a real local network (benchmarks/verification_devnet.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from fractions import Fraction

from pasar.core.money import Money
from pasar.sim.verification import FleetConfig, run_fleet

POLICIES = ("receipt", "replicate:0.1", "replicate:0.5", "replicate:1", "approve")
#: ``approve`` runs on the render preset (the one with an approval window), with a client that
#: judges every result; the others on the pasar preset.
PRESET = {"approve": "render"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--honest", type=int, default=3)
    parser.add_argument("--verifiers", type=int, default=3)
    parser.add_argument("--cheat-rate", type=float, default=0.5)
    parser.add_argument("--job-s", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--devnet",
        type=int,
        default=0,
        metavar="ORDERS",
        help="also run receipt and replicate:0.5 on a real local network with this many "
        "one-shard orders each (minutes, not seconds)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    baselines: dict[str, Money] = {}
    for policy in POLICIES:
        cfg = FleetConfig(
            policy=policy,
            preset=PRESET.get(policy, "pasar"),
            shards=args.shards,
            honest=args.honest,
            verifiers=args.verifiers,
            cheat_rate=args.cheat_rate,
            job_s=args.job_s,
            seed=args.seed,
        )
        result = run_fleet(cfg)
        summary = result.summary()
        assert result.client_spent is not None
        if cfg.preset not in baselines:  # receipt on the same preset, same orders
            base = run_fleet(dataclasses.replace(cfg, policy="receipt"))
            assert base.client_spent is not None
            baselines[cfg.preset] = base.client_spent
        baseline = baselines[cfg.preset]
        summary["client_overhead"] = round(
            float(Fraction(result.client_spent.micros, baseline.micros) - 1), 4
        )
        p = float(Fraction(policy.partition(":")[2] or "0")) if ":" in policy else 0.0
        if policy == "approve":
            p = 1.0  # a client that judges every result it is shown
        q = args.cheat_rate
        summary["theory_detection_rate"] = p
        summary["theory_caught_within_n"] = {
            str(n): round(1 - (1 - p * q) ** n, 4) for n in (10, 50)
        }
        results[policy] = summary
    devnet: dict[str, object] = {}
    if args.devnet:
        from verification_devnet import run_policy  # a sibling module of this script

        for policy in ("receipt", "replicate:0.5"):
            devnet[policy] = run_policy(policy, args.devnet, args.cheat_rate)
    headline = results["replicate:0.1"]
    print(
        json.dumps(
            {
                "name": "verification_detection_replicate_0.1",
                "value": headline["detection_rate"],
                "unit": "share of wrong results caught",
                "theory": headline["theory_detection_rate"],
                "false_slashes": sum(r["false_slashes"] for r in results.values()),
                "policies": results,
                **({"devnet": devnet} if devnet else {}),
                "shards": args.shards,
                "cheat_rate": args.cheat_rate,
                "simulated": "the state machine and the market's signatures are real; the work "
                "runs on a virtual clock (see pasar.sim.verification)",
                "seconds": round(time.perf_counter() - started, 2),
                "machine": f"{platform.machine()} {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
