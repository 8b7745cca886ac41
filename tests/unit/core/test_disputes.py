"""pol disputes (issue 16): bisection over committed step hashes as transactions — opening
bound to the receipt's step root, rounds answered with Merkle proofs the market checks, a
party that misses a deadline loses, a referee's ruling settles; the honest side is never
slashed (a cheating prover and a lying verifier both tested) and money is conserved."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

import pytest
from state_snapshot import books_balance
from test_pol_policy import _gensyn, _pol_verdict
from test_replicate import V1, V2, V3, _assign, _draw, _market, _refused, _send
from test_state import ALICE, MARKET, P1, P2, SPEC, T0, heartbeat, register, tx

from pasar.core.accounts import LedgerAccount
from pasar.core.disputes import STEP_ROOT, dispute_view
from pasar.core.errors import PasarError
from pasar.core.money import Money
from pasar.core.private_part import order_fields
from pasar.core.state import MarketState
from pasar.crypto.merkle import MerkleTree, root_of_files, root_of_hashes

STEPS, START, END, BAD_FROM = 20, 10, 20, 15


def h(tag: str, step: int) -> str:
    return hashlib.sha256(f"{tag}-{step}".encode()).hexdigest()


PROVER_HASHES = [h("run", i) for i in range(STEPS + 1)]
# the verifier's replay of 10..20: agrees up to 14, parts from the prover at step 15
VERIFIER_HASHES = [h("run", i) if i < BAD_FROM else h("replay", i) for i in range(START, END + 1)]
PROVER_TREE = MerkleTree.from_hashes(PROVER_HASHES)
VERIFIER_TREE = MerkleTree.from_hashes(VERIFIER_HASHES)
PROVER_ROOT = root_of_hashes(PROVER_HASHES)
VERIFIER_ROOT = root_of_hashes(VERIFIER_HASHES)


def _receipt_outputs() -> dict[str, Any]:
    root_sha = hashlib.sha256(bytes.fromhex(PROVER_ROOT)).hexdigest()
    files = [("out/model.pt", h("model", 0)), (f"out/{STEP_ROOT}", root_sha)]
    return {
        "outputs": [{"path": p, "sha256": s, "size": 32} for p, s in files],
        "root": root_of_files(files),
    }


def _held_and_mismatched(s: MarketState) -> tuple[str, str]:
    """A pol lease on P1, drawn, and its check (by a verifier) said mismatch."""
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
    _send(s, P1, T0 + 3_600, type="receipt", lease_id=lease, exit_code=0, **_receipt_outputs())
    _draw(s, lease)
    check = _assign(s, lease)
    assert _pol_verdict(s, check, False)["agrees"] is False
    return str(lease), check


def _open_body(check: str, **over: Any) -> dict[str, Any]:
    body = {
        "type": "dispute.open",
        "check_id": check,
        "start": START,
        "end": END,
        "prover_root": PROVER_ROOT,
        "verifier_root": VERIFIER_ROOT,
        "start_hash": PROVER_HASHES[START],
        "end_hash": VERIFIER_HASHES[-1],
        "prover_end_hash": PROVER_HASHES[END],
        "proofs": {
            "prover_start": PROVER_TREE.proof(START).to_dict(),
            "verifier_start": VERIFIER_TREE.proof(0).to_dict(),
            "prover_end": PROVER_TREE.proof(END).to_dict(),
            "verifier_end": VERIFIER_TREE.proof(END - START).to_dict(),
        },
    }
    return {**body, **over}


AT = T0 + 7_000


def _open(s: MarketState, check: str) -> str:
    verifier = s.checks[check].verifier
    return str(_send(s, verifier, AT, **_open_body(check))["dispute_id"])


def _answer(s: MarketState, dispute: str, role: str, at: int, *, lie: bool = False) -> Any:
    d = s.disputes[dispute]
    step = d.asked
    assert step is not None
    if role == "prover":
        signer, value, proof = d.provider, PROVER_HASHES[step], PROVER_TREE.proof(step)
    else:
        i = step - START
        signer, value, proof = d.verifier, VERIFIER_HASHES[i], VERIFIER_TREE.proof(i)
    if lie:
        value = h("lie", step)
    return _send(s, signer, at, type="dispute.answer", dispute_id=dispute, step=step,
                 hash=value, proof=proof.to_dict())  # fmt: skip


def _bisect(s: MarketState, dispute: str) -> int:
    """Both sides answer every round honestly; returns the rounds played."""
    at, rounds = AT, 0
    while s.disputes[dispute].status == "open":
        at += 1_000
        _answer(s, dispute, "prover", at)
        _answer(s, dispute, "verifier", at)
        rounds += 1
    return rounds


# the step's operators (a synthetic trace; the real one is pasar.train.operators'): the
# perturbing prover dispatched one more, an in-place add after the optimizer, at #27
HONEST_OPS = [[f"aten.op{i}.default", h("op", i)] for i in range(30)]
PINNED = 27
CHEAT_OPS = [*HONEST_OPS[:PINNED], ["aten.add_.Tensor", h("perturb", PINNED)], *HONEST_OPS[PINNED:]]


def _trace(s: MarketState, dispute: str, role: str, at: int, ops: list[list[str]]) -> Any:
    d = s.disputes[dispute]
    signer = {"prover": d.provider, "verifier": d.verifier, "referee": d.referee}[role]
    value = {"prover": PROVER_HASHES[BAD_FROM]}.get(role, VERIFIER_HASHES[BAD_FROM - START])
    assert signer is not None
    return _send(s, signer, at, type="dispute.trace", dispute_id=dispute, step=BAD_FROM,
                 operators=ops, hash=value)  # fmt: skip


def _pinned(s: MarketState, check: str, *, prover: list[list[str]] = CHEAT_OPS,
            verifier: list[list[str]] = HONEST_OPS) -> str:  # fmt: skip
    """Open, bisect to the step, both sides trace it: pinned to its operator."""
    dispute = _open(s, check)
    _bisect(s, dispute)
    _trace(s, dispute, "prover", AT + 30_000, prover)
    _trace(s, dispute, "verifier", AT + 31_000, verifier)
    assert s.disputes[dispute].status == "pinned"
    return dispute


def _rule(s: MarketState, dispute: str, at: int, ops: list[list[str]] = HONEST_OPS) -> Any:
    """The referee traces the step; the market signs the ruling the engine derives from it."""
    from pasar.core.dispute_trace import rulings_due

    _trace(s, dispute, "referee", at, ops)
    bodies = [b for b in rulings_due(s) if b["dispute_id"] == dispute]
    if not bodies:
        return None
    return _market(s, at + 1, type="dispute.rule", **bodies[0])


def _stakes(s: MarketState, *accounts: str) -> dict[str, Money]:
    return {a: s.ledger.slashable(a, "USDC") for a in accounts}


def test_bisection_narrows_to_the_first_step_they_disagree_on_in_log2_rounds() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    assert s.disputes[dispute].asked == 15  # (10 + 20) // 2
    # while it bisects no other checker is assigned, and the lease stays held
    _refused(s, MARKET.account_id, AT + 1, "no_check_needed", 409, type="check.assign",
             lease_id=lease, seed=0)  # fmt: skip
    rounds = _bisect(s, dispute)
    d = s.disputes[dispute]
    assert (d.status, d.step, d.lo, d.hi) == ("narrowed", BAD_FROM, BAD_FROM - 1, BAD_FROM)
    assert rounds <= 4  # ceil(log2(10))
    assert d.rounds[0]["step"] == 15 and d.rounds[0]["agree"] is False
    view = dispute_view(d)
    assert view["step"] == BAD_FROM and view["status"] == "narrowed"
    assert s.leases[lease].status == "held"
    books_balance(s)


def test_once_narrowed_both_trace_the_step_and_it_is_pinned_to_the_leftmost_operator() -> None:
    """The checkers wait through the operator phase too; the referee is a third verifier."""
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _pinned(s, check)
    d = s.disputes[dispute]
    assert d.op == {
        "index": PINNED,
        "prover": {"name": "aten.add_.Tensor", "hash": h("perturb", 27)},
        "verifier": {"name": "aten.op27.default", "hash": h("op", 27)},
    }
    assert d.referee in {V1, V2, V3} - {d.verifier}
    view = dispute_view(d)
    assert (
        view["operators"]["prover"]["count"] == 31 and view["operators"]["verifier"]["count"] == 30
    )
    assert view["operators"]["prover"]["root"] != view["operators"]["verifier"]["root"]
    _refused(s, MARKET.account_id, AT + 32_000, "no_check_needed", 409, type="check.assign",
             lease_id=lease, seed=0)  # fmt: skip
    assert s.leases[lease].status == "held"
    books_balance(s)


def test_a_referee_siding_with_the_verifier_slashes_the_cheating_prover_and_refunds() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    fee = s.work_cost(s.leases[lease]).scale(Fraction(1, 10))
    dispute = _pinned(s, check)
    result = _rule(s, dispute, AT + 60_000)
    assert result["status"] == "prover_lost" and result["loser"] == P1
    # the operator the prover got wrong is named: its extra in-place add, #27
    assert s.disputes[dispute].operator == {"index": PINNED, "name": "aten.add_.Tensor",
                                            "referee": "aten.op27.default"}  # fmt: skip
    assert dispute_view(s.disputes[dispute])["where"] == "step 15, operator aten.add_.Tensor (#27)"
    assert s.leases[lease].status == "rejected"
    assert s.orders[s.leases[lease].order_id].free_shards == [0]  # refunded: it runs again
    slashed = before[P1].scale(Fraction(1, 2))
    assert s.ledger.slashable(P1, "USDC") == before[P1] - slashed
    assert s.ledger.slashable(verifier, "USDC") == before[verifier]  # the honest side: never
    earned = s.ledger.balance(LedgerAccount.earnings(verifier), "USDC")
    assert earned == fee + slashed.scale(Fraction(1, 2))
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == Money.zero("USDC")
    books_balance(s)


def test_a_referee_siding_with_the_prover_slashes_the_lying_verifier_and_checks_again() -> None:
    """A lying verifier: its trace parts from the honest prover's at #12 (a made-up output)."""
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    lie = [*HONEST_OPS[:12], ["aten.op12.default", h("lie", 12)], *HONEST_OPS[13:]]
    dispute = _pinned(s, check, prover=HONEST_OPS, verifier=lie)
    result = _rule(s, dispute, AT + 60_000)
    assert result["status"] == "verifier_lost" and result["loser"] == verifier
    assert s.disputes[dispute].operator == {"index": 12, "name": "aten.op12.default",
                                            "referee": "aten.op12.default"}  # fmt: skip
    assert s.ledger.slashable(P1, "USDC") == before[P1]  # the honest prover: never slashed
    slashed = before[verifier].scale(Fraction(1, 2))
    assert s.ledger.slashable(verifier, "USDC") == before[verifier] - slashed
    assert s.ledger.balance(LedgerAccount.earnings(P1), "USDC") == slashed.scale(Fraction(1, 2))
    assert s.checks[check].status == "overturned"
    # the lying verifier's check no longer counts: another verifier checks, and a match pays
    assert s.leases[lease].status == "held" and s.leases[lease].checks_needed == 1
    again = _assign(s, lease, at=AT + 61_000)
    assert s.checks[again].verifier != verifier
    assert _pol_verdict(s, again, True, at=AT + 62_000)["decided"] is True
    assert s.leases[lease].status == "settled"
    books_balance(s)


