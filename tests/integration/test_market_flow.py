"""A job's whole life on a real market process, over HTTP with signed requests.

Faucet → providers register → order (escrow) → the engine matches it (book: cheapest ask) →
the provider hears of it on its feed → heartbeats answer the market's challenges → outputs are
uploaded as blobs → the receipt settles the lease on heartbeat-verified seconds → the chain
audit replays everything and reproduces the market's balances. Then the failure paths: bad
signatures, replays, wrong signers, bad input, a crash, a tampered database.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
import pytest

from pasar.client.client import Client
from pasar.client.raw_orders import send_order
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.envelope import sign, wall_clock_ms
from pasar.crypto.identity import Identity
from pasar.crypto.merkle import root_of_files

if TYPE_CHECKING:
    from conftest import MarketProcess

SPEC = {
    "name": "hello",
    "run": "echo hi > out.txt",
    "outputs": ["out.txt"],
    "resources": {"cpus": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "1h",
}


class Actor:
    """A key and a transport: what a client or provider agent is, minus the agent."""

    def __init__(self, market: MarketProcess) -> None:
        self.identity = Identity.generate()
        self.id = self.identity.account_id
        self.api = Transport(market.url, identity=self.identity)

    def post(self, path: str, **body: Any) -> Any:
        return self.api.post_signed(path, body, self.identity)

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params)


def register(p: Actor, cpu_ask: str, cpus: int = 8) -> None:
    p.post(
        "/v1/providers",
        type="provider.register",
        inventory={"gpus": [], "cpus": cpus, "memory_gb": 32, "disk_gb": 100},
        asks={"cpu_core": cpu_ask},
        score=100,
    )


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def total_minted(balances: dict[str, str]) -> Money:
    """The mint account holds minus everything minted; all other accounts sum to plus that."""
    rest = sum(Money.parse(v).micros for k, v in balances.items() if not k.startswith("mint/"))
    minted = -Money.parse(balances["mint/USDC"]).micros
    assert rest == minted  # conservation, every account, every micro-unit
    return Money(minted, "USDC")


def run_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pasar", "audit", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_held_while_running(alice: Actor, order_id: str, *, spendable: str, held: str) -> None:
    """While a lease runs it holds the money: shown as escrow, never as gone (issue 14.1)."""
    running = alice.get(f"/v1/orders/{order_id}")
    assert running["status"] == "running" and running["escrow"] == held
    account = alice.get(f"/v1/accounts/{alice.id}")
    assert (account["balance"], account["escrow"]) == (spendable, held)


def assert_small_output_comes_inline(
    market: MarketProcess, alice: Actor, provider: Actor, order_id: str, output: bytes
) -> None:
    """Issue 13: the client's wait carries a finished order's small output inline (one round
    trip less); the provider's does not, nor does the plain order view; the SDK uses it
    without a download."""
    sha = hashlib.sha256(output).hexdigest()
    waited = alice.get(f"/v1/orders/{order_id}/wait", timeout=0)["order"]
    assert waited["inline_outputs"] == {sha: base64.b64encode(output).decode()}
    assert "inline_outputs" not in provider.get(f"/v1/orders/{order_id}/wait", timeout=0)["order"]
    assert "inline_outputs" not in alice.get(f"/v1/orders/{order_id}")
    client = Client(market.url, identity=alice.identity, home=market.home / "c")
    with mock.patch.object(Transport, "download", side_effect=AssertionError("downloaded")):
        result = client.job(order_id).fetch(waited, market.home / "result")
    assert (result.shards[0].dir / "out.txt").read_bytes() == output
    # a wait on an order that ended answers at once, even from the feed's newest cursor (a
    # launched job's first wait starts at the cursor its creation answered): this client
    # gives up after 5 s where the wait would sleep 25
    impatient = Transport(market.url, identity=alice.identity, timeout_s=5)
    head = alice.get(f"/v1/orders/{order_id}/wait", timeout=0)["next"]
    again = impatient.get(f"/v1/orders/{order_id}/wait", {"after": head, "timeout": 25})
    assert again["order"]["status"] == "done" and again["next"] == head


def test_a_job_runs_settles_and_audits(market_server: MarketProcess) -> None:
    alice, cheap, dear = Actor(market_server), Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    register(dear, "0.10")
    register(cheap, "0.05")
    head = cheap.get(f"/v1/providers/{cheap.id}/feed", timeout=0)["next"]

    t0 = time.monotonic()
    created = send_order(alice.api, alice.identity, SPEC)
    order_id = created["order_id"]
    assert created["escrow"] == "1.00 USDC" and created["next"] > head  # the feed's cursor
    # the winning provider is told at once through its feed (long-poll, no tight polling)
    events = cheap.get(f"/v1/providers/{cheap.id}/feed", after=head, timeout=10)["events"]
    assert time.monotonic() - t0 < 5
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    assert any(e.get("order_id") == order_id for e in events)
    (lease,) = order["leases"]
    assert lease["provider"] == cheap.id
    assert lease["price_per_hour"] == "0.10 USDC"  # 2 cores x 0.05
    explain = alice.get(f"/v1/orders/{order_id}/explain")
    reasons = {p["provider"]: p["reason"] for p in explain["providers"]}
    assert reasons[dear.id] == "ask 0.20 > winning ask 0.10"

    # the provider answers the current challenge, uploads its output, sends the receipt
    challenge = cheap.get(f"/v1/leases/{lease['lease_id']}/challenge")
    beat = cheap.post(
        "/v1/heartbeats",
        type="heartbeat",
        lease_id=lease["lease_id"],
        interval=challenge["interval"],
        challenge=challenge["challenge"],
    )
    assert beat["verified_seconds"] == 5
    assert_held_while_running(alice, order_id, spendable="9.00 USDC", held="1.00 USDC")
    output = b"hi\n"
    sha = hashlib.sha256(output).hexdigest()
    put = cheap.api.request("PUT", f"/v1/blobs/{sha}", content=output)  # uploads are signed
    assert put.status_code == 201
    time.sleep(1.1)  # at least one whole second of wall time to bill
    outputs = [{"path": "out.txt", "sha256": sha, "size": len(output)}]
    done = cheap.post(
        "/v1/receipts",
        type="receipt",
        lease_id=lease["lease_id"],
        exit_code=0,
        outputs=outputs,
        root=root_of_files([("out.txt", sha)]),
    )
    assert 1 <= done["billed_seconds"] <= 5
    billed = Money.parse(done["billed"])
    assert billed == Money.parse("0.10 USDC").scale(done["billed_ms"], 3_600_000)

    order = alice.get(f"/v1/orders/{order_id}")
    assert (order["status"], order["escrow"]) == ("done", "0.00 USDC")
    assert order["leases"][0]["bill"]["billed"] == billed.to_json()
    account = alice.get(f"/v1/accounts/{alice.id}")
    assert (Money.parse(account["balance"]), account["escrow"]) == (
        Money.parse("10 USDC") - billed,
        order["escrow"],
    )
    earnings = Money.parse(cheap.get(f"/v1/accounts/{cheap.id}")["earnings"])
    assert earnings == billed - billed.scale(1, 50)  # pasar's 2% take, rounded down
    assert total_minted(alice.get("/v1/state/balances")["balances"]) == Money.parse("10 USDC")

    stats = alice.get("/v1/stats")
    assert (stats["providers"], stats["cpus"], stats["jobs"]) == (2, 16, {"done": 1})

    assert_small_output_comes_inline(market_server, alice, cheap, order_id, output)

    # every transaction is sealed into a signed block within a second or two; the audit
    # replays them all and gets the market's balances exactly
    wait_for(lambda: alice.get("/v1/chain/head")["height"] is not None)
    proc = run_audit("--market", market_server.url)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["ok"] and report["txs"] >= 7
    assert report["balances"] == alice.get("/v1/state/balances")["balances"]


def test_error_paths_answer_4xx_and_move_no_money(market_server: MarketProcess) -> None:
    alice, bob = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    before = alice.get("/v1/state/balances")

    def raw(envelope: Any) -> httpx.Response:
        return httpx.post(f"{market_server.url}/v1/faucet", json=envelope)

    good = sign(
        {"type": "faucet", "amount": "1 USDC"},
        alice.identity,
        market=alice.api.market,
        now_ms=wall_clock_ms(),
    )
    forged = copy.deepcopy(good)
    forged["body"]["amount"] = "1000 USDC"
    assert raw(forged).status_code == 401
    stale = sign(
        {"type": "faucet", "amount": "1 USDC"},
        alice.identity,
        market=alice.api.market,
        now_ms=wall_clock_ms() - 120_000,
    )
    assert raw(stale).status_code == 401
    assert raw(good).status_code == 200
    replay = raw(good)
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "nonce_reused"

    cases = [
        ("/v1/faucet", {"type": "faucet", "amount": "-3 USDC"}, 400, "invalid_amount"),
        ("/v1/faucet", {"type": "faucet", "amount": "1 USDC", "extra": 1}, 400, "unknown_field"),
        ("/v1/orders", {"type": "faucet", "amount": "1 USDC"}, 400, "wrong_type"),
        ("/v1/orders", {"type": "order.create", "spec": {"run": "x"}}, 400, None),
        (
            "/v1/orders/o-0000/cancel",
            {"type": "order.cancel", "order_id": "o-0000"},
            404,
            "not_found",
        ),
        (
            "/v1/heartbeats",
            {"type": "heartbeat", "lease_id": "nope", "interval": 0, "challenge": "00"},
            404,
            "not_found",
        ),
    ]
    for path, body, status, code in cases:
        with pytest.raises(PasarError) as err:
            bob.post(path, **body)
        assert err.value.status == status, (path, body, err.value.to_dict())
        if code:
            assert err.value.code == code
        assert err.value.message
    # a float cannot even be signed (canonical JSON refuses it); sent anyway, it is a 400
    floaty = {**good, "nonce": "ab" * 16, "body": {"type": "faucet", "amount": 1.5}}
    refused = raw(floaty)
    assert refused.status_code == 400
    assert "float" in refused.json()["error"]["message"] + json.dumps(refused.json())
    bad_json = httpx.post(f"{market_server.url}/v1/orders", content=b"{not json")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "invalid_json"
    after = alice.get("/v1/state/balances")
    minted_more = Money.parse("1 USDC")  # only the one good faucet request moved money
    assert total_minted(after["balances"]) == total_minted(before["balances"]) + minted_more


def test_wrong_signer_cannot_heartbeat_or_cancel(market_server: MarketProcess) -> None:
    alice, prov, mallory = Actor(market_server), Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(prov, "0.05")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    lease_id = order["leases"][0]["lease_id"]
    challenge = prov.get(f"/v1/leases/{lease_id}/challenge")
    with pytest.raises(PasarError) as err:
        mallory.post(
            "/v1/heartbeats",
            type="heartbeat",
            lease_id=lease_id,
            interval=challenge["interval"],
            challenge=challenge["challenge"],
        )
    assert err.value.status == 403
    with pytest.raises(PasarError) as err:
        mallory.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    assert err.value.status == 403
    # the client may cancel: billed for verified seconds (none here), the rest refunded
    result = alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    assert result["billed"] == "0.00 USDC"
    assert alice.get(f"/v1/accounts/{alice.id}")["balance"] == "5.00 USDC"


def test_acknowledged_state_survives_kill_9_and_audit_passes(
    market_server: MarketProcess,
) -> None:
    alice, prov = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="7 USDC")
    register(prov, "0.05", cpus=1)  # too small: the order stays open
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    market_server.kill()

    again = market_server.restart()
    api = Transport(again.url, identity=alice.identity)
    order = api.get(f"/v1/orders/{order_id}")
    assert order["status"] == "open"
    assert order["escrow"] == "1.00 USDC"
    assert api.get(f"/v1/accounts/{alice.id}")["balance"] == "6.00 USDC"
    wait_for(lambda: api.get("/v1/chain/head")["height"] is not None)
    proc = run_audit("--market", again.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"]


def test_a_tampered_block_or_tx_fails_the_audit_naming_the_height(
    market_server: MarketProcess,
) -> None:
    alice = Actor(market_server)
    for _ in range(3):
        alice.post("/v1/faucet", type="faucet", amount="1 USDC")
    wait_for(lambda: alice.get("/v1/chain/head")["height"] is not None)
    assert market_server.stop() == 0
    db_url = f"sqlite:///{market_server.home / 'market.db'}"
    clean = run_audit("--db", db_url)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    with sqlite3.connect(market_server.home / "market.db") as db:
        (envelope,) = db.execute("SELECT envelope FROM txs WHERE seq = 2").fetchone()
        forged = envelope.replace('"1 USDC"', '"9 USDC"')
        assert forged != envelope
        db.execute("UPDATE txs SET envelope = ? WHERE seq = 2", (forged,))
    tampered = run_audit("--db", db_url)
    assert tampered.returncode == 2
    error = json.loads(tampered.stdout)["error"]
    assert "block 0" in error["message"]


def test_unmatchable_order_expires_with_reasons_and_refund(market_server: MarketProcess) -> None:
    alice, small = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="3 USDC")
    register(small, "0.05", cpus=1)
    order_id = send_order(alice.api, alice.identity, SPEC, ttl_s=1)["order_id"]
    order = wait_for(
        lambda: (o := alice.get(f"/v1/orders/{order_id}"))["status"] == "expired" and o
    )
    assert order["escrow"] == "0.00 USDC"
    assert alice.get(f"/v1/accounts/{alice.id}")["balance"] == "3.00 USDC"
    explain = alice.get(f"/v1/orders/{order_id}/explain")
    (row,) = explain["providers"]
    assert row["provider"] == small.id and row["fits"] is False
    assert row["reason"] == "needs 2 CPUs, has 1"


def test_auction_clears_as_soon_as_every_invited_provider_bid(
    spawn_market: Any, tmp_path: Any
) -> None:
    market = spawn_market(tmp_path / "akash", "--preset", "akash")
    alice, p1, p2 = Actor(market), Actor(market), Actor(market)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(p1, "0.05")
    register(p2, "0.05")
    for p in (p1, p2):  # akash: a bid holds a deposit
        p.post("/v1/faucet", type="faucet", amount="1 USDC")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    window = alice.get(f"/v1/orders/{order_id}")["auction"]
    assert set(window["invited"]) == {p1.id, p2.id}
    t0 = time.monotonic()
    p1.post(f"/v1/orders/{order_id}/bids", type="bid", order_id=order_id, price="0.80")
    p2.post(f"/v1/orders/{order_id}/bids", type="bid", order_id=order_id, price="0.30")
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    assert time.monotonic() - t0 < 3  # well before the 5 s window: everyone had answered
    (lease,) = order["leases"]
    assert lease["provider"] == p2.id and lease["price_per_hour"] == "0.30 USDC"


def test_logs_append_by_offset_and_follow(market_server: MarketProcess) -> None:
    alice, prov = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(prov, "0.05")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    lease_id = order["leases"][0]["lease_id"]
    path = f"/v1/leases/{lease_id}/logs"
    prov.post(path, type="logs", lease_id=lease_id, offset=0, data="line 1\n")
    with pytest.raises(PasarError) as err:  # a retried chunk at a stale offset is refused
        prov.post(path, type="logs", lease_id=lease_id, offset=0, data="line 1\n")
    assert err.value.status == 409 and err.value.hint == "resend from offset 7"
    with pytest.raises(PasarError) as err:
        alice.post(path, type="logs", lease_id=lease_id, offset=7, data="forged\n")
    assert err.value.status == 403
    first = alice.api.request("GET", path)
    assert first.text == "line 1\n" and first.headers["X-Log-Size"] == "7"

    def later() -> None:
        time.sleep(0.3)
        prov.post(path, type="logs", lease_id=lease_id, offset=7, data="line 2\n")

    writer = threading.Thread(target=later)
    writer.start()
    t0 = time.monotonic()
    follow = alice.api.request("GET", path, params={"offset": 7, "follow": "true"}, timeout=15)
    writer.join()
    assert follow.text == "line 2\n"
    assert time.monotonic() - t0 < 5  # woken by the append, not by the timeout


def test_a_status_only_wait_sleeps_through_heartbeats_and_log_lines(
    market_server: MarketProcess,
) -> None:
    """The SDK waits with ``status_only``: a heartbeat or a log line wakes a plain wait (the
    CLI follows logs with it) but not the SDK's, which wakes for the cancel that ends it."""
    alice, prov = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(prov, "0.05")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    lease_id = order["leases"][0]["lease_id"]
    wait = f"/v1/orders/{order_id}/wait"
    cursor = alice.get(wait, after=0, timeout=0)["next"]
    prov.post(f"/v1/leases/{lease_id}/logs", type="logs", lease_id=lease_id, offset=0, data="x\n")
    challenge = prov.get(f"/v1/leases/{lease_id}/challenge")
    prov.post(
        "/v1/heartbeats",
        type="heartbeat",
        lease_id=lease_id,
        interval=challenge["interval"],
        challenge=challenge["challenge"],
    )
    plain = alice.get(wait, after=cursor, timeout=5)
    assert plain["next"] > cursor  # woken by them
    quiet = alice.get(wait, after=cursor, timeout=1, status_only="true")
    assert quiet["next"] == cursor and quiet["order"]["status"] == "running"  # slept through
    alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    ended = alice.get(wait, after=cursor, timeout=5, status_only="true")
    assert ended["next"] > cursor and ended["order"]["status"] == "cancelled"
    balances = alice.get("/v1/state/balances")["balances"]
    assert total_minted(balances) == Money.parse("5 USDC")


