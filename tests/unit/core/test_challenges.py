"""Whistleblowers: a bonded challenge of a settled result, decided by a 2N+1 majority of
checkers (pure: the state machine driven transaction by transaction)."""

from __future__ import annotations

from typing import Any

import pytest
from state_snapshot import books_balance, snapshot
from test_replicate import BAD, GOOD, V1, V2, V3, V4, _market, _outputs, _send, _usdc, _verifiers
from test_state import ALICE, P1, SPEC, T0, heartbeat, make_state, register

from pasar.core.accounts import LedgerAccount
from pasar.core.check_handlers import verification_due
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState

WINDOW_MS = 3_600_000  # the pasar preset's challenge_window_s


def _settled(s: MarketState, sha: str) -> str:
    """A receipt-verified lease of P1 (staked 4 USDC) settled on its receipt at T0 + 3_600."""
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.50")
    _send(s, P1, T0, type="faucet", amount="10 USDC")
    _send(s, P1, T0, type="stake", amount="4 USDC")
    order = _send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = _market(s, T0, type="match", order_id=order, seed=1)["leases"]
    heartbeat(s, lease, 0, T0 + 100)
    _send(s, P1, T0 + 3_600, type="receipt", lease_id=lease, exit_code=0, **_outputs(sha))
    assert s.leases[lease].status == "settled" and s.leases[lease].settled_at == T0 + 3_600
    return lease


def _challenge(s: MarketState, lease: str, at: int = T0 + 10_000, **extra: Any) -> str:
    body = {"claim": "the output is wrong", "bond": "1 USDC", **extra}
    return str(_send(s, V4, at, type="challenge.open", lease_id=lease, **body)["challenge_id"])