def test_a_referee_matching_neither_side_is_refused_and_only_the_market_rules() -> None:
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _refused(s, MARKET.account_id, AT + 500, "not_narrowed", 409, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM, hash=PROVER_HASHES[BAD_FROM])  # fmt: skip
    _bisect(s, dispute)
    # narrowed but not traced yet: no ruling
    _refused(s, MARKET.account_id, AT + 20_000, "not_narrowed", 409, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM, hash=PROVER_HASHES[BAD_FROM])  # fmt: skip
    _trace(s, dispute, "prover", AT + 30_000, CHEAT_OPS)
    _trace(s, dispute, "verifier", AT + 31_000, HONEST_OPS)
    rule = {"type": "dispute.rule", "dispute_id": dispute, "step": BAD_FROM,
            "hash": PROVER_HASHES[BAD_FROM]}  # fmt: skip
    honest = {"index": PINNED, "name": "aten.op27.default", "hash": h("op", 27)}
    m = MARKET.account_id
    _refused(s, m, AT + 60_000, "wrong_operator", 409, **rule)  # pinned: it must name the op
    _refused(s, m, AT + 60_000, "wrong_operator", 409, **rule, operator={**honest, "index": 26})
    _refused(s, m, AT + 60_000, "referee_disagrees", 409, **rule,
             operator={**honest, "hash": h("elsewhere", 27)})  # fmt: skip
    _refused(s, m, AT + 60_000, "invalid_dispute", 400, **rule, operator={"index": PINNED})
    _refused(s, m, AT + 60_000, "wrong_step", 409, **{**rule, "step": BAD_FROM + 1},
             operator=honest)  # fmt: skip
    # only the market signs a ruling: not the verifier, nor the referee itself
    referee = s.disputes[dispute].referee
    assert referee is not None
    for signer in (V1, referee, P1):
        _refused(s, signer, AT + 60_000, "wrong_signer", 403, **rule, operator=honest)
    # a referee whose trace matches neither side at the operator: no ruling is derived
    assert _rule(s, dispute, AT + 61_000, [*HONEST_OPS[:PINNED], ["aten.x", h("x", 0)]]) is None
    assert s.disputes[dispute].status == "pinned"


