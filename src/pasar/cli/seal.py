"""``pasar seal-agent``: seal the data keys of this account's sealed jobs while they run.

A sealed job (docs/privacy.md §2) cannot start until its client seals the job's data key to the
key its provider announced for the lease; a verifier assigned to check it waits the same way.
``pasar launch --wait`` and the SDK do it while they run; for a job launched without ``--wait``,
or one that runs longer than you want to keep a terminal open, run this where the job was
launched (the keys are in ``$PASAR_HOME/sealed``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from pasar.cli.common import MarketOpt, make_client
from pasar.cli.output import console

if TYPE_CHECKING:
    from pasar.client.client import Client

POLL_S = 2.0


def _one_pass(client: Client, order_id: str | None) -> tuple[int, int]:
    """Seal what is pending now; returns (sealed keys, sealed jobs still live)."""
    from pasar.api.status import TERMINAL_ORDER
    from pasar.client.sealed import is_sealed, seal_pending

    orders = [client.job(order_id).status()] if order_id else client.jobs(limit=1000)
    sealed = live = 0
    for order in orders:
        if not is_sealed(order) or order["status"] in TERMINAL_ORDER:
            continue
        key = client.keys.load(str(order.get("private") or ""))
        if key is None:
            continue  # launched elsewhere: its key is not on this machine
        live += 1
        done = seal_pending(client._call, order, key)
        if done:
            console.print(f"{order['order_id']}: sealed the data key to {done} party(ies)")
        sealed += done
    return sealed, live


def seal_agent(
    market: str | None = MarketOpt,
    order: str | None = typer.Option(None, "--order", help="Only this order (default: all)."),
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
) -> None:
    """Seal your sealed jobs' data keys to their providers and verifiers as they appear.

    Example: pasar seal-agent --once
    """
    with make_client(market) as client:
        while True:
            _sealed, live = _one_pass(client, order)
            if once or (order is not None and live == 0):
                return
            time.sleep(POLL_S)
