"""``replicate:p``: the draw, checks given to verifiers, verdicts, the 2N+1 majority, slashing
(pure: the state machine driven transaction by transaction)."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

import pytest
from state_snapshot import books_balance, snapshot
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, heartbeat, make_state, register
from test_state_atomic import tx

from pasar.core.accounts import LedgerAccount
from pasar.core.check_handlers import eligible_verifiers, verification_due
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.core.verify import build_policy
from pasar.core.verify.replicate import ReplicatePolicy, draw_message
from pasar.crypto.merkle import root_of_files

V1, V2, V3, V4 = "verifier-1", "verifier-2", "verifier-3", "verifier-4"
GOOD = hashlib.sha256(b"good").hexdigest()
BAD = hashlib.sha256(b"bad").hexdigest()


def _send(s: MarketState, signer: str, at: int, **body: Any) -> dict[str, Any]:
    return s.apply(tx(signer, at, **body)).result


def _market(s: MarketState, at: int, **body: Any) -> dict[str, Any]:
    return _send(s, MARKET.account_id, at, **body)


def _outputs(sha: str) -> dict[str, Any]:
    return {
        "outputs": [{"path": "out.txt", "sha256": sha, "size": 4}],
        "root": root_of_files([("out.txt", sha)]),
    }


def _usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


def _verifiers(s: MarketState, *ids: str, stake: str = "2") -> None:
    for v in ids:
        _send(s, v, T0, type="verifier.register")
        _send(s, v, T0, type="faucet", amount="10 USDC")
        _send(s, v, T0, type="stake", amount=f"{stake} USDC")


def _held(s: MarketState, *, rate: str = "1", sha: str = GOOD, shards: int = 1) -> str:
    """An order under replicate:rate whose first lease (on P1) sent its receipt: held."""
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")
    register(s, P2, cpu_ask="0.50")
    for p in (P1, P2):
        _send(s, p, T0, type="faucet", amount="10 USDC")
        _send(s, p, T0, type="stake", amount="4 USDC")
    spec = {**SPEC, "verification": f"replicate:{rate}", "shards": shards}
    order = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    leases = _market(s, T0, type="match", order_id=order, seed=1)["leases"]
    lease = leases[0]
    assert s.leases[lease].provider == P1
    heartbeat(s, lease, 0, T0 + 100)
    result = _send(s, P1, T0 + 3_600, type="receipt", lease_id=lease, exit_code=0, **_outputs(sha))
    assert result["held"] and s.leases[lease].status == "held"
    return lease


def _draw(s: MarketState, lease: str, at: int = T0 + 4_000) -> dict[str, Any]:
    digest = s.leases[lease].receipt_digest
    assert digest is not None
    sig = MARKET.sign(draw_message(lease, digest)).hex()
    return _market(s, at, type="check.draw", lease_id=lease, draw=sig)


def _assign(s: MarketState, lease: str, seed: int = 0, at: int = T0 + 5_000) -> str:
    return str(_market(s, at, type="check.assign", lease_id=lease, seed=seed)["check_id"])


def _verdict(s: MarketState, check: str, sha: str, at: int = T0 + 6_000) -> dict[str, Any]:
    verifier = s.checks[check].verifier
    return _send(s, verifier, at, type="check.verdict", check_id=check, **_outputs(sha))


# -- the policy alone ------------------------------------------------------------------------------


def test_the_draw_selects_about_the_rate_and_is_fixed_by_the_signature() -> None:
    policy = ReplicatePolicy(rate=Fraction(1, 10))
    sigs = [hashlib.sha512(str(i).encode()).digest() for i in range(5_000)]
    share = sum(policy.drawn(sig) for sig in sigs) / len(sigs)
    assert 0.08 < share < 0.12
    assert all(policy.drawn(sig) == policy.drawn(sig) for sig in sigs[:50])
    assert all(ReplicatePolicy(rate=Fraction(1)).drawn(sig) for sig in sigs[:50])


def test_the_tally_spot_checks_then_asks_a_majority() -> None:
    policy = ReplicatePolicy(rate=Fraction(1), checkers=3)
    assert not policy.tally([], needed=1).decided
    agreed = policy.tally([True], needed=1)
    assert agreed.provider_right is True and agreed.majority == (0,)
    escalated = policy.tally([False], needed=1)
    assert not escalated.decided and escalated.needed == 3
    assert not policy.tally([False, True], needed=3).decided
    wrong = policy.tally([False, True, False], needed=3)
    assert wrong.provider_right is False and wrong.majority == (0, 2) and wrong.minority == (1,)
    right = policy.tally([False, True, True], needed=3)
    assert right.provider_right is True and right.minority == (0,)


def test_replicate_escrows_its_checks_on_top_of_the_receipt_escrow() -> None:
    s = make_state()
    policy = build_policy("replicate:0.1", s.preset.verification)
    assert isinstance(policy, ReplicatePolicy) and policy.rate == Fraction(1, 10)
    per_lease, total = s.order_escrow(
        __import__("pasar.core.spec", fromlist=["JobSpec"]).JobSpec.from_dict(
            {**SPEC, "verification": "replicate:0.1", "shards": 2}
        )
    )
    fees = s.preset.fee_schedule()
    fee = _usdc("1").scale(s.preset.verification.check_fee_rate)  # 1 USDC/h × 1 h cap
    assert per_lease == fees.escrow_for(_usdc("1")) + fee * s.preset.verification.checkers
    assert total == per_lease * 2


# -- through the state -----------------------------------------------------------------------------


def test_a_lease_not_drawn_is_paid_at_once() -> None:
    s = make_state()
    policy = ReplicatePolicy(rate=Fraction(1, 2))
    for _ in range(20):  # find a receipt the market's signature does not select
        s = make_state()
        lease = _held(s, rate="0.5")
        digest = s.leases[lease].receipt_digest
        assert digest is not None
        if not policy.drawn(MARKET.sign(draw_message(lease, digest))):
            break
    result = _draw(s, lease)
    assert result == {"lease_id": lease, "checked": False}
    assert s.leases[lease].status == "settled"
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC").micros > 0
    books_balance(s)


def test_an_agreeing_check_pays_the_provider_and_the_verifier() -> None:
    s = make_state()
    _verifiers(s, V1, V2)
    lease = _held(s)
    assert verification_due(s, T0 + 4_000) == ([lease], [], [])
    assert _draw(s, lease)["checked"] is True
    assert verification_due(s, T0 + 4_000) == ([], [(lease, None)], [])
    check = _assign(s, lease, seed=1)
    assert s.checks[check].verifier == V2  # the seed picks among the eligible, in id order
    result = _verdict(s, check, GOOD)
    assert result["agrees"] is True and result["decided"] is True
    assert s.leases[lease].status == "settled"
    fee = s.work_cost(s.leases[lease]).scale(s.preset.verification.check_fee_rate)
    assert fee.micros > 0
    assert s.ledger.balance(LedgerAccount.earnings(V2), "USDC") == fee
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC").micros > 0
    assert s.stake_of(P1) == _usdc("4")
    assert verification_due(s, T0 + 10_000) == ([], [], [])
    books_balance(s)


def test_a_cheat_is_outvoted_slashed_refunded_and_the_shard_reruns_elsewhere() -> None:
    s = make_state()
    _verifiers(s, V1, V2, V3)
    lease = _held(s, sha=BAD)
    _draw(s, lease)
    fee = s.work_cost(s.leases[lease]).scale(s.preset.verification.check_fee_rate)
    first = _assign(s, lease)
    spot = _verdict(s, first, GOOD)
    assert spot["agrees"] is False and spot["decided"] is False and spot["checks_needed"] == 3
    assert s.leases[lease].status == "held"
    second, third = _assign(s, lease, at=T0 + 7_000), _assign(s, lease, at=T0 + 7_000)
    assert {s.checks[c].verifier for c in (first, second, third)} == {V1, V2, V3}
    escrow_before = s.ledger.balance(LedgerAccount.lease_escrow(lease), "USDC")
    _verdict(s, second, GOOD, at=T0 + 8_000)
    # two of three disagree with the provider: decided without the third
    assert s.leases[lease].status == "rejected" and s.checks[third].status == "cancelled"
    order = s.orders[s.leases[lease].order_id]
    assert order.free_shards == [0] and order.status == "open"
    assert s.ledger.balance(LedgerAccount.order_escrow(order.id), "USDC") == escrow_before - fee * 2
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == Money.zero("USDC")
    slashed = _usdc("4").scale(s.preset.verification.slash_rate)
    assert s.stake_of(P1) == _usdc("4") - slashed
    prover = s.checks[first].verifier
    reward = slashed.scale(s.preset.verification.slash_reward_rate)
    assert s.ledger.balance(LedgerAccount.earnings(prover), "USDC") == fee + reward
    # the re-run does not go back to the cheat
    rerun = _market(s, T0 + 9_000, type="match", order_id=order.id, seed=1)["leases"]
    assert [s.leases[x].provider for x in rerun] == [P2]
    assert "proven wrong" in order.reasons[P1]
    books_balance(s)


def test_a_verifier_in_the_minority_is_slashed_and_the_provider_paid() -> None:
    s = make_state()
    _verifiers(s, V1, V2, V3)
    lease = _held(s, sha=GOOD)
    _draw(s, lease)
    first = _assign(s, lease)
    liar = s.checks[first].verifier
    _verdict(s, first, BAD)
    second, third = _assign(s, lease), _assign(s, lease)
    _verdict(s, second, GOOD)
    result = _verdict(s, third, GOOD)
    assert result["provider_right"] is True
    assert [x["account"] for x in result["slashed"]] == [liar]
    assert s.leases[lease].status == "settled"
    assert s.stake_of(liar) == _usdc("2") - _usdc("2").scale(s.preset.verification.slash_rate)
    assert s.ledger.balance(LedgerAccount.earnings(liar), "USDC") == Money.zero("USDC")
    assert s.stake_of(P1) == _usdc("4")
    books_balance(s)


def test_who_may_check_a_lease() -> None:
    s = make_state("aethir")  # verifier_stake is set there; operators recorded by attribute
    lease_spec: dict[str, Any] = {**SPEC, "max_price_per_hour": "1 USDC"}
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    _send(
        s,
        P1,
        T0,
        type="provider.register",
        inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
        score=100,
        attributes={"operator": "acme"},
    )
    _send(s, V1, T0, type="verifier.register", operator="acme")  # the provider's operator
    _send(s, V2, T0, type="verifier.register")  # not staked
    _send(s, V3, T0, type="verifier.register")
    _send(s, ALICE, T0, type="verifier.register")  # the client itself
    for v in (V1, V3, ALICE):
        _send(s, v, T0, type="faucet", amount="50 USDC")
        _send(s, v, T0, type="stake", amount="20 USDC")
    order = _send(s, ALICE, T0, type="order.create", **order_fields(lease_spec))["order_id"]
    (lease,) = _market(s, T0, type="match", order_id=order, seed=1)["leases"]
    assert eligible_verifiers(s, s.leases[lease]) == [V3]


# -- hostile verifiers and forged market decisions -----------------------------------------


def _refused(s: MarketState, signer: str, at: int, code: str, status: int, **body: Any) -> None:
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        _send(s, signer, at, **body)
    assert (err.value.code, err.value.status) == (code, status)
    assert snapshot(s) == before
    books_balance(s)


def test_forged_draws_and_assignments_are_refused() -> None:
    s = make_state()
    _verifiers(s, V1)
    lease = _held(s)
    forged = MARKET.sign(draw_message(lease, "0" * 64)).hex()
    m = MARKET.account_id
    _refused(s, m, T0 + 4_000, "bad_draw", 401, type="check.draw", lease_id=lease, draw=forged)
    _refused(s, m, T0 + 4_000, "bad_draw", 401, type="check.draw", lease_id=lease, draw="zz")
    _refused(s, P1, T0 + 4_000, "wrong_signer", 403, type="check.draw", lease_id=lease, draw="")
    _refused(s, V1, T0 + 4_000, "wrong_signer", 403, type="check.assign", lease_id=lease, seed=0)
    _refused(s, m, T0 + 4_000, "no_check_needed", 409, type="check.assign", lease_id=lease, seed=0)
    _draw(s, lease)
    _refused(s, m, T0 + 4_000, "already_drawn", 409, type="check.draw", lease_id=lease, draw="")
    _refused(s, m, T0 + 4_000, "invalid_tx", 400, type="check.assign", lease_id=lease, seed=-1)


def test_hostile_verdicts_are_refused_and_move_nothing() -> None:
    s = make_state()
    _verifiers(s, V1, V2)
    lease = _held(s)
    _draw(s, lease)
    check = _assign(s, lease, seed=0)
    assert s.checks[check].verifier == V1
    good = _outputs(GOOD)
    at = T0 + 6_000
    # a verdict for a check it was not assigned
    _refused(s, V2, at, "wrong_signer", 403, type="check.verdict", check_id=check, **good)
    _refused(s, P1, at, "wrong_signer", 403, type="check.verdict", check_id=check, **good)
    _refused(s, V1, at, "not_found", 404, type="check.verdict", check_id="nope", **good)
    bad_root = {**good, "root": "00" * 32}
    _refused(s, V1, at, "bad_root", 422, type="check.verdict", check_id=check, **bad_root)
    # a tolerance answer on a job compared exactly
    tolerant = {**good, "matches": True}
    _refused(s, V1, at, "invalid_verdict", 400, type="check.verdict", check_id=check, **tolerant)
    late = s.checks[check].deadline + 1
    _refused(s, V1, late, "late_verdict", 409, type="check.verdict", check_id=check, **good)
    _verdict(s, check, GOOD, at=at)
    _refused(s, V1, at, "check_over", 409, type="check.verdict", check_id=check, **good)


def test_a_silent_verifier_loses_its_check_and_gets_no_more() -> None:
    s = make_state()
    _verifiers(s, V1, V2)
    lease = _held(s)
    _draw(s, lease)
    check = _assign(s, lease, seed=0)
    deadline = s.checks[check].deadline
    m = MARKET.account_id
    _refused(s, m, deadline - 1, "too_early", 409, type="check.expire", check_id=check)
    assert verification_due(s, deadline) == ([], [], [check])
    _market(s, deadline, type="check.expire", check_id=check)
    assert s.checks[check].status == "expired" and not s.verifiers[V1].available
    assert verification_due(s, deadline) == ([], [(lease, None)], [])
    again = _assign(s, lease, at=deadline)
    assert s.checks[again].verifier == V2
    _refused(
        s, V1, deadline, "check_over", 409, type="check.verdict", check_id=check, **_outputs(GOOD)
    )


def test_a_tolerance_on_a_file_that_is_not_numbers_is_refused_at_order_time() -> None:
    s = make_state()
    _send(s, ALICE, T0, type="faucet", amount="10 USDC")
    spec = {
        **SPEC,
        "verification": "replicate:1",
        "outputs": ["frame.png"],
        "compare": {"frame.png": "numeric:rtol=1e-5"},
    }
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        _send(s, ALICE, T0, type="order.create", **order_fields(spec))
    assert 400 <= err.value.status < 500 and "frame.png" in err.value.message
    assert "numeric tolerance" in err.value.message
    assert snapshot(s) == before
