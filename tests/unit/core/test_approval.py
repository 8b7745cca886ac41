"""``verification: approve``: the client approves or rejects each shard's held result
(core/verify/approve.py, core/approval_handlers.py), driven transaction by transaction."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from state_snapshot import books_balance, snapshot
from test_state import ALICE, MARKET, P1, P2, P3, SPEC, T0, heartbeat, make_state, register
from test_state_atomic import tx

from pasar.core.accounts import LedgerAccount
from pasar.core.approval_handlers import overdue_approvals
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.presets import Verification, builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.reputation import Event
from pasar.core.spec import JobSpec
from pasar.core.state import MARKET_TYPES, MarketState
from pasar.core.verify import build_policy
from pasar.core.verify.approve import ApprovePolicy
from pasar.core.verify.base import Hold, Outcome, ReceiptFacts, Result, Settle, Verdict
from pasar.crypto.merkle import root_of_files

WINDOW_S = 60
BOB = "client-bob"
SHA = "cd" * 32
USDC = "USDC"


def usdc(text: str) -> Money:
    return Money.parse(f"{text} USDC")


def _send(s: MarketState, signer: str, at: int, **body: Any) -> dict[str, Any]:
    return s.apply(tx(signer, at, **body)).result


def _market(s: MarketState, at: int, **body: Any) -> dict[str, Any]:
    return _send(s, MARKET.account_id, at, **body)


def approving_state(max_reruns: int = 3) -> MarketState:
    """The pasar preset with a 60 s approval window (book pricing: cheapest ask wins)."""
    s = make_state()
    rules = dataclasses.replace(
        s.preset.verification, approve_window_s=WINDOW_S, max_reruns=max_reruns
    )
    s.preset = dataclasses.replace(s.preset, verification=rules)
    return s


# -- the policy -----------------------------------------------------------------------------------


def _facts(failed: bool = False) -> ReceiptFacts:
    return ReceiptFacts("o-1-0", "o-1", P1, 0, "root", failed, T0)


def test_the_policy_holds_a_result_until_the_window_and_settles_a_failure() -> None:
    policy = build_policy("approve", Verification(approve_window_s=30, max_reruns=3))
    assert isinstance(policy, ApprovePolicy) and policy.name == "approve"
    assert policy.on_receipt(_facts()) == Hold(
        "waiting for the client's approval", until_ms=T0 + 30_000
    )
    assert policy.on_receipt(_facts(failed=True)) == Settle()
    results = [Result("l1", P1, "r")]
    assert policy.compare(results) == Verdict(pending=True)  # the client's word decides
    assert policy.outcome(Verdict(rejected=("l1",)), results) == Outcome(refund=("l1",))
    assert policy.outcome(Verdict(accepted=("l1",)), results) == Outcome(pay=("l1",))
    assert ApprovePolicy(30, 0).max_rejections == 1


def test_the_escrow_is_the_receipt_policys_a_rejected_run_costs_nothing() -> None:
    spec = JobSpec.from_dict({**SPEC, "shards": 3, "verification": "approve"})
    fees = builtin_preset("render").fee_schedule()
    policy = ApprovePolicy(60, 3)
    assert policy.escrow_per_lease(spec, fees) == fees.escrow_for(spec.max_escrow_per_lease())
    assert policy.leases_needed(spec) == 3


def test_render_runs_jobs_with_client_approval() -> None:
    render = builtin_preset("render")
    assert render.verification.default == "approve"
    policy = render.verification_policy()
    assert isinstance(policy, ApprovePolicy)
    assert policy.window_s == 86_400 and policy.max_rejections == 3


# -- the state ------------------------------------------------------------------------------------


def _receipt(s: MarketState, lease: str, at: int) -> dict[str, Any]:
    outputs = [{"path": "frame.png", "sha256": SHA, "size": 3}]
    return _send(
        s,
        s.leases[lease].provider,
        at,
        type="receipt",
        lease_id=lease,
        exit_code=0,
        outputs=outputs,
        root=root_of_files([("frame.png", SHA)]),
    )


def _held_order(s: MarketState, shards: int = 1) -> tuple[str, list[str]]:
    """An approve order whose every shard ran 10 s (2 verified beats) and is held."""
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")  # the cheapest: takes the first run
    register(s, P2, cpu_ask="0.20")
    register(s, P3, cpu_ask="0.30")
    spec = {**SPEC, "shards": shards, "verification": "approve"}
    order_id = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    leases = _market(s, T0 + 1, type="match", order_id=order_id, seed=1)["leases"]
    for lease in leases:
        heartbeat(s, lease, 0, T0 + 100)
        heartbeat(s, lease, 1, T0 + 5_100)
        result = _receipt(s, lease, T0 + 10_001)
        assert result["until_ms"] == T0 + 10_001 + WINDOW_S * 1000
    return order_id, leases


def test_a_held_result_is_shown_with_its_deadline_and_pays_nobody_yet() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    held = s.leases[lease]
    assert held.status == "held" and held.held_until == T0 + 10_001 + 60_000
    assert s.orders[order_id].status == "running"  # a held result keeps the order going
    assert s.ledger.balance(LedgerAccount.earnings(P1), USDC) == Money.zero(USDC)
    assert s.ledger.balance(LedgerAccount.lease_escrow(lease), USDC) == usdc("1")
    books_balance(s)


def test_approve_pays_the_provider_for_its_verified_time() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    result = _send(s, ALICE, T0 + 20_000, type="result.approve", order_id=order_id, shard=0)
    billed = usdc("0.20").scale(10_000, 3_600_000)  # 2 cores x 0.10, 10 s (2 beats)
    (row,) = result["approved"]
    assert row["lease_id"] == lease and row["billed"] == billed.to_json()
    assert s.leases[lease].status == "settled" and s.orders[order_id].status == "done"
    assert s.ledger.balance(LedgerAccount.client(ALICE), USDC) == usdc("100") - billed
    assert "approved by the client" in (s.orders[order_id].note or "")
    books_balance(s)


def test_approve_without_a_shard_pays_every_held_result() -> None:
    s = approving_state()
    order_id, leases = _held_order(s, shards=3)
    result = _send(s, ALICE, T0 + 20_000, type="result.approve", order_id=order_id)
    assert sorted(r["lease_id"] for r in result["approved"]) == sorted(leases)
    assert {s.leases[x].status for x in leases} == {"settled"}
    assert s.orders[order_id].status == "done"
    books_balance(s)


def test_a_rejected_run_is_not_paid_and_reruns_on_another_provider() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    before = s.providers[P1].reputation
    result = _send(
        s, ALICE, T0 + 20_000, type="result.reject", order_id=order_id, shard=0, reason="black"
    )
    assert result["rejections"] == 1 and result["rerun"] and not result["ended"]
    assert result["refund"] == usdc("1").to_json()  # the whole lease escrow: nothing paid
    assert s.leases[lease].status == "rejected"
    assert s.ledger.balance(LedgerAccount.earnings(P1), USDC) == Money.zero(USDC)
    record = s.orders[order_id]
    assert record.status == "open" and record.free_shards == [0]
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), USDC) == usdc("1")
    assert "rejected (1 of 3): black" in (record.note or "")
    assert s.providers[P1].reputation == before.apply(Event.FAILED, s.preset.reputation)
    # the cheapest provider ran the rejected run: the re-run goes elsewhere, at its own price
    (rerun,) = _market(s, T0 + 21_000, type="match", order_id=order_id, seed=2)["leases"]
    assert s.leases[rerun].provider == P2 and s.leases[rerun].price_per_hour == usdc("0.40")
    assert "was rejected" in record.reasons[P1]
    heartbeat(s, rerun, 0, T0 + 21_100)
    _receipt(s, rerun, T0 + 24_000)
    paid = _send(s, ALICE, T0 + 25_000, type="result.approve", order_id=order_id, shard=0)
    billed = usdc("0.40").scale(2_999, 3_600_000)
    assert paid["approved"][0]["billed"] == billed.to_json()
    assert s.ledger.balance(LedgerAccount.client(ALICE), USDC) == usdc("100") - billed
    assert record.status == "done"
    books_balance(s)


def _reject_and_rerun(s: MarketState, order_id: str, at: int) -> dict[str, Any]:
    result = _send(s, ALICE, at, type="result.reject", order_id=order_id, shard=0, reason="bad")
    if result["rerun"]:
        (lease,) = _market(s, at + 1, type="match", order_id=order_id, seed=at)["leases"]
        heartbeat(s, lease, 0, at + 100)
        _receipt(s, lease, at + 2_000)
    return result


def test_the_third_rejected_run_ends_the_job_and_refunds_the_client() -> None:
    s = approving_state()
    order_id, _ = _held_order(s)
    first = _reject_and_rerun(s, order_id, T0 + 20_000)
    second = _reject_and_rerun(s, order_id, T0 + 30_000)
    assert (first["rejections"], second["rejections"]) == (1, 2)
    record = s.orders[order_id]
    runs = [s.leases[x] for x in record.leases]
    assert [x.provider for x in runs] == [P1, P2, P3]  # never twice on a rejected provider
    third = _send(
        s, ALICE, T0 + 40_000, type="result.reject", order_id=order_id, shard=0, reason="still"
    )
    assert third["rejections"] == 3 and third["ended"] and not third["rerun"]
    assert record.status == "cancelled" and record.free_shards == []
    assert "rejected 3 times" in (record.note or "")
    assert all(x.status == "rejected" for x in runs)
    # no run was paid: the client has everything back, nothing is left in escrow
    assert s.ledger.balance(LedgerAccount.client(ALICE), USDC) == usdc("100")
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), USDC) == Money.zero(USDC)
    for p in (P1, P2, P3):
        assert s.ledger.balance(LedgerAccount.earnings(p), USDC) == Money.zero(USDC)
    books_balance(s)


def test_the_market_approves_once_the_window_has_passed() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    deadline = s.leases[lease].held_until
    assert deadline is not None
    assert overdue_approvals(s, deadline - 1) == []
    assert overdue_approvals(s, deadline) == [lease]
    assert "result.auto_approve" in MARKET_TYPES
    before = snapshot(s)
    with pytest.raises(PasarError) as early:
        _market(s, deadline - 1, type="result.auto_approve", lease_id=lease)
    assert (early.value.status, early.value.code) == (409, "too_early")
    with pytest.raises(PasarError) as forged:
        _send(s, ALICE, deadline, type="result.auto_approve", lease_id=lease)
    assert forged.value.status == 403
    assert snapshot(s) == before
    result = _market(s, deadline, type="result.auto_approve", lease_id=lease)
    assert result["approved"][0]["lease_id"] == lease
    assert s.leases[lease].status == "settled" and s.orders[order_id].status == "done"
    assert overdue_approvals(s, deadline + 1) == []
    books_balance(s)


# -- hostile and bad input: a clear 4xx, nothing moved --------------------------------------------


def _refused(s: MarketState, signer: str, at: int, **body: Any) -> PasarError:
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        _send(s, signer, at, **body)
    assert snapshot(s) == before, "a refused transaction changed the state"
    books_balance(s)
    return err.value


def test_someone_elses_job_is_403() -> None:
    s = approving_state()
    order_id, _ = _held_order(s)
    for body in (
        {"type": "result.approve", "order_id": order_id, "shard": 0},
        {"type": "result.reject", "order_id": order_id, "shard": 0, "reason": "mine now"},
    ):
        err = _refused(s, BOB, T0 + 20_000, **body)
        assert (err.status, err.code) == (403, "wrong_signer")
    err = _refused(s, P1, T0 + 20_000, type="result.approve", order_id=order_id, shard=0)
    assert err.status == 403  # not even the provider that ran it


def test_twice_is_409() -> None:
    s = approving_state()
    order_id, _ = _held_order(s)
    _send(s, ALICE, T0 + 20_000, type="result.approve", order_id=order_id, shard=0)
    err = _refused(s, ALICE, T0 + 20_001, type="result.approve", order_id=order_id, shard=0)
    assert (err.status, err.code, err.field) == (409, "not_held", "shard")
    assert "settled" in err.message
    err = _refused(s, ALICE, T0 + 20_001, type="result.approve", order_id=order_id)
    assert (err.status, err.code) == (409, "not_held")
    err = _refused(
        s, ALICE, T0 + 20_001, type="result.reject", order_id=order_id, shard=0, reason="late"
    )
    assert (err.status, err.code) == (409, "not_held")


def test_after_the_window_is_409() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    late = (s.leases[lease].held_until or 0) + 1
    err = _refused(s, ALICE, late, type="result.approve", order_id=order_id, shard=0)
    assert (err.status, err.code) == (409, "window_closed")
    err = _refused(s, ALICE, late, type="result.approve", order_id=order_id)
    assert (err.status, err.code) == (409, "window_closed")
    err = _refused(
        s, ALICE, late, type="result.reject", order_id=order_id, shard=0, reason="too late"
    )
    assert (err.status, err.code) == (409, "window_closed")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"shard": 7}, 404, "not_found", "shard"),
        ({"shard": -1}, 404, "not_found", "shard"),
        ({"shard": "0"}, 400, "invalid_shard", "shard"),
        ({"shard": True}, 400, "invalid_shard", "shard"),
        ({"shard": 0, "reason": ""}, 400, "invalid_reason", "reason"),
        ({"shard": 0, "reason": "   "}, 400, "invalid_reason", "reason"),
        ({"shard": 0, "reason": 3}, 400, "invalid_reason", "reason"),
        ({"shard": 0, "reason": "x" * 501}, 400, "invalid_reason", "reason"),
        ({"shard": 0}, 400, "invalid_reason", "reason"),
        ({"reason": "no shard"}, 400, "invalid_shard", "shard"),
    ],
)
def test_bad_reject_input_is_400_or_404(
    body: dict[str, Any], status: int, code: str, field: str
) -> None:
    s = approving_state()
    order_id, _ = _held_order(s)
    if "reason" not in body and code != "invalid_reason":
        body = {**body, "reason": "bad"}
    err = _refused(s, ALICE, T0 + 20_000, type="result.reject", order_id=order_id, **body)
    assert (err.status, err.code, err.field) == (status, code, field)


def test_unknown_order_and_a_receipt_verified_order_are_refused() -> None:
    s = approving_state()
    _held_order(s)
    err = _refused(s, ALICE, T0 + 20_000, type="result.approve", order_id="o-nope")
    assert err.status == 404
    receipt_order = _send(s, ALICE, T0 + 20_000, type="order.create", **order_fields(SPEC))[
        "order_id"
    ]
    err = _refused(s, ALICE, T0 + 20_001, type="result.approve", order_id=receipt_order)
    assert (err.status, err.code) == (409, "not_approvable")


def test_a_shard_that_is_still_running_is_409() -> None:
    s = approving_state()
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")
    spec = {**SPEC, "verification": "approve"}
    order_id = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    err = _refused(s, ALICE, T0 + 1, type="result.approve", order_id=order_id, shard=0)
    assert (err.status, err.code) == (409, "not_held") and "not run yet" in err.message
    _market(s, T0 + 2, type="match", order_id=order_id, seed=1)
    err = _refused(s, ALICE, T0 + 3, type="result.approve", order_id=order_id, shard=0)
    assert "running" in err.message


def test_a_failure_receipt_settles_as_with_receipt() -> None:
    s = approving_state()
    _send(s, ALICE, T0, type="faucet", amount="100 USDC")
    register(s, P1, cpu_ask="0.10")
    spec = {**SPEC, "verification": "approve"}
    order_id = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    (lease,) = _market(s, T0 + 1, type="match", order_id=order_id, seed=1)["leases"]
    failure = {"reason": "output_too_large", "fault": "job", "detail": "frame.png"}
    _send(
        s,
        P1,
        T0 + 2_000,
        type="receipt",
        lease_id=lease,
        exit_code=1,
        outputs=[],
        root=root_of_files([]),
        failure=failure,
    )
    assert s.leases[lease].status == "failed" and s.orders[order_id].status == "done"
    books_balance(s)


def test_a_result_rejected_after_a_cancel_is_refunded_not_rerun() -> None:
    s = approving_state()
    order_id, (lease,) = _held_order(s)
    _send(s, ALICE, T0 + 15_000, type="order.cancel", order_id=order_id)
    assert s.leases[lease].status == "held"  # a cancel leaves a held result to be judged
    result = _send(
        s, ALICE, T0 + 20_000, type="result.reject", order_id=order_id, shard=0, reason="late"
    )
    assert not result["rerun"] and not result["ended"]
    record = s.orders[order_id]
    assert record.status == "cancelled" and record.free_shards == []
    assert "not re-run" in (record.note or "")
    assert s.ledger.balance(LedgerAccount.client(ALICE), USDC) == usdc("100")
    books_balance(s)


def test_a_rejected_provider_sits_out_only_while_its_shard_waits() -> None:
    policy = ApprovePolicy(60, 3)
    s = approving_state()
    order_id, leases = _held_order(s, shards=2)
    record = s.orders[order_id]
    _send(s, ALICE, T0 + 20_000, type="result.reject", order_id=order_id, shard=0, reason="x")
    rejected = s.leases[leases[0]]
    runs = [s.leases[x] for x in record.leases]
    assert policy.exclusions(record, runs) == {
        rejected.provider: "its result for shard 0 of this order was rejected"
    }
    (rerun,) = _market(s, T0 + 21_000, type="match", order_id=order_id, seed=5)["leases"]
    assert s.leases[rerun].provider != rejected.provider
    assert policy.exclusions(record, [s.leases[x] for x in record.leases]) == {}


def test_approve_is_refused_on_a_network_without_an_approval_window() -> None:
    s = make_state()  # the pasar preset: approve_window_s = 0, no approval step
    _send(s, ALICE, T0, type="faucet", amount="10 USDC")
    before = snapshot(s)
    with pytest.raises(PasarError) as err:
        _send(
            s, ALICE, T0, type="order.create", **order_fields({**SPEC, "verification": "approve"})
        )
    assert (err.value.status, err.value.code) == (422, "verification_unavailable")
    assert err.value.field == "spec.verification" and "--preset render" in (err.value.hint or "")
    assert snapshot(s) == before
