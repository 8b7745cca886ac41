"""Proof of learning on a real market (issue 16): ``--preset gensyn`` (pol by default), a real
sandboxed provider and real verifier agents on 127.0.0.1. A small training job (the example's
MLP on two spirals, a synthetic set generated from the seed) commits every step; a verifier
replays the sampled segments and the job settles. A provider that fakes 10% of the steps
(``--cheat pol:1``) is caught by the checkers, paid nothing, slashed half its stake (the
verifier that proved it rewarded), and the shard re-runs on the honest provider; money is
conserved throughout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_market_flow import total_minted
from test_skypilot_tasks import pasar

from pasar.client.client import Client
from pasar.client.transport import Transport
from pasar.core.money import Money
from pasar.crypto.identity import Identity, save_identity
from pasar.provider import PROVIDER_KEY

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pol_train.py"
SPEC = {
    # 60 steps, a checkpoint every 10: N = 6 segments, all sampled by Q + r = 9
    "run": "python pol_train.py train --out pol-out --steps 60 --every 10",
    "inputs": ["pol_train.py"],
    "outputs": ["pol-out/"],
    "resources": {"cpus": 1, "memory": 2},
    "max_price_per_hour": "1 USDC",
    "max_duration": "5m",
}


def _staked_provider(spawn_provider: Any, url: str, home: Path, *args: str) -> Any:
    """A provider with the gensyn preset's 100 USDC stake (test money from the faucet)."""
    key = Identity.generate()
    save_identity(key, PROVIDER_KEY, home)
    Transport(url, identity=key).post_signed(
        "/v1/faucet", {"type": "faucet", "amount": "100 USDC"}, key
    )
    return spawn_provider(url, home, "--stake", "100 USDC", *args)


@pytest.fixture
def gensyn(spawn_market: Any, spawn_verifier: Any, tmp_path: Path) -> MarketProcess:
    market: MarketProcess = spawn_market(tmp_path / "market", "--preset", "gensyn")
    for i in range(3):
        spawn_verifier(market.url, tmp_path / f"v{i}", "--stake", "10 USDC")
    return market


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(EXAMPLE, project)
    return project


