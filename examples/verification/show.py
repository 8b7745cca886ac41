"""Launch a job on a pasar network and show its verification as it happens.

    python examples/verification/show.py examples/verification/checked.yaml

Uses the network in ``PASAR_MARKET`` / ``PASAR_HOME`` (``pasar devnet up`` prints both). Prints
each lease's status as it changes (``running`` → ``held`` while it is checked → ``settled`` or
``rejected``), every verifier's check (who re-ran it, whether its result agreed), the order's
note, and at the end each lease's bill and what each verifier earned.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pasar


def short(account: str) -> str:
    return account[:12] + "…"


def show_checks(client: pasar.Client, lease: dict[str, Any], seen: set[str]) -> None:
    for check_id in lease.get("checks", []):
        check = client.check(check_id)
        key = f"{check_id}:{check['status']}"
        if key in seen:
            continue
        seen.add(key)
        verdict = {True: "agrees", False: "DISAGREES", None: "re-running"}[check["agrees"]]
        who = short(check["verifier"])
        print(f"    check {check_id}: verifier {who} {check['status']}, {verdict}")


def main(path: str) -> int:
    with pasar.Client() as client:
        job = client.launch(path)
        print(f"launched {job.id}")
        seen: set[str] = set()
        last_note = None
        deadline = time.monotonic() + 300
        order = job.status()
        while time.monotonic() < deadline:
            order = job.status()
            for lease in order["leases"]:
                key = f"{lease['lease_id']}:{lease['status']}"
                if key not in seen:
                    seen.add(key)
                    where = short(lease["provider"])
                    print(f"  lease {lease['lease_id']} on {where}: {lease['status']}")
                show_checks(client, lease, seen)
            if order.get("note") != last_note and order.get("note"):
                last_note = order["note"]
                print(f"  note: {last_note}")
            if order["status"] in ("done", "expired", "cancelled"):
                break
            time.sleep(0.3)
        print(f"order {job.id}: {order['status']}")
        verifiers: set[str] = set()
        for lease in order["leases"]:
            bill = lease.get("bill") or {}
            print(
                f"  {lease['lease_id']} {lease['status']}: billed {bill.get('billed')}, "
                f"provider paid {bill.get('provider_payout')}"
            )
            verifiers |= {client.check(c)["verifier"] for c in lease.get("checks", [])}
        for v in sorted(verifiers):
            print(f"  verifier {short(v)} earned {client.balance(v)['earnings']}")
        return 0 if order["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "examples/verification/checked.yaml"))
