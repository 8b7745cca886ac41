"""``verification: approve`` on a real market (the render preset) with real provider processes:
the client approves or rejects each shard's held result through the SDK; a rejected shard
re-runs on another provider and its run is not paid; the third rejected run ends the job and
refunds it; a result nobody judges is approved by the market once the window has passed.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from pasar.client.client import Client
from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.presets import Preset, builtin_preset
from pasar.crypto.identity import Identity
from pasar.market import serve as market_serve
from pasar.market.config import MarketConfig

if TYPE_CHECKING:
    from conftest import MarketProcess, ProviderProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")
SPEC = {
    "name": "frame",
    "run": "echo frame > frame.txt",
    "outputs": ["frame.txt"],
    "resources": {"cpus": 1},
    "max_price_per_hour": "5 USDC",
    "max_duration": "2m",
}
Spawn = Callable[..., "ProviderProcess"]


def _client(url: str) -> Client:
    client = Client(url, identity=Identity.generate())
    client.faucet("50 USDC")
    return client


def _wait(job: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = job.status()
        if predicate(order):
            return order
        time.sleep(0.1)
    raise AssertionError(f"order {job.id} never got there: {job.status()}")


def _held_run(n: int) -> Callable[[dict[str, Any]], bool]:
    """The order's ``n``-th run (counted from 1) is held for the client's judgement."""
    return lambda o: len(o["leases"]) >= n and o["leases"][n - 1]["status"] == "held"


def _balances(client: Client) -> dict[str, str]:
    return dict(client.transport.get("/v1/state/balances", {})["balances"])


def _conserved(client: Client) -> None:
    balances = _balances(client)
    rest = sum(Money.parse(v).micros for k, v in balances.items() if not k.startswith("mint/"))
    assert rest == -sum(Money.parse(v).micros for k, v in balances.items() if k.startswith("mint/"))


def _earned(client: Client, provider: str) -> Money:
    return Money.parse(_balances(client).get(f"{LedgerAccount.earnings(provider)}/USDC", "0 USDC"))


@pytest.fixture
def render_market(spawn_market: Callable[..., MarketProcess], tmp_path: Path) -> MarketProcess:
    return spawn_market(tmp_path / "market", "--preset", "render")


def test_approve_pays_and_a_rejected_run_reruns_elsewhere_unpaid(
    render_market: MarketProcess, spawn_provider: Spawn, tmp_path: Path
) -> None:
    providers = [spawn_provider(render_market.url, tmp_path / f"p{i}", *PRICE) for i in (1, 2)]
    alice = _client(render_market.url)
    with alice:
        job = alice.launch(SPEC)
        first = _wait(job, _held_run(1))["leases"][0]
        assert first["held_until"] > first["ended_at"]  # the window: 24 h on render
        assert first["receipt"]["exit_code"] == 0 and first["bill"] is None
        review = job.review(tmp_path / "review", 30)  # the held result, checked, to judge
        assert (tmp_path / "review" / "frame.txt").read_text() == "frame\n"
        assert [x.lease_id for x in review.shards] == [first["lease_id"]]
        rejected = job.reject(0, "the frame is black")
        assert rejected["rerun"] and rejected["rejections"] == 1
        order = _wait(job, _held_run(2))
        rerun = order["leases"][1]
        assert order["leases"][0]["status"] == "rejected"
        assert rerun["provider"] != first["provider"]  # re-run on ANOTHER provider
        assert {first["provider"], rerun["provider"]} == {p.account for p in providers}
        approved = job.approve()
        assert [row["lease_id"] for row in approved["approved"]] == [rerun["lease_id"]]
        order = job.wait(30)
        assert order["status"] == "done"
        paid = order["leases"][1]["bill"]
        assert order["leases"][1]["status"] == "settled"
        assert _earned(alice, first["provider"]) == Money.zero("USDC")  # not paid
        assert _earned(alice, rerun["provider"]) == Money.parse(paid["provider_payout"])
        # judged once: a second word on it is refused, nothing moved
        before = _balances(alice)
        with pytest.raises(PasarError) as twice:
            job.approve(0)
        assert twice.value.status == 409 and twice.value.code == "not_held"
        assert _balances(alice) == before
        _conserved(alice)


def test_three_rejected_runs_end_the_job_and_refund_it(
    render_market: MarketProcess, spawn_provider: Spawn, tmp_path: Path
) -> None:
    for i in (1, 2, 3):
        spawn_provider(render_market.url, tmp_path / f"p{i}", *PRICE)
    alice = _client(render_market.url)
    with alice:
        job = alice.launch(SPEC)
        for n in (1, 2, 3):
            _wait(job, _held_run(n))
            reply = job.reject(0, f"wrong, take {n}")
            assert reply["rejections"] == n and reply["ended"] == (n == 3)
        order = job.wait(30)
        assert order["status"] == "cancelled" and "rejected 3 times" in order["note"]
        assert len({x["provider"] for x in order["leases"]}) == 3
        assert all(x["status"] == "rejected" for x in order["leases"])
        assert order["escrow"] == "0.00 USDC"
        assert alice.balance()["balance"] == "50.00 USDC"  # every run refunded
        _conserved(alice)


# -- auto-approve: the render preset with a 2 s window, on an in-process market -----------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _short_window(name: str) -> Preset:
    preset = builtin_preset(name)
    rules = dataclasses.replace(preset.verification, approve_window_s=2)
    return dataclasses.replace(preset, verification=rules)


@pytest.fixture
def short_window_market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real HTTP market on 127.0.0.1 (uvicorn in a thread) whose render preset approves a
    held result 2 s after its receipt."""
    monkeypatch.setattr(market_serve, "builtin_preset", _short_window)
    port = _free_port()
    config = MarketConfig.build(home=tmp_path / "market", preset="render", devnet=True, port=port)
    app = market_serve.build_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_result_nobody_judges_is_approved_after_the_window(
    short_window_market: str, spawn_provider: Spawn, tmp_path: Path
) -> None:
    provider = spawn_provider(short_window_market, tmp_path / "p1", *PRICE)
    alice = _client(short_window_market)
    with alice:
        job = alice.launch(SPEC)
        order = job.wait(90)  # nobody approves: the market does, once the 2 s have passed
        assert order["status"] == "done"
        (lease,) = order["leases"]
        assert lease["status"] == "settled" and "approved by the market" in order["note"]
        assert _earned(alice, provider.account) == Money.parse(lease["bill"]["provider_payout"])
        with pytest.raises(PasarError) as late:
            job.reject(0, "too late")
        assert late.value.status == 409
        _conserved(alice)