def test_a_prover_that_misses_a_round_loses_and_the_verifier_is_paid() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _answer(s, dispute, "verifier", AT + 1_000)
    deadline = s.disputes[dispute].deadline
    _refused(s, MARKET.account_id, deadline - 1, "too_early", 409, type="dispute.expire",
             dispute_id=dispute)  # fmt: skip
    _refused(s, P1, deadline + 1, "late_answer", 409, type="dispute.answer", dispute_id=dispute,
             step=15, hash=PROVER_HASHES[15], proof=PROVER_TREE.proof(15).to_dict())  # fmt: skip
    before = s.ledger.slashable(P1, "USDC")
    result = _market(s, deadline, type="dispute.expire", dispute_id=dispute)
    assert result["status"] == "prover_lost"
    assert s.ledger.slashable(P1, "USDC") == before - before.scale(Fraction(1, 2))
    assert s.leases[lease].status == "rejected"
    books_balance(s)


def test_a_verifier_that_misses_a_round_loses_even_if_the_prover_also_did() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    result = _market(s, s.disputes[dispute].deadline, type="dispute.expire", dispute_id=dispute)
    assert result["status"] == "verifier_lost"
    assert s.ledger.slashable(P1, "USDC") == before[P1]
    assert s.ledger.slashable(verifier, "USDC") < before[verifier]
    assert s.leases[lease].status == "held"
    books_balance(s)