def _checks(s: MarketState, lease: str, challenge: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        assert verification_due(s, T0 + 11_000)[1] == [(lease, challenge)]
        body = {"lease_id": lease, "seed": i, "challenge_id": challenge}
        out.append(str(_market(s, T0 + 11_000, type="check.assign", **body)["check_id"]))
    return out


def _answer(s: MarketState, check: str, sha: str) -> dict[str, Any]:
    verifier = s.checks[check].verifier
    return _send(s, verifier, T0 + 12_000, type="check.verdict", check_id=check, **_outputs(sha))


def test_an_upheld_challenge_slashes_claws_back_rewards_and_returns_the_bond() -> None:
    s = make_state()
    _verifiers(s, V1, V2, V3, V4)
    lease = _settled(s, BAD)
    paid = s.ledger.balance(LedgerAccount.earnings(P1), "USDC")
    alice_before = s.ledger.balance(LedgerAccount.client(ALICE), "USDC")
    v4_before = s.ledger.balance(LedgerAccount.client(V4), "USDC")
    challenge = _challenge(s, lease)
    assert s.ledger.balance(LedgerAccount.bond(challenge), "USDC") == _usdc("1")
    checks = _checks(s, lease, challenge, 3)
    assert V4 not in {s.checks[c].verifier for c in checks}  # never the whistleblower
    _answer(s, checks[0], GOOD)
    result = _answer(s, checks[1], GOOD)
    assert result["decided"] is True and result["challenge"] == "upheld"
    assert s.challenges[challenge].status == "upheld" and s.checks[checks[2]].status == "cancelled"
    rules = s.preset.verification
    fee = s.work_cost(s.leases[lease]).scale(rules.check_fee_rate)
    for c in checks[:2]:  # paid from the cheat's stake
        assert s.ledger.balance(LedgerAccount.earnings(s.checks[c].verifier), "USDC") == fee
    slashed = (_usdc("4") - fee * 2).scale(rules.slash_rate)
    assert s.stake_of(P1) == _usdc("4") - fee * 2 - slashed
    # what it was paid for the lease goes back to the client
    assert s.ledger.balance(LedgerAccount.client(ALICE), "USDC") == alice_before + paid
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == Money.zero("USDC")
    reward = slashed.scale(rules.slash_reward_rate)
    assert s.ledger.balance(LedgerAccount.earnings(V4), "USDC") == reward
    assert s.ledger.balance(LedgerAccount.client(V4), "USDC") == v4_before  # bond back
    assert s.ledger.balance(LedgerAccount.bond(challenge), "USDC") == Money.zero("USDC")
    books_balance(s)


def test_a_rejected_challenge_loses_the_bond_to_the_checkers_and_the_provider() -> None:
    s = make_state()
    _verifiers(s, V1, V2, V3, V4)
    lease = _settled(s, GOOD)
    paid = s.ledger.balance(LedgerAccount.earnings(P1), "USDC")
    v4_before = s.ledger.balance(LedgerAccount.client(V4), "USDC")
    challenge = _challenge(s, lease)
    checks = _checks(s, lease, challenge, 3)
    liar = s.checks[checks[0]].verifier
    _answer(s, checks[0], BAD)
    _answer(s, checks[1], GOOD)
    result = _answer(s, checks[2], GOOD)
    assert result["challenge"] == "rejected"
    assert [x["account"] for x in result["slashed"]] == [liar]
    fee = s.work_cost(s.leases[lease]).scale(s.preset.verification.check_fee_rate)
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == paid + _usdc("1") - fee * 2 + (
        _usdc("2").scale(s.preset.verification.slash_rate)
    ).scale(s.preset.verification.slash_reward_rate)
    assert s.ledger.balance(LedgerAccount.client(V4), "USDC") == v4_before - _usdc("1")
    assert s.stake_of(P1) == _usdc("4")
    books_balance(s)


def _refused(s: MarketState, signer: str, at: int, code: str, status: int, **body: Any) -> None:
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        _send(s, signer, at, **body)
    assert (err.value.code, err.value.status) == (code, status), err.value.to_dict()
    assert snapshot(s) == before
    books_balance(s)


def test_bad_challenges_are_refused_and_move_nothing() -> None:
    s = make_state()
    _verifiers(s, V4)
    lease = _settled(s, GOOD)
    ok = {"type": "challenge.open", "lease_id": lease, "claim": "wrong", "bond": "1 USDC"}
    at = T0 + 10_000
    no_bond = {k: v for k, v in ok.items() if k != "bond"}
    _refused(s, V4, at, "missing_bond", 400, **no_bond)
    _refused(s, V4, at, "bond_too_small", 409, **{**ok, "bond": "0.5 USDC"})
    _refused(s, V4, at, "invalid_claim", 400, **{**ok, "claim": "  "})
    late = s.leases[lease].settled_at + WINDOW_MS + 1  # type: ignore[operator]
    _refused(s, V4, late, "window_closed", 409, **ok)
    _refused(s, P1, at, "not_a_verifier", 403, **ok)  # not a verifier at all
    _send(s, P1, at, type="verifier.register")
    _refused(s, P1, at, "wrong_signer", 403, **ok)  # the provider itself
    _refused(s, V4, at, "not_found", 404, **{**ok, "lease_id": "nope"})
    _refused(s, V4, at, "overdraft", 402, **{**ok, "bond": "1000 USDC"})  # cannot pay it
    _send(s, V4, at, **ok)
    _refused(s, V4, at, "already_challenged", 409, **ok)


def test_a_network_without_a_challenge_window_refuses_challenges() -> None:
    s = make_state("ionet")
    _send(s, V4, T0, type="verifier.register")
    body = {"lease_id": "x", "claim": "wrong", "bond": "1 USDC"}
    _refused(s, V4, T0, "challenges_off", 409, type="challenge.open", **body)


def test_a_challenge_of_a_running_lease_is_refused() -> None:
    s = make_state()
    _verifiers(s, V4)
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.50")
    order = _send(s, ALICE, T0, type="order.create", **order_fields(SPEC))["order_id"]
    (lease,) = _market(s, T0, type="match", order_id=order, seed=1)["leases"]
    body = {"lease_id": lease, "claim": "wrong", "bond": "1 USDC"}
    _refused(s, V4, T0 + 10, "not_settled", 409, type="challenge.open", **body)