def test_a_provider_that_stops_heartbeating_loses_the_lease_and_the_job_is_requeued(
    market_server: MarketProcess,
) -> None:
    # pasar preset: 5 s heartbeats, grace 3 intervals -> lost in the 5th interval (~20 s)
    alice, flaky, steady = Actor(market_server), Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="5 USDC")
    register(flaky, "0.05")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    order = wait_for(lambda: (o := alice.get(f"/v1/orders/{order_id}"))["leases"] and o)
    first = order["leases"][0]
    assert first["provider"] == flaky.id
    register(steady, "0.08")  # arrives later, a little dearer

    def order_of_alive() -> Any:
        # steady polls its feed as a live agent does (silent providers get no new leases)
        steady.get(f"/v1/providers/{steady.id}/feed", timeout=0)
        return alice.get(f"/v1/orders/{order_id}")

    lost = wait_for(
        lambda: (o := order_of_alive())["leases"][0]["status"] == "lost" and o, timeout=40
    )
    bill = lost["leases"][0]["bill"]
    # paid nothing; all its escrow went on to the re-run, none of it back to alice (14.2)
    assert (bill["billed"], bill["refund"]) == ("0.00 USDC", "0.00 USDC")
    assert bill["rerun"] == "1.00 USDC"
    # re-queued on the remaining escrow: the other fitting provider takes it
    requeued = wait_for(lambda: (o := order_of_alive())["leases"][1:] and o)
    second = requeued["leases"][1]
    assert second["status"] == "running" and second["shard"] == first["shard"]
    assert flaky.get(f"/v1/accounts/{flaky.id}")["earnings"] == "0.00 USDC"
    balances = alice.get("/v1/state/balances")["balances"]
    assert total_minted(balances) == Money.parse("5 USDC")


