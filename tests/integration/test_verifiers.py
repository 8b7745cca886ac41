"""Verifiers re-run ``replicate`` jobs for real: a market, sandboxed providers and verifier
agents on 127.0.0.1. A reproducible job is re-run and both the provider and the verifier are
paid; a result no re-run reproduces is outvoted by a 2N+1 majority, not paid, and re-queued
on another provider; money is conserved throughout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from test_market_flow import total_minted
from test_provider import PRICE, Client, conserved

from pasar.client.client import Client as SdkClient
from pasar.client.transport import Transport
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.crypto.identity import Identity, load_identity

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


def _checks(alice: Client, order: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check of the order's leases, as the client (a party) reads them."""
    out = []
    for lease in order["leases"]:
        for n in range(3):
            try:
                out.append(alice.get(f"/v1/checks/{lease['lease_id']}.check-{n}"))
            except PasarError as exc:  # a check never assigned
                assert exc.status == 404
                break
    return out


def test_a_reproducible_result_is_rerun_by_a_verifier_and_both_are_paid(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    verifiers = [spawn_verifier(market_server.url, tmp_path / f"v{i}") for i in range(3)]
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(
        run="python3 -c 'print(sum(range(1000)))' > sum.txt; sleep 2",  # verified seconds
        outputs=["sum.txt"],
        verification="replicate:1",  # every result is re-run
    )
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=90)
    (lease,) = order["leases"]
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    (check,) = _checks(alice, order)
    assert check["status"] == "done" and check["agrees"] is True
    assert check["verifier"] in {v.account for v in verifiers}
    assert check["root"] == lease["receipt"]["root"]
    earned = alice.get(f"/v1/accounts/{check['verifier']}")["earnings"]
    assert Money.parse(earned).micros > 0  # the check fee, from the order's escrow
    assert "verified" in (order.get("note") or "")
    conserved(alice, "10 USDC")


