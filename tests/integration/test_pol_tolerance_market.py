"""pol's tolerance mode on a real market (issue 16): every verifier runs in another
environment than the providers (``PASAR_TRAIN_CAPABILITY=avx2`` in its agent's environment,
passed to its replays), so none can replay a step bit for bit. Before tolerance mode they sent
no verdict and the job was never checked; now they replay in tolerance mode: a prover that
perturbed one weight by 1e-3 once is caught by distance (the checkers' majority, no dispute:
step hashes across environments cannot be bisected), slashed, and the shard re-runs on an
honest provider, which is paid on a tolerance match. Money is conserved."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_market_flow import total_minted
from test_pol_market import SPEC, _project, _staked_provider

from pasar.client.client import Client
from pasar.core.money import Money
from pasar.core.verify.pol import TOLERANCE_THRESHOLD

if TYPE_CHECKING:
    from conftest import MarketProcess

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is missing")


@pytest.fixture
def elsewhere(
    spawn_market: Any, spawn_verifier: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> MarketProcess:
    """A gensyn market whose three verifiers all run in another CPU capability."""
    market: MarketProcess = spawn_market(tmp_path / "market", "--preset", "gensyn")
    monkeypatch.setenv("PASAR_TRAIN_CAPABILITY", "avx2")
    for i in range(3):
        spawn_verifier(market.url, tmp_path / f"v{i}", "--stake", "10 USDC")
    monkeypatch.delenv("PASAR_TRAIN_CAPABILITY")  # the providers keep the pinned one
    return market


def test_verifiers_in_another_environment_pay_the_honest_and_catch_a_perturbing_prover(
    elsewhere: MarketProcess, spawn_provider: Any, tmp_path: Path
) -> None:
    cheater = _staked_provider(spawn_provider, elsewhere.url, tmp_path / "cheater",
                               "--price-cpu-hour", "0.01", "--cheat", "pol:perturb")  # fmt: skip
    honest = _staked_provider(spawn_provider, elsewhere.url, tmp_path / "honest",
                              "--price-cpu-hour", "0.05")  # fmt: skip
    project = _project(tmp_path)
    with Client(elsewhere.url, home=tmp_path / "client") as alice:
        alice.faucet("10 USDC")
        order = alice.launch(SPEC, base_dir=project).wait(timeout=300)
        assert order["status"] == "done", order
        by_status = {x["status"]: x for x in order["leases"]}
        rejected, settled = by_status["rejected"], by_status["settled"]
        assert rejected["provider"] == cheater.account and settled["provider"] == honest.account
        # the cheat: caught by distance, by the checkers' majority, never bisected
        done = [c for c in map(alice.check, rejected["checks"]) if c["status"] == "done"]
        assert len(done) >= 2 and all(c["agrees"] is False for c in done)
        assert all(c["mode"] == "tolerance" for c in done), done
        assert all(Fraction(c["distance"]) > TOLERANCE_THRESHOLD for c in done)
        # each verifier measured the job's noise by its own second replay (in its sandbox)
        # and held the prover to the threshold that gives, never below the floor
        assert all(c["noise"] is not None and c["threshold"] is not None for c in done), done
        assert all(Fraction(c["distance"]) > Fraction(c["threshold"]) >= TOLERANCE_THRESHOLD
                   for c in done)  # fmt: skip
        assert alice.transport.get(f"/v1/leases/{rejected['lease_id']}/disputes") == []
        assert Money.parse(rejected["bill"]["provider_payout"]).micros == 0
        assert alice.transport.get(f"/v1/accounts/{cheater.account}")["stake"] == "50.00 USDC"
        # the honest prover in the providers' environment: paid on a tolerance match
        (check_id,) = settled["checks"]
        check = alice.check(check_id)
        assert check["agrees"] is True and check["mode"] == "tolerance", check
        assert Fraction(check["distance"]) <= TOLERANCE_THRESHOLD
        assert Fraction(check["distance"]) <= Fraction(check["threshold"])
        assert Fraction(check["noise"]) > 0  # its two environments differ: it measured drift
        assert Money.parse(settled["bill"]["provider_payout"]).micros > 0
        assert alice.transport.get(f"/v1/accounts/{honest.account}")["stake"] == "100.00 USDC"
        total_minted(alice.transport.get("/v1/state/balances")["balances"])  # conserved
