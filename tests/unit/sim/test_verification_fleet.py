"""Mixed fleets (one cheater, honest providers and verifiers) on the real state machine: the
cheater is caught at the rate each policy promises and slashed; honest parties never are; the
books balance. (:mod:`pasar.sim.verification`: only the work is simulated.)"""

from __future__ import annotations

import pytest

from pasar.core.money import Money
from pasar.sim.verification import FleetConfig, run_fleet


def test_receipt_pays_every_wrong_result_the_gap_this_issue_closes() -> None:
    result = run_fleet(FleetConfig(policy="receipt", shards=60))
    assert result.cheated > 10 and result.caught == 0
    assert result.wrong_results_paid == result.cheated
    assert result.balanced


@pytest.mark.parametrize(("rate", "low", "high"), [("0.5", 0.35, 0.65), ("0.25", 0.12, 0.40)])
def test_replicate_catches_about_p_of_the_wrong_results(rate: str, low: float, high: float) -> None:
    result = run_fleet(FleetConfig(policy=f"replicate:{rate}", shards=200, cheat_rate=0.5))
    assert result.cheated > 50
    assert low <= result.caught / result.cheated <= high
    assert result.false_slashes == 0
    assert result.cheater_slashed is not None and result.cheater_slashed > Money.parse("0 USDC")
    assert result.balanced


def test_replicate_1_lets_no_wrong_result_through_and_slashes_no_honest_party() -> None:
    result = run_fleet(FleetConfig(policy="replicate:1", shards=80, cheat_rate=0.7))
    assert result.cheated > 20
    assert result.caught == result.cheated and result.wrong_results_paid == 0
    assert result.false_slashes == 0
    assert result.balanced


def test_an_honest_fleet_is_never_slashed_and_pays_about_p_for_checks() -> None:
    honest = run_fleet(FleetConfig(policy="replicate:0.5", shards=100, cheat_rate=0.0))
    base = run_fleet(FleetConfig(policy="receipt", shards=100, cheat_rate=0.0))
    assert honest.cheated == 0 and honest.false_slashes == 0
    assert honest.cheater_slashed == Money.parse("0 USDC")
    assert honest.client_spent is not None and base.client_spent is not None
    overhead = honest.client_spent.micros / base.client_spent.micros - 1
    assert 0.3 < overhead < 0.7  # one check, paid what the run was, on about half the leases