def test_an_unrefereed_dispute_leaves_the_decision_to_the_checkers() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _pinned(s, check)
    minted = _stakes(s, P1, s.checks[check].verifier)
    d = s.disputes[dispute]
    result = _market(s, d.deadline, type="dispute.expire", dispute_id=dispute)
    assert result["status"] == "unrefereed" and result["slashed"] == []
    assert _stakes(s, P1, s.checks[check].verifier) == minted
    assert s.leases[lease].checks_needed == 3  # the majority of checkers decides, as before
    second = _assign(s, lease, at=d.deadline + 1)
    assert _pol_verdict(s, second, False, at=d.deadline + 2)["provider_right"] is False
    books_balance(s)


def test_wrong_proofs_and_answers_are_refused_and_change_nothing() -> None:
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    v = s.checks[check].verifier
    tree = _open_body(check)["proofs"]
    # a root that is not the receipt's; a proof of the wrong step; a start they disagree on
    _refused(s, v, AT, "bad_root", 422, **_open_body(check, prover_root=VERIFIER_ROOT))
    _refused(s, v, AT, "bad_proof", 422, **_open_body(
        check, proofs={**tree, "prover_end": PROVER_TREE.proof(END - 1).to_dict()}))  # fmt: skip
    _refused(s, v, AT, "bad_proof", 422, **_open_body(check, start_hash=h("lie", START)))
    _refused(s, v, AT, "nothing_to_dispute", 409, **_open_body(
        check, end_hash=PROVER_HASHES[END], proofs=tree))  # fmt: skip
    _refused(s, v, AT, "invalid_proof", 400, **_open_body(check, proofs={**tree, "prover_end": 3}))
    _refused(s, v, AT, "invalid_dispute", 400, **_open_body(check, start=END, end=START))
    # only the check's verifier opens it
    other = V1 if v != V1 else V2
    _refused(s, other, AT, "wrong_signer", 403, **_open_body(check))
    dispute = _open(s, check)
    _refused(s, v, AT, "already_disputed", 409, **_open_body(check))
    # an answer: a lie (its proof fails), the wrong step, a stranger, twice
    with pytest.raises(Exception) as err:
        _answer(s, dispute, "prover", AT + 1, lie=True)
    assert getattr(err.value, "code", None) == "bad_proof"
    _refused(s, P1, AT + 1, "wrong_step", 409, type="dispute.answer", dispute_id=dispute,
             step=14, hash=PROVER_HASHES[14], proof=PROVER_TREE.proof(14).to_dict())  # fmt: skip
    _refused(s, P2, AT + 1, "wrong_signer", 403, type="dispute.answer", dispute_id=dispute,
             step=15, hash=PROVER_HASHES[15], proof=PROVER_TREE.proof(15).to_dict())  # fmt: skip
    # the verifier cannot answer with the prover's tree (its proof is against its own root)
    _refused(s, v, AT + 1, "bad_proof", 422, type="dispute.answer", dispute_id=dispute,
             step=15, hash=PROVER_HASHES[15], proof=PROVER_TREE.proof(15).to_dict())  # fmt: skip
    _answer(s, dispute, "prover", AT + 2)
    _refused(s, P1, AT + 3, "already_answered", 409, type="dispute.answer", dispute_id=dispute,
             step=15, hash=PROVER_HASHES[15], proof=PROVER_TREE.proof(15).to_dict())  # fmt: skip
    books_balance(s)