def test_an_honest_training_job_settles_and_a_prover_faking_a_tenth_of_its_steps_is_slashed(
    gensyn: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    """One market for both (a market and three verifiers take a while to start)."""
    honest = _staked_provider(spawn_provider, gensyn.url, tmp_path / "honest",
                              "--price-cpu-hour", "0.05")  # fmt: skip
    project = _project(tmp_path)
    with Client(gensyn.url, home=tmp_path / "client") as alice:
        alice.faucet("10 USDC")
        order = alice.launch(SPEC, base_dir=project).wait(timeout=240)
        assert order["status"] == "done", order
        (lease,) = order["leases"]
        assert lease["provider"] == honest.account and lease["status"] == "settled", lease
        (check_id,) = lease["checks"]
        check = alice.check(check_id)
        assert check["agrees"] is True and check["status"] == "done"
        # pol, the preset's default: the market's draw is the challenge seed
        assert check["challenge"]["seed"] and check["challenge"]["top"] == 1
        paths = {o["path"] for o in lease["receipt"]["outputs"]}
        assert {"pol-out/manifest.json", "pol-out/step_hashes.json"} <= paths
        earned = alice.transport.get(f"/v1/accounts/{check['verifier']}")["earnings"]
        assert Money.parse(earned).micros > 0  # a tenth of the training's cost
        total_minted(alice.transport.get("/v1/state/balances")["balances"])  # conserved

        cheater = _staked_provider(spawn_provider, gensyn.url, tmp_path / "cheater",
                                   "--price-cpu-hour", "0.01", "--cheat", "pol:1")  # fmt: skip
        order = alice.launch(SPEC, base_dir=project).wait(timeout=300)
        assert order["status"] == "done", order
        by_status = {x["status"]: x for x in order["leases"]}
        rejected, settled = by_status["rejected"], by_status["settled"]
        assert rejected["provider"] == cheater.account and settled["provider"] == honest.account
        assert Money.parse(rejected["bill"]["provider_payout"]).micros == 0
        done = [c for c in map(alice.check, rejected["checks"]) if c["status"] == "done"]
        assert len(done) >= 2 and all(c["agrees"] is False for c in done)
        assert alice.transport.get(f"/v1/accounts/{cheater.account}")["stake"] == "50.00 USDC"
        reward = alice.transport.get(f"/v1/accounts/{done[0]['verifier']}")["earnings"]
        assert Money.parse(reward) >= Money.parse("25 USDC")  # slash_reward_rate 1/2 of 50
        # the honest prover is never slashed
        assert alice.transport.get(f"/v1/accounts/{honest.account}")["stake"] == "100.00 USDC"
        total_minted(alice.transport.get("/v1/state/balances")["balances"])  # conserved


def test_a_prover_perturbing_one_weight_once_is_pinned_to_its_step_by_a_dispute(
    gensyn: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    """``--cheat pol:perturb``: one weight nudged by 1e-3 at one step. With N = 6 segments
    all sampled (Q + r = 9) it is caught with certainty; the verifier whose replay differs
    opens a dispute, both agents answer its rounds from what they committed, and it narrows
    to exactly the perturbed step; both then trace that step in their sandboxes (the cheater
    with its cheat: the trace must end in the state it committed) and it is pinned to the
    operator the cheat added — the in-place ``aten.add_.Tensor`` after the optimizer — which a
    third verifier, the referee, recomputes; the market's ruling names step and operator: the
    prover is slashed, the client refunded and the shard re-run on the honest provider."""
    from pasar.train.cheat import Cheat

    perturbed = min(Cheat.parse("perturb", salt=7).for_run(60).steps)  # the job's --seed 7
    cheater = _staked_provider(spawn_provider, gensyn.url, tmp_path / "cheater",
                               "--price-cpu-hour", "0.01", "--cheat", "pol:perturb")  # fmt: skip
    honest = _staked_provider(spawn_provider, gensyn.url, tmp_path / "honest",
                              "--price-cpu-hour", "0.05")  # fmt: skip
    project = _project(tmp_path)
    with Client(gensyn.url, home=tmp_path / "client") as alice:
        alice.faucet("10 USDC")
        order = alice.launch(SPEC, base_dir=project).wait(timeout=300)
        assert order["status"] == "done", order
        by_status = {x["status"]: x for x in order["leases"]}
        rejected, settled = by_status["rejected"], by_status["settled"]
        assert rejected["provider"] == cheater.account and settled["provider"] == honest.account
        (dispute,) = alice.transport.get(f"/v1/leases/{rejected['lease_id']}/disputes")
        assert dispute["status"] == "prover_lost" and dispute["loser"] == cheater.account
        assert dispute["step"] == perturbed, dispute  # the exact step
        # ... and the exact operator: the cheat's extra in-place add, after the same 81
        # operators (forward, backward, Adam) as the honest step, whose next is the loss read out
        op = dispute["operator"]
        assert op["name"] == "aten.add_.Tensor" and op["index"] == 81, dispute
        assert op["referee"] == "aten._local_scalar_dense.default"
        assert dispute["referee"] not in (None, dispute["verifier"], cheater.account)
        counts = {role: x["count"] for role, x in dispute["operators"].items()}
        assert counts == {"prover": 84, "verifier": 82, "referee": 82}, counts
        where = f"step {perturbed}, operator aten.add_.Tensor (#81)"
        assert dispute["where"] == where
        start, end = dispute["segment"]
        assert start < perturbed <= end and dispute["agreed_step"] == perturbed - 1
        assert len(dispute["rounds"]) <= (end - start).bit_length()  # log2 rounds
        assert alice.transport.get(f"/v1/disputes/{dispute['dispute_id']}") == dispute
        # where the user meets it: pasar status prints the dispute and its step
        shown = pasar(tmp_path / "client", gensyn.url, "status", order["order_id"])
        assert f"dispute {dispute['dispute_id']}: prover_lost at {where}" in shown.stdout
        # ... and pasar verifier status, for the verifier that opened it and for its referee
        listed = {
            v["verifier"]: [d["where"] for d in v["disputes"]]
            for v in (json.loads(pasar(tmp_path / f"v{i}", gensyn.url, "verifier", "status",
                                       "--json").stdout) for i in range(3))
        }  # fmt: skip
        assert {k for k, v in listed.items() if v} == {dispute["verifier"], dispute["referee"]}
        assert listed[dispute["referee"]] == [where]
        # it is all transactions: pasar audit replays the dispute to the market's balances
        audited = pasar(tmp_path / "client", gensyn.url, "audit", "--json")
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert alice.transport.get(f"/v1/accounts/{cheater.account}")["stake"] == "50.00 USDC"
        assert alice.transport.get(f"/v1/accounts/{honest.account}")["stake"] == "100.00 USDC"
        total_minted(alice.transport.get("/v1/state/balances")["balances"])  # conserved