def test_a_result_no_rerun_reproduces_is_outvoted_unpaid_and_requeued(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    first = spawn_provider(market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.01")
    second = spawn_provider(market_server.url, tmp_path / "p2", "--price-cpu-hour", "0.05")
    for i in range(3):
        spawn_verifier(market_server.url, tmp_path / f"v{i}")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(  # every run differs: no verifier can reproduce it
        run="python3 -c 'import os; print(os.urandom(8).hex())' > noise.txt",
        outputs=["noise.txt"],
        verification="replicate:1",
    )
    order = alice.wait(
        order_id,
        lambda o: any(x["status"] == "rejected" for x in o["leases"]) and len(o["leases"]) >= 2,
        timeout=120,
    )
    rejected = next(x for x in order["leases"] if x["status"] == "rejected")
    assert rejected["provider"] == first.account  # the cheaper one ran it first
    assert Money.parse(rejected["bill"]["provider_payout"]).micros == 0
    rerun = [x for x in order["leases"] if x["lease_id"] != rejected["lease_id"]]
    assert rerun and all(x["provider"] == second.account for x in rerun)  # never the same one
    checks = _checks(alice, {"leases": [rejected]})
    done = [c for c in checks if c["status"] == "done"]
    assert len(done) >= 2 and all(c["agrees"] is False for c in done)
    explain = alice.get(f"/v1/orders/{order_id}/explain")
    assert "proven wrong" in str(explain)
    assert Money.parse(alice.get(f"/v1/accounts/{first.account}")["earnings"]).micros == 0
    conserved(alice, "10 USDC")


def test_a_whistleblower_challenges_a_settled_result_from_the_cli_and_is_upheld(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    checkers = {spawn_verifier(market_server.url, tmp_path / f"v{i}").account for i in range(3)}
    whistle_home = tmp_path / "whistleblower"
    whistleblower = spawn_verifier(market_server.url, whistle_home)
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(  # settled on its receipt (verification: receipt)
        run="python3 -c 'import os; print(os.urandom(8).hex())' > noise.txt",
        outputs=["noise.txt"],
    )
    (lease,) = alice.wait(order_id, lambda o: o["status"] == "done")["leases"]
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    # the whistleblower may read the job while the result can be challenged
    key = load_identity("verifier", whistle_home)
    reader = Transport(market_server.url, identity=key)
    assert reader.get(f"/v1/orders/{order_id}")["spec"]["run"].startswith("python3")
    reader.post_signed("/v1/faucet", {"type": "faucet", "amount": "5 USDC"}, key)
    cli = subprocess.run(
        [sys.executable, "-m", "pasar", "verifier", "challenge", lease["lease_id"],
         "--claim", "this output cannot be reproduced", "--bond", "1 USDC",
         "--market", market_server.url, "--home", str(whistle_home)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    challenge_id = json.loads(cli.stdout)["challenge_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        challenge = alice.get(f"/v1/challenges/{challenge_id}")
        if challenge["status"] != "open":
            break
        time.sleep(0.2)
    assert challenge["status"] == "upheld", challenge
    verdicts = [alice.get(f"/v1/checks/{c}") for c in challenge["checks"]]
    assert {v["verifier"] for v in verdicts} <= checkers  # never the whistleblower
    assert whistleblower.account not in {v["verifier"] for v in verdicts}
    # a challenge after the decision, or of someone who is no verifier, is refused
    bad = subprocess.run(
        [sys.executable, "-m", "pasar", "verifier", "challenge", lease["lease_id"],
         "--claim", "again", "--bond", "1 USDC", "--market", market_server.url,
         "--home", str(tmp_path / "nobody")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "verifier" in bad.stderr and "Traceback" not in bad.stderr
    conserved(alice, "15 USDC")


def test_outputs_compared_within_a_tolerance_pass_when_close_and_the_verifier_says_so(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    for i in range(3):
        spawn_verifier(market_server.url, tmp_path / f"v{i}")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(  # the last digits differ from run to run: within rtol=1e-6
        run="python3 -c 'import random; print(2.5 + random.random() * 1e-9)' > loss.csv",
        outputs=["loss.csv"],
        compare={"loss.csv": "numeric:rtol=1e-6"},
        verification="replicate:1",
    )
    order = alice.wait(order_id, lambda o: o["status"] == "done", timeout=90)
    (lease,) = order["leases"]
    assert lease["status"] == "settled"
    (check,) = _checks(alice, order)
    assert check["agrees"] is True
    assert check["root"] != lease["receipt"]["root"]  # not byte-equal, yet the same numbers
    conserved(alice, "10 USDC")


def test_a_sealed_result_is_rerun_by_a_verifier_the_client_sealed_the_key_to(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    """``privacy: sealed`` with ``replicate:1``: the client's sealer seals the data key to the
    assigned verifier's account key too; the verifier decrypts, re-runs, and compares
    plaintexts (two encryptions of one file never match), and agrees."""
    provider = spawn_provider(market_server.url, tmp_path / "p1", *PRICE)
    verifiers = [spawn_verifier(market_server.url, tmp_path / f"v{i}") for i in range(3)]
    alice = SdkClient(market_server.url, identity=Identity.generate(), home=tmp_path / "alice")
    alice.faucet("10 USDC")
    job = alice.launch(
        {
            "privacy": "sealed",
            "verification": "replicate:1",
            "run": "python3 -c 'print(sum(range(1000)))' > sum.txt; sleep 2",
            "outputs": ["sum.txt"],
            "resources": {"cpus": 1},
            "max_price_per_hour": "1 USDC",
            "max_duration": "2m",
        }
    )
    order = job.wait(timeout=120)
    assert order["status"] == "done", order
    (lease,) = order["leases"]
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    (check_id,) = lease["checks"]
    check = alice.check(check_id)
    assert check["verifier"] in {v.account for v in verifiers}
    assert check["agrees"] is True
    assert check["root"] == lease["receipt"]["plain_root"] != lease["receipt"]["root"]
    assert set(lease["sealed_keys"]) == {provider.account, check["verifier"]}
    assert job.result(tmp_path / "got").files[0].read_text() == "499500\n"
    total_minted(alice.transport.get("/v1/state/balances")["balances"])  # conserved


def test_a_missing_output_claim_is_rerun_an_honest_one_paid_a_dropped_output_caught(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Any
) -> None:
    """Issue 14.4: a ``missing_outputs`` failure receipt carries what the job did write and is
    re-run like a result. A job that never writes ``out.txt``: the re-run agrees, the provider
    is paid, the shard has no result and is not re-queued. A provider that deletes an output
    the job did write and claims it missing (``--cheat drop``): outvoted, unpaid, re-queued."""
    honest = spawn_provider(market_server.url, tmp_path / "p1", "--price-cpu-hour", "0.05")
    for i in range(3):
        spawn_verifier(market_server.url, tmp_path / f"v{i}")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    never = alice.launch(  # the job itself never writes out.txt: an honest claim
        run="echo 1 > other.txt; sleep 2",
        outputs=["out.txt", "other.txt"],
        verification="replicate:1",
    )
    order = alice.wait(
        never, lambda o: o["status"] == "done" and "held" not in str(o["note"]), timeout=120
    )
    (lease,) = order["leases"]  # not re-queued: every provider would find the same
    assert lease["provider"] == honest.account and lease["status"] == "failed"
    assert lease["receipt"]["failure"]["reason"] == "missing_outputs"
    assert [o["path"] for o in lease["receipt"]["outputs"]] == ["other.txt"]
    assert Money.parse(lease["bill"]["provider_payout"]).micros > 0  # paid its verified time
    checks = [c for c in _checks(alice, order) if c["status"] == "done"]
    assert checks and all(c["agrees"] is True for c in checks)
    assert alice.get(f"/v1/providers/{honest.account}")["available"] is True
    dropper = spawn_provider(  # cheaper: it gets the next order first
        market_server.url, tmp_path / "p2", "--price-cpu-hour", "0.01", "--cheat", "drop:1"
    )
    order_id = alice.launch(
        run="echo 45 > out.txt; echo 1 > other.txt; sleep 2",
        outputs=["out.txt", "other.txt"],
        verification="replicate:1",
    )
    order = alice.wait(
        order_id, lambda o: any(x["status"] == "rejected" for x in o["leases"]), timeout=120
    )
    rejected = next(x for x in order["leases"] if x["status"] == "rejected")
    assert rejected["provider"] == dropper.account
    assert rejected["receipt"]["failure"]["reason"] == "missing_outputs"
    assert [o["path"] for o in rejected["receipt"]["outputs"]] == ["other.txt"]
    assert Money.parse(rejected["bill"]["provider_payout"]).micros == 0
    done = [c for c in _checks(alice, {"leases": [rejected]}) if c["status"] == "done"]
    assert len(done) >= 2 and all(c["agrees"] is False for c in done)
    order = alice.wait(order_id, lambda o: any(x["status"] == "settled" for x in o["leases"]),
                       timeout=120)  # fmt: skip
    redone = next(x for x in order["leases"] if x["status"] == "settled")
    assert redone["provider"] == honest.account  # re-queued, never to the dropper
    assert sorted(o["path"] for o in redone["receipt"]["outputs"]) == ["other.txt", "out.txt"]
    conserved(alice, "10 USDC")