def test_a_matching_check_or_a_challenge_check_cannot_be_disputed() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    _refused(s, MARKET.account_id, AT, "wrong_signer", 403, **_open_body(check))
    dispute = _pinned(s, check)
    _rule(s, dispute, AT + 60_000)
    assert s.leases[lease].status == "rejected"
    _refused(s, s.checks[check].verifier, AT + 61_000, "nothing_to_dispute", 409,
             **_open_body(check))  # fmt: skip
    _refused(s, MARKET.account_id, AT + 999_000, "dispute_over", 409, type="dispute.expire",
             dispute_id=dispute)  # fmt: skip


def test_every_dispute_transaction_undoes_all_its_work_when_it_fails_at_the_end() -> None:
    """Like test_state_atomic's scenario, for the dispute types (a pol market is gensyn's)."""
    from state_snapshot import sabotaged, snapshot

    from pasar.core.market_records import Tx

    def checked(s: MarketState, t: Tx) -> Any:
        before = snapshot(s)
        with sabotaged(t.type), pytest.raises(PasarError) as err:
            s.apply(t)
        assert err.value.code == "injected"
        assert snapshot(s) == before, f"a failed {t.type} left changes behind"
        result = s.apply(t).result
        assert snapshot(s) != before
        books_balance(s)
        return result

    for ending in ("rule", "expire"):
        s = _gensyn(V1, V2, V3)
        _lease, check = _held_and_mismatched(s)
        v = s.checks[check].verifier
        dispute = checked(s, tx(v, AT, **_open_body(check)))["dispute_id"]
        at = AT
        while s.disputes[dispute].status == "open":
            at += 1_000
            step = s.disputes[dispute].asked
            assert step is not None
            checked(s, tx(P1, at, type="dispute.answer", dispute_id=dispute, step=step,
                                  hash=PROVER_HASHES[step],
                                  proof=PROVER_TREE.proof(step).to_dict()))  # fmt: skip
            checked(s, tx(v, at, type="dispute.answer", dispute_id=dispute, step=step,
                                  hash=VERIFIER_HASHES[step - START],
                                  proof=VERIFIER_TREE.proof(step - START).to_dict()))  # fmt: skip
        m = MARKET.account_id
        d = s.disputes[dispute]
        for signer, ops, value in ((P1, CHEAT_OPS, PROVER_HASHES[BAD_FROM]),
                                   (v, HONEST_OPS, VERIFIER_HASHES[BAD_FROM - START])):  # fmt: skip
            checked(s, tx(signer, at + 1, type="dispute.trace", dispute_id=dispute,
                          step=BAD_FROM, operators=ops, hash=value))  # fmt: skip
        assert d.referee is not None
        checked(s, tx(d.referee, at + 2, type="dispute.trace", dispute_id=dispute, step=BAD_FROM,
                      operators=HONEST_OPS, hash=VERIFIER_HASHES[BAD_FROM - START]))  # fmt: skip
        if ending == "rule":
            from pasar.core.dispute_trace import rulings_due

            (body,) = rulings_due(s)
            checked(s, tx(m, at + 3, type="dispute.rule", **body))
        else:
            due = s.disputes[dispute].deadline
            checked(s, tx(m, due, type="dispute.expire", dispute_id=dispute))


