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


def test_once_narrowed_the_checkers_majority_referees_the_step() -> None:
    """No referee's ruling yet: the checkers go on, and their decision ends the dispute."""
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _bisect(s, dispute)
    second = _assign(s, lease, at=AT + 10_000)
    result = _pol_verdict(s, second, False, at=AT + 11_000)
    assert result["provider_right"] is False and s.leases[lease].status == "rejected"
    d = s.disputes[dispute]
    assert (d.status, d.loser, d.step) == ("prover_lost", P1, BAD_FROM)
    assert "refereed step 15" in (d.reason or "")
    books_balance(s)


def test_a_referee_siding_with_the_verifier_slashes_the_cheating_prover_and_refunds() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _bisect(s, dispute)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    fee = s.work_cost(s.leases[lease]).scale(Fraction(1, 10))
    op = {"index": 31, "name": "aten.add_.Tensor"}
    result = _market(s, AT + 60_000, type="dispute.rule", dispute_id=dispute, step=BAD_FROM,
                     hash=VERIFIER_HASHES[BAD_FROM - START], operator=op)  # fmt: skip
    assert result["status"] == "prover_lost" and result["loser"] == P1
    assert s.disputes[dispute].operator == op
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
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _bisect(s, dispute)
    verifier = s.checks[check].verifier
    before = _stakes(s, P1, verifier)
    result = _market(s, AT + 60_000, type="dispute.rule", dispute_id=dispute, step=BAD_FROM,
                     hash=PROVER_HASHES[BAD_FROM])  # fmt: skip
    assert result["status"] == "verifier_lost" and result["loser"] == verifier
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


def test_a_referee_matching_neither_side_is_refused() -> None:
    s = _gensyn(V1, V2, V3)
    _lease, check = _held_and_mismatched(s)
    dispute = _open(s, check)
    _refused(s, MARKET.account_id, AT + 500, "not_narrowed", 409, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM, hash=PROVER_HASHES[BAD_FROM])  # fmt: skip
    _bisect(s, dispute)
    _refused(s, MARKET.account_id, AT + 60_000, "referee_disagrees", 409, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM, hash=h("elsewhere", BAD_FROM))  # fmt: skip
    _refused(s, MARKET.account_id, AT + 60_000, "wrong_step", 409, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM + 1, hash=PROVER_HASHES[BAD_FROM])  # fmt: skip
    _refused(s, V1, AT + 60_000, "wrong_signer", 403, type="dispute.rule",
             dispute_id=dispute, step=BAD_FROM, hash=PROVER_HASHES[BAD_FROM])  # fmt: skip


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
    dispute = _open(s, check)
    _bisect(s, dispute)
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
    dispute = _open(s, check)
    _bisect(s, dispute)
    _market(s, AT + 60_000, type="dispute.rule", dispute_id=dispute, step=BAD_FROM,
            hash=VERIFIER_HASHES[BAD_FROM - START])  # fmt: skip
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
        if ending == "rule":
            checked(s, tx(m, at + 1, type="dispute.rule", dispute_id=dispute,
                                  step=BAD_FROM, hash=PROVER_HASHES[BAD_FROM]))  # fmt: skip
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


def test_checkers_that_answered_while_it_bisected_decide_as_soon_as_it_is_narrowed() -> None:
    s = _gensyn(V1, V2, V3)
    lease, check = _held_and_mismatched(s)
    second = _assign(s, lease, at=AT - 500)  # assigned before the dispute opened
    dispute = _open(s, check)
    waiting = _pol_verdict(s, second, False, at=AT + 100)
    assert waiting["decided"] is False and waiting["disputed"] is True
    assert s.leases[lease].status == "held"
    _bisect(s, dispute)
    assert s.leases[lease].status == "rejected"  # decided at the last answer, not at a deadline
    d = s.disputes[dispute]
    assert (d.status, d.step, d.loser) == ("prover_lost", BAD_FROM, P1)
    books_balance(s)
