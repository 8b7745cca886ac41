"""Hostile clocks and a tampered log, against a real market (and a real provider).

- A client backdates its cancel by 11 s: before market stamps, billing ran to the signer's
  ``ts`` and the provider was paid for almost nothing of the work it did.
- The market's log is verified when the market starts: a byte changed in a logged envelope, or
  a market stamp moved, makes it refuse to start, naming the block's height.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from attacklib import PROVIDER_ARGS, Party, assert_money_safe, ended

from pasar.crypto.envelope import sign, wall_clock_ms

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


@needs_bwrap
def test_a_backdated_cancel_still_pays_for_the_time_worked(
    market_server: Any, spawn_provider: Any, tmp_path: Path
) -> None:
    spawn_provider(market_server.url, tmp_path / "p1", *PROVIDER_ARGS)
    alice = Party(market_server)
    alice.fund()
    order_id = alice.launch(run="echo started; sleep 60")
    order = alice.wait(order_id, lambda o: bool(o["leases"]))
    lease_id = order["leases"][0]["lease_id"]
    alice.wait(order_id, lambda _o: "started" in alice.logs(lease_id))
    time.sleep(12)  # three 5 s intervals begun: two or three heartbeats answered
    body = {"type": "order.cancel", "order_id": order_id}
    backdated = sign(body, alice.identity, market=alice.api.market, now_ms=wall_clock_ms() - 11_000)
    alice.api.request("POST", f"/v1/orders/{order_id}/cancel", json=backdated)
    lease = alice.wait(order_id, ended)["leases"][0]
    assert lease["status"] == "cancelled"
    # the market's clock says ~12 s of work, two or more intervals verified: billed >= 10 s
    # (with the signer's ts it was at most the 1 s between lease start and the backdated ts)
    assert lease["billed_ms"] >= 10_000, lease
    assert_money_safe(market_server.url)


def _stop_with_a_block(market: Any) -> Path:
    alice = Party(market)
    for _ in range(3):
        alice.fund("1 USDC")
    deadline = time.monotonic() + 10
    while alice.get("/v1/chain/head")["height"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert market.stop() == 0
    return Path(market.home) / "market.db"


def test_a_market_refuses_to_start_on_a_tampered_envelope(market_server: Any) -> None:
    db = _stop_with_a_block(market_server)
    with sqlite3.connect(db) as conn:
        (envelope,) = conn.execute("SELECT envelope FROM txs WHERE seq = 2").fetchone()
        forged = envelope.replace('"1 USDC"', '"9 USDC"')
        assert forged != envelope
        conn.execute("UPDATE txs SET envelope = ? WHERE seq = 2", (forged,))
    with pytest.raises(RuntimeError) as refused:
        market_server.restart()
    assert "block 0" in str(refused.value)


def test_a_market_refuses_to_start_on_a_moved_stamp(market_server: Any) -> None:
    db = _stop_with_a_block(market_server)
    with sqlite3.connect(db) as conn:  # move a transaction's market time back 40 s
        conn.execute("UPDATE txs SET stamp = stamp - 40000 WHERE seq = 3")
    with pytest.raises(RuntimeError) as refused:
        market_server.restart()
    assert "block 0" in str(refused.value)
