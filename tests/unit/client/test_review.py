"""``Job.review`` (``verification: approve``): the held results, downloaded and checked against
their receipts before the client judges them; ``result`` still waits for the judged end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_sdk_unit import async_client_for, client_for, done_order, result_market, sha

from pasar.api.status import awaiting_approval
from pasar.client import calls
from pasar.core.errors import PasarError


def held_order() -> dict[str, Any]:
    """Two shards: shard 0 held for approval, shard 1 already approved (settled)."""
    order = done_order({"frame.txt": b"frame\n"}, shards=2)
    order["status"] = "running"
    order["unfilled"] = 0
    order["leases"][0]["status"] = "held"
    order["leases"][0]["held_until"] = 1_900_000_000_000
    return order


def test_awaiting_approval_needs_every_shard_in_and_one_held() -> None:
    order = held_order()
    assert awaiting_approval(order)
    assert not awaiting_approval({**order, "unfilled": 1})  # a shard still waits for a provider
    running = {**order, "leases": [*order["leases"], {"status": "running"}]}
    assert not awaiting_approval(running)
    settled = {**order, "leases": [{**x, "status": "settled"} for x in order["leases"]]}
    assert not awaiting_approval(settled)
    assert not awaiting_approval({**order, "status": "done"})


def test_review_downloads_the_held_results_and_checks_them(tmp_path: Path) -> None:
    order = held_order()
    blobs = {sha(b"frame\n"): b"frame\n"}
    review = client_for(result_market(order, blobs)).job("o-1").review(tmp_path / "r")
    assert [s.lease_id for s in review.shards] == ["l-0", "l-1"]
    assert (tmp_path / "r" / "shard-0" / "frame.txt").read_bytes() == b"frame\n"
    reviewing = calls.wait_for_end("o-1", None, review=True)
    next(reviewing)
    with pytest.raises(StopIteration) as stop:  # a review stops once every result is in
        reviewing.send({"order": order, "next": 3})
    assert stop.value.value == order
    waiting = calls.wait_for_end("o-1", None)  # wait() goes on until the client judges
    next(waiting)
    again = waiting.send({"order": order, "next": 3})
    assert again.path == "/v1/orders/o-1/wait" and again.params["after"] == 3

    async def run_async() -> None:
        job = async_client_for(result_market(order, blobs)).job("o-1")
        again = await job.review(tmp_path / "a")
        assert [s.lease_id for s in again.shards] == ["l-0", "l-1"]

    asyncio.run(run_async())


def test_review_refuses_a_forged_held_result(tmp_path: Path) -> None:
    order = held_order()
    blobs = {sha(b"frame\n"): b"forged\n"}
    with pytest.raises(PasarError) as err:
        client_for(result_market(order, blobs)).job("o-1").review(tmp_path / "r")
    assert err.value.code == "output_mismatch"
    assert not (tmp_path / "r" / "shard-0" / "frame.txt").exists()
