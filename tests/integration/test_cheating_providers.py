"""A cheating provider (``--cheat KIND:RATE``) against a real ``--devnet`` market.

Under the ``receipt`` policy the market settles what it is given: a garbled, skipped or lazy
result is accepted and paid, since the receipt looks like an honest one (its root matches its
outputs). Checked here: the cheater really cheats (the outputs differ from an honest run), it
records the leases it cheated on, it refuses to start against a real market, and under
``replicate:1`` its garbled result is outvoted by verifiers and its stake slashed, which
``pasar provider status`` then shows with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_provider import Client, conserved

from pasar.client.transport import Transport
from pasar.crypto.identity import Identity, save_identity
from pasar.provider import PROVIDER_KEY
from pasar.provider.cheat import SLOW_FACTOR, read_cheats

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

PRICE = ("--price-cpu-hour", "0.05", "--grace", "5")
HONEST = b"42\n"
JOB = "sleep {pause}; python3 -c 'print(6*7)' > answer.txt"


@pytest.mark.parametrize(("kind", "pause"), [("garble", 0), ("skip", 0), ("lazy", 4)])
def test_a_cheater_signs_wrong_outputs_that_the_receipt_policy_accepts(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path, kind: str, pause: int
) -> None:
    home = tmp_path / "cheater"
    provider = spawn_provider(market_server.url, home, *PRICE, "--cheat", f"{kind}:1.0")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run=JOB.format(pause=pause), outputs=["answer.txt"])
    order = alice.wait(order_id, lambda o: o["status"] == "done")
    (lease,) = order["leases"]
    assert lease["provider"] == provider.account and lease["status"] == "settled"
    receipt = lease["receipt"]
    assert receipt["exit_code"] == 0 and "kill_reason" not in receipt
    (out,) = receipt["outputs"]
    blob = alice.api.request("GET", f"/v1/blobs/{out['sha256']}").content
    assert blob != HONEST
    if kind == "garble":
        assert blob == bytes(b ^ 0xFF for b in HONEST)
    else:
        assert b"never computed" in blob
    cheats = read_cheats(home)
    assert [(c["lease_id"], c["kind"]) for c in cheats] == [(lease["lease_id"], kind)]
    conserved(alice, "10 USDC")


def test_an_honest_run_of_the_same_job_is_right(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    """The control: the same job on the same market, no --cheat (and rate 0 is honest)."""
    home = tmp_path / "honest"
    spawn_provider(market_server.url, home, *PRICE, "--cheat", "garble:0")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(run=JOB.format(pause=0), outputs=["answer.txt"])
    (lease,) = alice.wait(order_id, lambda o: o["status"] == "done")["leases"]
    (out,) = lease["receipt"]["outputs"]
    assert alice.api.request("GET", f"/v1/blobs/{out['sha256']}").content == HONEST
    assert read_cheats(home) == []


def _provider_start(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pasar",
            "provider",
            "start",
            "--market",
            url,
            "--home",
            str(home),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PASAR_HOME": str(home), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )


def test_cheat_is_refused_by_a_market_without_devnet(spawn_market: Any, tmp_path: Path) -> None:
    market = spawn_market(tmp_path / "real", devnet=False)
    done = _provider_start(market.url, tmp_path / "p", *PRICE, "--cheat", "garble:0.5")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--cheat" in done.stderr and "devnet" in done.stderr
    assert "Traceback" not in done.stderr
    assert market.proc.poll() is None
    # it registered nothing: the market has no provider
    assert Client(market).get("/v1/providers")["count"] == 0


def test_a_bad_cheat_fails_before_the_market_is_asked(tmp_path: Path) -> None:
    done = _provider_start("http://127.0.0.1:9", tmp_path / "p", "--cheat", "steal:0.5")
    assert done.returncode == 2
    assert "--cheat" in done.stderr and "Traceback" not in done.stderr


def test_cheat_is_hidden_from_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pasar", "provider", "start", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0 and "--runtime" in done.stdout
    assert "--cheat" not in done.stdout


def test_a_slow_cheater_claims_four_times_its_measured_score(
    market_server: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    home = tmp_path / "slow"
    honest = spawn_provider(market_server.url, home, *PRICE)
    client = Client(market_server)
    measured = client.get(f"/v1/providers/{honest.account}")["score"]
    assert honest.stop() == 0
    # the same home: the same key and the same cached benchmark, now with a lie on top
    spawn_provider(market_server.url, home, *PRICE, "--cheat", "slow:1")
    claimed = client.get(f"/v1/providers/{honest.account}")["score"]
    assert measured > 0 and claimed == measured * SLOW_FACTOR


def test_a_garbling_cheater_is_caught_by_replication_slashed_and_its_status_says_why(
    market_server: MarketProcess, spawn_provider: Any, spawn_verifier: Any, tmp_path: Path
) -> None:
    """The loop the cheater exists for: its garbled result is re-run by verifiers, outvoted,
    not paid, re-run by the honest provider; half its stake is slashed, and ``pasar provider
    status`` lists the slash with its reason beside the lease it recorded as cheated."""
    home = tmp_path / "cheater"
    key = Identity.generate()
    save_identity(key, PROVIDER_KEY, home)
    Transport(market_server.url, identity=key).post_signed(
        "/v1/faucet", {"type": "faucet", "amount": "5 USDC"}, key
    )
    spawn_provider(
        market_server.url, home, "--price-cpu-hour", "0.01", "--stake", "4 USDC",
        "--cheat", "garble:1.0",
    )  # fmt: skip
    honest = spawn_provider(market_server.url, tmp_path / "honest", "--price-cpu-hour", "0.05")
    for i in range(3):
        spawn_verifier(market_server.url, tmp_path / f"v{i}")
    alice = Client(market_server)
    alice.post("/v1/faucet", type="faucet", amount="10 USDC")
    order_id = alice.launch(
        run=JOB.format(pause=0), outputs=["answer.txt"], verification="replicate:1"
    )
    order = alice.wait(
        order_id,
        lambda o: o["status"] == "done" and any(x["status"] == "rejected" for x in o["leases"]),
        timeout=150,
    )
    rejected = [x for x in order["leases"] if x["status"] == "rejected"]
    assert [x["provider"] for x in rejected] == [key.account_id]
    cheated = {c["lease_id"] for c in read_cheats(home)}
    assert {x["lease_id"] for x in rejected} <= cheated  # caught only where it cheated
    settled = [x for x in order["leases"] if x["status"] == "settled"]
    assert settled and all(x["provider"] == honest.account for x in settled)

    done = subprocess.run(
        [sys.executable, "-m", "pasar", "provider", "status", "--market", market_server.url,
         "--home", str(home), "--json"],
        capture_output=True, text=True, timeout=60,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    staking = json.loads(done.stdout)["staking"]
    (slash,) = staking["slashes"]
    assert slash["source"] == "stake" and slash["amount"] == "2.00 USDC"  # slash_rate 1/2
    assert "proven wrong" in slash["reason"] and rejected[0]["lease_id"] in slash["reason"]
    assert staking["slashed"] == "2.00 USDC" and staking["stake"] == "2.00 USDC"
