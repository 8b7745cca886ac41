"""``verification: pol`` (issue 16): the challenge seed fixed by the market's draw over the
receipt, the sample (top-Q per epoch + r random), preset defaults a spec may raise, and
settlement through the check handlers: paid on a matching replay, slashed/refunded with the
verifier rewarded on a mismatch, money conserved (pure: the state machine driven tx by tx)."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

import pytest
from state_snapshot import books_balance
from test_replicate import BAD, GOOD, V1, V2, V3, _assign, _draw, _outputs, _refused, _send, _usdc
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, heartbeat, make_state, register

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.presets import builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.spec_fields import normalize_verification
from pasar.core.state import MarketState
from pasar.core.verify import build_policy
from pasar.core.verify.pol import (
    PolPolicy,
    challenge_seed,
    detection,
    detection_formula,
    sample_segments,
)


def _seed(n: int) -> bytes:
    return challenge_seed(hashlib.sha512(str(n).encode()).digest())


# -- the policy alone ------------------------------------------------------------------------------


def test_the_sample_takes_the_top_update_per_epoch_and_r_random_others() -> None:
    norms = [1.0] * 40
    norms[7], norms[25] = 9.0, 8.0  # the largest update of epoch 0 (0..19) and of epoch 1
    picked = sample_segments(_seed(1), norms, per_epoch=20, top=1, random=5)
    assert {7, 25} <= set(picked) and len(picked) == 7
    assert picked == sample_segments(_seed(1), norms, per_epoch=20, top=1, random=5)
    assert picked != sample_segments(_seed(2), norms, per_epoch=20, top=1, random=5)
    # all of them when the run has no more segments than the sample
    assert sample_segments(_seed(1), [0.0] * 4, per_epoch=4, top=1, random=8) == [0, 1, 2, 3]


def test_random_picks_are_uniform_so_low_norm_segments_are_not_safe() -> None:
    """A prover that skips steps reports tiny norms there: top-Q never picks those segments,
    the r random ones do, each with chance about r/(N-Q·E)."""
    norms = [float(i) for i in range(50)]
    hits = [0] * 50
    for n in range(2_000):
        for i in sample_segments(_seed(n), norms, per_epoch=50, top=1, random=4):
            hits[i] += 1
    assert hits[49] == 2_000  # always the top
    share = [h / 2_000 for h in hits[:49]]
    assert all(0.04 < x < 0.13 for x in share), share  # 4/49 ≈ 0.082 each


def test_detection_formula_and_the_exact_rate() -> None:
    assert detection_formula(10, 100, 44) == pytest.approx(0.9903, abs=1e-4)
    assert detection(10, 100, 44) > detection_formula(10, 100, 44)  # without replacement
    assert detection(0, 100, 44) == 0.0 and detection(1, 10, 10) == 1.0


def test_the_preset_sets_q_r_k_and_a_spec_may_raise_but_never_lower_them() -> None:
    gensyn = builtin_preset("gensyn")
    assert gensyn.verification.default == "pol"
    policy = gensyn.verification_policy()
    assert isinstance(policy, PolPolicy)
    assert (policy.top, policy.random, policy.segment) == (1, 8, 10)
    assert policy.fee_rate == Fraction(1, 10) and policy.verdict_by_match
    raised = build_policy(normalize_verification("pol:random=20,top=2"), gensyn.verification)
    assert isinstance(raised, PolPolicy) and (raised.top, raised.random) == (2, 20)
    lowered = build_policy("pol:top=0,random=1", gensyn.verification)
    assert isinstance(lowered, PolPolicy) and (lowered.top, lowered.random) == (1, 8)
    for bad in ("pol:top=-1", "pol:depth=3", "pol:top=1,top=2", "pol:top"):
        with pytest.raises(PasarError) as err:
            normalize_verification(bad)
        assert err.value.field == "verification" and "pol:top=N" in err.value.message


def test_every_pol_receipt_is_checked_and_earns_a_tenth() -> None:
    policy = builtin_preset("gensyn").verification_policy()
    assert isinstance(policy, PolPolicy)
    assert all(policy.drawn(hashlib.sha512(str(i).encode()).digest()) for i in range(50))
    assert policy.check_fee(_usdc("1")) == _usdc("0.1")


# -- through the state -----------------------------------------------------------------------------


def _pol_held(s: MarketState) -> str:
    """A pol order whose lease (on P1) sent its receipt: held."""
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.50")
    for p in (P1, P2):
        _send(s, p, T0, type="faucet", amount="200 USDC")
        _send(s, p, T0, type="stake", amount="100 USDC")
    spec = {**SPEC, "verification": "pol"}
    order = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    lease = _send(s, MARKET.account_id, T0, type="match", order_id=order, seed=1)["leases"][0]
    heartbeat(s, lease, 0, T0 + 100)
    result = _send(s, P1, T0 + 3_600, type="receipt", lease_id=lease, exit_code=0, **_outputs(GOOD))
    assert result["held"] and s.leases[lease].status == "held"
    return str(lease)


def _gensyn(*verifiers: str) -> MarketState:
    s = make_state("gensyn")
    for v in verifiers:
        _send(s, v, T0, type="verifier.register")
        _send(s, v, T0, type="faucet", amount="20 USDC")
        _send(s, v, T0, type="stake", amount="10 USDC")
    return s


def _pol_verdict(s: MarketState, check: str, matches: bool, at: int = T0 + 6_000) -> Any:
    verifier = s.checks[check].verifier
    body = {**_outputs(BAD), "matches": matches}  # the report's root: not compared under pol
    return _send(s, verifier, at, type="check.verdict", check_id=check, **body)


def test_a_matching_replay_pays_the_provider_and_the_verifier_a_tenth() -> None:
    s = _gensyn(V1, V2)
    lease = _pol_held(s)
    assert _draw(s, lease)["checked"] is True  # always: the draw is the challenge seed
    assert s.leases[lease].draw is not None
    check = _assign(s, lease)
    result = _pol_verdict(s, check, True)
    assert result["agrees"] is True and result["decided"] is True
    assert s.leases[lease].status == "settled"
    fee = s.work_cost(s.leases[lease]).scale(Fraction(1, 10))
    assert fee.micros > 0
    assert s.ledger.balance(LedgerAccount.earnings(s.checks[check].verifier), "USDC") == fee
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC").micros > 0
    assert s.stake_of(P1) == _usdc("100")
    books_balance(s)


def test_a_mismatch_confirmed_by_the_checkers_slashes_refunds_and_rewards() -> None:
    s = _gensyn(V1, V2, V3)
    lease = _pol_held(s)
    _draw(s, lease)
    fee = s.work_cost(s.leases[lease]).scale(Fraction(1, 10))
    first = _assign(s, lease)
    spot = _pol_verdict(s, first, False)
    assert spot["agrees"] is False and spot["checks_needed"] == 3
    second = _assign(s, lease, at=T0 + 7_000)
    result = _pol_verdict(s, second, False, at=T0 + 8_000)
    assert result["provider_right"] is False
    assert s.leases[lease].status == "rejected"
    order = s.orders[s.leases[lease].order_id]
    assert order.free_shards == [0]  # the client's escrow is back on the order (re-run)
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == Money.zero("USDC")
    slashed = _usdc("100").scale(Fraction(1, 2))
    assert s.stake_of(P1) == _usdc("100") - slashed
    prover = s.checks[first].verifier
    reward = slashed.scale(Fraction(1, 2))
    assert s.ledger.balance(LedgerAccount.earnings(prover), "USDC") == fee + reward
    assert [x["account"] for x in result["slashed"]] == [P1]
    books_balance(s)


def test_a_pol_verdict_must_say_whether_it_matched() -> None:
    s = _gensyn(V1)
    lease = _pol_held(s)
    _draw(s, lease)
    check = _assign(s, lease)
    v = s.checks[check].verifier
    at = T0 + 6_000
    _refused(s, v, at, "invalid_verdict", 400, type="check.verdict", check_id=check,
             **_outputs(GOOD))  # fmt: skip
    _refused(s, v, at, "invalid_verdict", 400, type="check.verdict", check_id=check,
             **_outputs(GOOD), matches="yes")  # fmt: skip
    assert s.leases[lease].status == "held"
