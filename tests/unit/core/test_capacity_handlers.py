"""The capacity-proof transactions in the state machine: who may send what, when; a failing
provider is excluded (with the reason ``explain`` shows) until it passes; bad input is a clear
4xx and changes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from state_snapshot import snapshot
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, conserved, make_state
from test_state import tx as _tx

from pasar.core.capacity import plan
from pasar.core.errors import PasarError
from pasar.core.market_records import Tx
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState

SHA = "cd" * 32
M = MARKET.account_id


def tx(signer: str, at: int, **body: Any) -> Tx:
    """test_state's transaction with a digest unique in its first 16 digits (challenge ids)."""
    t = _tx(signer, at, **body)
    return dataclasses.replace(t, digest=hashlib.sha256(t.nonce.encode()).hexdigest())


def send(state: MarketState, signer: str, at: int, **body: Any) -> dict[str, Any]:
    return state.apply(tx(signer, at, **body)).result


def market(state: MarketState, at: int, **body: Any) -> dict[str, Any]:
    return send(state, M, at, **body)


def registered(score: int = 100) -> MarketState:
    s = make_state()
    for p in (P1, P2):
        send(
            s,
            p,
            T0,
            type="provider.register",
            inventory={"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100},
            asks={"cpu_core": "0.50"},
            score=score,
        )
    send(s, ALICE, T0, type="faucet", amount="10 USDC")
    return s


def challenge(s: MarketState, provider: str = P1, at: int = T0 + 1_000) -> dict[str, Any]:
    return market(s, at, type="capacity.challenge", provider=provider, seed=42)


def refused(s: MarketState, signer: str, at: int, code: str, **body: Any) -> PasarError:
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        s.apply(tx(signer, at, **body))
    assert err.value.code == code, err.value.to_dict()
    assert snapshot(s) == before, "a refused transaction changed the state"
    return err.value


def test_the_challenge_is_sized_from_the_registered_score() -> None:
    s = registered(score=100)
    c = challenge(s)
    sized = plan(100)
    assert (c["n"], c["steps"]) == (sized.n, sized.steps)
    assert c["deadline"] == T0 + 1_000 + sized.deadline_ms
    assert s.providers[P1].capacity.open == c["challenge_id"]


def test_an_answer_then_a_pass() -> None:
    s = registered()
    c = challenge(s)
    send(s, P1, T0 + 2_000, type="capacity.answer", challenge_id=c["challenge_id"], sha256=SHA)
    out = market(s, T0 + 2_500, type="capacity.verdict", challenge_id=c["challenge_id"],
                 result="passed")  # fmt: skip
    assert out["capacity"] == "passed"
    status = s.providers[P1].capacity
    assert (status.state, status.open, status.misses) == ("passed", None, 0)


@pytest.mark.parametrize(
    ("signer", "body", "code"),
    [
        (P1, {"type": "capacity.challenge", "provider": P1, "seed": 1}, "wrong_signer"),
        (P1, {"type": "capacity.verdict", "challenge_id": "x", "result": "passed"}, "wrong_signer"),
        (M, {"type": "capacity.challenge", "provider": "nobody", "seed": 1}, "not_found"),
        (M, {"type": "capacity.challenge", "provider": P1, "seed": -1}, "invalid_tx"),
        (M, {"type": "capacity.challenge", "provider": P1, "seed": True}, "invalid_tx"),
        (M, {"type": "capacity.challenge", "provider": P1, "seed": 1, "n": 9}, "unknown_field"),
        (P1, {"type": "capacity.answer", "challenge_id": "cap-none", "sha256": SHA}, "not_found"),
        (P1, {"type": "capacity.answer", "challenge_id": 5, "sha256": SHA}, "invalid_tx"),
        (M, {"type": "capacity.verdict", "challenge_id": "cap-0", "result": "late"}, "not_found"),
    ],
)
def test_bad_transactions_are_refused_and_change_nothing(
    signer: str, body: dict[str, Any], code: str
) -> None:
    s = registered()
    challenge(s, P2)
    refused(s, signer, T0 + 2_000, code, **body)


def test_answers_that_are_not_allowed() -> None:
    s = registered()
    cid = challenge(s)["challenge_id"]
    deadline = s.capacity_challenges[cid].deadline
    answer = {"type": "capacity.answer", "challenge_id": cid}
    err = refused(s, P2, T0 + 2_000, "forbidden", **answer, sha256=SHA)  # someone else's
    assert err.status == 403
    err = refused(s, P1, T0 + 2_000, "invalid_tx", **answer, sha256="../etc/passwd")
    assert err.field == "sha256"
    err = refused(s, P1, deadline + 1, "challenge_late", **answer, sha256=SHA)
    assert err.status == 409
    send(s, P1, deadline, **answer, sha256=SHA)  # at the deadline is in time
    err = refused(s, P1, deadline, "already_answered", **answer, sha256="ef" * 32)
    assert err.status == 409


def test_verdicts_that_are_not_allowed() -> None:
    s = registered()
    cid = challenge(s)["challenge_id"]
    deadline = s.capacity_challenges[cid].deadline
    verdict = {"type": "capacity.verdict", "challenge_id": cid}
    refused(s, M, deadline, "conflict", **verdict, result="late")  # not yet late
    refused(s, M, T0 + 2_000, "conflict", **verdict, result="passed")  # nothing to pass
    refused(s, M, T0 + 2_000, "invalid_tx", **verdict, result="maybe")
    refused(s, M, T0 + 2_000, "invalid_tx", **verdict, result="failed", reason="x" * 501)
    refused(s, M, T0 + 2_000, "conflict", type="capacity.challenge", provider=P1, seed=2)
    market(s, deadline + 1, **verdict, result="late")
    refused(s, M, deadline + 2, "conflict", **verdict, result="late")  # twice


def _miss(s: MarketState, at: int, provider: str = P1) -> str:
    cid = challenge(s, provider, at)["challenge_id"]
    late = s.capacity_challenges[cid].deadline + 1
    out = market(s, late, type="capacity.verdict", challenge_id=cid, result="late")
    return str(out["capacity"])


def test_two_misses_exclude_until_a_pass_and_explain_says_why() -> None:
    s = registered()
    assert _miss(s, T0 + 1_000) == "unchecked"  # one miss: retried, still takes work
    order = send(s, ALICE, T0 + 100_000, type="order.create", **order_fields(SPEC))["order_id"]
    status = _miss(s, T0 + 200_000)
    assert status.startswith("failing: no answer") or status == "failing: late"
    record = s.orders[order]
    view, why = s.eligible_view(s.providers[P1], record, frozenset(), {})
    assert view is None and "failed its capacity proof" in why and "until it passes" in why
    _, reasons = s.candidates(record)
    assert "capacity proof" in reasons[P1]
    assert P2 not in reasons or "capacity" not in reasons[P2]
    # a later challenge that passes lifts the exclusion
    cid = challenge(s, P1, T0 + 400_000)["challenge_id"]
    send(s, P1, T0 + 401_000, type="capacity.answer", challenge_id=cid, sha256=SHA)
    market(s, T0 + 402_000, type="capacity.verdict", challenge_id=cid, result="passed")
    view, why = s.eligible_view(s.providers[P1], record, frozenset(), {})
    assert view is not None and why == ""
    conserved(s)


def test_a_failed_check_counts_as_a_miss() -> None:
    s = registered()
    for at in (T0 + 1_000, T0 + 100_000):
        cid = challenge(s, P1, at)["challenge_id"]
        send(s, P1, at + 1_000, type="capacity.answer", challenge_id=cid, sha256=SHA)
        out = market(s, at + 2_000, type="capacity.verdict", challenge_id=cid, result="failed",
                     reason="the product is wrong")  # fmt: skip
    assert out["capacity"] == "failing: the product is wrong"


def test_reregistering_keeps_the_verdict_unless_the_claim_changes() -> None:
    s = registered()
    _miss(s, T0 + 1_000)
    _miss(s, T0 + 100_000)
    inventory = {"gpus": [], "cpus": 8, "memory_gb": 32, "disk_gb": 100}
    same = {"type": "provider.register", "inventory": inventory, "asks": {"cpu_core": "0.50"}}
    send(s, P1, T0 + 200_000, **same, score=100, available=False)  # draining: same claim
    assert s.providers[P1].capacity.state == "failing"
    assert s.providers[P1].capacity.last_challenge_at is not None
    send(s, P1, T0 + 300_000, **same, score=25)  # an honest score now: challenged at once
    status = s.providers[P1].capacity
    assert status.state == "failing" and status.last_challenge_at is None
    # a verdict on the challenge of the old claim no longer decides anything
    cid = challenge(s, P2, T0 + 300_500)["challenge_id"]
    send(s, P2, T0 + 300_600, **same, score=50)  # P2 changes its claim with a challenge open
    late = s.capacity_challenges[cid].deadline + 1
    out = market(s, late, type="capacity.verdict", challenge_id=cid, result="late")
    assert out["capacity"] == "stale" and s.providers[P2].capacity.misses == 0


def test_a_provider_without_a_score_has_nothing_to_prove() -> None:
    s = registered(score=0)
    refused(s, M, T0 + 1, "invalid_tx", type="capacity.challenge", provider=P1, seed=1)
