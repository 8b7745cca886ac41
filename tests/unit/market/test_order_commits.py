"""``POST /v1/orders`` applies on the event loop and commits there or in its commit thread.

What must hold whichever way a commit goes: the answer comes only once the order is durable,
a slow disk never blocks the loop (the commit is handed to the thread), and a client that goes
away while its order is being committed does not stop the commit nor the order's announcement
(the order was applied: it must reach the log and the feed, or memory and log would part).
The route's coroutine is driven here on a real app (a real SQLite log and blob store), with the
store's append made slow where a test needs a commit to be under way.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from pasar.core.private_part import PrivatePart
from pasar.crypto.envelope import sign, verify, wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.market.config import MarketConfig
from pasar.market.routes.orders import create_order
from pasar.market.serve import build_app

SPEC = {"run": "true", "max_price_per_hour": "0.01 USDC", "max_duration": "1m"}


def market_app(home: Path) -> FastAPI:
    return build_app(MarketConfig.build(home=home, devnet=True))


def request_to(app: FastAPI) -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/v1/orders",
            "raw_path": b"/v1/orders",
            "query_string": b"",
            "headers": [],
            "app": app,
            "state": {},
            "client": ("127.0.0.1", 1),
            "scheme": "http",
            "server": ("127.0.0.1", 80),
        }
    )


def funded_order(app: FastAPI, client: Identity) -> bytes:
    """A signed order body of ``client`` (funded; its private part stored as its upload)."""
    service, market = app.state.service, app.state.market_identity.account_id
    now = wall_clock_ms()
    faucet = sign({"type": "faucet", "amount": "5 USDC"}, client, now_ms=now, market=market)
    service.submit(verify(faucet, now_ms=now, market=market))
    private = {"run": SPEC["run"]}
    part = PrivatePart(secrets.token_bytes(32).hex(), private, ())
    app.state.blobs.put_many({part.commitment: part.to_bytes()})
    app.state.blobs.add_owner(part.commitment, client.account_id)
    public = {k: v for k, v in SPEC.items() if k != "run"}
    body = {"type": "order.create", "spec": public, "private": part.commitment, "ttl_s": 600}
    return orjson.dumps(sign(body, client, now_ms=wall_clock_ms(), market=market))


def money_of(app: FastAPI) -> dict[str, str]:
    """Every balance, once checked to be conserved (double entry: the mint's negative balance
    and every other account's sum to zero)."""
    state = app.state.service.state
    assert sum(b.amount.micros for b in state.ledger.balances()) == 0
    return dict(state.balances_summary())


def test_a_quick_commit_answers_only_once_the_order_is_in_the_log(tmp_path: Path) -> None:
    app = market_app(tmp_path / "m")
    service = app.state.service
    raw = funded_order(app, Identity.generate())
    before = service.store.head_seq()
    answer = orjson.loads(asyncio.run(create_order(request_to(app), raw)))
    assert answer["ok"] and answer["type"] == "order.create"
    assert service.store.head_seq() == before + 1  # durable before the answer
    assert answer["order_id"] in service.state.orders
    money_of(app)


def test_orders_already_read_share_the_loop_s_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick commits are made on the loop, but not one per order when several are in hand:
    an order lets the loop turn before committing, so the orders read meanwhile are applied
    and the first commit carries them all."""
    app = market_app(tmp_path / "m")
    service = app.state.service
    bodies = [funded_order(app, Identity.generate()) for _ in range(6)]
    before = service.store.head_seq()
    append = service.store.append_many
    batches: list[int] = []

    def counted_append(batch: Any) -> Any:
        batches.append(len(batch))
        return append(batch)

    monkeypatch.setattr(service.store, "append_many", counted_append)

    async def all_at_once() -> list[bytes]:
        return await asyncio.gather(*(create_order(request_to(app), b) for b in bodies))

    answers = asyncio.run(all_at_once())
    assert all(orjson.loads(a)["ok"] for a in answers)
    assert service.store.head_seq() == before + 6
    assert batches == [6]  # one commit on the loop for the six
    money_of(app)


def test_on_a_slow_disk_the_commit_waits_in_its_thread_not_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow commits are handed to the commit thread: none runs on the loop's thread (which
    would stop every other request meanwhile), and the orders that arrive while one is under
    way share the next."""
    app = market_app(tmp_path / "m")
    service = app.state.service
    bodies = [funded_order(app, Identity.generate()) for _ in range(6)]
    before = service.store.head_seq()
    append = service.store.append_many
    batches: list[tuple[int, bool]] = []

    def slow_append(batch: Any) -> Any:
        batches.append((len(batch), threading.current_thread() is threading.main_thread()))
        time.sleep(0.05)
        return append(batch)

    monkeypatch.setattr(service.store, "append_many", slow_append)
    service.commit_s = 1.0  # as after slow commits

    async def all_at_once() -> list[bytes]:  # the loop runs in this (the main) thread
        return await asyncio.gather(*(create_order(request_to(app), b) for b in bodies))

    answers = asyncio.run(all_at_once())
    assert all(orjson.loads(a)["ok"] for a in answers)
    assert service.store.head_seq() == before + 6
    assert sum(size for size, _ in batches) == 6 and len(batches) < 6  # commits were shared
    assert not any(on_loop for _, on_loop in batches)  # and none blocked the loop


def test_a_client_gone_mid_commit_leaves_its_order_committed_and_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hostile (or merely impatient) client: its request is cancelled while the order's
    commit is under way. The order was applied, so it still reaches the log and the feed, its
    escrow stays exactly what the log says, and a restart replays to the same money."""
    app = market_app(tmp_path / "m")
    service = app.state.service
    raw = funded_order(app, Identity.generate())
    before_head, before_feed = service.store.head_seq(), service.notifier.head
    committing = threading.Event()
    append = service.store.append_many

    def slow_append(batch: Any) -> Any:
        committing.set()
        time.sleep(0.3)
        return append(batch)

    monkeypatch.setattr(service.store, "append_many", slow_append)
    service.commit_s = 1.0  # slow: the commit goes to its thread, where it can be waited on

    async def scenario() -> None:
        task = asyncio.create_task(create_order(request_to(app), raw))
        while not committing.is_set():
            await asyncio.sleep(0.005)
        task.cancel()  # the client went away: its request's coroutine is cancelled
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):  # the shielded commit and announcement go on without it
            if service.notifier.head > before_feed:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert service.store.head_seq() == before_head + 1
    created = [e for e in service.notifier.events_after(before_feed) if e.type == "order.create"]
    assert len(created) == 1
    assert created[0].data["order_id"] in service.state.orders
    money = money_of(app)
    assert any(created[0].data["order_id"] in account for account in money)  # escrowed
    monkeypatch.undo()
    assert service.recover() == service.store.head_seq()  # the log replays to the same state
    assert money_of(app) == money