def test_the_agents_open_and_answer_a_dispute_to_its_end_on_their_own() -> None:
    """pasar.verifier.dispute against the state machine: the verifier's opening is accepted,
    and both parties' answerers — fed each transaction's result as their feeds would give it
    (through the wire model, which keeps only its named fields) — play every round."""
    from pasar.api.base import parse
    from pasar.api.feed import FeedEvent
    from pasar.train.harness import HASHES as HARNESS_HASHES
    from pasar.verifier.dispute import HASHES, DisputeAnswerer, Side, opening

    assert HASHES == HARNESS_HASHES
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    verifier = s.checks[check].verifier
    clock = [AT]
    parties: list[DisputeAnswerer] = []

    class Api:
        def __init__(self, signer: str) -> None:
            self.signer = signer

        def perform(self, call: Any) -> Any:
            clock[0] += 10
            result = _send(s, self.signer, clock[0], **call.body.model_dump(exclude_none=True))
            for party in parties:  # the feed: both parties see every move
                event = parse(FeedEvent, {"seq": 1, "type": call.body.type, **result})
                party.on_event(event.model_dump())
            return parse(FeedEvent, {"seq": 1, "type": call.body.type, **result})

    body, side = opening(check, PROVER_HASHES, START, VERIFIER_HASHES)
    prover = DisputeAnswerer(Api(P1), lambda event: Side(tuple(PROVER_HASHES)))
    mine = DisputeAnswerer(Api(verifier))
    parties += [prover, mine]
    dispute = _send(s, verifier, AT, **body.model_dump(exclude_none=True))["dispute_id"]
    mine.add(dispute, side)
    for party in parties:
        party.on_event({"dispute_id": dispute, "asked_step": 15, "status": "open"})
    d = s.disputes[dispute]
    assert (d.status, d.step) == ("narrowed", BAD_FROM)
    assert len(d.rounds) == 4
    books_balance(s)


def test_checkers_that_answered_while_it_ran_decide_when_it_ends_unrefereed() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    second = _assign(s, lease, at=AT - 500)  # assigned before the dispute opened
    dispute = _open(s, check)
    waiting = _pol_verdict(s, second, False, at=AT + 100)
    assert waiting["decided"] is False and waiting["disputed"] is True
    _bisect(s, dispute)
    _trace(s, dispute, "prover", AT + 30_000, CHEAT_OPS)
    _trace(s, dispute, "verifier", AT + 31_000, HONEST_OPS)
    assert s.leases[lease].status == "held"  # the referee comes first
    _market(s, s.disputes[dispute].deadline, type="dispute.expire", dispute_id=dispute)
    assert s.leases[lease].status == "rejected"  # decided as the dispute ended unrefereed
    d = s.disputes[dispute]
    assert (d.status, d.step) == ("unrefereed", BAD_FROM)
    books_balance(s)


