"""Real provider processes against a real market on 127.0.0.1, jobs in real sandboxes.

A job runs and settles; a job is cancelled mid-run and billed only for verified seconds; a
provider killed with SIGKILL mid-job loses the lease (a missed liveness challenge) and a second
provider completes it;
SIGTERM drains; bad jobs end with a clear reason in the receipt while the provider keeps
serving.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from typing import TYPE_CHECKING, Any

import pytest

from pasar.client.raw_orders import send_order
from pasar.client.transport import Transport
from pasar.core.money import Money
from pasar.crypto.identity import Identity

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")


class Client:
    def __init__(self, market: MarketProcess) -> None:
        self.identity = Identity.generate()
        self.id = self.identity.account_id
        self.api = Transport(market.url, identity=self.identity)
        self.url = market.url

    def post(self, path: str, **body: Any) -> Any:
        return self.api.post_signed(path, body, self.identity)

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params)

    def launch(self, **spec: Any) -> str:
        full = {
            "resources": {"cpus": 1},
            "max_price_per_hour": "1 USDC",
            "max_duration": "2m",
            **spec,
        }
        return str(send_order(self.api, self.identity, full)["order_id"])

    def order(self, order_id: str) -> Any:
        return self.get(f"/v1/orders/{order_id}")

    def wait(self, order_id: str, predicate: Any, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order = self.order(order_id)
            if predicate(order):
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} never got there: {self.order(order_id)}")

    def logs(self, lease_id: str) -> str:
        return self.api.request("GET", f"/v1/leases/{lease_id}/logs").text


def finished(order: Any) -> bool:
    return bool(order["leases"]) and all(x["status"] != "running" for x in order["leases"])


def conserved(client: Client, minted: str) -> None:
    balances = client.get("/v1/state/balances")["balances"]
    rest = sum(Money.parse(v).micros for k, v in balances.items() if not k.startswith("mint/"))
    assert rest == -Money.parse(balances["mint/USDC"]).micros == Money.parse(minted).micros


def test_a_job_runs_in_the_sandbox_and_settles(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(
        run='echo "hello from $PASAR_LEASE shard $PASAR_SHARD/$PASAR_SHARDS"; '
        "python3 -c 'print(6*7)' > answer.txt; sleep 1",
        outputs=["answer.txt"],
    )
    order = alice.wait(order_id, lambda o: o["status"] == "done")
    (lease,) = order["leases"]
    assert lease["provider"] == provider.account
    receipt = lease["receipt"]
    assert receipt["exit_code"] == 0
    (out,) = receipt["outputs"]
    blob = alice.api.request("GET", f"/v1/blobs/{out['sha256']}").content
    assert blob == b"42\n" and hashlib.sha256(blob).hexdigest() == out["sha256"]
    assert f"hello from {lease['lease_id']} shard 0/1" in alice.logs(lease["lease_id"])
    assert (
        lease["bill"]["billed"]
        == Money.parse("0.05 USDC").scale(lease["billed_ms"], 3_600_000).to_json()
    )
    conserved(alice, "10 USDC")


def test_cancel_mid_run_bills_only_verified_seconds(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run="echo started; sleep 60")
    alice.wait(
        order_id, lambda o: o["leases"] and "started" in alice.logs(o["leases"][0]["lease_id"])
    )
    time.sleep(6)  # into the second 5 s interval: two heartbeats answered
    result = alice.post(f"/v1/orders/{order_id}/cancel", type="order.cancel", order_id=order_id)
    lease = alice.order(order_id)["leases"][0]
    assert lease["status"] == "cancelled"
    assert 5 <= lease["billed_seconds"] <= 10  # verified intervals, capped by wall time
    assert (
        result["billed"] == Money.parse("0.05 USDC").scale(lease["billed_ms"], 3_600_000).to_json()
    )
    # the provider killed the job and is free for the next one
    second = alice.launch(run="echo again")
    alice.wait(second, lambda o: o["status"] == "done")
    assert alice.order(second)["leases"][0]["provider"] == provider.account
    conserved(alice, "10 USDC")


def test_bad_jobs_end_with_a_reason_and_the_provider_keeps_serving(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    missing_cmd = alice.launch(run="no-such-command-here")
    missing_out = alice.launch(run="echo nothing", outputs=["result.bin"])
    garbage = alice.launch(run="head -c 3000 /dev/urandom; exit 3", outputs=["result.bin"])
    for order_id in (missing_cmd, missing_out, garbage):
        alice.wait(order_id, finished)
    receipt = alice.order(missing_cmd)["leases"][0]["receipt"]
    assert receipt["exit_code"] == 127
    assert "not found" in alice.logs(alice.order(missing_cmd)["leases"][0]["lease_id"])
    receipt = alice.order(missing_out)["leases"][0]["receipt"]  # exit 0, no result: failed
    assert receipt["failure"]["reason"] == "missing_outputs" and receipt["exit_code"] == 0
    assert "result.bin" in receipt["failure"]["detail"]
    receipt = alice.order(garbage)["leases"][0]["receipt"]  # failed already: keeps its end
    assert receipt["exit_code"] == 3 and "failure" not in receipt
    assert receipt["note"] == "missing outputs: result.bin"
    conserved(alice, "10 USDC")


def test_killed_provider_loses_the_lease_and_another_completes_it(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    first = spawn_provider(market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.01")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run="echo working; sleep 8; echo done > out.txt", outputs=["out.txt"])
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["verified_intervals"] >= 1)
    first.kill()  # SIGKILL mid-job: no drain, no release
    second = spawn_provider(market_server.url, tmp_path / "p2", "--price-cpu-hour", "0.05")
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=90)
    lost, done = order["leases"]
    assert lost["provider"] == first.account and lost["status"] == "lost"
    # its dropped feed made the market challenge it; it missed the challenge, and is paid
    # for the time its heartbeats verified up to then only
    assert "missed a liveness challenge" in lost["note"]
    assert (
        lost["bill"]["billed"]
        == Money.parse("0.01 USDC").scale(lost["billed_ms"], 3_600_000).to_json()
    )
    assert done["provider"] == second.account and done["status"] == "settled"
    assert done["receipt"]["exit_code"] == 0
    conserved(alice, "10 USDC")


def test_sigterm_drains_finishes_short_jobs_and_exits_0(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run="echo go; sleep 2; echo finished")
    alice.wait(order_id, lambda o: o["leases"] and "go" in alice.logs(o["leases"][0]["lease_id"]))
    assert provider.stop() == 0
    order = alice.order(order_id)
    assert order["status"] == "done" and order["leases"][0]["receipt"]["exit_code"] == 0
    me = alice.get(f"/v1/providers/{provider.account}")
    assert me["running"] == []
    # draining: the market no longer offers it new work
    later = alice.launch(run="echo late")
    explain = alice.get(f"/v1/orders/{later}/explain")
    assert any("draining" in (p["reason"] or "") for p in explain["providers"])


def test_sigterm_hands_back_a_long_job_which_is_requeued(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(
        market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.01", "--grace", "1"
    )
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run="echo long; sleep 60")
    alice.wait(order_id, lambda o: o["leases"] and o["leases"][0]["verified_intervals"] >= 1)
    assert provider.stop() == 0
    order = alice.order(order_id)
    (released,) = order["leases"]
    assert released["status"] == "released"
    assert order["status"] == "open"  # re-queued on what is left of the escrow
    conserved(alice, "10 USDC")


def square_or_fail(x: int) -> int:
    if x == 2:
        raise ValueError(f"two is not allowed (got {x})")
    return x * x


def test_remote_functions_run_in_a_real_providers_sandbox(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    import pasar

    spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    spawn_provider(market_server.url, tmp_path / "p2", "--price-cpu-hour", "0.06")
    client = pasar.Client(market_server.url, home=tmp_path / "client")
    client.faucet("10 USDC")
    fn = pasar.remote(cpus=1, max_price="0.50 USDC", client=client)(square_or_fail)
    assert fn.remote(7) == 49
    assert fn.map([1, 3, 4]) == [1, 9, 16]  # a batch per free provider, results in input order
    (mapped,) = client.jobs(limit=1)
    # each provider ran the shards it won at once: none waited to be lost and re-queued
    # (an agent that could not tell its own leases from another's, once reads were private,
    # lost every lease listed after someone else's in a match)
    assert [x["status"] for x in mapped["leases"]] == ["settled"] * 2, mapped["leases"]
    assert len({x["provider"] for x in mapped["leases"]}) == 2
    with pytest.raises(ValueError, match="two is not allowed") as err:
        fn.map([1, 2, 3])
    assert any("Traceback" in note for note in getattr(err.value, "__notes__", []))


def test_max_jobs_keeps_the_second_job_waiting_for_the_first(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    spawn_provider(market_server.url, tmp_path / "p1", *PRICE, "--max-jobs", "1")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    first = alice.launch(run="sleep 2")
    alice.wait(first, lambda o: o["leases"])
    second = alice.launch(run="echo second")
    done_first = alice.wait(first, lambda o: o["status"] == "done")
    done_second = alice.wait(second, lambda o: o["status"] == "done")
    # the second job ran only once the first had ended. Orders are matched on arrival, so a
    # match may cross the agent's "full" notice: the agent hands such a lease back (released,
    # unpaid) and the shard waits for the first job, as before
    *handed_back, ran = done_second["leases"]
    assert ran["status"] == "settled"
    assert ran["started_at"] >= done_first["leases"][0]["ended_at"]
    assert all(x["status"] == "released" and not x.get("billed_ms") for x in handed_back)


def test_an_input_that_does_not_match_its_hash_ends_the_lease_with_the_reason(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Any
) -> None:
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    data = b"the real input\n"
    sha = hashlib.sha256(data).hexdigest()
    # uploads are signed (they count against the uploader's quota)
    assert alice.api.request("PUT", f"/v1/blobs/{sha}", content=data).status_code == 201
    spec = {
        "run": "cat data.txt",
        "resources": {"cpus": 1},
        "max_price_per_hour": "1 USDC",
        "max_duration": "2m",
    }
    inputs = [{"path": "data.txt", "sha256": sha, "size": len(data)}]
    order_id = send_order(alice.api, alice.identity, spec, inputs)["order_id"]
    # the market's copy rots on disk before any provider fetches it
    blobs = market_server.home / "blobs"
    (blob,) = [p for p in blobs.rglob(sha) if p.is_file() and "owners" not in p.parts]
    blob.chmod(0o644)
    blob.write_bytes(b"something else\n")
    spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    order = alice.wait(order_id, finished)
    receipt = order["leases"][0]["receipt"]
    assert receipt["exit_code"] == 125
    assert "data.txt" in receipt["note"]
    assert "data.txt" in alice.logs(order["leases"][0]["lease_id"])