@pytest.mark.skipif(
    not os.environ.get("PASAR_TEST_DATABASE_URL"),
    reason="PASAR_TEST_DATABASE_URL is not set (bash .ci/run starts a PostgreSQL)",
)
def test_the_market_runs_on_postgresql(spawn_market: Any, tmp_path: Any) -> None:
    import psycopg

    base = os.environ["PASAR_TEST_DATABASE_URL"]
    name = f"pasar_{uuid.uuid4().hex[:12]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = base.rsplit("/", 1)[0] + f"/{name}"
    market = spawn_market(tmp_path / "pg", "--db", db_url)
    alice = Actor(market)
    alice.post("/v1/faucet", type="faucet", amount="4 USDC")
    order_id = send_order(alice.api, alice.identity, SPEC)["order_id"]
    market.kill()
    again = market.restart()
    api = Transport(again.url, identity=alice.identity)
    assert api.get(f"/v1/orders/{order_id}")["escrow"] == "1.00 USDC"
    wait_for(lambda: api.get("/v1/chain/head")["height"] is not None)
    proc = run_audit("--market", again.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_leases_small_inputs_come_with_its_providers_view(market_server: MarketProcess) -> None:
    """Issue 13: a remote call's payload comes with the lease its provider reads (one round
    trip less); only to that provider, only for the lease's own inputs, and only small ones."""
    alice, prov = Actor(market_server), Actor(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    register(prov, "0.05")
    small, big = b"the call", b"x" * (64 * 1024)
    inputs = []
    for name, data in (("call.pkl", small), ("big.bin", big)):
        sha = hashlib.sha256(data).hexdigest()
        alice.api.request("PUT", f"/v1/blobs/{sha}", signer=alice.identity, content=data)
        inputs.append({"path": name, "sha256": sha, "size": len(data)})
    viewed = {}
    for manifest in (inputs[:1], inputs):
        order_id = send_order(alice.api, alice.identity, SPEC, manifest)["order_id"]
        order = wait_for(lambda o=order_id: (v := alice.get(f"/v1/orders/{o}"))["leases"] and v)
        lease_id = order["leases"][0]["lease_id"]
        path = f"/v1/leases/{lease_id}"
        mine = prov.api.get(path, {}, signer=prov.identity)
        theirs = alice.api.get(path, {}, signer=alice.identity)
        assert "inline_inputs" not in theirs  # the client's view: nothing inline
        viewed[len(manifest)] = mine.get("inline_inputs")
        prov.post(f"{path}/release", type="lease.release", lease_id=lease_id)
    assert viewed[1] == {inputs[0]["sha256"]: base64.b64encode(small).decode()}
    assert viewed[2] is None  # over 64 KiB in all: the provider fetches them