def test_wrong_traces_are_refused_and_change_nothing() -> None:
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    body = {"type": "dispute.trace", "dispute_id": dispute, "step": BAD_FROM,
            "operators": HONEST_OPS, "hash": VERIFIER_HASHES[BAD_FROM - START]}  # fmt: skip
    v = s.checks[check].verifier
    _refused(s, v, AT + 1, "no_question", 409, **body)  # still bisecting
    _bisect(s, dispute)
    at = AT + 20_000
    _refused(s, P2, at, "wrong_signer", 403, **body)
    _refused(s, v, at, "wrong_step", 409, **{**body, "step": BAD_FROM - 1})
    # a trace that ends in another state than the side committed at the step
    _refused(s, v, at, "bad_trace", 422, **{**body, "hash": PROVER_HASHES[BAD_FROM]})
    _refused(s, P1, at, "bad_trace", 422, **body)
    for bad in ([["aten.mm"]], [["aten.mm", "nothex"]], [["", h("op", 0)]], "aten.mm"):
        code = "invalid_dispute"
        _refused(s, v, at, code, 400, **{**body, "operators": bad})
    _send(s, v, at, **body)
    _refused(s, v, at + 1, "already_answered", 409, **body)
    # the referee is chosen once both traced: nobody referees before
    others = sorted({V1, V2, V3} - {v})
    _refused(s, others[0], at + 1, "wrong_signer", 403, **body)
    late = s.disputes[dispute].deadline + 1
    _refused(s, P1, late, "late_answer", 409, **{**body, "operators": CHEAT_OPS,
                                                  "hash": PROVER_HASHES[BAD_FROM]})  # fmt: skip
    books_balance(s)


@pytest.mark.parametrize("silent", ["prover", "verifier"])
def test_a_side_that_does_not_trace_the_step_loses(silent: str) -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    dispute = _open(s, check)
    _bisect(s, dispute)
    speaker = "verifier" if silent == "prover" else "prover"
    _trace(s, dispute, speaker, AT + 30_000, HONEST_OPS)
    result = _market(s, s.disputes[dispute].deadline, type="dispute.expire", dispute_id=dispute)
    assert result["status"] == f"{silent}_lost"
    after = _stakes(s, P1, verifier)
    honest, cheat = (verifier, P1) if silent == "prover" else (P1, verifier)
    assert after[honest] == before[honest] and after[cheat] < before[cheat]
    assert s.leases[lease].status == ("rejected" if silent == "prover" else "held")
    books_balance(s)


def test_a_step_that_computed_nothing_is_pinned_at_its_first_operator() -> None:
    """A prover that copied its weights forward dispatched no operator at all: its (empty)
    trace is accepted, and it parts from the honest one at #0 — the operator it skipped."""
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _pinned(s, check, prover=[])
    assert s.disputes[dispute].op == {
        "index": 0,
        "prover": {"name": "(the step ended)", "hash": ""},
        "verifier": {"name": HONEST_OPS[0][0], "hash": h("op", 0)},
    }
    result = _rule(s, dispute, AT + 60_000)
    assert result["status"] == "prover_lost" and s.leases[lease].status == "rejected"
    where = "step 15, operator #0: none, where the honest step ran aten.op0.default"
    assert dispute_view(s.disputes[dispute])["where"] == where
    books_balance(s)


def test_the_same_operators_leave_the_step_hash_to_the_referee() -> None:
    """Both traces dispatched the same operators (the states part outside any of them): no
    operator is pinned, and the referee's state hash after the step decides."""
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    dispute = _pinned(s, check, prover=HONEST_OPS, verifier=HONEST_OPS)
    assert s.disputes[dispute].op is None
    result = _rule(s, dispute, AT + 60_000)
    assert result["status"] == "prover_lost" and s.disputes[dispute].operator is None
    assert dispute_view(s.disputes[dispute])["where"] == "step 15"
    books_balance(s)
