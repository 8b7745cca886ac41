"""The verification seam: policies answer, the state carries out (core/verify).

``receipt`` is the first policy and must change nothing; a test-only policy that *holds* a
receipt, excludes a provider and slashes shows the seam carries the next policies without new
branches in the state machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from state_snapshot import books_balance, snapshot
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, heartbeat, make_state, register
from test_state_atomic import tx

from pasar.core.accounts import LedgerAccount
from pasar.core.errors import PasarError
from pasar.core.lease_handlers import carry_out
from pasar.core.market_records import LeaseRecord, OrderRecord
from pasar.core.money import Money
from pasar.core.presets import Verification, builtin_preset
from pasar.core.private_part import order_fields
from pasar.core.spec import JobSpec
from pasar.core.state import MarketState
from pasar.core.verify import BUILDERS, NOT_YET, build_policy, policy_names
from pasar.core.verify.base import (
    Hold,
    Outcome,
    ReceiptDecision,
    ReceiptFacts,
    Result,
    Settle,
    SlashOrder,
    Verdict,
)
from pasar.core.verify.receipt import ReceiptPolicy
from pasar.crypto.merkle import root_of_files

VERIFIER = "verifier-1"


def _spec(**extra: Any) -> JobSpec:
    return JobSpec.from_dict({**SPEC, **extra})


def _send(s: MarketState, signer: str, at: int, **body: Any) -> dict[str, Any]:
    return s.apply(tx(signer, at, **body)).result


def test_receipt_policy_settles_at_once_on_one_lease_per_shard() -> None:
    policy = build_policy("receipt", Verification())
    spec = _spec(shards=3)
    fees = builtin_preset("ionet").fee_schedule()
    assert policy.name == "receipt"
    assert policy.escrow_per_lease(spec, fees) == fees.escrow_for(spec.max_escrow_per_lease())
    assert policy.leases_needed(spec) == 3
    facts = ReceiptFacts("l", "o", P1, 0, "root", failed=False, at=T0)
    assert policy.on_receipt(facts) == Settle()
    results = [Result("l1", P1, "r"), Result("l2", P2, "other")]
    verdict = policy.compare(results)
    assert verdict == Verdict(accepted=("l1", "l2"))
    assert policy.outcome(verdict, results) == Outcome(pay=("l1", "l2"))


@pytest.mark.parametrize("preset", ["pasar", "akash", "ionet", "render"])
def test_order_escrow_is_what_order_create_escrows(preset: str) -> None:
    s = make_state(preset)
    spec = {**SPEC, "shards": 3, "max_price_per_hour": f"1 {s.preset.currency}"}
    per_lease, total = s.order_escrow(JobSpec.from_dict(spec))
    fees = s.preset.fee_schedule()
    assert per_lease == fees.escrow_for(JobSpec.from_dict(spec).max_escrow_per_lease())
    assert total == per_lease * 3
    _send(s, ALICE, T0, type="faucet", amount=f"100 {s.preset.currency}")
    result = _send(s, ALICE, T0, type="order.create", **order_fields(spec))
    assert result["escrow"] == total.to_json()
    escrowed = LedgerAccount.order_escrow(result["order_id"])
    assert s.ledger.balance(escrowed, s.preset.currency) == total
    books_balance(s)


@pytest.mark.parametrize("preset", ["phala"])
def test_a_default_tee_policy_without_attested_providers_is_refused_not_ignored(
    preset: str,
) -> None:
    s = make_state(preset)
    with pytest.raises(PasarError) as err:
        s.order_escrow(_spec(max_price_per_hour=f"1 {s.preset.currency}"))
    assert err.value.code == "tee_unavailable" and err.value.status == 422
    assert err.value.field == "spec.verification"
    assert "no provider on this market has a valid TEE attestation" in err.value.message
    assert err.value.hint is not None and "verification: receipt" in err.value.hint


def test_a_policy_not_built_yet_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(BUILDERS, "pol")  # a kind the spec knows and the registry lacks
    monkeypatch.setitem(NOT_YET, "pol", ": proof-of-learning is not built yet")
    s = make_state("phala")
    with pytest.raises(PasarError) as err:
        s.order_escrow(_spec(max_price_per_hour="1 USDC", verification="pol"))
    assert err.value.code == "verification_unavailable" and err.value.status == 422
    assert err.value.field == "spec.verification"
    assert "proof-of-learning" in err.value.message


# -- a test-only policy: what the next policies will look like -----------------------------------


@dataclass(frozen=True)
class Checked(ReceiptPolicy):
    """Holds every result for a check and keeps P1 off the order (as a replica would)."""

    name: str = "replicate"

    def exclusions(self, order: OrderRecord, leases: Sequence[LeaseRecord]) -> Mapping[str, str]:
        return {P1: "ran the shard this lease re-runs"}

    def on_receipt(self, receipt: ReceiptFacts) -> ReceiptDecision:
        return Hold("re-run on a verifier", until_ms=receipt.at + 60_000)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILDERS, "replicate", lambda _arg, _rules: Checked())


def test_the_accepted_policies_come_from_the_registry(
    checked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert policy_names() == ("receipt", "approve", "replicate", "tee", "pol")
    monkeypatch.delitem(BUILDERS, "pol")
    s = make_state()
    _send(s, ALICE, T0, type="faucet", amount="10 USDC")
    _send(
        s, ALICE, T0, type="order.create", **order_fields({**SPEC, "verification": "replicate:0.1"})
    )
    with pytest.raises(PasarError) as err:
        _send(s, ALICE, T0, type="order.create", **order_fields({**SPEC, "verification": "pol"}))
    assert err.value.code == "verification_unavailable"
    assert err.value.hint == "use verification: receipt or approve or replicate:RATE or tee"


def _held_lease(s: MarketState) -> tuple[str, str]:
    _send(s, ALICE, T0, type="faucet", amount="10 USDC")
    register(s, P1, cpu_ask="0.10")  # the cheapest, but excluded by the policy
    register(s, P2, cpu_ask="0.50")  # 1 USDC/h
    spec = {**SPEC, "verification": "replicate:0.5"}
    order_id = _send(s, ALICE, T0, type="order.create", **order_fields(spec))["order_id"]
    assert s.orders[order_id].verification == "replicate:0.5"
    (lease,) = _send(s, MARKET.account_id, T0, type="match", order_id=order_id, seed=1)["leases"]
    assert s.leases[lease].provider == P2
    assert s.orders[order_id].reasons[P1] == "ran the shard this lease re-runs"
    heartbeat(s, lease, 0, T0 + 100)
    result = _send(
        s,
        P2,
        T0 + 3_600,
        type="receipt",
        lease_id=lease,
        exit_code=0,
        outputs=[],
        root=root_of_files([]),
    )
    assert result == {"lease_id": lease, "held": "re-run on a verifier", "until_ms": T0 + 63_600}
    return order_id, lease


def test_a_held_receipt_keeps_the_escrow_until_the_outcome_pays(checked: None) -> None:
    s = make_state()
    order_id, lease = _held_lease(s)
    record, held = s.orders[order_id], s.leases[lease]
    assert held.status == "held" and held.ended_at == T0 + 3_600 and held.receipt is not None
    assert lease not in s.providers[P2].running  # the job is over: its capacity is free
    assert record.status == "running" and "held for checking" in (record.note or "")
    assert s.ledger.balance(LedgerAccount.lease_escrow(lease), "USDC") == Money.parse("1 USDC")
    assert s.ledger.balance(LedgerAccount.earnings(P2), "USDC") == Money.zero("USDC")
    before = s.providers[P2].reputation.score
    with s.ledger.atomic():
        charges = carry_out(s, Outcome(pay=(lease,)))
    billed = Money.parse("1 USDC").scale(3_600, 3_600_000)  # up to the receipt, not the verdict
    assert charges[lease].billed == billed and held.billed_ms == 3_600
    assert held.status == "settled" and record.status == "done"
    assert s.providers[P2].reputation.score >= before
    books_balance(s)


def test_a_rejected_result_is_refunded_requeued_and_its_provider_slashed(checked: None) -> None:
    s = make_state()
    order_id, lease = _held_lease(s)
    _send(s, P2, T0 + 4_000, type="faucet", amount="10 USDC")
    _send(s, P2, T0 + 4_000, type="stake", amount="4 USDC")
    outcome = Outcome(
        refund=(lease,), slash=(SlashOrder(P2, Money.parse("2 USDC"), reward_to=VERIFIER),)
    )
    with s.ledger.atomic():
        carry_out(s, outcome)
    assert s.leases[lease].status == "rejected"
    assert s.ledger.balance(LedgerAccount.earnings(P2), "USDC") == Money.zero("USDC")
    assert s.orders[order_id].free_shards == [0] and s.orders[order_id].status == "open"
    assert s.ledger.balance(LedgerAccount.order_escrow(order_id), "USDC") == Money.parse("1 USDC")
    assert s.stake_of(P2) == Money.parse("2 USDC")
    rate = s.preset.verification.slash_reward_rate  # 1/2 on pasar
    reward = Money.parse("2 USDC").scale(rate)
    assert s.ledger.balance(LedgerAccount.earnings(VERIFIER), "USDC") == reward
    assert s.ledger.burned("USDC") == Money.parse("2 USDC") - reward
    books_balance(s)


def test_an_outcome_for_a_lease_not_held_is_refused(checked: None) -> None:
    s = make_state()
    _, lease = _held_lease(s)
    with s.ledger.atomic():
        carry_out(s, Outcome(pay=(lease,)))
    before = snapshot(s)
    with pytest.raises(PasarError) as err, s.ledger.atomic():
        carry_out(s, Outcome(pay=(lease,)))
    assert err.value.code == "not_held" and err.value.status == 409
    assert snapshot(s) == before
    books_balance(s)
