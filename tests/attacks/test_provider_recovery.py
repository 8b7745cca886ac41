"""A provider frozen mid-lease (SIGSTOP: a stalled VM, a network blip) comes back by itself.

The market rightly marks the lease lost and takes the provider off the market; before this
fix the agent never re-registered (its own flag still said "available"), so one blip took a
healthy provider off for good. Now the agent sees its ``lease.lost`` (or that the market lists
it unavailable) and registers again, and takes new work within about one heartbeat interval.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from attacklib import PROVIDER_ARGS, Party, assert_audit_passes

from money_checks import assert_conserved
from pasar.core.money import Money
from pasar.core.presets import builtin_preset

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

INTERVAL_S = builtin_preset("pasar").timing.heartbeat_interval_s
SLACK_S = 5.0
# the first lease of the order hangs (and is lost); the re-queued one finishes at once
RUN = 'case "$PASAR_LEASE" in *-0) echo hanging; sleep 100;; esac; echo done'


def test_a_frozen_provider_loses_the_lease_then_comes_back_and_takes_work(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run=RUN)
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["verified_intervals"] >= 1)
    os.kill(provider.proc.pid, signal.SIGSTOP)
    try:
        lost = alice.wait(
            order_id, lambda o: o["leases"][0]["status"] == "lost", timeout=INTERVAL_S * 8
        )
        assert lost["status"] == "open"  # re-queued, but no provider is available for it
        assert alice.get(f"/v1/providers/{provider.account}")["available"] is False
    finally:
        os.kill(provider.proc.pid, signal.SIGCONT)
    thawed = time.monotonic()
    order = alice.wait(order_id, lambda o: len(o["leases"]) == 2, timeout=INTERVAL_S + SLACK_S)
    assert time.monotonic() - thawed <= INTERVAL_S + SLACK_S
    assert order["leases"][1]["provider"] == provider.account
    done = alice.wait(order_id, lambda o: o["status"] == "done", timeout=60)
    first, second = done["leases"]
    assert first["status"] == "lost" and "missed a liveness challenge" in first["note"]
    # paid for its verified time up to the challenge only (0.05 USDC per core-hour, 1 core)
    price = Money.parse(first["price_per_hour"])
    assert first["bill"]["billed"] == price.scale(first["billed_ms"], 3_600_000).to_json()
    assert second["status"] == "settled" and second["receipt"]["exit_code"] == 0
    assert alice.get(f"/v1/providers/{provider.account}")["available"] is True
    # and it keeps taking new work
    later = alice.launch(run="echo later")
    again = alice.wait(later, lambda o: o["status"] == "done", timeout=30)
    assert again["leases"][0]["provider"] == provider.account
    assert_conserved(market_server.url)
    assert_audit_passes(market_server.url)
