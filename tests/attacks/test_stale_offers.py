"""Stale offers: a provider that is stopped, killed, or gone across a market restart.

Its record stays in the ledger, so without a notion of liveness the market kept listing it (and
``pasar launch`` previewed it as "chosen") for as long as it liked, and the engine awarded it
leases it could only lose. Offers now list only providers that take work and were heard from
within the preset's heartbeat grace; the engine awards new leases only to those.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from attacklib import PROVIDER_ARGS, Party, assert_audit_passes

from money_checks import assert_conserved
from pasar.core.presets import builtin_preset

_TIMING = builtin_preset("pasar").timing
GRACE_S = _TIMING.heartbeat_interval_s * _TIMING.grace_intervals
FEED_POLL_S = 10  # the agent's long-poll: a killed agent's last poll may stay open this long


def offered(url: str, **params: Any) -> set[str]:
    rows = httpx.get(f"{url}/v1/providers", params=params, timeout=10).json()["offers"]
    return {str(row["provider"]) for row in rows}


def cli_offers(url: str, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "pasar", "offers", "--market", url, "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(done.stdout)["offers"])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_sigterm_provider_leaves_the_offers_at_once(
    market_server: Any, spawn_provider: Callable[..., Any], tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    assert provider.account in offered(market_server.url)
    assert provider.stop() == 0  # SIGTERM: drains, re-registers unavailable, exits 0
    assert provider.account not in offered(market_server.url)
    listed = offered(market_server.url, include_offline="true")
    assert provider.account in listed  # operators still see it, marked offline
    one = Party(market_server).get(f"/v1/providers/{provider.account}")
    assert one["online"] is False
    # the CLI: plain `pasar offers` leaves it out, --include-offline shows it offline
    assert provider.account not in {o["provider"] for o in cli_offers(market_server.url)}
    rows = cli_offers(market_server.url, "--include-offline")
    assert [o["online"] for o in rows if o["provider"] == provider.account] == [False]


def test_killed_provider_leaves_the_offers_after_the_grace(
    market_server: Any, spawn_provider: Callable[..., Any], tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    assert provider.account in offered(market_server.url)
    provider.kill()  # no drain, no goodbye: only silence tells
    killed = time.monotonic()
    wait_until(
        lambda: provider.account not in offered(market_server.url),
        FEED_POLL_S + GRACE_S + 10,
        "a killed provider is no longer offered",
    )
    assert time.monotonic() - killed >= GRACE_S - 1  # not before it had its grace
    assert provider.account in offered(market_server.url, include_offline="true")


def test_gone_provider_is_not_offered_nor_matched_after_a_market_restart(
    market_server: Any, spawn_provider: Callable[..., Any], tmp_path: Path
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    provider.kill()
    market = market_server.restart()  # a new process: it has heard from nobody yet
    assert provider.account not in offered(market.url)

    client = Party(market)
    client.fund()
    order_id = client.launch(run="true")
    time.sleep(2)  # the engine ticks every 100 ms: it had its chances to match
    order = client.order(order_id)
    assert order["status"] == "open" and not order["leases"], order
    explained = client.get(f"/v1/orders/{order_id}/explain")
    reasons = {p["provider"]: p for p in explained["providers"]}
    assert reasons[provider.account]["fits"] is False
    assert "offline" in str(reasons[provider.account]["reason"])
    assert_conserved(market.url)
    assert_audit_passes(market.url)
